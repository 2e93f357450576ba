"""Forget-set expansion on digits: precision and recall of S_m per strategy, manipulation and alpha; cost.

Poison, interclass confusion and random label swap at 5 % (61 samples), seeds 0-2, alpha 0.1, 0.3, 0.5, 1.0.
Each strategy sees the original model, the training split as given and S_f (the first alpha share of
S_m); precision and recall against S_m are computed here, never inside a strategy. The cost of an
expansion is compared with one retrain of the same model (algorithm A on D_r, the same 400 steps),
timed in the same process right before the expansions.

    PYTHONPATH=src python benchmarks/expand_digits.py            # run, then write the .json and .md
    PYTHONPATH=src python benchmarks/expand_digits.py --report   # re-write the .md from the .json
    # seeds the rules were not tuned on, auto at alpha 0.1 only -> expand_digits_holdout.{json,md}
    PYTHONPATH=src python benchmarks/expand_digits.py --first-seed 3 --strategies auto --alphas 0.1 \
        --name expand_digits_holdout --note "..."
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"
MANIPULATIONS = ("poison", "interclass", "random_swap")
STRATEGIES = ("auto", "neighbours", "label_noise", "classifier", "gradients")
ALPHAS = (0.1, 0.3, 0.5, 1.0)
# the targets at alpha 0.1 with auto: (recall, precision) of S_m, whole expanded set
TARGETS = {"poison": (0.9, 0.95), "interclass": (0.7, 0.8), "random_swap": (0.6, 0.6)}
COST_TARGET = 0.2  # expansion <= 0.2 x one retrain
REPEATS = 3  # each expansion is timed this many times (same result), the fastest counts


def job(
    manip: str, seed: int, strategies: tuple[str, ...] = STRATEGIES, alphas: tuple[float, ...] = ALPHAS
) -> list[dict[str, Any]]:
    from corrective import api
    from corrective.methods import make_settings, run_method
    from corrective.metrics import expansion_quality

    run = api.train_run("digits", manipulation=manip, seed=seed, progress=False)
    task = api.make_task(run, run.manipulation.forget_ids(0.1), progress=False)
    _, retrain_seconds = run_method(task, "retrain", make_settings("retrain"))
    records = []
    for alpha in alphas:
        forget = run.manipulation.forget_ids(alpha)
        for strategy in strategies:
            e = api.expand_run(run, alpha, strategy, progress=False)
            # the cost is the fastest of REPEATS identical runs: the shared CPU slows some runs several-fold
            seconds = [e.seconds]
            for _ in range(REPEATS - 1):
                again = api.expand_run(run, alpha, strategy, progress=False)
                assert torch.equal(again.ids, e.ids), "an expansion must be deterministic"
                seconds.append(again.seconds)
            q = expansion_quality(e.ids, forget, run.manipulation.ids)
            records.append(
                {
                    "manipulation": manip,
                    "seed": seed,
                    "alpha": alpha,
                    "strategy": strategy,
                    "chosen": e.chosen,
                    "n_flagged": len(forget),
                    "n_added": len(e.added),
                    "seconds": min(seconds),
                    "seconds_all": seconds,
                    "retrain_seconds": retrain_seconds,
                    "cost_ratio": min(seconds) / retrain_seconds,
                    "rule": e.details.get("cutoff", {}).get("rule"),
                    **q,
                }
            )
    return records


def fmt(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return "-"
    mean = statistics.fmean(vals) * scale
    sd = statistics.pstdev(vals) * scale if len(vals) > 1 else 0.0
    return f"{mean:.{digits}f}±{sd:.{digits}f}"


def report(data: dict[str, Any]) -> str:
    recs = data["records"]
    seeds = sorted({r["seed"] for r in recs})
    lines = [
        "# Forget-set expansion on digits",
        "",
        f"- Date: {data['date']}; machine: {data['machine']}; load before the run: `{data['load']}`.",
        f"- Command: `{data['command']}`; wall time {data['wall_minutes']:.1f} min; torch {data['torch']}.",
        f"- Seeds {seeds}; digits preset (cnn_small, 400 steps, batch 64); each manipulation 5 % of the training "
        "set (61 of 1211 samples): BadNet poison (2x2 trigger, target 0), interclass confusion (3 and 8), random "
        "label swap.",
        "- S_f = the first alpha share of S_m ("
        + ", ".join(f"alpha {a}: {n}" for a, n in sorted({(r["alpha"], r["n_flagged"]) for r in recs}))
        + " samples). Every strategy sees only the original model, "
        "the training split as given and S_f; its cutoff comes from cross-validation inside S_f.",
        "- **precision** and **recall** are of the whole expanded set S_f ∪ added against S_m (the issue's targets); "
        "**added P/R** of the added samples alone against S_m \\ S_f. **n added**: samples added to S_f. "
        f"**seconds**: wall-clock of the expansion (features, cross-validation, cutoff), the fastest of "
        f"{data.get('repeats', 1)} identical runs; **cost**: seconds / one "
        "retrain of the same model (algorithm A on D_r, 400 steps) timed once in the same process. "
        "Cells: mean±std over seeds.",
        "- The machine (2 cores) was shared by several sessions: seconds are noisy, the cost ratio is measured "
        "side by side.",
        *([f"- {data['note']}"] if data.get("note") else []),
        "",
    ]
    lines += ["## Targets (alpha 0.1, `auto`)", ""]
    lines += ["| manipulation | target | recall per seed | precision per seed | met |", "|---|---|---|---|---|"]
    for m in MANIPULATIONS:
        rows = sorted(
            (r for r in recs if r["manipulation"] == m and r["alpha"] == 0.1 and r["strategy"] == "auto"),
            key=lambda r: r["seed"],
        )
        rt, pt = TARGETS[m]
        ok = all(r["expand_recall"] >= rt and r["expand_precision"] >= pt for r in rows)
        recall = ", ".join(f"{r['expand_recall']:.3f}" for r in rows)
        precision = ", ".join(f"{r['expand_precision']:.3f}" for r in rows)
        lines.append(
            f"| {m} | recall >= {rt} at precision >= {pt} | {recall} | {precision} | {'yes' if ok else '**no**'} |"
        )
    auto = [r for r in recs if r["strategy"] == "auto"]
    worst = max(r["cost_ratio"] for r in auto)
    lines.append(
        f"| all | `auto` expansion <= {COST_TARGET} x one retrain | mean "
        f"{statistics.fmean(r['cost_ratio'] for r in auto):.3f}, worst {worst:.3f} (of {len(auto)} runs) | | "
        f"{'yes' if worst <= COST_TARGET else '**no**'} |"
    )
    lines += [""]
    for m in MANIPULATIONS:
        lines += [
            f"## {m}",
            "",
            "| strategy | alpha | chosen | precision | recall | added P | added R | n added | seconds | cost |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in STRATEGIES:
            for a in ALPHAS:
                rows = [r for r in recs if r["manipulation"] == m and r["strategy"] == s and r["alpha"] == a]
                if not rows:
                    continue
                chosen = sorted({r["chosen"] for r in rows})
                lines.append(
                    f"| {s} | {a} | {', '.join(chosen)} | {fmt([r['expand_precision'] for r in rows])} | "
                    f"{fmt([r['expand_recall'] for r in rows])} | {fmt([r['added_precision'] for r in rows])} | "
                    f"{fmt([r['added_recall'] for r in rows])} | {fmt([r['n_added'] for r in rows], digits=1)} | "
                    f"{fmt([r['seconds'] for r in rows])} | {fmt([r['cost_ratio'] for r in rows], digits=3)} |"
                )
        lines.append("")
    if {r["strategy"] for r in recs} != set(STRATEGIES):
        return "\n".join(lines + [f"Raw records: `{data.get('name', 'expand_digits')}.json`.", ""])
    lines += [
        "## Reading the table",
        "",
        "- `auto` picks `neighbours` on poison and `label_noise` on interclass and random swap at every alpha, "
        "from S_f alone (the cross-validation of docs/methods.md).",
        "- Interclass is the hard case: some confused samples sit where the model and their neighbours agree with "
        "the wrong label (no strategy can see them), and some clean 3s and 8s have neighbours of the other "
        "class; precision and recall both stay in the 0.8s. At alpha 1.0 (nothing left to find) `label_noise`'s "
        "majority-vote threshold still adds those ambiguous clean samples (added P 0).",
        "- `gradients` separates by given label rather than by manipulation (on interclass its split takes all of "
        "classes 3 and 8); `classifier` ranks poison well but its scores do not fall into two groups, so its "
        "cutoff stops early at alpha 0.1. Neither is a default candidate of `auto`.",
        "- Strategies meet manipulations they are not meant for: `label_noise` adds nothing on poison (a trigger "
        "changes no sample's relation to its neighbours' labels), `neighbours` adds mostly clean samples on "
        "random swap (swapped samples share no feature cluster); `auto` avoids both.",
        "",
        f"Raw records: `{data.get('name', 'expand_digits')}.json`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--alphas", default=",".join(map(str, ALPHAS)))
    ap.add_argument("--name", default="expand_digits", help="results file name (without .json/.md)")
    ap.add_argument("--note", default="", help="a line for the results file (what this run is for)")
    ap.add_argument("--report", action="store_true", help="only re-write the .md from the .json")
    args = ap.parse_args()
    out_json, out_md = RESULTS / f"{args.name}.json", RESULTS / f"{args.name}.md"
    strategies = tuple(args.strategies.split(","))
    alphas = tuple(float(a) for a in args.alphas.split(","))
    if not args.report:
        torch.set_num_threads(1)
        load = os.popen("uptime").read().strip()
        start = time.perf_counter()
        records = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for manip in MANIPULATIONS:
                records += job(manip, seed, strategies, alphas)
                print(f"{manip} seed {seed} done, {time.perf_counter() - start:.0f} s", flush=True)
        data = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, 2 CPU cores shared with other sessions, 1 thread",
            "load": load,
            "command": "OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/expand_digits.py "
            f"--seeds {args.seeds} --first-seed {args.first_seed} --strategies {args.strategies} "
            f"--alphas {args.alphas} --name {args.name}" + (f" --note '{args.note}'" if args.note else ""),
            "wall_minutes": (time.perf_counter() - start) / 60,
            "torch": torch.__version__,
            "name": args.name,
            "repeats": REPEATS,
            "note": args.note,
            "records": records,
        }
        out_json.write_text(json.dumps(data, indent=1) + "\n")
    data = json.loads(out_json.read_text())
    out_md.write_text(report(data))
    print(out_md.read_text())


if __name__ == "__main__":
    main()
