"""The oracle bound U*_corr = A(S_tr \\ S_m) (Goel et al., §2.3): retrain knowing every manipulated sample.

Not a method (`is_method=False`): it is handed `S_m` through `task.known_manipulated`, which methods
never get. It draws the fresh model and the batches exactly as `retrain` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from corrective.errors import UserError
from corrective.methods.base import UnlearnTask, register_method
from corrective.settings import Checked


@dataclass(frozen=True)
class OracleSettings(Checked):
    """None: the oracle is algorithm A on S_tr minus S_m, as the original was trained."""


@register_method(OracleSettings, is_method=False, needs="fresh")
def oracle(task: UnlearnTask, settings: OracleSettings) -> nn.Module:
    """Oracle bound: algorithm A from scratch on S_tr minus all of S_m (needs S_m)."""
    if task.known_manipulated is None:
        raise UserError("the oracle needs the manipulated ids S_m (task.known_manipulated); methods never get them")
    return task.train_on("oracle", task.fresh_model(), task.train.without(task.known_manipulated), task.config)
