"""SCRUB, SSD and Potion at Fashion-MNIST size (54,000 training samples): seconds as a share of one training, memory.

For each RUN (a folder written by `corrective train --dataset fashion_mnist ...`) and each method, one child
process (so each peak resident memory, `ru_maxrss`, is the method's own): it loads the run, records the
peak RSS so far, runs the method once with its default settings (no grid) on S_f = the first `--alpha`
share of S_m, records its seconds and the peak RSS after it, then times a `--probe-steps` training of the
run's recipe (scaled to the full step count: one training, side by side in the same process). To see how
each scales in the training-set size N, the same is repeated with the training split cut to a seeded
random `--fraction` of it (S_f kept): a method linear in N takes ~fraction of the time, a quadratic one
~fraction squared.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/methods_scale.py RUN... [--alpha 0.1]
    PYTHONPATH=src python benchmarks/methods_scale.py --report
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
NAME = "methods_scale"
METHODS = ("scrub", "ssd", "potion")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(folder: Path, method: str, alpha: float, fraction: float, probe_steps: int) -> dict[str, Any]:
    """One method on one run in this process: its seconds, one training's, the peak RSS before and after."""
    from dataclasses import replace

    import torch

    torch.set_num_threads(1)
    from corrective import api
    from corrective.data.batches import Pipeline
    from corrective.methods import get_method
    from corrective.training import cross_entropy, train

    run = api.load_run(folder)
    forget = run.manipulation.forget_ids(alpha)
    task = api.make_task(run, forget, progress=False)
    if fraction < 1:
        split = task.train
        keep = torch.randperm(len(split), generator=torch.Generator().manual_seed(20261204))[
            : round(fraction * len(split))
        ]
        keep = torch.unique(torch.cat([keep, split.positions_of(forget).cpu()]))
        task = replace(task, train=split.subset(keep))
    info = get_method(method)
    settings = info.settings()
    before = peak_mib()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    info.fn(task, settings)
    seconds = time.perf_counter() - start
    peak = peak_mib()
    net = run.spec.build(1, next(run.model.parameters()).device)
    start = time.perf_counter()
    train(net, run.train_split, Pipeline.of(run.dataset), replace(run.config, steps=probe_steps), cross_entropy)
    train_s = (time.perf_counter() - start) / probe_steps * run.config.steps
    return {
        "run": folder.name,
        "manipulation": run.manipulation.kind,
        "method": method,
        "alpha": alpha,
        "fraction": fraction,
        "n_train": len(task.train),
        "n_forget": len(forget),
        "seconds": seconds,
        "train_seconds": train_s,
        "cost": seconds / train_s,
        "rss_before_mib": before,
        "rss_peak_mib": peak,
        "load1": load,
        "settings": {k: str(v) for k, v in vars(settings).items()},
    }


