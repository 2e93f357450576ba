"""Capacity masks (REM, seed 002; example-tied dropout, Maini et al. 2023).

A masked layer's output channels are split in two groups: the first `n_fixed = round(p_fixed * C)`
channels (theta_o1, "generalisation") are always on; the rest (theta_o2, the added or reserved group)
are on per example with probability `p_mem`. An example's pattern is a pure function of its stable
sample id and the layer's index: a counter-based integer hash, vectorised over the batch, the same
on any device and never touching the global RNG (so it does not depend on the batch it sits in). A
masked layer keeps the patterns of the ids it has seen (`MaskTable`), so each is hashed once.

Modes of a forward pass (`model(x, ids=None, mode=None)`):
- "drop" (the default, inference): the added group is zeroed, no rescaling.
- "masked": the added group is multiplied by each example's 0/1 pattern; needs `ids`.
- "full": every channel on.
A model without an added group (`p_fixed = 1`, the default) computes the same thing in every mode.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

MODES = ("drop", "masked", "full")

# Training types of the original model: model settings (ModelSpec kwargs) on top of the architecture.
TRAINING_TYPES: dict[str, dict[str, float]] = {
    "standard": {},
    "capacity": {"p_fixed": 0.5, "p_mem": 0.0},  # half the channels trained, the rest reserved
    "etd": {"p_fixed": 0.5, "p_mem": 0.2},  # example-tied dropout (a training-time baseline)
}

_M32 = 0xFFFFFFFF
_MUL = 0x45D9F3B  # < 2**27, so (x < 2**32) * _MUL stays inside int64


def _mix(x: Tensor) -> Tensor:
    """A 32-bit integer finaliser on int64 tensors holding values in [0, 2**32)."""
    x = ((x >> 16) ^ x) * _MUL & _M32
    x = ((x >> 16) ^ x) * _MUL & _M32
    return (x >> 16) ^ x


def example_masks(ids: Tensor, layer: int, n: int, p_mem: float) -> Tensor:
    """Bool (len(ids), n): channel j of example `id` in layer `layer` is on iff hash(id, layer, j) < p_mem * 2**32."""
    ids = ids.long()
    key = _mix(_mix((ids ^ (ids >> 32)) & _M32) ^ _mix(torch.tensor(layer + 0x3C6EF372, device=ids.device)))
    chan = _mix(torch.arange(n, device=ids.device) + 0x2545F491)
    h = _mix(key[:, None] ^ chan[None, :])
    return h < round(p_mem * 2**32)


class MaskTable:
    """`example_masks` of one layer, kept for every id asked so far (sorted), so that each id's pattern is hashed
    once: a training loop asks for the same ids every epoch. Gives exactly what `example_masks` gives."""

    def __init__(self, key: tuple[int, float, torch.device], layer: int) -> None:
        self.key, self.layer = key, layer
        n, _, device = key
        self.ids = torch.zeros(0, dtype=torch.long, device=device)
        self.rows = torch.zeros(0, n, dtype=torch.bool, device=device)

    def masks(self, ids: Tensor) -> Tensor:
        ids = ids.long()
        pos = torch.searchsorted(self.ids, ids)
        known = pos < len(self.ids)
        known[known.clone()] = self.ids[pos[known]] == ids[known]
        if not bool(known.all()):
            n, p_mem, _ = self.key
            new = ids[~known].unique()
            self.ids, order = torch.cat([self.ids, new]).sort()
            self.rows = torch.cat([self.rows, example_masks(new, self.layer, n, p_mem)])[order]
            pos = torch.searchsorted(self.ids, ids)
        return self.rows[pos]


@dataclass(frozen=True)
class MaskContext:
    """How the masks of one forward pass act: a mode and, for "masked", the examples' ids."""

    mode: str = "drop"
    ids: Tensor | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mask mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "masked" and self.ids is None:
            raise ValueError("mode 'masked' needs the batch's sample ids: call model(x, ids=batch.ids, mode='masked')")


def context(mode: str | None, ids: Tensor | None) -> MaskContext:
    return MaskContext(mode or "drop", ids)


