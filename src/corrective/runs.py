"""Run folders: `model.safetensors` plus a `run.json` manifest, written atomically, loaded safely."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from corrective.errors import UserError

MANIFEST = "run.json"
WEIGHTS = "model.safetensors"
FORMAT = "corrective-run/1"


def versions() -> dict[str, str]:
    import numpy

    from corrective import __version__

    return {
        "corrective": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def jsonable(obj: Any) -> Any:
    """Plain JSON values: NaN becomes null, tensors become lists, paths become strings."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(jsonable(obj), allow_nan=False, **kwargs)


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse an existing output folder unless overwriting was asked for."""
    if out.exists() and not overwrite:
        raise UserError(f"output folder {out} already exists; choose another --out or pass --overwrite")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose another path")


def write_dir(out: Path, overwrite: bool, fill: Callable[[Path], None]) -> Path:
    """Create `out` by filling a temporary sibling and renaming it into place: never half-written."""
    out = Path(out)
    check_out_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fill(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


RECIPE_KEY = "corrective.recipe"  # a weights file's metadata: the recipe (TrainConfig) the model was trained with


def save_model(model: nn.Module, path: Path, recipe: dict[str, Any] | None = None) -> None:
    """The model's state dict as safetensors; `recipe` (a `TrainConfig.to_dict()`) goes into the file's metadata,
    so that `corrective fix --weights` knows the budget every method's share is of (`saved_recipe`)."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {RECIPE_KEY: json.dumps(recipe, sort_keys=True)} if recipe else None
    save_file(state, str(path), metadata=meta)


def saved_recipe(path: Path) -> dict[str, Any] | None:
    """The recipe `save_model` wrote into a safetensors file's metadata; None for any other file or none there."""
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            text = (f.metadata() or {}).get(RECIPE_KEY)
        recipe = json.loads(text) if text else None
    except (SafetensorError, OSError, ValueError):
        return None  # a damaged file fails with its own message where the weights are loaded
    return recipe if isinstance(recipe, dict) else None


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Load safetensors weights into `model`; a clear error for a missing, truncated or mismatched file."""
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist; point at a run folder written by `corrective train`")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(
            f"checkpoint {path} is corrupt or truncated ({e}); re-create it with `corrective train`"
        ) from None
    mismatch = state_mismatch(model.state_dict(), state)
    if mismatch:
        raise UserError(
            f"checkpoint {path} does not fit the model: {mismatch}; check --model, its settings and the class count"
        )
    model.load_state_dict(state)
    return model


def state_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str:
    """The first difference between a model's tensors and a checkpoint's, in the model's order; '' if none."""
    for name, tensor in expected.items():
        if name not in given:
            return f"the model's tensor {name} {tuple(tensor.shape)} is not in the file"
        if given[name].shape != tensor.shape:
            return f"tensor {name} is {tuple(given[name].shape)} in the file but {tuple(tensor.shape)} in the model"
    extra = [n for n in given if n not in expected]
    return f"the file's tensor {extra[0]} {tuple(given[extra[0]].shape)} is not in the model" if extra else ""


def checkpoint_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape in a safetensors file, read from its header (no weights loaded); {} if unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            names = f.keys()
            return {k: tuple(f.get_slice(k).get_shape()) for k in names}
    except (SafetensorError, OSError, ValueError):
        return {}


def write_json(path: Path, obj: Any) -> None:
    path.write_text(dumps(obj, indent=2) + "\n")


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        raise UserError(f"{run_dir} is not a run folder (no {MANIFEST}); create one with `corrective train`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); re-create the run") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path} is not a {FORMAT} manifest; re-create the run with this version of corrective")
    return manifest
