"""Forget-set expansion: from the flagged few, find the rest of the manipulated training samples.

One file per strategy, a registry, one cutoff rule (cross-validation inside S_f). A strategy sees
only what a method sees: the model, the training split as given and S_f (docs/methods.md).
"""

from corrective.expand import (  # noqa: F401  (registers)
    auto,
    classifier,
    cluster,
    gradients,
    label_noise,
    neighbours,
    none,
)
from corrective.expand.base import (
    STRATEGIES,
    Cutoff,
    Expansion,
    StrategyInfo,
    View,
    get_strategy,
    list_strategies,
    make_strategy_settings,
    register_strategy,
)
from corrective.expand.driver import expand

__all__ = [
    "STRATEGIES",
    "Cutoff",
    "Expansion",
    "StrategyInfo",
    "View",
    "expand",
    "get_strategy",
    "list_strategies",
    "make_strategy_settings",
    "register_strategy",
]
