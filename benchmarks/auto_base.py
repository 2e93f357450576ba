"""Which base method should `auto` run on its expansion? SCRUB (now) against fine-tuning, on held-out seeds.

    python benchmarks/auto_base.py [--out DIR] [--skip-run] > benchmarks/results/auto_base.md

Runs the bench spec `benchmarks/auto_base_heldout.toml` (digits, the three manipulations at 5 %, seeds 3-5 —
not the seeds 0-2 of benchmarks/results/auto_digits.md where the question came up —, alphas 0.1 / 0.3 / 0.5,
`scrub` and `finetune` on the `auto` expansion with their grids, `auto` itself, the oracle) and prints, per
manipulation and alpha, healed (and target_acc for poisoning) of: `auto`; fine-tuning on the expansion; and the
rule "fine-tune where the expansion chose `label_noise`, else `auto`" — which reads only what a method may see
(the expansion's strategy, chosen by cross-validation inside S_f).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import torch

from corrective import __version__
from corrective.bench import load_spec, read_records, run_bench

SPEC = Path(__file__).resolve().parent / "auto_base_heldout.toml"
MANIPULATIONS = ("poison", "interclass", "random_swap")


def pct(rows: list[dict], metric: str) -> str:
    return f"{100 * statistics.fmean(r[metric] for r in rows):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("results/auto_base"))
    ap.add_argument("--skip-run", action="store_true", help="only read the records already in --out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    start = time.perf_counter()
    if not args.skip_run:
        result = run_bench(load_spec(config=SPEC), args.out, progress=False)
        if result.failed:
            raise SystemExit(f"bench failed: {result.failed[:3]}")
    wall = time.perf_counter() - start
    records = read_records(args.out / "results.jsonl")
    selected = [r for r in records if r["stage"] == "unlearn" and r.get("selected")]
    by = {(r["method"], r["manipulation"], r["seed"], r["alpha"]): r for r in selected}
    oracle = {(r["manipulation"], r["seed"]): r for r in records if r["stage"] == "oracle"}
    print("# `auto`'s base on the expansion: SCRUB or fine-tuning (held-out seeds)\n")
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, corrective {__version__}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPU cores; load average {load[0]:.1f} before; "
        + ("records read only (--skip-run)." if args.skip_run else f"{len(records)} records in {wall:.0f} s.")
    )
    print(f"\nCommand: `python benchmarks/auto_base.py --out {args.out}{' --skip-run' if args.skip_run else ''}`\n")
    print(
        "Values: healed in % (mean over seeds 3, 4, 5), target_acc beside it for poisoning. `hybrid`: fine-tuning "
        "on the expansion where the expansion chose `label_noise`, else `auto`.\n"
    )
    head = ["manipulation", "alpha", "strategy chosen", "oracle", "auto", "scrub+auto", "finetune+auto", "hybrid"]
    print("| " + " | ".join([*head, "target_acc (auto / hybrid)"]) + " |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for m in MANIPULATIONS:
        alphas = sorted({k[3] for k in by if k[1] == m})
        for a in [*alphas, None]:
            keys = [k for k in by if k[0] == "auto" and k[1] == m and (a is None or k[3] == a)]
            autos = [by[k] for k in keys]
            fts = [by[("finetune", *k[1:])] for k in keys]
            scs = [by[("scrub", *k[1:])] for k in keys]
            hyb = [f if r.get("expand_chosen") == "label_noise" else r for r, f in zip(autos, fts, strict=True)]
            chosen = ", ".join(f"{n} {c}" for n, c in Counter(r.get("expand_chosen") for r in autos).items())
            orc = pct([oracle[(m, s)] for s in sorted({k[2] for k in keys})], "healed")
            target = f"{pct(autos, 'target_acc')} / {pct(hyb, 'target_acc')}" if m == "poison" else ""
            label = "all" if a is None else f"{a:g}"
            cells = [m, label, chosen, orc, pct(autos, "healed"), pct(scs, "healed"), pct(fts, "healed")]
            print("| " + " | ".join([*cells, pct(hyb, "healed"), target]) + " |")


if __name__ == "__main__":
    main()
