"""Unlearning methods: one file each, a registry, and the selection rule."""

from corrective.methods import (  # noqa: F401  (registers)
    auto,
    bad_teacher,
    finetune,
    none,
    npo,
    oracle,
    potion,
    rem,
    retrain,
    scrub,
    ssd,
    transplant,
)
from corrective.methods.base import (
    METHODS,
    NEEDS,
    MethodInfo,
    UnlearnTask,
    candidate_overrides,
    check_needs,
    get_method,
    list_methods,
    make_settings,
    register_method,
    run_method,
    run_methods_grid,
    settings_dict,
)
from corrective.methods.selection import MAX_CLASS_DROP, SELECTIONS, Selection, select, selection_score

__all__ = [
    "MAX_CLASS_DROP",
    "METHODS",
    "SELECTIONS",
    "Selection",
    "MethodInfo",
    "UnlearnTask",
    "NEEDS",
    "candidate_overrides",
    "check_needs",
    "get_method",
    "list_methods",
    "make_settings",
    "register_method",
    "run_method",
    "run_methods_grid",
    "select",
    "selection_score",
    "settings_dict",
]
