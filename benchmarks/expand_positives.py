"""The expansion's positives estimate (`expand/cutoff.py`): which cases change when the cutoff's precision safeguard
estimates the manipulated samples among the unflagged ones another way, on saved runs.

Each RUN is a folder holding `run.json` and `model.safetensors` (`corrective train --out RUN`, or an original in a
bench's `models/`). For each run, alpha (and `--false-flags` share) and estimate, `auto` expands S_f exactly as
`corrective expand --strategy auto` does with `expand.cutoff`'s estimate swapped in; precision and recall against
S_m are computed here (the strategy never sees S_m). Only the estimate differs between the rows of a case.

Estimates (`--estimates`, comma-separated):
- `median`: every check against twice the median held-out count (before 2026-12-05);
- `split_q90`: the clear split's extension against max(2 x median, 90 % quantile / 0.9), the rest against the
  median (the default since 2026-12-05);
- `q90`, `q75`, `mean`: every check against max(2 x median, that estimate) (the 75 % quantile / 0.75; 2 x the mean).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/expand_positives.py RUN... --alphas 0.1 --out FILE.jsonl
    python benchmarks/expand_positives.py --table FILE.jsonl   # the cases where some estimate changes the result

Records of the 2026-12-05 comparison: benchmarks/results/expand_positives/*.jsonl.gz (benchmarks/results/
expand_positives.md).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _estimates() -> dict[str, tuple[Callable[[Any], float], Callable[[Any], float]]]:
    """name -> (the rank cutoff's and natural threshold's estimate, the clear split's estimate). `median` and
    `split_q90` are `expand.cutoff`'s own functions (read before any is swapped), the others built on its median."""
    from corrective.expand import cutoff

    median, split = cutoff.estimate_positives, cutoff.estimate_split_positives

    def quantile(q: float) -> Callable[[Any], float]:
        def f(r: Any) -> float:
            v = r.quantile(q)
            return max(median(r), v / q if math.isfinite(v) else 0.0)

        return f

    def mean(r: Any) -> float:
        return max(median(r), 2.0 * r.mean_count())

    return {
        "median": (median, median),
        "split_q90": (median, split),
        "q90": (quantile(0.9), quantile(0.9)),
        "q75": (quantile(0.75), quantile(0.75)),
        "mean": (mean, mean),
    }


def run_cases(paths: list[str], alphas: list[float], false_flags: float, names: list[str], out: Any) -> None:
    import torch

    import corrective.expand.cutoff as cutoff
    from corrective import api
    from corrective.metrics import expansion_quality

    torch.set_num_threads(1)
    estimates = _estimates()
    try:
        for path in paths:
            run = api.load_run(path, device="cpu")
            for alpha in alphas:
                for name in names:
                    cutoff.estimate_positives, cutoff.estimate_split_positives = estimates[name]
                    start = time.perf_counter()
                    e = api.expand_run(run, alpha, false_flags=false_flags)
                    seconds = time.perf_counter() - start
                    q = expansion_quality(e.ids, run.manipulation.forget_ids(alpha), run.manipulation.ids)
                    c = e.details.get("cutoff", {})
                    row = {
                        "run": path,
                        "dataset": run.data["name"],
                        "manipulation": run.manipulation.kind,
                        "seed": run.seed,
                        "alpha": alpha,
                        "false_flags": false_flags,
                        "estimate": name,
                        "chosen": e.chosen,
                        "n_expanded": len(e.ids),
                        "precision": q["expand_precision"],
                        "recall": q["expand_recall"],
                        "rule": c.get("rule"),
                        "estimated_positives": c.get("estimated_positives"),
                        "seconds": seconds,
                    }
                    out.write(json.dumps(row) + "\n")
                    out.flush()
    finally:  # the module's own estimates back
        cutoff.estimate_positives, cutoff.estimate_split_positives = estimates["split_q90"]


def read_text(path: Path) -> str:
    """A JSON-lines file, gzipped where its name ends in .gz (the committed records)."""
    return gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()


def table(paths: list[str]) -> str:
    rows = [json.loads(line) for p in paths for line in read_text(Path(p)).splitlines()]
    cases: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = collections.defaultdict(dict)
    for r in rows:
        key = (r["dataset"], r["manipulation"], r["seed"], r["alpha"], r["false_flags"], r["run"])
        cases[key][r["estimate"]] = r
    names = sorted({r["estimate"] for r in rows}, key=list(_estimates()).index)
    lines = [
        f"{len(cases)} cases ({', '.join(names)}); the cases where an estimate changes the expanded set "
        "(precision / recall against S_m, n expanded, rule):",
        "",
        "| dataset | manipulation | seed | alpha | false flags | " + " | ".join(names) + " |",
        "|---|---|---:|---:|---:|" + "---|" * len(names),
    ]
    for key, by in sorted(cases.items()):
        sets = {(v["n_expanded"], round(v["precision"], 4)) for v in by.values()}
        if len(sets) < 2:
            continue
        cells = [
            f"{by[n]['precision']:.3f} / {by[n]['recall']:.3f} ({by[n]['n_expanded']}, {by[n]['rule']})"
            if n in by
            else ""
            for n in names
        ]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]:g} | {key[4]:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", help="saved run folders")
    p.add_argument("--alphas", default="0.1", help="discovery rates, comma-separated")
    p.add_argument("--false-flags", type=float, default=0.0, help="clean flags as a share of |S_f|")
    p.add_argument("--estimates", default="median,split_q90", help=f"comma-separated of {', '.join(_estimates())}")
    p.add_argument("--out", help="JSON lines to append to (default: standard output)")
    p.add_argument("--table", nargs="+", metavar="FILE", help="print the changed cases of these JSON-lines files")
    a = p.parse_args(argv)
    if a.table:
        print(table(a.table))
        return 0
    names = a.estimates.split(",")
    unknown = [n for n in names if n not in _estimates()]
    if unknown or not a.runs:
        p.error(f"unknown estimate {unknown[0]!r}" if unknown else "give at least one run folder")
    alphas = [float(x) for x in a.alphas.split(",")]
    if a.out:
        with open(a.out, "a") as out:
            run_cases(a.runs, alphas, a.false_flags, names, out)
    else:
        run_cases(a.runs, alphas, a.false_flags, names, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
