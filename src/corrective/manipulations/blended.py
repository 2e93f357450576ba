"""Blended backdoor (Chen et al. 2017, "Targeted backdoor attacks on deep learning systems using data
poisoning"): a fixed key pattern alpha-blended over the whole image, label set to the target (dirty label).

The pattern is seeded uniform random noise (the paper's random-pattern key) or an image the user gives,
resized to the data's images and converted to their channels; `x' = (1 - blend) x + blend k` at training
and test time alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from corrective import seeds
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
class Blend:
    """A key pattern (C, H, W) in [0, 1] blended over images with weight `blend`."""

    pattern: Tensor
    blend: float

    def stamp(self, x: Tensor) -> Tensor:
        return (1 - self.blend) * x + self.blend * self.pattern.to(x.device, x.dtype)


@dataclass(frozen=True)
class BlendedSettings(Checked):
    target: int = setting(0, "the class every poisoned sample is labelled and every triggered input is sent to", ge=0)
    blend: float = setting(
        0.2, "the pattern's weight alpha in x' = (1 - alpha) x + alpha k (the paper: 0.2)", gt=0, lt=1
    )
    pattern: str = setting("noise", "the key k: 'noise' (seeded uniform random pixels) or the path of an image file")


def key_pattern(name: str, shape: tuple[int, int, int], seed: int) -> Tensor:
    """The key: seeded uniform noise, or the image at path `name` resized to `shape` (C, H, W) in [0, 1]."""
    c, h, w = shape
    if name == "noise":
        return torch.rand((c, h, w), generator=generator(seed, seeds.salt("blended", "pattern")))
    path = Path(name)
    if not path.is_file():
        raise UserError(f"blended pattern {name!r} is neither 'noise' nor an image file; give a path to a PNG or JPEG")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is in the `data` extra
        raise UserError("a blended pattern image needs pillow: pip install 'corrective-unlearning[data]'") from None
    try:
        with Image.open(path) as opened:
            img = opened.convert("L" if c == 1 else "RGB")
            data = torch.from_numpy(np.array(img, dtype=np.float32))
    except OSError as e:
        raise UserError(f"blended pattern {name!r} is not a readable image: {e}") from None
    image = data.reshape(data.shape[0], data.shape[1], -1).permute(2, 0, 1) / 255.0
    return F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False)[0].clamp(0, 1)


@register_manipulation(BlendedSettings, backdoor=True)
def blended(train: Split, num_classes: int, size: float, seed: int, s: BlendedSettings) -> Manipulation:
    """Blended (Chen et al. 2017): a key pattern blended over the whole image, target label (dirty label)."""
    target = check_class(s.target, num_classes, "target class")
    k = count(size, len(train), "the training set")
    pos = torch.randperm(len(train), generator=generator(seed))[:k].to(train.ids.device)
    clean = train.y[pos].cpu()
    shape = (int(train.x.shape[1]), int(train.x.shape[2]), int(train.x.shape[3]))
    trigger = Blend(key_pattern(s.pattern, shape, seed), s.blend)
    ids = train.ids[pos].cpu()
    return Manipulation("blended", ids, clean, torch.full_like(clean, target), seed, settings_of(size, s), trigger)
