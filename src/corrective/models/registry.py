"""The model registry: `create_model(name, num_classes, in_channels, **kwargs)`, and `ModelSpec`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from corrective.errors import UserError

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """File a model factory under its function name."""
    MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(MODELS)


def create_model(name: str, num_classes: int, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Build a registered model; None-valued kwargs are dropped so callers can pass optional settings."""
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return MODELS[name](num_classes=num_classes, in_channels=in_channels, **kwargs)
    except TypeError as e:
        raise UserError(f"model {name!r} does not take these settings: {e}") from None


@dataclass(frozen=True)
class ModelSpec:
    """What builds the model's architecture; stored in manifests next to the weights."""

    name: str
    num_classes: int
    in_channels: int
    kwargs: dict[str, Any]

    def build(self, seed: int | None = None, device: torch.device | str | None = None) -> nn.Module:
        """A new model; with `seed`, its initial weights depend on `seed` only (the global RNG is left as it was)."""
        if seed is None:
            model = create_model(self.name, self.num_classes, self.in_channels, **self.kwargs)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = create_model(self.name, self.num_classes, self.in_channels, **self.kwargs)
        return model if device is None else model.to(device)
