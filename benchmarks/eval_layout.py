"""Predictions channels-last against the default layout: seconds of one `metrics.evaluate` (every split a record
reads, as each bench job runs it), side by side in one process, and whether the figures are the same.

    OMP_NUM_THREADS=1 python benchmarks/eval_layout.py --dataset fashion_mnist [--run DIR] [--repeats 3]

Without `--run` an original is trained first (poison, seed 0, `--train-steps` of the dataset's recipe; a run
folder from `corrective train --out DIR` or a bench's `models/ID` serves too). "default" forces the layout
decision of `models.layout` to the default layout; "channels-last" is what predictions use since the change.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from unittest import mock

import torch

from corrective import api
from corrective.data.batches import Pipeline
from corrective.metrics import evaluate, predict
from corrective.models import layout


def timed(run: api.Run, channels_last: bool) -> tuple[float, dict]:
    """CPU seconds of this process for one evaluate (one thread: less sensitive to other processes), its figures."""
    with mock.patch.object(layout, "runs_channels_last", layout.runs_channels_last if channels_last else no):
        cpu = time.process_time()
        figures = evaluate(run.model, run.dataset, run.manipulation)
        return time.process_time() - cpu, figures


def no(model: torch.nn.Module, x: torch.Tensor) -> bool:
    return False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--run", help="a run folder (corrective train --out, or a bench's models/ID)")
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3, help="default / channels-last pairs, interleaved")
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if a.run:
        run = api.load_run(a.run, device="cpu")
    else:
        run = api.train_run(a.dataset, manipulation="poison", steps=a.train_steps, device="cpu", progress=False)
    run.model.to(memory_format=torch.contiguous_format)  # as a bench job loads it  # type: ignore[call-overload]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# {run.dataset.name}: {run.spec.name}, {len(run.dataset.test):,} test images; evaluate() CPU seconds")
    print(f"# commit {commit}, torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} thread(s)")
    print(f"# load before: {os.getloadavg()}")
    seconds: dict[bool, list[float]] = {False: [], True: []}
    figures = {}
    for _ in range(a.repeats):
        for cl in (False, True):
            s, figures[cl] = timed(run, cl)
            seconds[cl].append(s)
            print(f"{'channels-last' if cl else 'default'}: {s:.2f} s", flush=True)
    pipe = Pipeline.of(run.dataset)
    with mock.patch.object(layout, "runs_channels_last", no):
        before = predict(run.model, run.dataset.test, pipe)
    after = predict(run.model, run.dataset.test, pipe)
    same = {k for k in figures[False] if figures[False][k] == figures[True][k]}
    differ = sorted(set(figures[False]) - same)
    print(f"best of each: default {min(seconds[False]):.2f} s, channels-last {min(seconds[True]):.2f} s, "
          f"ratio {min(seconds[True]) / min(seconds[False]):.3f}")  # fmt: skip
    print(f"test predictions equal: {int((before == after).sum()):,} of {len(before):,}; "
          f"figures that differ: {differ or 'none'}")  # fmt: skip
    print(f"# load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
