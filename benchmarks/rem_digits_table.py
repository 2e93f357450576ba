"""REM's score table of a `corrective bench --preset rem-digits` folder, from its summary.csv (no new run).

    python benchmarks/rem_digits_table.py benchmarks/results/rem_digits_bench

Prints, per method and training type of the originals: REM's score (utility x healed x 100) as the mean
over the three manipulations of the mean over alphas of the seed means; the per-manipulation scores; the
poisoning runs' target_acc (mean and worst alpha, so a "fix" by erasing the target class shows beside
the score); and each method's unlearning seconds against retrain's in the same cells (median ratio).
Methods are sorted by their score on the first training type.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

MANIPULATIONS = ("poison", "interclass", "random_swap")
BOUNDS = ("oracle", "rem_ideal")


def number(text: str) -> float | None:
    return float(text) if text not in ("", "nan") else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    args = ap.parse_args()
    rows = list(csv.DictReader((args.folder / "summary.csv").open()))
    rows = [
        r for r in rows if r.get("false_flags", "") in ("0.0", "") and r.get("expand", "none") in ("none", r["method"])
    ]
    score: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    target: dict[tuple[str, str], list[float]] = defaultdict(list)
    seconds: dict[tuple[str, str, str, str], float] = {}
    for r in rows:
        name = r["method"] if r["method"] != "none" else "original (none)"
        s = number(r["score_mean"])
        if s is not None:
            score[(name, r["training"], r["manipulation"])].append(100 * s)
        t = number(r["target_acc_mean"])
        if r["manipulation"] == "poison" and t is not None:
            target[(name, r["training"])].append(100 * t)
        sec = number(r["unlearn_seconds_mean"])
        if sec is not None:
            seconds[(name, r["training"], r["manipulation"], r["alpha"])] = sec
    trainings = sorted({r["training"] for r in rows})
    names = sorted({k[0] for k in score})

    def overall(name: str, training: str) -> float:
        per = [statistics.fmean(score[(name, training, m)]) for m in MANIPULATIONS if score[(name, training, m)]]
        return statistics.fmean(per) if len(per) == len(MANIPULATIONS) else float("nan")

    names.sort(key=lambda n: (n in BOUNDS, -overall(n, trainings[0])))
    head = ["method", *trainings]
    head += [f"{m} ({' / '.join(trainings)})" for m in MANIPULATIONS]
    head += [f"poison target_acc mean, worst alpha ({' / '.join(trainings)})", "seconds / retrain (median)"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for name in names:
        cells = [name + (" (bound)" if name in BOUNDS else "")]
        cells += [f"{overall(name, t):.1f}" for t in trainings]
        for m in MANIPULATIONS:
            cells.append(" / ".join(f"{statistics.fmean(score[(name, t, m)]):.1f}" for t in trainings))
        cells.append(
            " / ".join(
                f"{statistics.fmean(target[(name, t)]):.0f}, {min(target[(name, t)]):.0f}" if target[(name, t)] else "–"
                for t in trainings
            )
        )
        ratios = [
            sec / seconds[("retrain", *k[1:])]
            for k, sec in seconds.items()
            if k[0] == name and ("retrain", *k[1:]) in seconds and seconds[("retrain", *k[1:])] > 0
        ]
        cells.append(f"{statistics.median(ratios):.2f}" if ratios and name != "original (none)" else "–")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
