"""The "None" row: the original model, unchanged."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from corrective.methods.base import UnlearnTask, register_method


@dataclass(frozen=True)
class NoneSettings:
    pass


@register_method(NoneSettings, name="none")
def none(task: UnlearnTask, settings: NoneSettings) -> nn.Module:
    """The original model M_o, unchanged (a copy)."""
    return task.copy_model()
