"""The few functions a user calls, one job a module:

- `runs`: train a (manipulated) model, save, load and evaluate it; its S_f at a discovery rate; its expansion;
- `unlearn`: a method on a run, measured against the true S_m (the benchmark's path);
- `correct`: a method on a practitioner's model, data and flagged ids (no S_m anywhere);
- `core`: the steps both share — expansion, candidates, guarded selection, do no harm, flag notes;
- `flagged`: flagged ids read from a file, checked, described;
- `practitioner`: any PyTorch classifier and dataset in (`corrective.fix`), its model and recipe loaded.
"""

from corrective.api.core import (
    UnlearnResult,
    check_expand,
    correct_task,
    expansion_for,
    expansion_task,
    reference_on,
    resolve_selection,
    run_candidates,
    with_expansion,
)
from corrective.api.correct import correct
from corrective.api.flagged import (
    WHOLE_CLASS_CONTRADICTED,
    WHOLE_CLASS_GAP,
    WHOLE_CLASS_PURITY,
    check_flagged,
    describe_flags,
    read_flagged,
)
from corrective.api.runs import Run, evaluate_run, expand_run, flagged_ids, load_run, make_task, train_run
from corrective.api.unlearn import unlearn

__all__ = [
    "WHOLE_CLASS_CONTRADICTED",
    "WHOLE_CLASS_GAP",
    "WHOLE_CLASS_PURITY",
    "Run",
    "UnlearnResult",
    "check_expand",
    "check_flagged",
    "correct",
    "correct_task",
    "describe_flags",
    "evaluate_run",
    "expand_run",
    "expansion_for",
    "expansion_task",
    "flagged_ids",
    "load_run",
    "make_task",
    "read_flagged",
    "reference_on",
    "resolve_selection",
    "run_candidates",
    "train_run",
    "unlearn",
    "with_expansion",
]
