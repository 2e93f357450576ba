"""Attacks beyond one white square: every backdoor of the registry against the methods, on digits or Fashion-MNIST.

    python benchmarks/attacks.py [--config benchmarks/attacks_digits.toml] [--out DIR] [--skip-run] \
        [--workers N] [--copy DIR] > benchmarks/results/attacks.md

Runs the bench spec (default `benchmarks/attacks_digits.toml`: blended, WaNet and SIG at 5 %, seeds 0-2,
alpha 0.1; none, retrain, SCRUB, SSD, Potion, REM under the paper's rule and `auto`;
`benchmarks/attacks_fashion.toml`: the same attacks on Fashion-MNIST, seed 0, none, retrain, SCRUB and `auto`;
any registered backdoor a spec names is read the same way) and prints per attack: the original's and the
oracle's attack success, C-Acc and target_acc; `auto`'s expansion (strategy, precision and recall of S_m), the
candidate its rule selected and whether it returned the original (do no harm); and per method and alpha the
selected model's ASR, C-Acc, target_acc, healed, DER and cost (the method's seconds over retrain's and over the
oracle's training, on the same original and alpha, measured side by side in one run). With `--copy` the records
(compressed), summary, spec and the Markdown report are kept in that folder (`corrective.bench.keep_records`).
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
from corrective.bench import keep_records, load_spec, read_records, run_bench
from corrective.manipulations import BACKDOORS

SPEC = Path(__file__).resolve().parent / "attacks_digits.toml"
METHODS = ("none", "retrain", "finetune", "scrub", "ssd", "potion", "rem", "transplant", "auto")
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
    """What the method cost over its whole grid: the candidates' unlearn_seconds (shared work included), plus
    the expansion's seconds where it expanded S_f itself (`auto`)."""
    candidates = record.get("candidates") or []
    own = sum(c.get("unlearn_seconds") or 0.0 for c in candidates) or float(record.get("unlearn_seconds") or 0.0)
    return own + float(record.get("expand_seconds") or 0.0)


def ratio(values: list[float]) -> str:
    m = mean(values)
    return "–" if math.isnan(m) else f"{m:.2f}"


def chosen_setting(record: dict) -> str:
    """The candidate the rule selected, in words: the original returned, or the settings that differ across
    the grid."""
    if record.get("returned_original") or record.get("is_original"):
        return "the original (no candidate within the guard)"
    candidates = record.get("candidates") or []
    keys = sorted({k for c in candidates for k in (c.get("settings") or {})})
    varying = [k for k in keys if len({repr((c.get("settings") or {}).get(k)) for c in candidates}) > 1]
    settings = record.get("settings") or {}
    shown = [k for k in ("base", *varying) if k in settings and (k == "base" or k in varying)]
    return ", ".join(f"{k} {settings[k]}" for k in dict.fromkeys(shown)) or "its one setting"


BASE_KNOBS = {"scrub": ("kl_weight",), "transplant": ("lr_factor", "budget"), "finetune": ("lr_factor",)}


