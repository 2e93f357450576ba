"""Random label swap: samples get a label drawn uniformly from the other classes (no test-side domain)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from corrective.data.base import Split
from corrective.manipulations.base import Manipulation, count, generator, register_manipulation, settings_of
from corrective.settings import Checked


@dataclass(frozen=True)
class SwapSettings(Checked):
    pass


@register_manipulation(SwapSettings)
def random_swap(train: Split, num_classes: int, size: float, seed: int, s: SwapSettings) -> Manipulation:
    """Random label swap: `size` samples get a label drawn uniformly from the other classes."""
    k = count(size, len(train), "the training set")
    gen = generator(seed)
    pos = torch.randperm(len(train), generator=gen)[:k]
    clean = train.y.cpu()[pos]
    shift = torch.randint(1, num_classes, (k,), generator=gen)
    return Manipulation(
        "random_swap", train.ids.cpu()[pos], clean, (clean + shift) % num_classes, seed, settings_of(size, s)
    )
