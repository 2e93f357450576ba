"""No manipulation: the clean baseline (no sample manipulated, no test-side domain)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from corrective.data.base import Split
from corrective.manipulations.base import Manipulation, register_manipulation
from corrective.settings import Checked


@dataclass(frozen=True)
class NoSettings(Checked):
    pass


@register_manipulation(NoSettings, takes_size=False)
def none(train: Split, num_classes: int, size: float, seed: int, s: Any) -> Manipulation:
    """No manipulation: the clean training data."""
    empty = torch.zeros(0, dtype=torch.long)
    return Manipulation("none", empty, empty, empty, seed)
