"""SCRUB's kl_weight grid with and without the teacher's logits shared between its settings: CPU seconds a setting,
side by side in one process, and whether the models are the same.

Each setting of the grid draws the same batches (same seed, budget, batch size), so the frozen teacher's
logits on them are the same; `UnlearnTask.teacher_outputs` keeps them from the first setting for the others.
The original model only needs the right architecture and recipe for a cost measurement, so it is trained for
`--train-steps` steps and the task then takes the dataset's preset step count (SCRUB's budget is a share of it).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/scrub_grid_cost.py --dataset digits --settings 8
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import time

import torch

from corrective import api
from corrective.data import get_info
from corrective.methods import base as methods_base
from corrective.methods import make_settings, run_methods_grid
from corrective.methods.scrub import KL_WEIGHT_GRID
from corrective.training import get_preset


def grid_seconds(task: methods_base.UnlearnTask, weights: list[float], share: bool) -> tuple[list[float], list]:
    """Per-setting CPU seconds of the grid on a fresh task (an empty cache), sharing on or off; the models' weights.

    CPU seconds of this process (one thread): less sensitive to other processes on the machine than wall time."""
    methods_base.SHARED_OUTPUTS_BYTES = SHARED if share else 0
    fresh = dataclasses.replace(task)
    grid = [make_settings("scrub", {"kl_weight": w}) for w in weights]
    seconds, states = [], []
    cpu = time.process_time()
    for _, model, _ in run_methods_grid(fresh, "scrub", grid):
        seconds.append(time.process_time() - cpu)
        states.append(model.state_dict())
        cpu = time.process_time()
    return seconds, states


SHARED = methods_base.SHARED_OUTPUTS_BYTES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--settings", type=int, default=8, help="the first N of SCRUB's kl_weight grid, largest first")
    p.add_argument("--train-steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=2, help="off/on pairs, interleaved")
    p.add_argument("--alpha", type=float, default=0.1)
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    run = api.train_run(a.dataset, manipulation="poison", steps=a.train_steps, progress=False)
    steps = get_preset(get_info(a.dataset).preset).steps  # the dataset's recipe, as its originals are trained
    task = api.make_task(run, run.manipulation.forget_ids(a.alpha), progress=False)
    task = dataclasses.replace(task, config=dataclasses.replace(task.config, steps=steps))
    weights = sorted(KL_WEIGHT_GRID, reverse=True)[: a.settings]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# {a.dataset}: SCRUB grid of {len(weights)} (kl_weight {weights}), {steps} training steps x budget 0.25")
    print(f"# commit {commit}, torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} thread(s)")
    print(f"# load before: {os.getloadavg()}")
    totals: dict[bool, list[float]] = {False: [], True: []}
    models = {}
    for r in range(a.repeats):
        for share in (False, True):
            seconds, states = grid_seconds(task, weights, share)
            totals[share].append(sum(seconds))
            models[share] = states
            print(f"repeat {r} shared={share}: CPU s per setting " + ", ".join(f"{s:.1f}" for s in seconds), flush=True)
    same = all(all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(models[False], models[True], strict=True))
    ratio = min(totals[True]) / min(totals[False])
    off, on = ([round(t, 1) for t in totals[share]] for share in (False, True))
    print(f"grid CPU seconds, not shared: {off}; shared: {on}")
    print(f"ratio shared / not shared (best of each): {ratio:.3f}; same models: {same}")
    print(f"# load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
