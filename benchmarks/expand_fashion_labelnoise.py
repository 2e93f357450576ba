"""Fashion-MNIST interclass (0/6, 5 %) at alpha 0.1: how precise can the label vote be, and what `auto` returns.

An exploratory probe behind benchmarks/results/expand_scale.md: on a saved run (`corrective train
--dataset fashion_mnist --model cnn_small --steps 300 --manipulation interclass --size 0.05 --seed 0
--out RUN`), the seconds of the feature pass and of the k-nearest-neighbour vote at 54,000 samples,
precision and recall of S_m for label_noise's vote at several thresholds (with and without the model's
own disagreement), and `auto`'s expansion. Prints only; the figures quoted in the results file came
from this script.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/expand_fashion_labelnoise.py RUN
"""

from __future__ import annotations

import sys
import time

import torch


def main() -> None:
    from corrective import api
    from corrective.data.batches import Pipeline
    from corrective.expand.base import View
    from corrective.expand.label_noise import LabelNoiseSettings, label_noise
    from corrective.metrics import expansion_quality

    torch.set_num_threads(1)
    run = api.load_run(sys.argv[1])
    print(f"clean_acc {run.metrics.get('clean_acc')}, recorded training seconds {run.train_seconds:.0f}", flush=True)
    view = View(run.model, run.train_split, Pipeline.of(run.dataset))
    start = time.perf_counter()
    _ = view.features
    print(f"feature pass {time.perf_counter() - start:.0f} s", flush=True)
    truth = torch.isin(view.ids, run.manipulation.ids)
    flagged = torch.isin(view.ids, run.manipulation.forget_ids(0.1))

    def pr(selected: torch.Tensor) -> str:
        selected = selected | flagged
        hit = int((selected & truth).sum())
        return f"P {hit / max(int(selected.sum()), 1):.3f} R {hit / int(truth.sum()):.3f} n {int(selected.sum())}"

    start = time.perf_counter()
    vote = label_noise(view, flagged, LabelNoiseSettings())
    print(f"neighbour vote (k=20, exact) {time.perf_counter() - start:.0f} s", flush=True)
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9):
        print(f"vote >= {threshold}: {pr(vote >= threshold)}")
    print(f"model disagrees (margin < 0): {pr(view.margin < 0)}")
    for threshold in (0.5, 0.7):
        print(f"vote >= {threshold} and margin < 0: {pr((vote >= threshold) & (view.margin < 0))}")
    start = time.perf_counter()
    e = api.expand_run(run, 0.1, "auto", progress=False)
    q = expansion_quality(e.ids, run.manipulation.forget_ids(0.1), run.manipulation.ids)
    print(
        f"auto: chose {e.chosen}, added {len(e.added)}, set aside {len(e.set_aside)}, "
        f"P {q['expand_precision']:.3f} R {q['expand_recall']:.3f}, {time.perf_counter() - start:.0f} s "
        f"(rule {e.details['cutoff'].get('rule')})",
        flush=True,
    )


if __name__ == "__main__":
    main()
