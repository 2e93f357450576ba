"""REM's wall time against retraining, measured side by side (interleaved, medians) on one digits task.

Interclass confusion, capacity-trained original (seed 0), alpha 0.5. Rows: retrain; REM with its defaults
(lr 1/5 of training, 10 repair epochs); REM at the budget it had before issue 11 (lr 0.005, 98 steps =
5.16 epochs). Each is run REPEATS times in turn; the table gives the median seconds and the ratio to
retraining's median (the machine is shared: compare the ratios).

    PYTHONPATH=src python benchmarks/rem_timing.py
"""

from __future__ import annotations

import statistics
import time

import torch

REPEATS = 3
ROWS = {
    "retrain": ("retrain", {}),
    "rem (defaults: lr 1/5 of A's, 10 repair epochs)": ("rem", {}),
    "rem (lr 0.005, 98 repair steps: the old budget)": ("rem", {"lr": 0.005, "repair_epochs": 5.16}),
}


def main() -> None:
    torch.set_num_threads(1)
    from corrective import api
    from corrective.methods import make_settings, run_method

    run = api.train_run("digits", manipulation="interclass", training="capacity", seed=0, progress=False)
    task = api.make_task(run, run.manipulation.forget_ids(0.5), progress=False)
    seconds: dict[str, list[float]] = {row: [] for row in ROWS}
    for _ in range(REPEATS):
        for row, (method, overrides) in ROWS.items():
            start = time.perf_counter()
            run_method(task, method, make_settings(method, overrides))
            seconds[row].append(time.perf_counter() - start)
    base = statistics.median(seconds["retrain"])
    print("| run | median seconds | / retrain |")
    print("|---|---|---|")
    for row, values in seconds.items():
        print(f"| {row} | {statistics.median(values):.2f} | {statistics.median(values) / base:.2f} |")


if __name__ == "__main__":
    main()
