"""The transplant's longer candidates resumed from the one before them, against fresh runs for twice the steps.

For each original (a run folder of `corrective bench` or `corrective train`), at the given alpha and false-flag
share: `auto`'s expansion, then the transplant candidates of `auto`'s grid that a search reaches after its first
fails — half algorithm A's rate (T), T resumed (T+resume), anchored (A), A resumed (A+resume) — and the fresh runs
for twice the steps the resumed ones replaced (T x2, A x2), each with every figure of its record (under the paper
rule, so every candidate runs and is measured; S_m and the test set are read only to score). Prints one markdown
row per candidate:

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/transplant_resume.py RUN_DIR:ALPHA:FALSE_FLAGS:LABEL ...
"""

from __future__ import annotations

import argparse

import torch

from corrective.api.runs import expand_run, load_run
from corrective.api.unlearn import unlearn

T = {"base": "transplant", "lr_factor": 0.5}
A = {**T, "anchor": 1.0}
GRIDS = {
    "resumed": [T, {**T, "resume": True}, A, {**A, "resume": True}],
    "fresh": [{**T, "budget": 0.5}, {**A, "budget": 0.5}],
}
FIGURES = ("val_class_drop", "acc_corr", "attack_success", "target_acc", "clean_acc")


def tag(s: dict) -> str:
    return ("A" if s["anchor"] else "T") + ("+resume" if s["resume"] else "") + (" x2" if s["budget"] == 0.5 else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="+", help="RUN_DIR:ALPHA:FALSE_FLAGS:LABEL")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| case | candidate | " + " | ".join(FIGURES) + " | seconds |")
    print("|---|---|" + "---:|" * (len(FIGURES) + 1))
    for case in args.cases:
        run_dir, alpha, ff, label = case.split(":")
        run = load_run(run_dir, "cpu")
        exp = expand_run(run, float(alpha), "auto", false_flags=float(ff))
        for grid in GRIDS.values():
            res = unlearn(
                run,
                "auto",
                float(alpha),
                grid=grid,
                selection="paper",
                expand="auto",
                expansion=exp,
                false_flags=float(ff),
                progress=False,
            )
            for r in res.records:
                if r.get("is_original"):
                    continue
                figures = " | ".join(f"{100 * r[k]:.1f}" if isinstance(r.get(k), float) else "" for k in FIGURES)
                print(f"| {label} | {tag(r['settings'])} | {figures} | {r['unlearn_seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
