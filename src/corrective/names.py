"""Names shared by the library and the report, which reads records without importing torch: defined once here.

`MANIPULATIONS`: the manipulations of the papers, most regular first (REM's axis; the registry,
`corrective.manipulations`, holds every manipulation with its settings); `METRICS`, `SUMMARY_METRICS`: the
metric names records hold; `RESULTS`, `SUMMARY`, `SPEC`: the files of a results folder; `mean_std`: the one
mean and std over seeds (summary.csv and the report).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

MANIPULATIONS: tuple[str, ...] = ("poison", "interclass", "random_swap")  # the papers' three, in REM's order
# The record fields of the manipulations' settings in records written before the manipulation registry (a
# record now names its own in `setting_names`; `corrective.manipulations` declares them).
LEGACY_SETTINGS: tuple[str, ...] = ("target", "trigger_size", "corner", "value", "classes")
SETTING_NAMES = "setting_names"  # the record field listing the record fields that hold the manipulation's settings


# Every scalar metric `metrics.evaluate` may write (fractions in [0, 1]); it also writes the PER_CLASS lists.
DEFENCE = ("c_acc", "asr", "r_acc", "der")  # BackdoorBench's C-Acc, ASR, R-Acc, DER (backdoors only)
METRICS = (
    "acc_corr",
    "acc_retain",
    "healed",
    "utility",
    "score",
    "clean_acc",
    "val_accuracy",
    "forget_changed",
    "attack_success",
    "target_acc",
    *DEFENCE,
)
GUARD = "val_class_drop"  # the guarded selection's figure: the largest fall of a class's validation accuracy
PER_CLASS = ("per_class_acc", "val_per_class_acc")  # one accuracy per class: test, validation
SECONDS = "unlearn_seconds"  # what a method cost, on every unlearning record
# What `summary.csv` averages over seeds.
EXPANSION = ("n_expanded", "expand_precision", "expand_recall", "expand_seconds")  # an expanded S_f's figures
# The relearn probe (bench.relearn) records these metrics of the probed model under `<prefix><name>`, one prefix
# per kind of probe: `mixed` (clean training data plus a few samples of S_m; `relearn_<name>`, the first kind) and
# `retain_only` (the clean training data alone; `relearn_retain_only_<name>`).
RELEARN_OF: tuple[str, ...] = ("acc_corr", "acc_retain", "healed", "attack_success", "target_acc")
RELEARN_KINDS: tuple[str, ...] = ("mixed", "retain_only")
RELEARN_DEFAULT = "mixed"  # what `relearn = true` runs


def relearn_prefix(kind: str) -> str:
    """The record fields' prefix of one kind of relearn probe: `relearn_` (mixed), `relearn_retain_only_`."""
    if kind not in RELEARN_KINDS:
        raise ValueError(f"unknown relearn kind {kind!r}; known: {', '.join(RELEARN_KINDS)}")
    return "relearn_" if kind == RELEARN_DEFAULT else f"relearn_{kind}_"


RELEARN_METRICS: tuple[str, ...] = tuple(f"{relearn_prefix(k)}{m}" for k in RELEARN_KINDS for m in RELEARN_OF)
SUMMARY_METRICS = (
    "acc_corr",
    "acc_retain",
    "healed",
    "utility",
    "score",
    "target_acc",
    "attack_success",
    *DEFENCE,
    SECONDS,
    *EXPANSION,
    *(f"{relearn_prefix(k)}{m}" for k in RELEARN_KINDS for m in ("acc_corr", "healed", "attack_success", "target_acc")),
)  # relearn_*: empty unless the bench probed (with that kind)

# The bench's stages, in run order; every stage but `expand` (an expanded forget set) records a model.
STAGES = ("original", "oracle", "expand", "unlearn")
MODEL_STAGES = tuple(s for s in STAGES if s != "expand")

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
