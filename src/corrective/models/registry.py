"""The model registry: `create_model(name, num_classes, in_channels, **kwargs)`, and `ModelSpec`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from corrective.errors import UserError
from corrective.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def register_model(factory: Any = None, *, name: str | None = None) -> Any:
    """File a model factory (a function or the `nn.Module` class itself) under `name` or its own name.

    Use bare (`@register_model`) or with a name (`@register_model(name="cnn_small")` on a class).
    """

    def wrap(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        return MODELS.register(name or f.__name__, f)

    return wrap(factory) if factory is not None else wrap


def settings_of(name: str) -> list[str]:
    """The keyword settings model `name` takes besides num_classes and in_channels, from its signature."""
    params = inspect.signature(get_factory(name)).parameters
    return [p for p in params if p not in ("num_classes", "in_channels")]


def data_settings(name: str, image_size: int) -> dict[str, int]:
    """What model `name` must know of the data besides classes and channels: the image size, if it takes one."""
    return {"image_size": image_size} if "image_size" in settings_of(name) else {}


def list_models() -> list[str]:
    return MODELS.names()


def get_factory(name: str) -> Callable[..., nn.Module]:
    return MODELS.lookup(name)


def create_model(name: str, num_classes: int, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Build a registered model; None-valued kwargs are dropped so callers can pass optional settings."""
    factory = get_factory(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    known = settings_of(name)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise UserError(f"model {name!r} does not take setting {unknown[0]!r}; its settings: {', '.join(known)}")
    width = kwargs.get("width")
    if isinstance(width, (int, float)) and not width > 0:
        raise UserError(f"model {name!r}: width must be > 0, got {width!r}")
    return factory(num_classes=num_classes, in_channels=in_channels, **kwargs)


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