class CapacityMask(nn.Module):
    """Masks the channels (dim 1, or the last dim of 3-D token tensors) after one layer. No parameters."""

    def __init__(self, channels: int, p_fixed: float, p_mem: float, layer: int) -> None:
        super().__init__()
        if not 0.0 < p_fixed <= 1.0 or not 0.0 <= p_mem <= 1.0:
            raise ValueError(f"need 0 < p_fixed <= 1 and 0 <= p_mem <= 1, got p_fixed={p_fixed}, p_mem={p_mem}")
        self.channels = channels
        self.n_fixed = max(1, round(p_fixed * channels))
        self.p_mem = p_mem
        self.layer = layer
        self.table: MaskTable | None = None  # the patterns of the ids seen so far (not state: a pure function)

    @property
    def n_added(self) -> int:
        return self.channels - self.n_fixed

    def keep(self, ctx: MaskContext, batch: int, device: torch.device) -> Tensor:
        """Bool (batch or 1, channels): which channels pass."""
        fixed = torch.ones(1, self.n_fixed, dtype=torch.bool, device=device)
        if ctx.mode == "drop":
            return torch.cat([fixed, torch.zeros(1, self.n_added, dtype=torch.bool, device=device)], 1)
        assert ctx.ids is not None
        key = (self.n_added, self.p_mem, device)
        if self.table is None or self.table.key != key:
            self.table = MaskTable(key, self.layer)
        return torch.cat([fixed.expand(batch, -1), self.table.masks(ctx.ids.to(device))], 1)

    def forward(self, x: Tensor, ctx: MaskContext) -> Tensor:
        if self.n_added == 0 or ctx.mode == "full":
            return x
        if ctx.mode == "drop":  # zero the added group, nothing rescaled
            out = x.clone()
            out[(slice(None),) * (2 if x.ndim == 3 else 1) + (slice(self.n_fixed, None),)] = 0
            return out
        keep = self.keep(ctx, x.shape[0], x.device).to(x.dtype)
        b, c = keep.shape
        shape = (b, 1, c) if x.ndim == 3 else (b, c) + (1,) * (x.ndim - 2)
        return x * keep.view(shape)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, n_fixed={self.n_fixed}, p_mem={self.p_mem}, layer={self.layer}"


@runtime_checkable
class Widenable(Protocol):
    """A model REM can give added capacity to (`expand`): every masked layer's width doubled."""

    def widened(self) -> nn.Module:
        """The same architecture with each masked layer twice as wide, the old channels as the fixed group."""
        ...

    def zero_cross(self) -> list[str]:
        """Weights from new channels that reach old ones without passing a mask (zeroed by `expand`)."""
        ...


def masks_of(model: nn.Module) -> list[CapacityMask]:
    return [m for m in model.modules() if isinstance(m, CapacityMask)]


def has_reserve(model: nn.Module) -> bool:
    """True when some masked layer has an added (reserved) group."""
    return any(m.n_added > 0 for m in masks_of(model))


def set_p_mem(model: nn.Module, p_mem: float) -> nn.Module:
    """Switch the added groups on with probability `p_mem` per example (in place)."""
    if not 0.0 <= p_mem <= 1.0:
        raise ValueError(f"p_mem must be in [0, 1], got {p_mem}")
    for m in masks_of(model):
        m.p_mem = p_mem
    return model


@torch.no_grad()
def expand(model: nn.Module, p_mem: float = 0.2) -> nn.Module:
    """A copy of a full-width model with new, randomly initialised channels appended as the added group.

    The model's `widened()` gives the architecture with the masked layers' width doubled (the old
    channels as the fixed group); every old weight, bias and BN statistic is copied into the leading
    slice. Weights named by `model.zero_cross()` (from new channels that reach old ones without passing
    a mask, e.g. inside residual branches) are zeroed, so in drop mode the result computes what `model`
    computed. New channels are drawn from the global RNG (fork it to seed them).
    """
    if has_reserve(model):
        raise ValueError("model already has a reserved group; use it (set_p_mem) instead of expanding")
    if not isinstance(model, Widenable):
        raise ValueError(f"{type(model).__name__} cannot be widened: it needs widened() and zero_cross() (Widenable)")
    wide = model.widened()
    wide = wide.to(next(model.parameters()).device)
    new_state = wide.state_dict()
    for name, old in model.state_dict().items():
        new = new_state[name]
        if old.ndim == 0:
            new.copy_(old)
            continue
        new[tuple(slice(0, s) for s in old.shape)] = old
    for name in model.zero_cross():
        old, new = model.state_dict()[name], new_state[name]
        new[: old.shape[0], old.shape[1] :] = 0
    wide.load_state_dict(new_state)
    set_p_mem(wide, p_mem)
    return wide.train(model.training)


def with_capacity(model: nn.Module, p_mem: float = 0.2) -> nn.Module:
    """REM's step 1: the model's reserved group switched on (a copy), or a full-width model expanded."""
    if has_reserve(model):
        return set_p_mem(copy.deepcopy(model), p_mem)
    return expand(model, p_mem)
