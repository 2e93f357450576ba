"""REM at its defaults against REM's code (10 repair epochs, whole-batch drop-mode forward), from the records of
`corrective bench --config benchmarks/rem_budget.toml`: cost against the retrain of the same cell and REM's score.

    python benchmarks/rem_budget_table.py benchmarks/results/rem_budget_bench/results.jsonl.gz

Prints the markdown table of benchmarks/results/rem_speed.md ("A budget as a share"): per version the median and
largest REM / retrain ratio over cells, the seconds, REM's score (utility x healed x 100) overall, per training
type and manipulation, the poisoning runs' target_acc, per-rate changes, and the cells leaving a class below 50 %.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics as st
from collections import defaultdict
from pathlib import Path

CODE = "REM's code (10 repair epochs, whole batch)"
DEFAULTS = "defaults (budget 0.245, drop_share 0.5)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", type=Path)
    path = ap.parse_args().records
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        records = [json.loads(line) for line in f]

    def cell(r: dict) -> tuple:
        return r["training"], r["manipulation"], r["seed"], r["alpha"]

    retrain = {cell(r): r["unlearn_seconds"] for r in records if r.get("method") == "retrain"}
    by: dict[str, dict[tuple, dict]] = defaultdict(dict)
    for r in records:
        if r.get("method") == "rem":
            for c in r["candidates"]:
                by[CODE if c["settings"].get("repair_epochs") == 10.0 else DEFAULTS][cell(r)] = c
    trainings = sorted({k[0] for k in retrain})  # capacity and etd in rem_budget.toml
    head = ["version", "REM / retrain (median over cells)", "largest", "REM s (sum)", "retrain s (sum)", "score"]
    head += [*trainings, "poison", "interclass", "random swap", "poison target_acc", "cells with a class < 50 %"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for version in (CODE, DEFAULTS):
        runs = by[version]
        ratios = [c["unlearn_seconds"] / retrain[k] for k, c in runs.items()]

        def score(keep, runs=runs) -> float:
            return 100 * st.mean(c["score"] for k, c in runs.items() if keep(k))

        target = 100 * st.mean(c["target_acc"] for k, c in runs.items() if k[1] == "poison")
        erased = sum(min(c["per_class_acc"]) < 0.5 for c in runs.values())
        cells = [
            version,
            f"{st.median(ratios):.2f}",
            f"{max(ratios):.2f}",
            f"{sum(c['unlearn_seconds'] for c in runs.values()):.0f}",
            f"{sum(retrain[k] for k in runs):.0f}",
            f"{score(lambda k: True):.2f}",
            *(f"{score(lambda k, t=t: k[0] == t):.2f}" for t in trainings),
            *(f"{score(lambda k, m=m: k[1] == m):.2f}" for m in ("poison", "interclass", "random_swap")),
            f"{target:.1f}",
            str(erased),
        ]
        print("| " + " | ".join(cells) + " |")
    old, new = by[CODE], by[DEFAULTS]
    change = [100 * (new[k]["score"] - old[k]["score"]) for k in old]
    print(
        f"\n{len(old)} cells; per-cell score change: mean {st.mean(change):+.2f}, median {st.median(change):+.2f}, "
        f"range {min(change):+.1f} to {max(change):+.1f}\n"
    )
    print("| alpha | score change | REM / retrain, REM's code | REM / retrain, defaults |")
    print("|---:|---:|---:|---:|")
    for alpha in sorted({k[3] for k in old}):
        keys = [k for k in old if k[3] == alpha]
        print(
            f"| {alpha:g} | {st.mean(100 * (new[k]['score'] - old[k]['score']) for k in keys):+.2f} "
            f"| {st.median(old[k]['unlearn_seconds'] / retrain[k] for k in keys):.2f} "
            f"| {st.median(new[k]['unlearn_seconds'] / retrain[k] for k in keys):.2f} |"
        )


if __name__ == "__main__":
    main()
