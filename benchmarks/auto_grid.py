"""Would a smaller SCRUB grid serve `auto` as well? The guarded rule replayed on subsets of its 8 candidates.

    .venv/bin/python benchmarks/auto_grid.py [--max-size 4] > benchmarks/results/auto_grid.md

No training: every committed bench folder whose `auto` records hold all 8 SCRUB candidates (kl_weight 0.001 …
10) on a poisoning manipulation is read, and for each such task the guarded selection (`Selection("guarded")`
against the original model's validation accuracy per class, its class counts from the data's validation split)
and auto's do-no-harm fallback (the original model when the choice is not eligible) are replayed on every
subset of the candidates. The script says, per folder, how many recorded choices today's rule would not make
(folders recorded under an older rule; their candidates are still what a subset chooses from). Subsets are
ranked by the mean acc_corr of the model auto would return on the *tuning* folders (digits: the attacks
benchmark and the one-flag / false-flags harm benchmarks) and the best of each size is then read on the *held-
out* folders (other seeds, manipulations and runs: rem-digits, relearn-digits, harm-relearn, Fashion-MNIST),
never used to choose. acc_corr is a test-set metric: choosing a default grid from benchmark results is a
design choice made once, as the paper's grid was; the held-out folders say whether it carries.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import statistics
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import torch

from corrective.data import load_dataset
from corrective.methods.scrub import KL_WEIGHT_GRID
from corrective.methods.selection import Reference, Selection

RESULTS = Path(__file__).parent / "results"
TUNE = ("attacks_digits_bench", "harm_targets_bench/oneflag", "harm_targets_bench/falseflags")
HELD_OUT = ("rem_digits_bench", "relearn_digits_bench", "harm_relearn_bench", "fashion_bench")
POISONING = ("poison", "blended", "wanet", "sig")


@cache
def val_counts(dataset: str, val_fraction: float, seed: int) -> tuple[int, ...]:
    val = load_dataset(dataset, val_fraction=val_fraction, seed=seed).val
    return tuple(torch.bincount(val.y, minlength=10).tolist())


def kl_of(candidate: dict[str, Any]) -> float:
    settings = candidate["settings"]
    return float(settings.get("kl_weight", settings.get("alpha")))


def cases(folder: str) -> list[dict[str, Any]]:
    """Every auto task of a folder with its 8 SCRUB candidates, the original's figures and the guard's reference."""
    path = RESULTS / folder
    spec = json.loads((path / "spec.json").read_text())
    with gzip.open(path / "results.jsonl.gz", "rt") as f:
        records = [json.loads(line) for line in f]
    originals = {r["job_id"]: r for r in records if r.get("stage") == "original"}
    out = []
    for r in records:
        if r.get("method") != "auto" or r["manipulation"] not in POISONING:
            continue
        base = [c for c in r["candidates"] if not c.get("is_original")]
        scrub = [c for c in base if c["settings"].get("base", "scrub") == "scrub"]
        if sorted(kl_of(c) for c in scrub) != sorted(KL_WEIGHT_GRID):
            continue
        original = originals.get(r.get("original_id"))
        if original is None:
            continue
        counts = val_counts(r["dataset"], float(spec.get("val_fraction", 0.1)), int(r["seed"]))
        reference = Reference(tuple(original["val_per_class_acc"]), counts)
        chosen = next(c for c in r["candidates"] if c["selected"])
        out.append(
            {
                "folder": folder,
                "manipulation": r["manipulation"],
                "candidates": sorted(scrub, key=kl_of),
                "original": original,
                "reference": reference,
                "max_class_drop": float(r.get("max_class_drop", 0.05)),
                "recorded": None if chosen.get("is_original") else kl_of(chosen),
            }
        )
    return out


def replay(case: dict[str, Any], grid: Sequence[float]) -> tuple[float | None, dict[str, Any]]:
    """(the chosen kl_weight or None for the original, the record of the model auto returns) on `grid`."""
    rule = Selection("guarded", case["max_class_drop"])
    best, best_key = None, None
    for c in case["candidates"]:
        if kl_of(c) in grid:
            key = rule.key(c, case["reference"])
            if best_key is None or key > best_key:
                best, best_key = c, key
    assert best is not None
    if not rule.eligible(best, case["reference"]):
        return None, case["original"]
    return kl_of(best), best


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def figures(group: list[dict[str, Any]], grid: Sequence[float]) -> dict[str, float]:
    chosen = [replay(c, grid) for c in group]
    return {
        "acc_corr": mean([r["acc_corr"] for _, r in chosen]),
        "target_acc": mean([r["target_acc"] for _, r in chosen if r.get("target_acc") is not None]),
        "asr": mean([r["attack_success"] for _, r in chosen if r.get("attack_success") is not None]),
        "original": sum(k is None for k, _ in chosen) / len(chosen),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-size", type=int, default=4)
    ap.add_argument("--grids", nargs="*", default=[], help="more grids to show, e.g. 0.001,0.5,5,10")
    args = ap.parse_args()
    found = {f: cases(f) for f in TUNE + HELD_OUT}
    # the replay is today's rule: where a folder's records came from an older rule or guard, some recorded
    # choices differ; its candidates (the trained models' figures) are still what a grid subset would choose from
    differs = {f: sum(replay(c, KL_WEIGHT_GRID)[0] != c["recorded"] for c in found[f]) for f in found}
    tune = [c for f in TUNE for c in found[f]]
    held = [c for f in HELD_OUT for c in found[f]]
    full_t, full_h = figures(tune, KL_WEIGHT_GRID), figures(held, KL_WEIGHT_GRID)
    print("# A smaller SCRUB grid for `auto`? The guarded rule replayed on subsets of its candidates\n")
    print("Command: `.venv/bin/python benchmarks/auto_grid.py`; no training (committed records only).")
    for f, v in found.items():
        status = "as recorded" if not differs[f] else f"{differs[f]} choices differ (recorded under an older rule)"
        print(f"- `{f}`: {len(v)} tasks ({'tuning' if f in TUNE else 'held out'}); the full grid replayed: {status}")
    print(f"\nTuning tasks: {len(tune)}; held-out tasks: {len(held)}. Values: means over tasks of the model auto")
    print("returns (the original where the choice is not eligible: 'orig.' is that share); cost: candidates run.\n")
    print("| grid | candidates | tune acc_corr | tune target_acc | tune ASR | tune orig. | held-out acc_corr |"
          " held-out target_acc | held-out ASR | held-out orig. |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def row(grid: Sequence[float], t: dict[str, float], h: dict[str, float]) -> None:
        name = ", ".join(f"{g:g}" for g in grid) if len(grid) < len(KL_WEIGHT_GRID) else "all 8 (today)"
        cells = [t["acc_corr"], t["target_acc"], t["asr"], t["original"], h["acc_corr"], h["target_acc"], h["asr"]]
        cells.append(h["original"])
        print(f"| {name} | {len(grid)} | " + " | ".join(f"{100 * v:.1f}" for v in cells) + " |")

    row(KL_WEIGHT_GRID, full_t, full_h)
    for size in range(1, args.max_size + 1):
        ranked = sorted(itertools.combinations(KL_WEIGHT_GRID, size), key=lambda g: -figures(tune, g)["acc_corr"])
        for grid in ranked[:3]:
            row(grid, figures(tune, grid), figures(held, grid))
    for text in args.grids:
        grid = tuple(float(v) for v in text.split(","))
        row(grid, figures(tune, grid), figures(held, grid))


if __name__ == "__main__":
    main()
