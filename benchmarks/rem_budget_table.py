"""REM's versions side by side — REM's code (10 repair epochs, whole-batch drop-mode forward), the defaults of
2026-12-04 (budget 0.245 of the training's steps: 98 on digits, the last epoch partial) and those since 2026-12-05
(budget 0.16 in whole repair epochs: 3 on digits) — from the records of `corrective bench --config
benchmarks/rem_budget.toml` or `benchmarks/rem_epochs.toml`: cost against the retrain of the same cell and REM's score.

    python benchmarks/rem_budget_table.py benchmarks/results/rem_epochs_bench/results.jsonl.gz

Prints the markdown tables of benchmarks/results/rem_speed.md: per version the median and largest REM / retrain
ratio over cells, the seconds, REM's score (utility x healed x 100) overall, per training type and manipulation, the
poisoning runs' target_acc and the cells leaving a class below 50 %; then each version's per-cell score change
against REM's code and its cost per rate.
"""

from __future__ import annotations

import argparse
import statistics as st
from collections import defaultdict
from pathlib import Path

from corrective.bench.store import read_records

CODE = "REM's code (10 repair epochs, whole batch)"
SHARE = "2026-12-04: budget 0.245 (98 steps)"
EPOCHS = "defaults: budget 0.16, whole epochs (3)"
OLD_STEPS = 5.158  # rem_epochs.toml's repair_epochs for the 2026-12-04 steps: 98 on digits' 19-step epochs


def version(settings: dict) -> str:
    if settings.get("repair_epochs") == 10.0 and settings.get("drop_share") == 1.0:
        return CODE
    if settings.get("repair_epochs") == OLD_STEPS or (
        settings.get("repair_epochs") is None and settings["budget"] == 0.245
    ):
        return SHARE
    if settings.get("repair_epochs") is None and settings["budget"] == 0.16:
        return EPOCHS
    raise SystemExit(f"a REM record with settings this table does not know: {settings}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", type=Path)
    records = read_records(ap.parse_args().records)

    def cell(r: dict) -> tuple:
        return r["training"], r["manipulation"], r["seed"], r["alpha"]

    retrain = {cell(r): r["unlearn_seconds"] for r in records if r.get("method") == "retrain"}
    by: dict[str, dict[tuple, dict]] = defaultdict(dict)
    for r in records:
        if r.get("method") == "rem":
            for c in r["candidates"]:
                by[version(c["settings"])][cell(r)] = c
    versions = [v for v in (CODE, SHARE, EPOCHS) if v in by]
    trainings = sorted({k[0] for k in retrain})  # capacity and etd
    head = ["version", "REM / retrain (median over cells)", "largest", "REM s (sum)", "retrain s (sum)", "score"]
    head += [*trainings, "poison", "interclass", "random swap", "poison target_acc", "cells with a class < 50 %"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for v in versions:
        runs = by[v]
        ratios = [c["unlearn_seconds"] / retrain[k] for k, c in runs.items()]

        def score(keep, runs=runs) -> float:
            return 100 * st.mean(c["score"] for k, c in runs.items() if keep(k))

        target = 100 * st.mean(c["target_acc"] for k, c in runs.items() if k[1] == "poison")
        erased = sum(min(c["per_class_acc"]) < 0.5 for c in runs.values())
        cells = [
            v,
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
    code = by[CODE]
    others = [v for v in versions if v != CODE]
    print()
    for v in others:
        change = [100 * (by[v][k]["score"] - code[k]["score"]) for k in code]
        print(
            f"{v} against REM's code, {len(code)} cells: per-cell score change mean {st.mean(change):+.2f}, "
            f"median {st.median(change):+.2f}, range {min(change):+.1f} to {max(change):+.1f}  "
        )
    print(
        "\n| alpha | "
        + " | ".join(f"score change, {v}" for v in others)
        + " | REM / retrain, REM's code | "
        + " | ".join(f"REM / retrain, {v}" for v in others)
        + " |"
    )
    print("|---:|" + "---:|" * (2 * len(others) + 1))
    for alpha in sorted({k[3] for k in code}):
        keys = [k for k in code if k[3] == alpha]
        changes = [f"{st.mean(100 * (by[v][k]['score'] - code[k]['score']) for k in keys):+.2f}" for v in others]
        ratios = [f"{st.median(by[v][k]['unlearn_seconds'] / retrain[k] for k in keys):.2f}" for v in [CODE, *others]]
        print(f"| {alpha:g} | " + " | ".join(changes + ratios) + " |")


if __name__ == "__main__":
    main()
