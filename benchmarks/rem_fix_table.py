"""Before/after table of REM's repair fix (issue 11) from `corrective bench` results folders.

Each argument is LABEL=FOLDER (a folder holding results.jsonl or results.jsonl.gz). Prints, per manipulation
and alpha, mean ± std over seeds (points) of healed, acc_corr, acc_retain, target_acc and worst_class (the
lowest per-class test accuracy: a class erased by the method shows here) for rem, rem_ideal in each folder,
retrain (from the first folder) and the original and oracle rows.

    python benchmarks/rem_fix_table.py before=DIR fixonly=DIR after=DIR
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

METHODS = ("rem", "rem_ideal", "retrain")
METRICS = ("healed", "acc_corr", "acc_retain", "target_acc", "worst_class")


def records(folder: Path) -> list[dict]:
    """The folder's records, restricted to the seeds and alphas of its spec.json (the spec last run there)."""
    path = folder / "results.jsonl"
    if path.exists():
        lines = path.read_text().splitlines()
    else:
        lines = gzip.decompress((folder / "results.jsonl.gz").read_bytes()).decode().splitlines()
    spec = json.loads((folder / "spec.json").read_text())
    recs = [json.loads(line) for line in lines if line.strip()]
    for r in recs:
        if r.get("per_class_acc"):
            r["worst_class"] = min(r["per_class_acc"])
    return [r for r in recs if r["seed"] in spec["seeds"] and (r.get("alpha") is None or r["alpha"] in spec["alphas"])]


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}"


def main(args: list[str]) -> None:
    runs = {label: records(Path(folder)) for label, folder in (a.split("=", 1) for a in args)}
    first = next(iter(runs.values()))
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for label, recs in runs.items():
        for r in recs:
            if r["stage"] == "unlearn" and r["method"] in METHODS:
                groups[(r["manipulation"], r["alpha"], f"{r['method']} ({label})")].append(r)
    for r in first:
        if r["stage"] in ("original", "oracle"):
            for alpha in sorted({k[1] for k in groups if k[0] == r["manipulation"]}):
                groups[(r["manipulation"], alpha, r["stage"])].append(r)
    print("| manipulation | alpha | row | n | " + " | ".join(METRICS) + " | runs with a class < 50 % |")
    print("|---|---|---|---|" + "---|" * (len(METRICS) + 1))
    first_label = next(iter(runs))
    for key in [k for k in groups if k[2].startswith("retrain (")]:  # retraining is one method: the first folder's
        recs = groups.pop(key)
        if key[2] == f"retrain ({first_label})":
            groups[(key[0], key[1], "retrain")] = recs
    order = ["original", *[f"{m} ({label})" for m in METHODS if m != "retrain" for label in runs], "retrain", "oracle"]
    for manipulation in sorted({k[0] for k in groups}):
        for alpha in sorted({k[1] for k in groups if k[0] == manipulation}):
            for row in order:
                recs = groups.get((manipulation, alpha, row), [])
                if not recs:
                    continue
                cells = [cell([r[m] for r in recs if r.get(m) is not None]) for m in METRICS]
                erased = sum(r.get("worst_class", 1.0) < 0.5 for r in recs)
                print(f"| {manipulation} | {alpha:g} | {row} | {len(recs)} | " + " | ".join(cells) + f" | {erased} |")


if __name__ == "__main__":
    main(sys.argv[1:])
