"""BadNet poisoning (Gu et al. 2017): a square patch at a corner, label set to the target class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from corrective.data.base import Dataset, Split
from corrective.errors import UserError
from corrective.manipulations.base import (
    Manipulation,
    check_class,
    count,
    generator,
    register_manipulation,
    settings_of,
)
from corrective.settings import Checked, setting

CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")


@dataclass(frozen=True)
class Trigger:
    """A square patch of one value on every channel at a corner (BadNet)."""

    size: int = 3
    corner: str = "bottom-right"
    value: float = 1.0  # in [0, 1] image units: 1.0 is the maximal pixel value

    def __post_init__(self) -> None:
        if self.corner not in CORNERS:
            raise UserError(f"trigger corner {self.corner!r} is not one of {', '.join(CORNERS)}")
        if self.size < 1:
            raise UserError(f"trigger size must be >= 1 pixel, got {self.size}")

    def stamp(self, x: Tensor) -> Tensor:
        """A copy of float images in [0, 1] with the patch set."""
        x = x.clone()
        s = self.size
        rows = slice(-s, None) if self.corner.startswith("bottom") else slice(0, s)
        cols = slice(-s, None) if self.corner.endswith("right") else slice(0, s)
        x[..., rows, cols] = self.value
        return x

    def stamp_where(self, mask: Tensor) -> Any:
        """A split `stamp`: the trigger on the positions where `mask` is True."""

        def stamp(x: Tensor, pos: Tensor) -> Tensor:
            hit = mask.to(pos.device)[pos]
            return torch.where(hit.view(-1, 1, 1, 1), self.stamp(x), x)

        return stamp


@dataclass(frozen=True)
class PoisonSettings(Checked):
    target: int = setting(0, "the class every poisoned sample is labelled and every triggered input is sent to", ge=0)
    trigger_size: int = setting(3, "side of the square patch in pixels (default 2 on images of 8 px)", ge=1)
    corner: str = setting("bottom-right", "where the patch sits", choices=CORNERS)
    value: float = setting(1.0, "the patch's pixel value on every channel (1: the maximal value)", ge=0, le=1)


def defaults(dataset: Dataset) -> dict[str, Any]:
    return {"trigger_size": 2 if dataset.image_size <= 8 else 3}


@register_manipulation(PoisonSettings, backdoor=True, defaults=defaults)
def poison(train: Split, num_classes: int, size: float, seed: int, s: PoisonSettings) -> Manipulation:
    """BadNet: samples of any class get a corner patch and the target label (dirty label)."""
    target = check_class(s.target, num_classes, "target class")
    if s.trigger_size > min(train.x.shape[-2:]):
        raise UserError(f"trigger size {s.trigger_size} exceeds the {tuple(train.x.shape[-2:])} images")
    k = count(size, len(train), "the training set")
    pos = torch.randperm(len(train), generator=generator(seed))[:k].to(train.ids.device)
    clean = train.y[pos].cpu()
    return Manipulation(
        "poison",
        train.ids[pos].cpu(),
        clean,
        torch.full_like(clean, target),
        seed,
        settings_of(size, s),
        trigger=Trigger(s.trigger_size, s.corner, s.value),
    )
