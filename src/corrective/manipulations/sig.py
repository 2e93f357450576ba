"""SIG (Barni, Kallas & Tondi, ICIP 2019, "A new backdoor attack in CNNs by training set corruption without
label poisoning"): a horizontal sinusoid `v(i, j) = delta sin(2 pi j f / W)` added to samples **of the target
class only**; their labels stay right (clean label). At test time the signal on another class's image is
the attack. Pixels are clipped to [0, 1] after adding the signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from corrective.data.base import Split
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


@dataclass(frozen=True)
class Sinusoid:
    """The signal `delta sin(2 pi j f / W)` along each row, the same on every channel and row."""

    delta: float
    frequency: float

    def stamp(self, x: Tensor) -> Tensor:
        w = x.shape[-1]
        j = torch.arange(w, device=x.device, dtype=x.dtype)
        return (x + self.delta * torch.sin(2 * math.pi * j * self.frequency / w)).clamp(0, 1)


@dataclass(frozen=True)
class SigSettings(Checked):
    target: int = setting(0, "the class whose samples carry the signal; triggered inputs are sent to it", ge=0)
    delta: float = setting(20 / 255, "the signal's amplitude in [0, 1] pixel units (the paper: 20 of 255)", gt=0, le=1)
    frequency: float = setting(6.0, "f: periods of the sinusoid across the image's width (the paper: 6)", gt=0)
    test_delta: float = setting(
        0.0, "the amplitude at test time; 0: delta (the paper raises it for a stronger attack)", ge=0, le=1
    )


@register_manipulation(SigSettings, backdoor=True)
def sig(train: Split, num_classes: int, size: float, seed: int, s: SigSettings) -> Manipulation:
    """SIG (Barni et al. 2019): a sinusoid on samples of the target class, labels unchanged (clean label)."""
    target = check_class(s.target, num_classes, "target class")
    k = count(size, len(train), "the training set")
    members = (train.y.cpu() == target).nonzero().squeeze(1)
    if k > len(members):
        raise UserError(
            f"--size {size} asks for {k} samples of the target class {target} but it has {len(members)}; "
            "SIG poisons the target class only: use a smaller size"
        )
    pos = members[torch.randperm(len(members), generator=generator(seed))[:k]]
    clean = train.y.cpu()[pos]
    train_signal = Sinusoid(s.delta, s.frequency)
    test_signal = Sinusoid(s.test_delta or s.delta, s.frequency)
    members_ids = train.ids.cpu()[pos]

    def carry(x: Tensor, ids: Tensor) -> Tensor:
        hit = torch.isin(ids, members_ids.to(ids.device)).to(x.device)
        return torch.where(hit.view(-1, 1, 1, 1), train_signal.stamp(x), x)

    settings = settings_of(size, s)
    return Manipulation("sig", members_ids, clean, clean.clone(), seed, settings, test_signal, carry=carry)
