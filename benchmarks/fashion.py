"""Fashion-MNIST, the second built-in benchmark: run a preset and print what it measured, by manipulation.

    python benchmarks/fashion.py [--preset fashion-quick | --config SPEC.toml] [--out DIR] [--skip-run] \
        [--copy benchmarks/results/fashion_bench] [--json benchmarks/results/fashion_bench.json]

Runs `corrective bench --preset PRESET --out DIR` (default `fashion-quick`: seed 0, alpha 0.1; none, SCRUB,
SSD on S_f as found, `auto`, the oracle; cnn28 with preset cpu28), times the whole run, and prints per
manipulation the original's and every selected method's acc_corr, healed, clean accuracy, target_acc (a
backdoor), attack success, the class that fell most on the clean test set, the set the method acted on
(with `auto`'s expansion precision/recall of S_m) and its seconds (the whole grid) over the oracle's. With
`--copy` the records (compressed), summary, spec and the Markdown report go to that folder. Rows are per rate and
false-flag share (`0.1 +0.2 ff`: alpha 0.1 with a fifth of |S_f| flagged by mistake).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from corrective import __version__
from corrective.bench import keep_records, load_spec, read_records, run_bench

METHODS = ("none", "retrain", "scrub", "ssd", "potion", "rem", "npo", "bad_teacher", "finetune", "auto")


def mean(values: list[Any]) -> float:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return statistics.fmean(vals) if vals else math.nan


def pct(v: float) -> str:
    return "–" if math.isnan(v) else f"{100 * v:.1f}"


def grid_seconds(record: dict[str, Any]) -> float:
    """A method's cost over its whole grid (its candidates' unlearn_seconds), plus its expansion's seconds."""
    candidates = record.get("candidates") or []
    own = sum(c.get("unlearn_seconds") or 0.0 for c in candidates) or float(record.get("unlearn_seconds") or 0.0)
    return own + float(record.get("expand_seconds") or 0.0)


def case(r: dict[str, Any]) -> str:
    """The manipulation and its settings that tell two cases apart (interclass's pair)."""
    classes = r.get("classes")
    return (
        f"{r['manipulation']} {tuple(classes)}" if r["manipulation"] == "interclass" and classes else r["manipulation"]
    )


def rate(r: dict[str, Any]) -> tuple[float, float]:
    """(alpha, false-flag share) of a record."""
    return float(r["alpha"]), float(r.get("false_flags") or 0.0)


def rate_label(a: tuple[float, float]) -> str:
    return f"{a[0]:g}" + (f" +{a[1]:g} ff" if a[1] else "")


