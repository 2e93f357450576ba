"""WaNet (Nguyen & Tran, ICLR 2021, "WaNet - Imperceptible warping-based backdoor attack"): a fixed, smooth
warping field is the trigger; warped samples get the target label (dirty label).

The field: a k x k grid of uniform random 2-D offsets in [-1, 1], divided by its mean absolute value,
upsampled bicubically to the image, scaled by `strength / H` (grid_sample units, where the image spans
[-1, 1]) and added to the identity sampling grid, clipped to the image. The paper's "noise mode": a further
`noise_share` x |S_m| samples (never in S_m) are warped by the field plus per-pixel uniform noise in
[-1, 1] / H and keep their true labels, so the model learns the exact warp and not warping in general.
The attacker here controls the data only (not the training loop, as the paper's attacker does): each
noise-mode sample has its own fixed random field (seeded by the manipulation's seed and its id), applied
after augmentation like every trigger. The noise-mode samples are not in S_m: their labels are true and
they carry no trigger; the oracle keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from corrective import seeds
from corrective.data.base import Split
from corrective.manipulations.base import (
    Manipulation,
    check_class,
    count,
    generator,
    register_manipulation,
    settings_of,
)
from corrective.settings import Checked, setting


def identity_grid(h: int, w: int) -> Tensor:
    """grid_sample's identity grid (1, H, W, 2): x then y, both in [-1, 1]."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack((xs, ys), dim=-1)[None]


def warp(x: Tensor, grid: Tensor) -> Tensor:
    """Images (N, C, H, W) resampled at `grid` (1 or N, H, W, 2)."""
    grid = grid.to(x.device, x.dtype).expand(len(x), -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


@dataclass(frozen=True)
class Warp:
    """The backdoor's sampling grid (1, H, W, 2)."""

    grid: Tensor

    def stamp(self, x: Tensor) -> Tensor:
        return warp(x, self.grid)


def field(h: int, w: int, k: int, strength: float, seed: int) -> Tensor:
    """The backdoor's sampling grid: identity plus the upsampled k x k field, clipped to the image."""
    offsets = torch.rand((1, 2, k, k), generator=generator(seed, seeds.salt("wanet", "field"))) * 2 - 1
    offsets = offsets / offsets.abs().mean()
    smooth = F.interpolate(offsets, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    return (identity_grid(h, w) + strength * smooth / h).clamp(-1, 1)


@dataclass(frozen=True)
class WanetSettings(Checked):
    target: int = setting(0, "the class every warped sample is labelled and every warped input is sent to", ge=0)
    grid: int = setting(4, "k: side of the control grid of random offsets (the paper: 4)", ge=2)
    strength: float = setting(0.5, "s: the warp's strength, offsets of about s/2 pixels (the paper: 0.5)", gt=0)
    noise_share: float = setting(
        2.0, "noise-mode samples per poisoned sample, true labels (the paper: rho_n / rho_a = 0.2 / 0.1 = 2)", ge=0
    )


@register_manipulation(WanetSettings, backdoor=True)
def wanet(train: Split, num_classes: int, size: float, seed: int, s: WanetSettings) -> Manipulation:
    """WaNet (Nguyen & Tran 2021): a fixed smooth warp, target label (dirty label), plus noise-mode samples."""
    target = check_class(s.target, num_classes, "target class")
    k = count(size, len(train), "the training set")
    n_noise = round(s.noise_share * k)
    count(k + n_noise, len(train), "the training set") if n_noise else None  # both must fit
    order = torch.randperm(len(train), generator=generator(seed))
    pos, noise_pos = order[:k].to(train.ids.device), order[k : k + n_noise].to(train.ids.device)
    h, w = int(train.x.shape[-2]), int(train.x.shape[-1])
    trigger = Warp(field(h, w, s.grid, s.strength, seed))
    members, noise_ids = train.ids[pos].cpu(), train.ids[noise_pos].cpu()
    base = seeds.derive(seed, seeds.salt("wanet", "noise"))

    def carry(x: Tensor, ids: Tensor) -> Tensor:
        ids = ids.cpu()
        out = x.clone()
        hit = torch.isin(ids, members).to(x.device)
        if bool(hit.any()):
            out[hit] = trigger.stamp(x[hit])
        noisy = torch.isin(ids, noise_ids)
        if bool(noisy.any()):
            fields = [torch.rand((h, w, 2), generator=torch.Generator().manual_seed(base + int(i))) for i in ids[noisy]]
            grids = (trigger.grid + (torch.stack(fields) * 2 - 1) / h).clamp(-1, 1)
            out[noisy.to(x.device)] = warp(x[noisy.to(x.device)], grids)
        return out

    clean = train.y[pos].cpu()
    given = torch.full_like(clean, target)
    return Manipulation("wanet", members, clean, given, seed, settings_of(size, s), trigger, carry=carry)
