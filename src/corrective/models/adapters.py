"""Any PyTorch classifier: fresh models by resetting a copy, capacity masks, and models named by a source.

A method that needs a fresh model of the same architecture (retrain, bad_teacher, the oracle) gets one from
`ResetSpec.build`: a deep copy of the model with every submodule's `reset_parameters()` called (the standard
torch way; it draws from torch's default initialisation of each layer, which differs from a registered
model's own init and from e.g. timm's `init_weights`), or from the caller's `factory`.

`build_named` builds a model from a name: a registered model, `torchvision:NAME`, `timm:NAME` or
`package.module:function` (an importable factory; it gets num_classes/in_channels where it accepts them).
`load_state` reads weights: .safetensors or a torch state dict (.pt/.pth, read with weights_only=True).
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from corrective.errors import UserError
from corrective.models.masks import Widenable, has_reserve, masks_of, set_p_mem
from corrective.models.registry import MODELS, ModelSpec, create_model

EXTRA = {"torchvision": "torchvision", "timm": "timm"}  # source -> the pip extra that installs it


def reset_hooks(model: nn.Module) -> list[nn.Module]:
    """Submodules whose own parameters a reset re-draws (they have reset_parameters / _reset_parameters)."""
    return [
        m
        for m in model.modules()
        if callable(getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None))
    ]


def unreset(model: nn.Module) -> list[str]:
    """Names of parameters no submodule's reset re-draws (a reset copy would keep them as trained)."""
    covered = {id(p) for m in reset_hooks(model) for p in m.parameters(recurse=False)}
    return [n for n, p in model.named_parameters() if id(p) not in covered]


