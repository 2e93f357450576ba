"""Does the correction last? The relearn probe on digits: acc_corr before and after, per method, vs the oracle.

    python benchmarks/relearn_digits.py [--seeds 0] [--workers 2] [--out-dir DIR] \
        [--figure benchmarks/results/relearn_digits.png] > benchmarks/results/relearn_digits.md
    python benchmarks/relearn_digits.py --no-run --figure benchmarks/results/relearn_digits.png

Runs `corrective bench --preset relearn-digits` (the default preset at alphas 0.1, 0.5, 1.0, every method with
its registered grid, `relearn = true`): every original, oracle and selected model is copied and fine-tuned for
5 % of the training steps at the recipe's learning rate on the clean training data mixed with a fixed 1 % of
samples drawn from S_m, then measured again. Prints a markdown report: per manipulation, method and alpha,
acc_corr (and attack_success, target_acc for poisoning) before and after the probe, the change, and the change
beyond the oracle's; and the probe's share of the jobs' time, measured in the same run, from which the default
preset's wall time with the probe on is estimated.

`--no-run` runs nothing: it re-renders the figure (`--figure`) from the committed records of the run in
relearn_digits.md, `benchmarks/results/relearn_digits_bench/results.jsonl.gz` (`--records`), with the current
report code; the markdown, which states the run's load and wall time, is left as it is.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import torch

from corrective import __version__
from corrective.bench import load_spec, read_records, run_bench
from corrective.cli.common import parse_sets
from corrective.names import MODEL_STAGES

RECORDS = Path(__file__).resolve().parent / "results" / "relearn_digits_bench"

MANIPULATIONS = ("poison", "interclass", "random_swap")
SPRING = 0.10  # a method "springs back" when acc_corr falls this much more than the oracle's under the probe
DEFAULT_MINUTES = 6.3  # the default preset without the probe: 378 s (benchmarks/results/bench_default.md)


def mean(values: list) -> float:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else float("nan")


def pct(x: float) -> str:
    return "–" if x != x else f"{100 * x:.1f}"


def copy_figure(bench: Path, figure: Path) -> None:
    """Write the report of the bench folder `bench` into bench/report and copy its relearn figure to `figure`."""
    from corrective.report import write_report

    write_report(bench, bench / "report")
    found = next((bench / "report" / "figures").glob("relearn-*.png"), None)
    if found is None:
        raise SystemExit(f"{bench}: its records hold no relearn probe, so there is no relearn figure")
    figure.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(found, figure)


def render_only(records: Path, figure: Path) -> None:
    """The relearn figure of committed records (`records`/results.jsonl.gz, with its spec.json), no bench."""
    packed = records / "results.jsonl.gz"
    if not packed.exists():
        raise SystemExit(f"{packed} does not exist; pass --records the folder holding a run's results.jsonl.gz")
    with tempfile.TemporaryDirectory(prefix="relearn.") as tmp:
        bench = Path(tmp)
        (bench / "results.jsonl").write_bytes(gzip.decompress(packed.read_bytes()))
        if (records / "spec.json").exists():
            shutil.copyfile(records / "spec.json", bench / "spec.json")
        copy_figure(bench, figure)
    print(f"{figure}: the relearn figure of {packed}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out-dir", type=Path, help="keep the bench folder here (default: a temporary one)")
    ap.add_argument("--figure", type=Path, help="copy the report's relearn figure here")
    ap.add_argument("--no-run", action="store_true", help="no bench: only re-render --figure from --records")
    ap.add_argument("--records", type=Path, default=RECORDS, help="with --no-run: the folder of results.jsonl.gz")
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field of the preset (as `corrective bench --set`), e.g. for a quick try",
    )
    args = ap.parse_args()
    if args.no_run:
        if args.figure is None:
            raise SystemExit("--no-run re-renders the figure only: pass --figure PATH")
        render_only(args.records, args.figure)
        return
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    sets = {"seeds": seeds, "workers": args.workers, "device": "cpu", **parse_sets(args.sets)}
    spec = load_spec("relearn-digits", sets=sets)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="relearn.") as tmp:
        out = args.out_dir or Path(tmp) / "bench"
        start = time.perf_counter()
        result = run_bench(spec, out, progress=False)
        wall = time.perf_counter() - start
        if result.failed:
            raise SystemExit(f"bench failed: {result.failed[:3]}")
        records = read_records(out / "results.jsonl")
        if args.figure:
            copy_figure(out, args.figure)
    load_after = os.getloadavg()
    extra = "".join(f" --set '{x}'" for x in args.sets)
    probe = sum(r.get("relearn_seconds", 0.0) for r in records)  # an expansion's record has no probe
    jobs = sum(r["job_seconds"] for r in records)
    share = probe / (jobs - probe)
    records = [r for r in records if r["stage"] in MODEL_STAGES]
    cells: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        method = "original" if r["stage"] == "original" else r["method"]
        alpha = None if r["stage"] in ("original", "oracle") else r["alpha"]
        for m in ("acc_corr", "attack_success", "target_acc"):
            cells[(r["manipulation"], method, alpha)][m].append(r.get(m))
            cells[(r["manipulation"], method, alpha)][f"relearn_{m}"].append(r.get(f"relearn_{m}"))
    methods = sorted({r["method"] for r in records if r["stage"] == "unlearn"})
    alphas = sorted({r["alpha"] for r in records if r["stage"] == "unlearn"})
    lines = [
        "# Does the correction last? The relearn probe on digits",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, corrective {__version__}, torch {torch.__version__}, "
        f"python {platform.python_version()}, {os.cpu_count()} CPU cores shared with other sessions; load average "
        f"(1/5/15 min) {'/'.join(f'{x:.1f}' for x in load_before)} before, "
        f"{'/'.join(f'{x:.1f}' for x in load_after)} after. {len(result.jobs)} jobs in {wall / 60:.1f} min.",
        "",
        f"Command: `python benchmarks/relearn_digits.py --seeds {args.seeds}"
        f"{f' --figure {args.figure}' if args.figure else ''}{extra}` (the preset `relearn-digits`: the default "
        "preset at alphas 0.1, 0.5, 1.0, every method with its registered grid, the relearn probe on).",
        "",
        "The probe: a copy of each selected model (and of the original and the oracle) fine-tuned for 5 % of the "
        "training steps (20 of 400) at the recipe's learning rate on the clean training data plus a fixed 1 % of "
        "samples drawn from S_m (12 samples; the same for every method and alpha of a seed), then measured. "
        f"Seeds {seeds}. Values in %; Δ = after − before in points; 'beyond oracle' = Δ minus the oracle's Δ "
        f"(negative: it lost more than the oracle did). **Springs back**: acc_corr falls more than "
        f"{100 * SPRING:g} points beyond the oracle's change.",
        "",
        f"**The probe's cost**: {probe:.0f} s of the jobs' {jobs:.0f} s wall time in this run, i.e. "
        f"{100 * share:.1f} % on top of the jobs without it (measured in the same jobs, same load). Applied to the "
        f"default preset's {DEFAULT_MINUTES} min (benchmarks/results/bench_default.md): about "
        f"{DEFAULT_MINUTES * (1 + share):.1f} min with the probe on (target <= 10 min).",
        "",
    ]
    springs: list[str] = []
    for manip in MANIPULATIONS:
        poison = manip == "poison"
        oracle = cells.get((manip, "oracle", None))
        o_delta = mean(oracle["relearn_acc_corr"]) - mean(oracle["acc_corr"]) if oracle else float("nan")
        metrics = ["acc_corr"] + (["attack_success", "target_acc"] if poison else [])
        head = ["method", "alpha"] + [f"{m} {w}" for m in metrics for w in ("before", "after")]
        head += ["Δ acc_corr", "beyond oracle"]
        lines += [f"## {manip}", "", "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
        for method, alpha in [("original", None), ("oracle", None)] + [(m, a) for m in methods for a in alphas]:
            c = cells.get((manip, method, alpha))
            if not c:
                continue
            row = [method, "any" if alpha is None else f"{alpha:g}"]
            for m in metrics:
                row += [pct(mean(c[m])), pct(mean(c[f"relearn_{m}"]))]
            delta = mean(c["relearn_acc_corr"]) - mean(c["acc_corr"])
            beyond = delta - o_delta
            row += [f"{100 * delta:+.1f}", "" if method == "oracle" else f"{100 * beyond:+.1f}"]
            lines.append("| " + " | ".join(row) + " |")
            if method not in ("oracle", "original") and beyond < -SPRING:
                springs.append(
                    f"{method} at alpha {alpha:g} on {manip} ({100 * mean(c['acc_corr']):.1f} → "
                    f"{100 * mean(c['relearn_acc_corr']):.1f}, oracle {100 * o_delta:+.1f})"
                )
        lines += ["", f"Oracle under the probe: acc_corr {100 * o_delta:+.1f} points.", ""]
    lines += ["## Springs back where the oracle does not", ""]
    lines += [f"- {s}" for s in springs] or ["- none at this threshold."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