def row(
    originals: dict[tuple[str, int], dict[str, Any]],
    name: str,
    alpha: str,
    rs: list[dict[str, Any]],
    acted: str,
    pr: str,
    cost: float,
) -> dict[str, Any]:
    """Print one table row (the mean over `rs`) and return its figures."""
    falls = []
    for r in rs:
        o = originals.get((case(r), r["seed"]))
        if o is not None:
            falls.append(max(a - b for a, b in zip(o["per_class_acc"], r["per_class_acc"], strict=True)))
    keys = ("acc_corr", "healed", "clean_acc", "target_acc", "attack_success")
    figures = {k: mean([r.get(k) for r in rs]) for k in keys}
    fall = mean(falls) if falls else math.nan
    print(
        f"| {name} | {alpha} | {pct(figures['acc_corr'])} | {pct(figures['healed'])} | "
        f"{pct(figures['clean_acc'])} | {'–' if math.isnan(fall) else f'{100 * fall:.1f}'} | "
        f"{pct(figures['target_acc'])} | {pct(figures['attack_success'])} | {acted} | {pr} | "
        f"{'–' if math.isnan(cost) else f'{cost:.2f}x'} |"
    )
    return {"model": name, "alpha": alpha, **figures, "fall": fall, "acted": acted, "pr": pr, "cost": cost}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--preset", default=None, help="a shipped preset (default fashion-quick)")
    ap.add_argument("--config", type=Path, help="a bench spec (TOML) instead of a preset")
    ap.add_argument("--out", type=Path, default=Path("results/fashion-quick"))
    ap.add_argument("--skip-run", action="store_true", help="only read the records already in --out")
    ap.add_argument("--copy", type=Path, help="copy results.jsonl.gz, summary.csv, spec.json and report.md here")
    ap.add_argument("--json", type=Path, help="write the printed figures here")
    args = ap.parse_args()
    if args.preset and args.config:
        ap.error("give --preset or --config, not both")
    name = str(args.config) if args.config else (args.preset or "fashion-quick")
    load = os.getloadavg()
    start = time.perf_counter()
    if not args.skip_run:
        spec = load_spec(config=args.config) if args.config else load_spec(preset=args.preset or "fashion-quick")
        result = run_bench(spec, args.out, progress=False)
        if result.failed:
            raise SystemExit(f"bench failed: {result.failed[:3]}")
    wall = time.perf_counter() - start
    after = os.getloadavg()
    records = read_records(args.out / "results.jsonl")
    originals = {(case(r), r["seed"]): r for r in records if r["stage"] == "original"}
    oracles = {(case(r), r["seed"]): r for r in records if r["stage"] == "oracle"}
    selected = [r for r in records if r["stage"] == "unlearn" and r.get("selected", True)]
    expansions = {(case(r), rate(r), r["seed"]): r for r in records if r["stage"] == "expand"}
    cases = sorted({c for c, _ in originals})
    seeds = sorted({s for _, s in originals})
    print(f"# Fashion-MNIST: {name}\n")
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, corrective {__version__}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPU cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} before, "
        f"{after[0]:.2f} after; "
        + ("records read only (--skip-run)." if args.skip_run else f"{len(records)} records in **{wall:.0f} s**.")
    )
    print(
        f"\nCommand: `python benchmarks/fashion.py {'--config' if args.config else '--preset'} {name} --out {args.out}"
        f"{' --skip-run' if args.skip_run else ''}`\n"
    )
    print(
        "Values in %, mean over seeds " + ", ".join(map(str, seeds)) + ". acc_corr: the manipulated domain of the "
        "test set with clean labels (a backdoor: triggered test images); healed: S_m as the model saw it against "
        "clean labels; clean: test accuracy; fall: the largest fall of a test class against the original (points); "
        "target: the backdoor's target class; ASR: attack success. acted on: the ids the method unlearned (auto: "
        "its expansion of S_f, with precision / recall of S_m). cost: seconds over the whole grid (expansion "
        "included) / the oracle's training, same seed, one run.\n"
    )
    summary: dict[str, Any] = {"preset": name, "wall_seconds": None if args.skip_run else wall, "cases": {}}
    for c in cases:
        print(f"## {c}\n")
        print("| model | alpha | acc_corr | healed | clean | fall | target | ASR | acted on | P / R | cost |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        rows: list[dict[str, Any]] = []
        origs = [originals[(c, s)] for s in seeds if (c, s) in originals]

        rows.append(row(originals, "original", "", origs, "", "", math.nan))
        orcs = [oracles[(c, s)] for s in seeds if (c, s) in oracles]
        rows.append(row(originals, "oracle", "", orcs, str(round(mean([r.get("n_forget") for r in orcs]))), "", 1.0))
        rates = sorted({rate(r) for r in selected if case(r) == c})
        for a in rates:
            for m in METHODS:
                ms = [r for r in selected if case(r) == c and r["method"] == m and rate(r) == a]
                for ex in sorted({r.get("expand") or "none" for r in ms}, key=lambda e: (e != "none", e)):
                    rs = [r for r in ms if (r.get("expand") or "none") == ex]
                    costs = [
                        grid_seconds(r) / float(oracles[(c, r["seed"])].get("unlearn_seconds") or math.nan)
                        for r in rs
                        if (c, r["seed"]) in oracles
                    ]
                    acted = str(round(mean([r.get("n_forget") for r in rs])))
                    pr = ""
                    if rs[0].get("expand") not in (None, "none"):
                        exps = [expansions.get((c, a, r["seed"])) for r in rs]
                        exps = [e for e in exps if e is not None]
                        precision = mean([e["expand_precision"] for e in exps])
                        pr = f"{pct(precision)} / {pct(mean([e['expand_recall'] for e in exps]))}"
                        if any(r.get("returned_original") for r in rs):
                            pr += " (original returned)"
                    name = m if ex == "none" or m == "auto" else f"{m} + {ex} expansion"
                    rows.append(row(originals, name, rate_label(a), rs, acted, pr, mean(costs)))
        print()
        summary["cases"][c] = rows
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    if args.copy:
        from corrective.report import write_report

        keep_records(args.out, args.copy)
        write_report(args.out, args.copy, fmt="md")


if __name__ == "__main__":
    main()