def reset_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` with every submodule's reset_parameters() called (draws from the global RNG)."""
    fresh = copy.deepcopy(model)
    for m in fresh.modules():
        reset = getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None)
        if callable(reset):
            reset()
    return fresh


@dataclass(frozen=True)
class ResetSpec(ModelSpec):
    """A model outside the registry: `build` gives a fresh model by `factory()` or by resetting a copy of
    `template`; `source` says how to rebuild it (`torchvision:NAME`, `timm:NAME`, `module:function` or
    the class's import path)."""

    template: nn.Module | None = field(default=None, repr=False, compare=False)
    factory: Callable[[], nn.Module] | None = field(default=None, repr=False, compare=False)

    def build(self, seed: int | None = None, device: torch.device | str | None = None) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            if self.factory is not None:
                model = self.factory()
            elif self.template is not None:
                model = reset_copy(self.template)
            else:
                raise UserError(f"model {self.name!r}: no way to build a fresh one; pass factory=")
        return model.train() if device is None else model.to(device).train()


def has_capacity(model: nn.Module) -> bool:
    """Whether REM can give the model added capacity: capacity masks, reserved or widenable."""
    return bool(masks_of(model)) and (has_reserve(model) or isinstance(model, Widenable))


def source_of(model: nn.Module) -> str:
    """Where a model's class lives, `module:Class`."""
    cls = type(model)
    return f"{cls.__module__}:{cls.__qualname__}"


def _call(factory: Callable[..., nn.Module], where: str, num_classes: int, in_channels: int) -> nn.Module:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    kwargs: dict[str, Any] = {}
    if "num_classes" in params:
        kwargs["num_classes"] = num_classes
    if "in_channels" in params:
        kwargs["in_channels"] = in_channels
    elif "in_chans" in params:  # timm's spelling
        kwargs["in_chans"] = in_channels
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise UserError(f"{where} returned a {type(model).__name__}, not an nn.Module; return the model")
    return model


def _import(module: str, source: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra = EXTRA.get(source)
        if extra is not None:
            raise UserError(
                f"--model {source}:...: needs {source}; install the extra: pip install 'corrective-unlearning[{extra}]'"
            ) from None
        raise UserError(f"model factory {source!r}: cannot import module {module!r} ({e}); check the path") from None
    except RuntimeError as e:  # e.g. torchvision built for another torch
        raise UserError(f"{module} does not import beside this torch ({e}); install matching versions") from None


def build_named(name: str, num_classes: int, in_channels: int, settings: dict[str, Any] | None = None) -> nn.Module:
    """A registered model, `torchvision:NAME`, `timm:NAME` or `package.module:function` (see the module docstring)."""
    if name in MODELS:
        return create_model(name, num_classes, in_channels, **(settings or {}))
    if ":" not in name:
        raise UserError(
            f"unknown model {name!r}; give a registered one ({', '.join(sorted(MODELS))}), torchvision:NAME, "
            "timm:NAME or package.module:function"
        )
    source, _, attr = name.partition(":")
    if source == "torchvision":
        models = _import("torchvision.models", "torchvision")
        try:
            factory = models.get_model_builder(attr)
        except ValueError:
            raise UserError(f"torchvision has no model {attr!r}; see torchvision.models.list_models()") from None
        if in_channels != 3:
            raise UserError(f"torchvision:{attr} takes 3-channel images, the data has {in_channels}")
        return _call(lambda num_classes: factory(weights=None, num_classes=num_classes), name, num_classes, 3)
    if source == "timm":
        timm = _import("timm", "timm")
        if not timm.is_model(attr):
            raise UserError(f"timm has no model {attr!r}; see timm.list_models()")
        model: nn.Module = timm.create_model(attr, pretrained=False, num_classes=num_classes, in_chans=in_channels)
        return model
    module = _import(source, source)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserError(f"model factory {name!r}: module {source!r} has no function {attr!r}")
    return _call(factory, name, num_classes, in_channels)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch .pt/.pth state dict (weights_only=True); a pickled whole
    module is refused with how to save a state dict."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    hint = "save the weights with torch.save(model.state_dict(), 'model.pt') or safetensors' save_file"
    if not path.exists():
        raise UserError(f"weights {path} do not exist; point --weights at your model's weights")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"weights {path} are corrupt or truncated ({e}); save them again") from None
    if path.suffix not in (".pt", ".pth"):
        raise UserError(f"weights {path}: give a .safetensors file or a torch state dict .pt/.pth")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise UserError(
                f"weights {path} hold a pickled object (a whole module?), not a state dict; {hint}"
            ) from None
        raise UserError(f"weights {path} cannot be read as a torch state dict ({type(e).__name__}); {hint}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint {'state_dict': ..., ...}
    if not (isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise UserError(f"weights {path} are not a state dict of tensors; {hint}")
    return state


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def changes_of(original: nn.Module, corrected: nn.Module) -> dict[str, Any]:
    """What a method changed of how the model is built, for rebuilding the corrected model from its weights:
    `widened` where it is the original's `widened()` network (REM on a full-width model), `p_mem` of its
    capacity masks where it has any. A change this cannot name is refused rather than saved unloadable."""
    changes: dict[str, Any] = {}
    if _shapes(original) != _shapes(corrected):
        if isinstance(original, Widenable) and _shapes(original.widened()) == _shapes(corrected):
            changes["widened"] = True
        else:
            raise UserError(
                f"the corrected {type(corrected).__name__} differs in shape from the model given and corrective "
                "cannot record how to rebuild it; save it with torch.save(model) yourself"
            )
    masks = masks_of(corrected)
    if masks:
        changes["p_mem"] = masks[0].p_mem
    return changes


def apply_changes(model: nn.Module, changes: dict[str, Any]) -> nn.Module:
    """The model as a method left it (`changes_of`): widened, capacity masks' p_mem set."""
    if changes.get("widened"):
        if not isinstance(model, Widenable):
            raise UserError(f"the saved model was widened but {type(model).__name__} cannot be; check --model")
        model = model.widened()
    if "p_mem" in changes:
        set_p_mem(model, float(changes["p_mem"]))
    return model
