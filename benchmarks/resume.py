"""How long resuming a finished benchmark takes (target <= 5 s): the smoke preset, run then resumed.

Runs `corrective bench --preset smoke` into a temporary folder (jobs and report), then resumes it as a
new process twice (no job runs; the report is kept since its records are unchanged) and, for scale,
re-draws the report with `corrective report`; side by side, a resume that re-draws the report (as every
resume did before) and the bare import time of the command line. Prints a markdown report (`--out FILE` also writes it).

    .venv/bin/python benchmarks/resume.py --out benchmarks/results/resume_smoke.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import corrective


def timed(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "corrective", *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write the report to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "smoke"
        first, _ = timed("bench", "--preset", "smoke", "--out", str(out), "-q")
        resumes = [timed("bench", "--preset", "smoke", "--out", str(out), "-q") for _ in range(2)]
        for _, stdout in resumes:
            assert " 0 run" in stdout and "up to date" in stdout, stdout
        (out / "report" / ".records.sha256").unlink()  # the behaviour before: every resume re-draws the report
        redraw, stdout = timed("bench", "--preset", "smoke", "--out", str(out), "-q")
        assert " 0 run" in stdout and "up to date" not in stdout, stdout
        report, _ = timed("report", str(out), "--out", str(Path(tmp) / "report"))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import corrective.cli.commands"], check=True)
        imports = time.perf_counter() - start
    load = os.getloadavg()
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = [
        "# Resuming a finished benchmark",
        "",
        f"- Command: `{' '.join(['python', *sys.argv])}`; {now:%Y-%m-%d %H:%M} UTC, "
        f"corrective {corrective.__version__}, Python {platform.python_version()}, {os.cpu_count()} cores "
        f"(shared; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end).",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| `corrective bench --preset smoke` (every job, then the report) | {first:.1f} |",
        *[
            f"| resume #{i + 1}: 0 jobs run, report kept (records unchanged) | {t:.1f} |"
            for i, (t, _) in enumerate(resumes)
        ],
        f"| side by side, the behaviour before: a resume that re-draws the report | {redraw:.1f} |",
        f"| for scale: `corrective report` on the same records | {report:.1f} |",
        f"| for scale: a new process importing the command line (torch included) | {imports:.1f} |",
        "",
        f"Kept report / re-drawn report: {min(t for t, _ in resumes) / redraw:.2f} of the time, measured side by side.",
        f"Target: a resume takes <= 5 s: {'met' if max(t for t, _ in resumes) <= 5 else 'MISSED'} "
        f"(slowest resume {max(t for t, _ in resumes):.1f} s, new process and imports included).",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
