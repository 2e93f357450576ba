"""RewoD: retrain without the identified deletion set (Goel et al., Corrective Machine Unlearning, App. A.2 (1)).

Algorithm A from scratch on `D_r = S_tr \\ S_f`, with the original recipe and step budget. The fresh
model is initialised from the run's seed (the same initialisation as `M_o`), so at a given seed the
only difference from the original training is the data left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from corrective.methods.base import UnlearnTask, register_method
from corrective.settings import Checked, setting


@dataclass(frozen=True)
class RetrainSettings(Checked):
    budget: float = setting(1.0, "share of the original training steps (the paper: all of them)", gt=0, le=10)

    RENAMED: ClassVar[dict[str, str]] = {"fraction": "budget"}  # every method's budget is `budget`


@register_method(RetrainSettings, needs="fresh")
def retrain(task: UnlearnTask, settings: RetrainSettings) -> nn.Module:
    """RewoD: algorithm A from scratch on S_tr minus S_f, the original number of steps."""
    return task.train_on("retrain", task.fresh_model(), task.retain(), task.config.scaled(settings.budget))
