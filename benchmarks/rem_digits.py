"""REM against every registered method on digits: REM's score (utility x healed, x100), per training type.

Superseded by the preset `rem-digits`: `corrective bench --preset rem-digits`, then
`python benchmarks/rem_digits_table.py DIR` (benchmarks/results/rem_digits_bench/); kept with its results
(benchmarks/README.md).

    python benchmarks/rem_digits.py [--seeds 3] [--alphas 0.1,0.4,0.7,1.0] [--workers 2] \
        [--json benchmarks/results/rem_digits.json] > benchmarks/results/rem_digits.md

For each training type of the original model (capacity, etd), manipulation (poison, interclass,
random_swap at their default sizes), seed and alpha, every registered method (oracle bounds excluded)
runs its whole grid through `api.unlearn(..., grid=True)`, and the setting the project's selection rule
picks on the clean validation split is the one reported. Wall times of all methods are measured in the
same process, side by side, so REM / retrain is a ratio taken under the same load.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

MANIPULATIONS = ("poison", "interclass", "random_swap")
KEYS = ("score", "utility", "healed", "acc_corr", "val_accuracy", "forget_changed", "unlearn_seconds", "target_acc")


def job(args: tuple[str, str, int, list[float], list[str]]) -> list[dict[str, Any]]:
    """One original model (training type, manipulation, seed) and every method at every alpha."""
    training, kind, seed, alphas, methods = args
    torch.set_num_threads(1)
    from corrective import api

    run = api.train_run("digits", manipulation=kind, seed=seed, training=training, progress=False)
    out = [
        {
            "training": training,
            "manipulation": kind,
            "seed": seed,
            "alpha": 0.0,
            "method": "original",
            "train_seconds": run.train_seconds,
            **{k: run.metrics.get(k) for k in KEYS},
        }
    ]
    for alpha in alphas:
        for method in methods:
            res = api.unlearn(run, method, alpha, grid=True, progress=False)
            rec = res.record
            out.append(
                {
                    "training": training,
                    "manipulation": kind,
                    "seed": seed,
                    "alpha": alpha,
                    "method": method,
                    "settings": rec["settings"],
                    "candidates": len(res.records),
                    "grid_seconds": sum(r["unlearn_seconds"] for r in res.records),
                    **{k: rec.get(k) for k in KEYS},
                }
            )
    return out


def mean(values: list[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else float("nan")


def report(records: list[dict[str, Any]], args: argparse.Namespace, wall: float) -> str:
    lines = [f"# REM on digits ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", ""]
    lines.append(
        f"Seeds {args.seeds}; alpha {args.alphas}; manipulations {', '.join(MANIPULATIONS)} at default sizes; "
        f"{args.workers} single-thread worker processes on a machine shared with other developers "
        f"(timings are noisy; ratios are taken within one process). Wall time {wall / 60:.1f} min."
    )
    lines.append(
        "Score = utility x healed x 100 (REM's), mean over manipulations, alphas and seeds; every method's "
        "setting picked by the selection rule (0.5 val_accuracy + 0.5 forget_changed) over its grid."
    )
    for training in args.trainings:
        rows = [r for r in records if r["training"] == training]
        methods = sorted({r["method"] for r in rows}, key=lambda m: (m != "original", m))
        lines += [
            "",
            f"## Original models trained `{training}`",
            "",
            "| method | score | " + " | ".join(MANIPULATIONS) + " | utility | healed | seconds (selected) |",
            "|---|---|" + "---|" * len(MANIPULATIONS) + "---|---|---|",
        ]
        for m in sorted(methods, key=lambda m: -mean([r["score"] for r in rows if r["method"] == m])):
            mine = [r for r in rows if r["method"] == m]
            per = [100 * mean([r["score"] for r in mine if r["manipulation"] == k]) for k in MANIPULATIONS]
            lines.append(
                f"| {m} | {100 * mean([r['score'] for r in mine]):.1f} | "
                + " | ".join(f"{v:.1f}" for v in per)
                + f" | {100 * mean([r['utility'] for r in mine]):.1f}"
                + f" | {100 * mean([r['healed'] for r in mine]):.1f}"
                + f" | {mean([r.get('unlearn_seconds') for r in mine]):.2f} |"
            )
        rem = {(r["manipulation"], r["seed"], r["alpha"]): r["unlearn_seconds"] for r in rows if r["method"] == "rem"}
        ret = {
            (r["manipulation"], r["seed"], r["alpha"]): r["unlearn_seconds"] for r in rows if r["method"] == "retrain"
        }
        ratios = [rem[k] / ret[k] for k in rem if k in ret and ret[k]]
        if ratios:
            lines.append(
                f"\nREM seconds / retrain seconds, same cell: median {statistics.median(ratios):.2f}, "
                f"max {max(ratios):.2f} over {len(ratios)} cells (target <= 0.3)."
            )
        by_alpha = defaultdict(list)
        for r in rows:
            if r["method"] in ("rem", "retrain", "npo"):
                by_alpha[(r["method"], r["alpha"])].append(r["score"])
        alphas = sorted({a for _, a in by_alpha})
        if alphas:
            lines += [
                "",
                "Score x100 by alpha (mean over manipulations and seeds):",
                "",
                "| method | " + " | ".join(f"{a:g}" for a in alphas) + " |",
                "|---|" + "---|" * len(alphas),
            ]
            for m in ("rem", "npo", "retrain"):
                if (m, alphas[0]) in by_alpha:
                    lines.append(f"| {m} | " + " | ".join(f"{100 * mean(by_alpha[(m, a)]):.1f}" for a in alphas) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--alphas", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0")
    parser.add_argument("--trainings", default="capacity,etd")
    parser.add_argument("--methods", default="", help="comma list; default every registered method (no oracles)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from corrective.methods import METHODS

    args.trainings = args.trainings.split(",")
    methods = args.methods.split(",") if args.methods else sorted(m for m, i in METHODS.items() if i.is_method)
    alphas = [float(a) for a in args.alphas.split(",")]
    jobs = [(t, k, s, alphas, methods) for t in args.trainings for s in range(args.seeds) for k in MANIPULATIONS]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        records = [r for rs in pool.imap_unordered(job, jobs) for r in rs]
    wall = time.perf_counter() - start
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "args": {k: v for k, v in vars(args).items() if k != "json"},
                    "methods": methods,
                    "wall_seconds": wall,
                    "records": records,
                },
                indent=1,
            )
        )
    print(report(records, args, wall))


if __name__ == "__main__":
    main()
