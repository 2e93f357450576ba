"""SSD's importances: one un-augmented pass in order (ours) against augmented batches in random order
(the papers' code).

Superseded by SSD's setting `importance_batches = "augmented"`: a bench spec with
`[methods.ssd] grid = true, settings = {importance_batches = "augmented"}` runs what this script patches in;
kept with its result (benchmarks/README.md).

The papers' code computes SSD's importances on its training loaders: one shuffled epoch with the training
augmentation, the model in eval mode. Ours takes one deterministic pass without augmentation. For each
manipulation, seed and alpha this runs SSD's 50-setting grid both ways, picks a setting by the paper's
selection rule (validation split, never the test set) and prints the selected model's figures, then the
mean difference (augmented − ours) against the seed spread of ours.

    PYTHONPATH=src python benchmarks/ssd_importance_order.py > benchmarks/results/ssd_importance_order.md
"""

from __future__ import annotations

import itertools
import math
import statistics
import sys
import time
from contextlib import contextmanager
from typing import Any

import torch

SEEDS = (0, 1, 2)
ALPHAS = (0.1, 0.5, 1.0)
MANIPULATIONS = ("poison", "interclass")
METRICS = ("acc_corr", "acc_retain", "target_acc")


@contextmanager
def augmented_random_order() -> Any:
    """Importances from one shuffled, augmented epoch (batches drawn as in training), as the papers' code does."""
    from corrective.data.batches import epochs
    from corrective.methods import ssd

    original = ssd.one_pass
    calls = itertools.count()

    def one_epoch(split, pipeline, batch_size=1024):
        gen = torch.Generator().manual_seed(1_000 + next(calls))
        n_batches = math.ceil(len(split) / batch_size)
        return itertools.islice(epochs(split, pipeline, batch_size, gen, augment=True), n_batches)

    ssd.one_pass = one_epoch
    try:
        yield
    finally:
        ssd.one_pass = original


def main() -> None:
    torch.set_num_threads(1)
    from corrective import api

    start = time.perf_counter()
    rows: dict[tuple[str, float, str], list[dict[str, float]]] = {}
    print("| manipulation | seed | alpha | importances | acc_corr | acc_retain | target_acc | selected (a, λ) |")
    print("|---|---|---|---|---|---|---|---|")
    for manipulation in MANIPULATIONS:
        for seed in SEEDS:
            run = api.train_run("digits", manipulation=manipulation, seed=seed, progress=False)
            for alpha in ALPHAS:
                for label in ("ours", "augmented"):
                    if label == "ours":
                        res = api.unlearn(run, "ssd", alpha, grid=True, progress=False)
                    else:
                        with augmented_random_order():
                            res = api.unlearn(run, "ssd", alpha, grid=True, progress=False)
                    r = res.record
                    rows.setdefault((manipulation, alpha, label), []).append({m: r.get(m) for m in METRICS})
                    cells = " | ".join("-" if r.get(m) is None else f"{100 * r[m]:.1f}" for m in METRICS)
                    print(
                        f"| {manipulation} | {seed} | {alpha} | {label} | {cells} | "
                        f"({r['settings']['a']:g}, {r['settings']['lambda_']:g}) |"
                    )
                    sys.stdout.flush()
    print("\nMean over seeds (points), augmented − ours, against the seed std of ours:\n")
    print("| manipulation | alpha | metric | ours mean ± std | augmented mean ± std | difference | within spread |")
    print("|---|---|---|---|---|---|---|")
    within = total = 0
    for manipulation in MANIPULATIONS:
        for alpha in ALPHAS:
            for m in METRICS:
                a = [x[m] for x in rows[(manipulation, alpha, "ours")] if x[m] is not None]
                b = [x[m] for x in rows[(manipulation, alpha, "augmented")] if x[m] is not None]
                if len(a) < 2 or len(b) < 2:
                    continue
                diff = statistics.mean(b) - statistics.mean(a)
                spread = max(statistics.stdev(a), statistics.stdev(b))
                ok = abs(diff) <= spread
                within += ok
                total += 1
                print(
                    f"| {manipulation} | {alpha} | {m} | {100 * statistics.mean(a):.1f} ± "
                    f"{100 * statistics.stdev(a):.1f} | {100 * statistics.mean(b):.1f} ± "
                    f"{100 * statistics.stdev(b):.1f} | {100 * diff:+.1f} | {'yes' if ok else 'NO'} |"
                )
    wall = time.perf_counter() - start
    print(
        f"\n{within} of {total} differences are within one seed std (the larger of the two). "
        f"Wall time {wall:.0f} s on 2 shared CPU cores."
    )


if __name__ == "__main__":
    main()
