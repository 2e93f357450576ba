"""Figures of the benchmark engine: the default preset's wall time and its breakdown, the speed-up of two
local workers over one, and the cost of resuming a finished benchmark.

    python benchmarks/bench_default.py [--ratio-alphas 0.2,0.6,1.0] [--full-ratio] [--out FILE.md]

Runs `corrective bench` (the default preset, 2 workers) into a temporary folder, then resumes it (in
process and through the CLI), then runs a reduced default preset (fewer alphas; the whole preset with
--full-ratio) with 1 and with 2 workers side by side. Prints a markdown report.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import torch

from corrective import __version__
from corrective.bench import load_spec, read_records, run_bench
from corrective.methods import list_methods


def timed_bench(sets: dict, out: Path) -> tuple[float, object]:
    start = time.perf_counter()
    result = run_bench(load_spec("default", sets=sets), out, progress=False)
    if result.failed:
        raise SystemExit(f"bench failed: {result.failed[:3]}")
    return time.perf_counter() - start, result


def breakdown(records: list[dict]) -> tuple[dict, dict]:
    """Worker seconds (wall, CPU) per stage, and per method (also the selected setting's unlearn seconds)."""
    stages: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    methods: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in records:
        stages[r["stage"]]["jobs"] += 1
        stages[r["stage"]]["job_seconds"] += r["job_seconds"]
        stages[r["stage"]]["cpu_seconds"] += r["job_cpu_seconds"]
        if r["stage"] != "original":
            m = methods[r["method"]]
            m["jobs"] += 1
            m["job_seconds"] += r["job_seconds"]
            m["cpu_seconds"] += r["job_cpu_seconds"]
            m["candidates"] += r.get("grid_size", 1)
            m["selected_unlearn_seconds"] += r["unlearn_seconds"] or 0.0
    return stages, methods


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio-alphas", default="0.2,0.6,1.0", help="alphas of the reduced preset (1 vs 2 workers)")
    ap.add_argument("--full-ratio", action="store_true", help="time the whole default preset with 1 and 2 workers")
    ap.add_argument("--skip-ratio", action="store_true", help="measure the default preset and resuming only")
    ap.add_argument("--ratio-only", action="store_true", help="measure 1 vs 2 workers only")
    ap.add_argument("--out", type=Path, help="also write the report to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    lines = [
        "# `corrective bench`: the default preset",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, corrective {__version__}, torch {torch.__version__}, "
        f"python {platform.python_version()}, {os.cpu_count()} CPU cores, load average before start "
        f"{os.getloadavg()[0]:.2f}. The machine is shared with other developers: wall times are noisy; the "
        "1-vs-2-worker ratio is measured side by side in one run.",
        "",
        f"Registered methods: {', '.join(list_methods())}.",
        "",
        f"Command: `python benchmarks/bench_default.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="bench_default.") as tmp:
        if not args.ratio_only:
            out = Path(tmp) / "default"
            load = os.getloadavg()[0]
            wall, result = timed_bench({"workers": 2}, out)
            records = read_records(out / "results.jsonl")
            stages, methods = breakdown(records)
            cpu = sum(v["cpu_seconds"] for v in stages.values())
            lines += [
                "## The default preset, 2 local workers",
                "",
                f"{len(result.jobs)} jobs, **{wall:.1f} s wall** ({wall / 60:.2f} min; target <= 10 min); load average "
                f"{load:.2f} before, {os.getloadavg()[0]:.2f} after. The jobs' own CPU time adds up to {cpu:.0f} s, so "
                f"on 2 otherwise idle cores the run needs about {cpu / 2 / 60:.1f} min plus worker start-up.",
                "",
                "| stage | jobs | worker wall seconds | worker CPU seconds |",
                "|---|---:|---:|---:|",
                *[
                    f"| {s} | {int(v['jobs'])} | {v['job_seconds']:.1f} | {v['cpu_seconds']:.1f} |"
                    for s, v in stages.items()
                ],
                "",
                "| method | jobs | candidates run | worker wall s | worker CPU s | unlearn s, selected settings |",
                "|---|---:|---:|---:|---:|---:|",
                *[
                    f"| {m} | {int(v['jobs'])} | {int(v['candidates'])} | {v['job_seconds']:.1f} | "
                    f"{v['cpu_seconds']:.1f} | {v['selected_unlearn_seconds']:.1f} |"
                    for m, v in sorted(methods.items())
                ],
                "",
                "Worker seconds include loading the cached original model and evaluating every candidate.",
                "",
            ]
            start = time.perf_counter()
            again = run_bench(load_spec("default", sets={"workers": 2}), out, progress=False)
            resume = time.perf_counter() - start
            start = time.perf_counter()
            cli = subprocess.run(
                [sys.executable, "-m", "corrective", "bench", "--out", str(out), "-q"],
                capture_output=True,
                text=True,
                check=True,
            )
            resume_cli = time.perf_counter() - start
            assert "0 run" in cli.stdout, cli.stdout
            lines += [
                "## Resuming the finished benchmark",
                "",
                f"`run_bench` in process: {resume:.2f} s, {again.ran} jobs run; "
                f"`corrective bench` as a new process (imports included): {resume_cli:.2f} s, 0 jobs run "
                "(target <= 5 s, no job).",
                "",
            ]
        if not args.skip_ratio:
            sets = {} if args.full_ratio else {"alphas": [float(a) for a in args.ratio_alphas.split(",")]}
            what = "the whole default preset" if args.full_ratio else f"the default preset with alphas {sets['alphas']}"
            times = {}
            for workers in (1, 2):
                times[workers], res = timed_bench({**sets, "workers": workers}, Path(tmp) / f"ratio{workers}")
            lines += [
                "## One local worker vs two",
                "",
                f"On {what} ({len(res.jobs)} jobs), each from scratch:",
                "",
                "| workers | wall seconds |",
                "|---:|---:|",
                f"| 1 | {times[1]:.1f} |",
                f"| 2 | {times[2]:.1f} |",
                "",
                f"**Speed-up of 2 workers: {times[1] / times[2]:.2f}x** (target >= 1.6x).",
                "",
            ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)


if __name__ == "__main__":
    main()