def report(data: dict[str, Any]) -> str:
    lines = [
        "# SCRUB, SSD and Potion at Fashion-MNIST size: cost and memory",
        "",
        "Written by `benchmarks/methods_scale.py` (its docstring says how); raw records in `methods_scale.json`. "
        "Each row: one child process; **cost** = the method's seconds (default settings, no grid, no "
        "evaluation) / one training of the run's recipe timed in the same process (a probe training scaled to "
        "the full step count, after the method); RSS = peak resident memory of the process before the method "
        "(model and data loaded) and after it; **scaling** = seconds at the full split / seconds at the cut split: "
        "~1/fraction for a method linear in N, ~1/fraction^2 for a quadratic one.",
        "",
        "Batches:",
        "",
        *[f"- {b}" for b in data["batches"]],
        "",
        "| run | method | alpha | N | n S_f | seconds | one training s | cost | RSS before MiB | RSS peak MiB | load "
        "| order |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    recs = sorted(data["records"], key=lambda r: (r["run"], r["method"], -r["n_train"]))
    for r in recs:
        lines.append(
            f"| {r['run']} ({r['manipulation']}) | {r['method']} | {r['alpha']:g} | {r['n_train']} | {r['n_forget']} | "
            f"{r['seconds']:.1f} | {r['train_seconds']:.0f} | **{r['cost']:.3f}** | {r['rss_before_mib']:.0f} | "
            f"{r['rss_peak_mib']:.0f} | {r['load1']:.1f} | {r.get('order', '')} |"
        )
    # a cut row is compared with the full row of its own batch (the same order of method and probe)
    full = {(r["run"], r["method"], r.get("order")): r for r in recs if r["fraction"] == 1}
    cut = [r for r in recs if r["fraction"] < 1 and (r["run"], r["method"], r.get("order")) in full]
    if cut:
        lines += [
            "",
            "| run | method | N full / N cut | seconds full / cut | cost full / cut |",
            "|---|---|---:|---:|---:|",
        ]
        for r in cut:
            f = full[(r["run"], r["method"], r.get("order"))]
            lines.append(
                f"| {r['run']} | {r['method']} | {f['n_train'] / r['n_train']:.2f} | "
                f"{f['seconds'] / r['seconds']:.2f} | {f['cost'] / r['cost']:.2f} |"
            )
    lines += ["", *data.get("notes", []), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--fraction", type=float, default=0.25, help="also run on this share of the split (1: skip)")
    ap.add_argument("--probe-steps", type=int, default=60)
    ap.add_argument("--append", action="store_true")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--child", nargs=4, metavar=("RUN", "METHOD", "ALPHA", "FRACTION"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        folder, method, alpha, fraction = args.child
        print(json.dumps(child(Path(folder), method, float(alpha), float(fraction), args.probe_steps)))
        return
    out_json, out_md = RESULTS / f"{NAME}.json", RESULTS / f"{NAME}.md"
    if not args.report:
        batch = (
            f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}: {platform.machine()}, "
            f"{os.cpu_count()} cores shared, 1 thread, load before `{os.popen('uptime').read().strip()}`; "
            f"`OMP_NUM_THREADS=1 python benchmarks/methods_scale.py {' '.join(map(str, args.runs))} "
            f"--methods {args.methods} --alpha {args.alpha} --fraction {args.fraction}`"
        )
        records = []
        fractions = [1.0] + ([args.fraction] if args.fraction < 1 else [])
        for folder in args.runs:
            for method in args.methods.split(","):
                for fraction in fractions:
                    cmd = [sys.executable, __file__, "--child", str(folder), method, str(args.alpha), str(fraction)]
                    cmd += ["--probe-steps", str(args.probe_steps)]
                    out = subprocess.run(
                        cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
                    )
                    if out.returncode != 0:
                        print(out.stderr[-3000:], file=sys.stderr)
                        raise SystemExit(f"{method} on {folder} failed")
                    rec = json.loads(out.stdout.strip().splitlines()[-1])
                    records.append(rec)
                    print(
                        f"{rec['run']} {method} N {rec['n_train']}: {rec['seconds']:.1f} s vs training "
                        f"{rec['train_seconds']:.0f} s = {rec['cost']:.3f}, RSS {rec['rss_before_mib']:.0f} -> "
                        f"{rec['rss_peak_mib']:.0f} MiB, load {rec['load1']:.1f}",
                        flush=True,
                    )
        old = json.loads(out_json.read_text()) if args.append and out_json.exists() else {"records": [], "batches": []}
        done = {(r["run"], r["method"], r["fraction"]) for r in records}
        data = {
            "batches": old["batches"] + [batch],
            "notes": old.get("notes", []),
            "records": [r for r in old["records"] if (r["run"], r["method"], r["fraction"]) not in done] + records,
        }
        out_json.write_text(json.dumps(data, indent=1) + "\n")
    data = json.loads(out_json.read_text())
    out_md.write_text(report(data))
    print(out_md.read_text())


if __name__ == "__main__":
    main()
