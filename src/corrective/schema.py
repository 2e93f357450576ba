"""The names shared by every producer and reader of results: manipulations, metrics, result files, mean/std.

Defined once, imported where used. Imports nothing but the standard library, so the report (which
never loads torch) reads records with the same names the bench writes them with.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

# The manipulations of the papers, most regular first (REM's axis); `manipulations.py` adds "none".
MANIPULATIONS = ("poison", "interclass", "random_swap")

# Every scalar metric `metrics.evaluate` may write (fractions in [0, 1]); it also writes PER_CLASS.
METRICS = ("acc_corr", "acc_retain", "healed", "utility", "score", "clean_acc", "val_accuracy", "forget_changed",
           "attack_success", "target_acc")
PER_CLASS = "per_class_acc"
SECONDS = "unlearn_seconds"  # what a method cost, on every unlearning record
# What `summary.csv` averages over seeds.
SUMMARY_METRICS = ("acc_corr", "acc_retain", "healed", "utility", "score", "target_acc", "attack_success", SECONDS)

# The files of a results folder.
RESULTS = "results.jsonl"  # one record per finished job
SUMMARY = "summary.csv"  # mean, std and n over seeds of SUMMARY_METRICS
SPEC = "spec.json"  # the spec that ran there: which seeds and alphas were asked for


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean and sample standard deviation (n - 1) of the values that are not NaN, and how many there were.

    NaN where there is no value (the std too where there is one).
    """
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, math.nan, 0
    return math.fsum(vals) / len(vals), statistics.stdev(vals) if len(vals) > 1 else math.nan, len(vals)