def candidate_setting(settings: dict) -> str:
    """One of auto's candidates in words: its base and the settings its candidates vary."""
    base = settings.get("base", "scrub")
    anchored = [f"anchor {settings['anchor']}"] if settings.get("anchor") else []  # the transplant's last candidates
    resumed = ["resumed"] if settings.get("resume") else []  # continues the candidate before it (since 2026-12-06)
    knobs = (f"{k} {settings[k]}" for k in BASE_KNOBS.get(base, ()) if k in settings)
    return ", ".join([base, *knobs, *anchored, *resumed])


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--config", type=Path, default=SPEC)
    ap.add_argument("--out", type=Path, default=Path("results/attacks_digits"))
    ap.add_argument("--skip-run", action="store_true", help="only read the records already in --out")
    ap.add_argument("--workers", type=int, help="jobs at once (default: the spec's)")
    ap.add_argument("--copy", type=Path, help="keep the records (compressed), summary, spec and report here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    start = time.perf_counter()
    if not args.skip_run:
        sets = {} if args.workers is None else {"workers": args.workers}
        result = run_bench(load_spec(config=args.config, sets=sets), args.out, progress=False)
        if result.failed:
            raise SystemExit(f"bench failed: {result.failed[:3]}")
    wall = time.perf_counter() - start
    after = os.getloadavg()
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
    datasets = ", ".join(sorted({r["dataset"] for r in originals.values()}))
    print(f"# Attacks beyond one white square ({datasets})\n")
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, corrective {__version__}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPU cores shared with other sessions; load average {load[0]:.1f} before, "
        f"{after[0]:.1f} after; "
        + ("records read only (--skip-run)." if args.skip_run else f"{len(records)} records in {wall:.0f} s.")
    )
    print(
        f"\nCommand: `python benchmarks/attacks.py --config {args.config.name} --out {args.out}"
        f"{' --skip-run' if args.skip_run else ''}`\n"
    )
    print(
        f"Spec: `{args.config.name}`. Values in %, mean over seeds {', '.join(map(str, seeds))}. ASR: attack success "
        "(non-target test images with the trigger predicted as the target); C-Acc: clean test accuracy; target: "
        "clean accuracy on the target class (a method that erases the class 'removes' the backdoor; read ASR "
        "beside it); healed: accuracy on S_m as the model saw it against clean labels (meaningless for SIG, "
        "whose labels were right); DER: BackdoorBench's defence effectiveness against the original (50 = no "
        "change). auto's P / R: precision and recall of S_m of its expanded set (the strategy it chose: n "
        "neighbours, l label_noise). Cost: the method's seconds over its whole grid (its candidates' "
        "unlearn_seconds, plus the expansion's for auto) over retrain's (S_tr without S_f) and over the oracle's "
        "training (without S_m), same original and alpha, measured side by side in one run.\n"
    )
    print("## The originals and auto's expansion\n")
    print(
        "| attack | ASR | C-Acc | target | oracle ASR | oracle C-Acc | oracle target | "
        + " | ".join(f"auto's P / R @ {a:g}" for a in alphas)
        + " |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(alphas))
    for k in kinds:
        orig = [originals[(k, s)] for s in seeds if (k, s) in originals]
        orc = [oracle[(k, s)] for s in seeds if (k, s) in oracle]
        cells = [
            pct([r["attack_success"] for r in orig]),
            pct([r["clean_acc"] for r in orig]),
            pct([r["target_acc"] for r in orig]),
            pct([r["attack_success"] for r in orc]),
            pct([r["clean_acc"] for r in orc]),
            pct([r["target_acc"] for r in orc]),
        ]
        for a in alphas:
            rs = [expansions[(k, a, s)] for s in seeds if (k, a, s) in expansions]
            chosen = "".join(sorted({r.get("expand_chosen", "?")[0] for r in rs}))
            cells.append(
                f"{pct([r['expand_precision'] for r in rs])} / {pct([r['expand_recall'] for r in rs])} ({chosen})"
            )
        print(f"| {TITLES.get(k, k)} | " + " | ".join(cells) + " |")
    print("\n## What auto did, per attack and seed\n")
    print(
        "| attack | alpha | seed | flagged | expansion | expanded | P / R | selected candidate | do no harm "
        "| val class drop | ASR | C-Acc | target |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---|---|---:|---:|---:|---:|")
    for k in kinds:
        for a in alphas:
            for s in seeds:
                r = selected.get((k, "auto", a, s))
                if r is None:
                    continue
                e = expansions.get((k, a, s), {})
                harm = r.get("do_no_harm", "–") + (" (original returned)" if r.get("returned_original") else "")
                print(
                    f"| {TITLES.get(k, k)} | {a:g} | {s} | {e.get('n_flagged', '–')} | {e.get('expand_chosen', '–')} "
                    f"| {e.get('n_expanded', '–')} | {pct([e.get('expand_precision', math.nan)])} / "
                    f"{pct([e.get('expand_recall', math.nan)])} | {chosen_setting(r)} | {harm} | "
                    f"{pct([r.get('val_class_drop', math.nan)])} | {pct([r['attack_success']])} | "
                    f"{pct([r['clean_acc']])} | {pct([r['target_acc']])} |"
                )
    print(
        "\n## auto's candidates\n\nEvery setting of `auto`'s grid that ran, per attack and seed (alpha "
        + ", ".join(f"{a:g}" for a in alphas)
        + "): its ASR, C-Acc and target_acc on the test set (never seen by the rule) and the largest fall of a "
        "class on the clean validation split, which the guarded rule reads (eligible: at most the guard, "
        "`max_class_drop`); * marks the rule's choice, x a choice the guard rejected (the original returned).\n"
    )
    print("| attack | alpha | seed | setting | ASR | C-Acc | target | val class drop |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for k in kinds:
        for a in alphas:
            for s in seeds:
                r = selected.get((k, "auto", a, s))
                for c in (r or {}).get("candidates") or []:
                    mark = " x" if c.get("rejected_by_guard") else " *" if c.get("selected") else ""
                    setting = candidate_setting(c.get("settings") or {})
                    print(
                        f"| {TITLES.get(k, k)} | {a:g} | {s} | {setting or c.get('settings')}{mark} | "
                        f"{pct([c['attack_success']])} | {pct([c['clean_acc']])} | {pct([c['target_acc']])} | "
                        f"{pct([c.get('val_class_drop', math.nan)])} |"
                    )
    for k in kinds:
        print(f"\n## {TITLES.get(k, k)}\n")
        print("| method | alpha | ASR | C-Acc | target | healed | DER | cost × retrain | cost × oracle | n |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for a in alphas:
            for m in METHODS:
                rs = [selected[(k, m, a, s)] for s in seeds if (k, m, a, s) in selected]
                if not rs:
                    continue
                costs, over_oracle = [], []
                for r in rs:
                    base = selected.get((k, "retrain", a, r["seed"]))
                    if base and grid_seconds(base):
                        costs.append(grid_seconds(r) / grid_seconds(base))
                    orc_r = oracle.get((k, r["seed"]))
                    if orc_r and orc_r.get("unlearn_seconds"):
                        over_oracle.append(grid_seconds(r) / float(orc_r["unlearn_seconds"]))
                cells = [
                    pct([r["attack_success"] for r in rs]),
                    pct([r["clean_acc"] for r in rs]),
                    pct([r["target_acc"] for r in rs]),
                    pct([r["healed"] for r in rs]),
                    pct([r.get("der", math.nan) for r in rs]),
                    ratio(costs),
                    ratio(over_oracle),
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
                f"target {pct([r['target_acc'] for r in rs])} %; "
                f"returned the original in {sum(bool(r.get('returned_original')) for r in rs)} of {len(rs)}."
            )
    if args.copy:
        from corrective.report import write_report

        keep_records(args.out, args.copy)
        write_report(args.out, args.copy, fmt="md")


if __name__ == "__main__":
    main()
