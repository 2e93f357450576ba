"""REM's iterates on the rem-digits protocol: which one the proxy keeps, and what fewer repair epochs or an early
stop would have scored and cost — from one full-budget REM run per cell (benchmarks/results/rem_speed.md).

`run`: for each cell (manipulation, training type, seed, alpha) train the original (seeded), time a retrain, then
run REM at the settings given (default: the 2026-12-04 defaults, 98 repair steps on digits) and record, at every
iterate (each repair epoch's end, where REM scores its proxy), the seconds so far (the test measurements taken
there excluded), the proxy and the test metrics. One process on one thread; run two with `--part 0/2` and `1/2`.
`table`: replays the records for REM stopped after its first k iterates (k whole epochs) or at a patience of p
iterates without a better proxy — every such run is a prefix of the full one (same batches, same steps) — and
prints each variant's REM / retrain ratio (median over cells) and mean test score x 100.

    OMP_NUM_THREADS=1 python benchmarks/rem_iterates.py run --out rows.jsonl --part 0/2 &
    OMP_NUM_THREADS=1 python benchmarks/rem_iterates.py run --out rows.jsonl --part 1/2
    python benchmarks/rem_iterates.py table rows.jsonl     (or benchmarks/results/rem_iterates.jsonl.gz)
"""

from __future__ import annotations

import argparse
import json
import statistics as st
import time
from pathlib import Path
from typing import Any

from rem_budget_table import OLD_STEPS

from corrective.bench.store import read_records

OLD_DEFAULTS = {"repair_epochs": OLD_STEPS}  # the 2026-12-04 defaults' 98 steps on digits


def cells() -> list[tuple[str, str, int, float]]:
    """The rem-digits preset's cells (manipulation, training type, seed, alpha), seed by seed."""
    from corrective.bench import load_spec

    spec = load_spec(preset="rem-digits")
    kinds = [m.kind for m in spec.manipulations]
    return [(m, t, s, a) for s in spec.seeds for m in kinds for t in spec.training for a in spec.alphas]


def trace_cell(manipulation: str, training: str, seed: int, alpha: float, settings: dict[str, Any]) -> dict:
    """One cell: the retrain's seconds and REM's iterates (seconds so far, proxy, test metrics)."""
    import corrective.methods.rem as rem
    from corrective import api
    from corrective.methods import make_settings, run_method
    from corrective.metrics import evaluate

    original = api.train_run("digits", manipulation=manipulation, training=training, seed=seed)
    task = api.make_task(original, original.manipulation.forget_ids(alpha), progress=False)
    start = time.perf_counter()
    run_method(task, "retrain", make_settings("retrain"))
    retrain_s = time.perf_counter() - start
    gamma = make_settings("rem", settings).gamma
    state: dict[str, Any] = {"paused": 0.0, "forget": None, "iterates": []}
    accuracy = rem.accuracy

    def traced(model, split, pipeline):  # REM scores S_f, then D_r, at each iterate
        acc = accuracy(model, split, pipeline)
        if len(split) == len(task.forget_ids):
            state["forget"] = acc
            return acc
        t0 = time.perf_counter()
        metrics = evaluate(model, original.dataset, original.manipulation, reference=original.model)
        state["iterates"].append(
            {
                "seconds": t0 - state["start"] - state["paused"],
                "proxy": acc * (1 - max(state["forget"], gamma)),
                **{k: metrics.get(k) for k in ("score", "clean_acc", "target_acc", "per_class_acc")},
            }
        )
        state["paused"] += time.perf_counter() - t0
        return acc

    rem.accuracy = traced
    state["start"] = time.perf_counter()
    try:
        run_method(task, "rem", make_settings("rem", settings))
    finally:
        rem.accuracy = accuracy
    return {
        "manipulation": manipulation,
        "training": training,
        "seed": seed,
        "alpha": alpha,
        "settings": settings,
        "retrain_seconds": retrain_s,
        "rem_seconds": time.perf_counter() - state["start"] - state["paused"],
        "iterates": state["iterates"],
    }


def run(out: Path, part: int, parts: int, settings: dict[str, Any]) -> None:
    import torch

    torch.set_num_threads(1)
    for cell in cells()[part::parts]:
        row = trace_cell(*cell, settings)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(*cell, f"{row['rem_seconds'] / row['retrain_seconds']:.2f}x", flush=True)


def replay(iterates: list[dict], first: int | None, patience: int | None) -> tuple[int, int]:
    """(the iterate the proxy keeps, the last iterate run) for REM stopped after `first` iterates or once
    `patience` iterates in a row brought no better proxy."""
    best, kept, since, last = float("-inf"), 0, 0, 0
    for i, it in enumerate(iterates[:first]):
        last = i
        if it["proxy"] > best:
            best, kept, since = it["proxy"], i, 0
        else:
            since += 1
            if patience is not None and since >= patience:
                break
    return kept, last


def table(paths: list[Path]) -> None:
    rows = [row for path in paths for row in read_records(path)]
    manipulations = list(dict.fromkeys(r["manipulation"] for r in rows))
    trainings = list(dict.fromkeys(r["training"] for r in rows))
    variants: list[tuple[str, int | None, int | None]] = [("every iterate (the run as made)", None, None)]
    variants += [(f"patience {p}", None, p) for p in (1, 2, 3)]
    variants += [(f"first {k} iterates ({k} epochs)", k, None) for k in (3, 4, 5)]
    variants += [(f"first {k}, patience 2", k, 2) for k in (4, 5)]
    print(f"{len(rows)} cells. Score x 100 (utility x healed), the proxy's kept iterate's.\n")
    head = ["variant", "REM / retrain (median)", "mean", "score", *(m.replace("_", " ") for m in manipulations)]
    head += [*trainings, "poison target_acc", "cells with a class < 50 %"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for name, first, patience in variants:
        ratios, kept_rows = [], []
        for r in rows:
            kept, last = replay(r["iterates"], first, patience)
            whole = last == len(r["iterates"]) - 1
            ratios.append((r["rem_seconds"] if whole else r["iterates"][last]["seconds"]) / r["retrain_seconds"])
            kept_rows.append((r, r["iterates"][kept]))

        def score(keep, kept_rows=kept_rows) -> str:
            return f"{100 * st.mean(it['score'] for r, it in kept_rows if keep(r)):.2f}"

        target = 100 * st.mean(it["target_acc"] for r, it in kept_rows if r["manipulation"] == "poison")
        erased = sum(min(it["per_class_acc"]) < 0.5 for _, it in kept_rows)
        cells = [name, f"{st.median(ratios):.2f}", f"{st.mean(ratios):.2f}", score(lambda r: True)]
        cells += [score(lambda r, m=m: r["manipulation"] == m) for m in manipulations]
        cells += [score(lambda r, t=t: r["training"] == t) for t in trainings]
        print("| " + " | ".join([*cells, f"{target:.1f}", str(erased)]) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--part", default="0/1", help="i/n: every n-th cell from the i-th")
    r.add_argument("--settings", default=json.dumps(OLD_DEFAULTS), help="REM's settings (JSON)")
    t = sub.add_parser("table")
    t.add_argument("records", type=Path, nargs="+")
    args = ap.parse_args()
    if args.command == "run":
        part, parts = (int(x) for x in args.part.split("/"))
        run(args.out, part, parts, json.loads(args.settings))
    else:
        table(args.records)


if __name__ == "__main__":
    main()
