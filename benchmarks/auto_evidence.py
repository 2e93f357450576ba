"""`auto` whose base follows the evidence, against `auto` running both bases (the guarded rule picks), on digits.

    python benchmarks/auto_evidence.py [--out DIR] [--skip-run] > benchmarks/results/auto_evidence.md

Runs the bench spec `benchmarks/auto_evidence.toml` (digits, the three manipulations at 5 %, held-out seeds
3-5, alpha 0.1: `auto` with its defaults, the oracle, retraining on S_f) and then the same spec with
`methods.auto.settings.follow_evidence = false` into the same folder (the originals, oracles and expansions
are reused). Prints, per manipulation and mean over seeds: the oracle; each `auto` variant's acc_corr,
healed, target_acc (poisoning), which base ran (and which the guarded rule picked), how often it returned the
original model; the issue-18 targets; and the cost against one retrain on S_f at the same seed: the selected
setting plus the expansion (wall-clock seconds, as the report's timing table), and the whole job (every
candidate, its evaluation, and the expansion) in CPU seconds, which a loaded machine distorts less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from corrective import __version__
from corrective.bench import load_spec, read_records, run_bench

SPEC = Path(__file__).resolve().parent / "auto_evidence.toml"
MANIPULATIONS = ("poison", "interclass", "random_swap")
VARIANTS = {"evidence": True, "both": False}  # label -> follow_evidence


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def variant(record: dict[str, Any]) -> str:
    ran = record["candidates"][0]["settings"]
    return next(k for k, v in VARIANTS.items() if ran.get("follow_evidence", True) is v)


def base_ran(record: dict[str, Any]) -> str:
    if record.get("returned_original"):
        return "original"
    return str(record["settings"].get("base"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("results/auto_evidence"))
    ap.add_argument("--skip-run", action="store_true", help="only read the records already in --out")
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    start = time.perf_counter()
    if not args.skip_run:
        for follow in VARIANTS.values():
            sets: dict[str, Any] = {"workers": args.workers}
            if not follow:
                sets["methods.auto.settings.follow_evidence"] = False
            result = run_bench(load_spec(config=SPEC, sets=sets), args.out, progress=False)
            if result.failed:
                raise SystemExit(f"bench failed: {result.failed[:3]}")
    wall = time.perf_counter() - start
    records = read_records(args.out / "results.jsonl")
    originals = {r["job_id"]: r for r in records if r["stage"] == "original"}
    oracle = {(r["manipulation"], r["seed"]): r for r in records if r["stage"] == "oracle"}
    expansions = {(r["original_id"], r["alpha"]): r for r in records if r["stage"] == "expand"}
    retrain = {
        (r["manipulation"], r["seed"]): r for r in records if r["stage"] == "unlearn" and r["method"] == "retrain"
    }
    autos: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in records:
        if r["stage"] == "unlearn" and r["method"] == "auto":
            autos[(variant(r), r["manipulation"], r["seed"])] = r
    print("# `auto`: the base follows the evidence (issue 18, part 5)\n")
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, corrective {__version__}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPU cores shared with other sessions; load average {load[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after; "
        + ("records read only (--skip-run)." if args.skip_run else f"{len(records)} records in {wall:.0f} s.")
    )
    print(f"\nCommand: `python benchmarks/auto_evidence.py --out {args.out}{' --skip-run' if args.skip_run else ''}`\n")
    print(
        "Digits, 5 % manipulations, alpha 0.1, seeds 3, 4, 5 (not the seeds 0-2 the base rule came from), means "
        "over seeds in %. `evidence`: auto's default (fine-tuning where the expansion chose label_noise, else "
        "SCRUB's grid); `both`: every candidate of both bases, the guarded rule picks. acc_corr is healed for "
        "random swap.\n"
    )
    print(
        "| manipulation | variant | base (ran → picked) | returned original | oracle acc_corr | acc_corr | oracle "
        "healed | healed | target_acc (original → auto) | cost: selected + expansion | cost: job CPU |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|")
    targets: list[str] = []
    for m in MANIPULATIONS:
        seeds = sorted({k[2] for k in autos if k[1] == m})
        orc = [oracle[(m, s)] for s in seeds if (m, s) in oracle]
        for label in VARIANTS:
            rows = [autos[(label, m, s)] for s in seeds if (label, m, s) in autos]
            if not rows:
                continue
            ran = Counter(c["settings"].get("base") for r in rows for c in r["candidates"])
            picked = Counter(base_ran(r) for r in rows)
            sel_cost, cpu_cost = [], []
            for r in rows:
                rt = retrain.get((m, r["seed"]))
                if rt is None:
                    continue
                exp = expansions.get((r["original_id"], r["alpha"]), {})
                sel_cost.append((r["unlearn_seconds"] + r.get("expand_seconds", 0.0)) / rt["unlearn_seconds"])
                if "job_cpu_seconds" in r and "job_cpu_seconds" in rt:
                    cpu = r["job_cpu_seconds"] + exp.get("job_cpu_seconds", 0.0)
                    cpu_cost.append(cpu / rt["job_cpu_seconds"])
            orig = [originals[r["original_id"]] for r in rows]
            target = (
                f"{pct(mean([o['target_acc'] for o in orig]))} → {pct(mean([r['target_acc'] for r in rows]))}"
                if m == "poison"
                else ""
            )
            cells = [
                m,
                label,
                ", ".join(f"{k} {v}" for k, v in ran.items())
                + " → "
                + ", ".join(f"{k} {v}" for k, v in picked.items()),
                str(sum(bool(r.get("returned_original")) for r in rows)),
                pct(mean([o["acc_corr"] for o in orc])),
                pct(mean([r["acc_corr"] for r in rows])),
                pct(mean([o["healed"] for o in orc])),
                pct(mean([r["healed"] for r in rows])),
                target,
                f"{mean(sel_cost):.2f}",
                f"{mean(cpu_cost):.2f}",
            ]
            print("| " + " | ".join(cells) + " |")
            if label != "evidence":
                continue
            if m == "poison":
                oc, ac = mean([o["acc_corr"] for o in orc]), mean([r["acc_corr"] for r in rows])
                ot, at = mean([o["target_acc"] for o in orig]), mean([r["target_acc"] for r in rows])
                ok = ac >= 0.95 * oc and at >= ot - 0.02
                targets.append(
                    f"- poison: acc_corr {pct(ac)} vs 0.95 × oracle {pct(0.95 * oc)}; target_acc {pct(at)} vs "
                    f"original − 2 = {pct(ot - 0.02)}: **{'met' if ok else 'missed'}**"
                )
            else:
                oh, ah = mean([o["healed"] for o in orc]), mean([r["healed"] for r in rows])
                targets.append(
                    f"- {m}: healed {pct(ah)} vs oracle − 5 = {pct(oh - 0.05)}: "
                    f"**{'met' if ah >= oh - 0.05 else 'missed'}**"
                )
            targets.append(
                f"- {m} cost (evidence): {mean(sel_cost):.2f} × retrain for the selected setting + expansion, "
                f"{mean(cpu_cost):.2f} × in CPU for the whole job (limit 0.5): "
                f"**{'met' if mean(cpu_cost) <= 0.5 else 'missed'}** on the whole job"
            )
    print("\n## Targets (issue 18, digits, alpha 0.1, `auto` with its defaults)\n")
    print("\n".join(targets))


if __name__ == "__main__":
    main()
