"""Where a model lives: the device a user asks for, and the device a model's parameters are on."""

from __future__ import annotations

import torch
from torch import nn

from corrective.errors import UserError


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when available, else the CPU; an unavailable device is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for but CUDA is not available here; use --device cpu")
    return dev


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
