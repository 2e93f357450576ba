"""How each method degrades when S_f holds false flags (clean samples flagged by mistake), on digits.

    python benchmarks/false_flags_digits.py [--seeds 0,1,2] [--flags 0,0.2,0.5] [--alpha 0.5] [--full-grids] \
        [--out-dir DIR] > benchmarks/results/false_flags_digits.md

Runs `corrective bench` on the embedded digits data: the three manipulations at their default size, every
registered method (oracle bounds included, the oracle as reference) at one alpha, with the false-flag shares
given (`false_flags`: round(share x |S_f|) clean training samples added to S_f; the methods and the
selection rule see them as flagged, every metric reads the true S_m). Grids: by default each method's
default setting only (SSD 50 settings, SCRUB 8 and NPO 3 cut to 1) so the run fits a loaded 2-core machine;
`--full-grids` runs the registered grids. Prints a markdown report: per manipulation and method, acc_corr
(and target_acc, attack_success for poisoning) and acc_retain at each share, mean ± std over seeds, and the
change from share 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import torch

from corrective import __version__
from corrective.bench import read_records, run_bench
from corrective.bench.spec import parse_spec
from corrective.names import MODEL_STAGES

MANIPULATIONS = ("poison", "interclass", "random_swap")


def spec(seeds: list[int], flags: list[float], alpha: float, full_grids: bool, workers: int, steps: int = 0):
    return parse_spec(
        {
            "steps": steps,
            "name": "false-flags-digits",
            "datasets": ["digits"],
            "seeds": seeds,
            "alphas": [alpha],
            "false_flags": flags,
            "oracle": True,
            "device": "cpu",
            "workers": workers,
            "manipulations": {m: [0.05] for m in MANIPULATIONS},
            "methods": {"all": {"grid": full_grids}},
        }
    )


def stat(values: list[float]) -> str:
    vals = [100 * v for v in values if v is not None]
    if not vals:
        return "–"
    return f"{statistics.fmean(vals):.1f}" + (f" ± {statistics.stdev(vals):.1f}" if len(vals) > 1 else "")


def mean(values: list[float]) -> float:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--flags", default="0,0.2,0.5")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0, help="training steps (0: the digits recipe's; for a quick try)")
    ap.add_argument("--full-grids", action="store_true", help="every method's registered grid (slower)")
    ap.add_argument("--out-dir", type=Path, help="keep the bench folder here (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    flags = [float(f) for f in args.flags.split(",")]
    s = spec(seeds, flags, args.alpha, args.full_grids, args.workers, args.steps)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="false_flags.") as tmp:
        out = args.out_dir or Path(tmp) / "bench"
        start = time.perf_counter()
        result = run_bench(s, out, progress=False)
        wall = time.perf_counter() - start
        if result.failed:
            raise SystemExit(f"bench failed: {result.failed[:3]}")
        records = read_records(out / "results.jsonl")
    load_after = os.getloadavg()
    cells: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    flags_seen: dict[tuple, list] = defaultdict(list)
    for r in records:
        if r["stage"] not in MODEL_STAGES:
            continue  # an expansion's own record (the auto method's), not a model
        if r["stage"] == "original":
            key = (r["manipulation"], "original", None)
        elif r["stage"] == "oracle":
            key = (r["manipulation"], "oracle", None)
        else:
            key = (r["manipulation"], r["method"], r["false_flags"])
            flags_seen[key].append(r["n_false_flags"])
        for metric in ("acc_corr", "acc_retain", "target_acc", "attack_success", "healed"):
            cells[key][metric].append(r.get(metric))
    methods = sorted({r["method"] for r in records if r["stage"] == "unlearn"})
    lines = [
        "# False flags: how each method degrades when S_f holds clean samples (digits)",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, corrective {__version__}, torch {torch.__version__}, "
        f"python {platform.python_version()}, {os.cpu_count()} CPU cores shared with other sessions; load average "
        f"(1/5/15 min) {'/'.join(f'{x:.1f}' for x in load_before)} before, "
        f"{'/'.join(f'{x:.1f}' for x in load_after)} after. {len(result.jobs)} jobs in {wall / 60:.1f} min.",
        "",
        f"Command: `python benchmarks/false_flags_digits.py --seeds {args.seeds} --flags {args.flags} "
        f"--alpha {args.alpha:g}{' --full-grids' if args.full_grids else ''}"
        f"{f' --steps {args.steps}' if args.steps else ''}`",
        "",
        f"Digits, the three manipulations at 5 % of the training set, alpha {args.alpha:g}, seeds {seeds}, "
        f"false-flag shares {flags} of |S_f| (clean training samples, never members of S_m, added to S_f; "
        "the methods and the selection rule see them as flagged, the metrics read the true S_m). "
        + (
            "Every method with its registered grid. "
            if args.full_grids
            else "**Grids reduced**: each method at its default setting (SSD a=10, λ=1; SCRUB and NPO their defaults), "
            "because the shared machine was loaded; the selection rule then has one candidate. "
        )
        + "Values in %, mean ± std over seeds; Δ = change from share 0 in points. The original model and the "
        "oracle do not depend on false flags.",
        "",
    ]
    for manip in MANIPULATIONS:
        poison = manip == "poison"
        metrics = ["acc_corr"] + (["target_acc", "attack_success"] if poison else []) + ["acc_retain"]
        lines += [f"## {manip}", ""]
        head = (
            ["method", "false flags", "n flagged clean"]
            + metrics
            + ["Δ acc_corr"]
            + (["Δ target_acc"] if poison else [])
        )
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
        for ref in ("original", "oracle"):
            c = cells.get((manip, ref, None))
            if c:
                lines.append(
                    f"| {ref} | any | – | "
                    + " | ".join(stat(c[m]) for m in metrics)
                    + " | |"
                    + (" |" if poison else "")
                )
        for method in methods:
            base = cells.get((manip, method, flags[0]))
            for f in flags:
                c = cells.get((manip, method, f))
                if not c:
                    continue
                n = flags_seen[(manip, method, f)]
                row = [method, f"{f:g}", f"{statistics.fmean(n):.0f}"] + [stat(c[m]) for m in metrics]
                deltas = ["acc_corr"] + (["target_acc"] if poison else [])
                for m in deltas:
                    d = 100 * (mean(c[m]) - mean(base[m])) if base and f != flags[0] else float("nan")
                    row.append("" if d != d else f"{d:+.1f}")
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
