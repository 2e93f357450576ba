"""Attacks beyond one white square: every backdoor of the registry against the methods, on digits.

    python benchmarks/attacks.py [--config benchmarks/attacks_digits.toml] [--out DIR] [--skip-run] \
        > benchmarks/results/attacks.md

Runs the bench spec (default `benchmarks/attacks_digits.toml`: blended, WaNet and SIG at 5 %, seeds 0-2,
alpha 0.1; none, retrain, SCRUB, SSD, Potion, REM under the paper's rule and `auto`; any registered backdoor
a spec names is read the same way) and prints per attack: the original's attack success, C-Acc and
target_acc; `auto`'s expansion precision and recall of S_m; and per method and alpha the selected model's
ASR, C-Acc, target_acc, healed, DER and cost (the method's seconds over retrain's on the same original and
alpha, measured side by side in one run).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from corrective import __version__
from corrective.bench import load_spec, read_records, run_bench
from corrective.manipulations import BACKDOORS

SPEC = Path(__file__).resolve().parent / "attacks_digits.toml"
METHODS = ("none", "retrain", "scrub", "ssd", "potion", "rem", "auto")
TITLES = {
    "poison": "BadNet (reference)",
    "blended": "Blended (Chen et al. 2017)",
    "wanet": "WaNet (Nguyen & Tran 2021)",
    "sig": "SIG (Barni et al. 2019), clean label",
}


def mean(values: list[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.fmean(vals) if vals else math.nan


def pct(values: list[float]) -> str:
    m = mean(values)
    return "–" if math.isnan(m) else f"{100 * m:.1f}"


def grid_seconds(record: dict) -> float:
    """What the method cost over its whole grid: the candidates' unlearn_seconds (shared work included)."""
    candidates = record.get("candidates") or []
    return sum(c.get("unlearn_seconds") or 0.0 for c in candidates) or float(record.get("unlearn_seconds") or 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--config", type=Path, default=SPEC)
    ap.add_argument("--out", type=Path, default=Path("results/attacks_digits"))
    ap.add_argument("--skip-run", action="store_true", help="only read the records already in --out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    start = time.perf_counter()
    if not args.skip_run:
        result = run_bench(load_spec(config=args.config), args.out, progress=False)
        if result.failed:
            raise SystemExit(f"bench failed: {result.failed[:3]}")
    wall = time.perf_counter() - start
    records = read_records(args.out / "results.jsonl")
    originals = {(r["manipulation"], r["seed"]): r for r in records if r["stage"] == "original"}
    oracle = {(r["manipulation"], r["seed"]): r for r in records if r["stage"] == "oracle"}
    selected = {
        (r["manipulation"], r["method"], r["alpha"], r["seed"]): r
        for r in records
        if r["stage"] == "unlearn" and r.get("selected", True)
    }
    expansions = {
        (r["manipulation"], r["alpha"], r["seed"]): r
        for r in records
        if r["stage"] == "expand" and r.get("expand") == "auto"
    }
    kinds = [k for k in BACKDOORS if any(key[0] == k for key in originals)]
    seeds = sorted({s for _, s in originals})
    alphas = sorted({a for (_, _, a, _) in selected})
    print("# Attacks beyond one white square (digits)\n")
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, corrective {__version__}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPU cores shared with other sessions; load average {load[0]:.1f} before; "
        + ("records read only (--skip-run)." if args.skip_run else f"{len(records)} records in {wall:.0f} s.")
    )
    print(f"\nCommand: `python benchmarks/attacks.py --out {args.out}{' --skip-run' if args.skip_run else ''}`\n")
    print(
        f"Spec: `{args.config.name}`. Values in %, mean over seeds {', '.join(map(str, seeds))}. ASR: attack success "
        "(non-target test images with the trigger predicted as the target); C-Acc: clean test accuracy; target: "
        "clean accuracy on the target class (a method that erases the class 'removes' the backdoor; read ASR "
        "beside it); healed: accuracy on S_m as the model saw it against clean labels (meaningless for SIG, "
        "whose labels were right); DER: BackdoorBench's defence effectiveness against the original (50 = no "
        "change). auto's P / R: precision and recall of S_m of its expanded set (the strategy it chose: n "
        "neighbours, l label_noise). Cost: the method's seconds over its whole grid (its candidates' "
        "unlearn_seconds) over "
        "retrain's, same original and alpha, measured side by side in one run.\n"
    )
    print("## The originals and auto's expansion\n")
    print(
        "| attack | ASR | C-Acc | target | oracle ASR | " + " | ".join(f"auto's P / R @ {a:g}" for a in alphas) + " |"
    )
    print("|---|---:|---:|---:|---:|" + "---:|" * len(alphas))
    for k in kinds:
        orig = [originals[(k, s)] for s in seeds if (k, s) in originals]
        orc = [oracle[(k, s)] for s in seeds if (k, s) in oracle]
        cells = [
            pct([r["attack_success"] for r in orig]),
            pct([r["clean_acc"] for r in orig]),
            pct([r["target_acc"] for r in orig]),
            pct([r["attack_success"] for r in orc]),
        ]
        for a in alphas:
            rs = [expansions[(k, a, s)] for s in seeds if (k, a, s) in expansions]
            chosen = "".join(sorted({r.get("expand_chosen", "?")[0] for r in rs}))
            cells.append(
                f"{pct([r['expand_precision'] for r in rs])} / {pct([r['expand_recall'] for r in rs])} ({chosen})"
            )
        print(f"| {TITLES.get(k, k)} | " + " | ".join(cells) + " |")
    for k in kinds:
        print(f"\n## {TITLES.get(k, k)}\n")
        print("| method | alpha | ASR | C-Acc | target | healed | DER | cost × retrain | n |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for a in alphas:
            for m in METHODS:
                rs = [selected[(k, m, a, s)] for s in seeds if (k, m, a, s) in selected]
                if not rs:
                    continue
                costs = []
                for r in rs:
                    base = selected.get((k, "retrain", a, r["seed"]))
                    if base and grid_seconds(base):
                        costs.append(grid_seconds(r) / grid_seconds(base))
                cost = mean(costs)
                cells = [
                    pct([r["attack_success"] for r in rs]),
                    pct([r["clean_acc"] for r in rs]),
                    pct([r["target_acc"] for r in rs]),
                    pct([r["healed"] for r in rs]),
                    pct([r.get("der", math.nan) for r in rs]),
                    "–" if math.isnan(cost) else f"{cost:.2f}",
                    str(len(rs)),
                ]
                print(f"| {m} | {a:g} | " + " | ".join(cells) + " |")
    new = [k for k in kinds if k != "poison"]
    for a in alphas:
        rs = [selected[(k, "auto", a, s)] for k in new for s in seeds if (k, "auto", a, s) in selected]
        orig = [originals[(r["manipulation"], r["seed"])] for r in rs]  # the same originals
        if rs:
            print(
                f"\n`auto` at alpha {a:g} over {', '.join(new)} and the seeds: "
                f"ASR {pct([r['attack_success'] for r in rs])} %, "
                f"C-Acc {pct([r['clean_acc'] for r in rs])} % (original {pct([r['clean_acc'] for r in orig])} %), "
                f"target {pct([r['target_acc'] for r in rs])} %."
            )


if __name__ == "__main__":
    main()
