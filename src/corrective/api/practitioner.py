"""The practitioner's path: your model, your data, your flagged ids, a corrected model.

    import corrective
    result = corrective.fix(model, train=train_ds, flagged=ids, held_out=test_ds)   # method="auto"
    result.model    # the corrected model: same class, same state-dict keys
    result.record   # what was done and measured

`fix` takes any `nn.Module` mapping a batch of images to logits and data in any form `data.adapters`
reads (torch Dataset, Hugging Face dataset, arrays, Split); it runs `api.correct`, so the selection rules
and the guard apply as on every other path. `corrective fix` (the CLI) loads files into the same call.
The recipe the model was trained with (`Recipe`: epochs, batch size, lr) sets every method's budget.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from corrective.api.core import check_expand, resolve_selection
from corrective.api.correct import correct
from corrective.api.flagged import check_flagged, read_flagged
from corrective.data import Split, load_dataset
from corrective.data.adapters import DEFAULT_MEMORY_BUDGET, DEFAULT_WORKERS, load_hf, to_split
from corrective.data.base import split_channel_stats
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.methods import check_needs, get_method
from corrective.metrics import accuracy
from corrective.models import MODELS, ModelSpec, device_of, resolve_device
from corrective.models.adapters import ResetSpec, apply_changes, build_named, changes_of, load_state, source_of
from corrective.models.embedding import Featured
from corrective.models.registry import data_settings
from corrective.runs import MANIFEST, WEIGHTS, save_model, saved_recipe, state_mismatch, write_dir, write_json
from corrective.training import DEFAULT_EPOCHS, TrainConfig, get_preset, steps_for


def recipe(
    n: int,
    preset: str | None,
    epochs: float | None,
    steps: int | None,
    batch_size: int | None,
    lr: float | None,
    seed: int,
    saved: dict[str, Any] | None = None,
) -> TrainConfig:
    """The recipe the model was trained with: a preset's optimiser, the budget in epochs of `n` samples (or steps).

    `saved` is the recipe written into the weights file by `corrective train`/`unlearn`/`fix` (`runs.saved_recipe`):
    without a `preset` it is the base, its steps the budget unless `epochs` or `steps` say otherwise."""
    for flag, value in (("--epochs", epochs), ("--steps", steps), ("--batch-size", batch_size), ("--lr", lr)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise UserError(f"{flag} must be a finite number > 0, got {value}")
    if epochs is not None and steps is not None:
        raise UserError("give --epochs or --steps, not both")
    base = get_preset(preset or "paper") if saved is None or preset is not None else from_saved(saved)
    batch = batch_size or base.batch_size
    if steps is None and epochs is None and preset is not None:
        steps = base.steps  # a named preset keeps its budget
    elif steps is None and epochs is None and saved is not None:
        steps = max(1, round(base.steps * base.batch_size / batch))  # as many samples seen as the model's training
    elif steps is None:
        steps = steps_for(epochs or DEFAULT_EPOCHS, n, batch)
    try:
        return replace(base, steps=steps, batch_size=batch, lr=lr or base.lr, seed=seed)
    except ValueError as e:
        raise UserError(f"training recipe: {e}") from None


def from_saved(saved: dict[str, Any]) -> TrainConfig:
    """The `TrainConfig` a weights file's metadata names (fields this version does not know are left out)."""
    known = {f.name for f in fields(TrainConfig)}
    try:
        return TrainConfig(**{k: v for k, v in saved.items() if k in known})
    except (TypeError, ValueError) as e:
        raise UserError(
            f"the recipe saved in the weights file is not one this version reads ({e}); pass --epochs N"
        ) from None


@dataclass(frozen=True)
class Recipe:
    """How the model was trained; every method's budget is a share of it. Unset: the recipe `saved` in its
    weights file where there is one (`runs.saved_recipe`), else `DEFAULT_EPOCHS` epochs of the training data at
    the paper preset's batch size and lr (a `preset` keeps its own steps)."""

    epochs: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    steps: int | None = None
    preset: str | None = None
    saved: dict[str, Any] | None = None

    @property
    def assumed(self) -> bool:
        """Nothing says how the model was trained: the paper's budget is assumed."""
        return self.epochs is None and self.steps is None and self.preset is None and self.saved is None

    def config(self, n: int, seed: int = 0) -> TrainConfig:
        """The training recipe for `n` training samples."""
        return recipe(n, self.preset, self.epochs, self.steps, self.batch_size, self.lr, seed, self.saved)


def parse_channels(text: str | None, default: tuple[float, ...], flag: str) -> tuple[float, ...]:
    """A comma list of one float per channel, or the default."""
    if text is None:
        return default
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"{flag} {text!r} must be comma-separated numbers, one per channel") from None
    return check_channels(values, default, flag)


def check_channels(values: tuple[float, ...], default: tuple[float, ...], flag: str) -> tuple[float, ...]:
    if len(values) != len(default):
        raise UserError(f"{flag} has {len(values)} values but the images have {len(default)} channels")
    if not all(math.isfinite(v) for v in values) or ("std" in flag and not all(v > 0 for v in values)):
        rule = "finite numbers > 0" if "std" in flag else "finite numbers"
        raise UserError(f"{flag} must be {rule}, one per channel, got {','.join(map(str, values))}")
    return values


def check_labels(splits: dict[str, Split], classes: int, where: str) -> None:
    """Every label of the data must be one of the model's classes 0..classes-1."""
    for name, split in splits.items():
        y = split.y
        if len(y) and int(y.max()) >= classes:
            raise UserError(
                f"{where}: label {int(y.max())} in the {name} split is outside the model's {classes} "
                f"classes (0..{classes - 1}); relabel the data or check --model and --weights"
            )


@dataclass(frozen=True)
class UserData:
    """The practitioner's files loaded: training data as given, trusted held-out data, how images become
    inputs, the model with its weights, how to rebuild it, the flagged ids."""

    train: Split
    test: Split | None
    pipeline: Pipeline
    model: nn.Module
    spec: ModelSpec
    ids: torch.Tensor
    changes: dict[str, Any] = field(default_factory=dict)  # what a method changed of the model's build
    recipe: dict[str, Any] | None = None  # the recipe saved in the weights file (`runs.saved_recipe`), if any


def load_user_data(
    dataset: str,
    root: Path | None,
    seed: int,
    image_key: str = "image",
    label_key: str = "label",
    memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
    workers: int = DEFAULT_WORKERS,
) -> tuple[Split, Split | None, Pipeline]:
    """A registered loader's train and test splits (ids: positions in the training file), or `hf`: a Hugging
    Face dataset saved with save_to_disk (its `train` and `test` splits, or one dataset to train on), streamed
    where its images would take more than `memory_budget` bytes (read ahead by `workers` processes)."""
    if dataset != "hf":
        ds = load_dataset(dataset, root, val_fraction=0.0, seed=seed)
        return ds.train, ds.test, Pipeline.of(ds)
    if root is None:
        raise UserError("--dataset hf reads a dataset saved with save_to_disk: give its folder with --root")
    train_part, test_part = load_hf(root)
    keys: dict[str, Any] = {"image_key": image_key, "label_key": label_key}
    keys |= {"memory_budget": memory_budget, "workers": workers}
    train = to_split(train_part, f"hf {root} train", **keys)
    test = None if test_part is None else to_split(test_part, f"hf {root} test", **keys)
    return train, test, data_pipeline(train)


def classes_of(state: dict[str, torch.Tensor], model: nn.Module, default: int) -> int:
    """How many classes a checkpoint's head has (the rows of the model's last tensor in it), else `default`."""
    head, tensor = list(model.state_dict().items())[-1]
    given = state.get(head)
    return (
        int(given.shape[0])
        if given is not None and given.ndim == tensor.ndim and tensor.shape[0] == default
        else default
    )


def load_into(model: nn.Module, state: dict[str, torch.Tensor], weights: Path) -> nn.Module:
    """The weights into the model; the first mismatching tensor named where they do not fit."""
    mismatch = state_mismatch(model.state_dict(), state)
    if mismatch:
        raise UserError(
            f"checkpoint {weights} does not fit the model: {mismatch}; check --model, its settings and --num-classes"
        )
    model.load_state_dict(state)
    return model


def read_rebuild(weights: Path) -> dict[str, Any] | None:
    """The rebuild record of a model `corrective fix` wrote (`fix.json` beside its weights), else None."""
    folder = weights if weights.is_dir() else weights.parent
    path = folder / "fix.json"
    if not path.is_file():
        return None
    try:
        rebuild = json.loads(path.read_text())["rebuild"]
        if not isinstance(rebuild, dict):
            raise TypeError(rebuild)
        return rebuild
    except (KeyError, TypeError, json.JSONDecodeError):
        raise UserError(f"{path} holds no rebuild record; re-create it with this version of `corrective fix`") from None


def run_folder_hint(folder: Path) -> str:
    """What to pass for a `corrective train` run folder given as --weights: its weights file and its model."""
    try:
        spec = json.loads((folder / MANIFEST).read_text())["model"]
        width = spec["kwargs"].get("width")
        model = f" --model {spec['name']}" + (f" --width {width:g}" if width is not None else "")
    except (KeyError, TypeError, ValueError):
        model = ""
    return (
        f"--weights {folder} is a run folder of `corrective train`; give its weights file: --weights "
        f"{folder / WEIGHTS}{model}"
    )


def load_user_model(
    weights: Path,
    flagged: Path | None,
    dataset: str,
    root: Path | None,
    model: str,
    width: float | None,
    mean: str | None,
    std: str | None,
    seed: int,
    device: str,
    *,
    num_classes: int | None = None,
    image_key: str = "image",
    label_key: str = "label",
    memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
    workers: int = DEFAULT_WORKERS,
) -> UserData:
    """The practitioner's files: data (train as given, test held out), model with weights, flagged ids
    (checked against the training data).

    `model` is a registered name, `torchvision:NAME`, `timm:NAME` or `package.module:function`; the class
    count is `num_classes`, else the checkpoint's head rows, else the data's. `weights` written by
    `corrective fix` (its folder, or the model.safetensors in it) are rebuilt as its `fix.json` records,
    whatever `model` says.
    """
    dev = resolve_device(device)
    train, test, pipe = load_user_data(dataset, root, seed, image_key, label_key, memory_budget, workers)
    ids = None if flagged is None else read_flagged(flagged, keep_repeats=True)
    rebuild = read_rebuild(weights)
    changes: dict[str, Any] = {}
    if rebuild is not None:
        model, width = str(rebuild["source"]), None
        num_classes, changes = int(rebuild["num_classes"]), dict(rebuild.get("changes", {}))
        pipe = replace(pipe, mean=tuple(rebuild["mean"]), std=tuple(rebuild["std"]))
        weights = weights / "model.safetensors" if weights.is_dir() else weights
    elif weights.is_dir() and (weights / MANIFEST).is_file():
        raise UserError(run_folder_hint(weights))
    state = load_state(weights)
    channels = int(train.x.shape[1])
    data_classes = max(int(train.y.max()), int(test.y.max()) if test is not None and len(test) else 0) + 1
    if model in MODELS:
        kwargs = {**({"width": width} if width is not None else {}), **data_settings(model, int(train.x.shape[-1]))}
        if rebuild is not None:
            kwargs = dict(rebuild.get("kwargs", {}))
        probe = ModelSpec(model, num_classes or data_classes, channels, kwargs)
        classes = num_classes or classes_of(state, probe.build(), data_classes)
        spec: ModelSpec = ModelSpec(model, classes, channels, kwargs)
        net = spec.build()
    else:
        if width is not None:
            raise UserError(f"--width applies to the registered models only, not to {model}")
        classes = num_classes or data_classes
        net = build_named(model, classes, channels)
        name = model
        spec = ResetSpec(name, classes, channels, {}, factory=lambda: build_named(name, classes, channels))
    net = load_into(apply_changes(net, changes), state, weights).to(dev).eval()
    if isinstance(spec, ResetSpec):
        spec = replace(spec, template=net)
    check_labels({"train": train, **({"test": test} if test is not None else {})}, classes, f"{dataset} data in {root}")
    if mean or std:
        pipe = replace(pipe, mean=parse_channels(mean, pipe.mean, "--mean"), std=parse_channels(std, pipe.std, "--std"))
    train, test = train.to(dev), None if test is None else test.to(dev)
    if ids is not None:
        check_flagged(train, ids)  # every id a training sample; repeats kept for `api.describe_flags`
    checked = torch.zeros(0, dtype=torch.long) if ids is None else ids
    return UserData(train, test, pipe, net, spec, checked, changes, saved_recipe(weights))


def data_pipeline(
    train: Split, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None
) -> Pipeline:
    """How the split's images become model inputs: uint8 images scaled to [0, 1] and normalised by `mean`/`std`
    (default: the training data's own per-channel statistics); float images as they are (then `mean`/`std`
    where given). No augmentation."""
    channels = int(train.x.shape[1])
    if train.x.dtype == torch.uint8:
        own_mean, own_std = split_channel_stats(train)
    else:
        own_mean, own_std = (0.0,) * channels, (1.0,) * channels
    return Pipeline(
        check_channels(tuple(mean), own_mean, "mean") if mean is not None else own_mean,
        check_channels(tuple(std), own_std, "std") if std is not None else own_std,
    )


@torch.no_grad()
def output_classes(model: nn.Module, split: Split, pipeline: Pipeline) -> int:
    """The model's class count, from its output on a few samples; one clear line where it is not (N, classes)."""
    n = min(len(split), 4)
    x = pipeline(split, torch.arange(n, device=split.x.device))
    was_training = model.training
    model.eval()
    try:
        out = model(x)
    except (RuntimeError, ValueError, TypeError) as e:
        size = "x".join(map(str, split.x.shape[1:]))
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"model {type(model).__name__} fails on the data's images ({size}, C x H x W): {first}; "
            "give images of the size and channels the model takes"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != n:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(
            f"model {type(model).__name__} returns {shape} for a batch of {n} images, not logits (N, classes); "
            "give a model whose forward returns one row of class scores per image"
        )
    return int(out.shape[1])


@dataclass
class FixResult:
    """The corrected model (same class and state-dict keys as the one given) and what was done and measured."""

    model: nn.Module
    record: dict[str, Any]  # the selected candidate's record, held-out accuracy before and after
    records: list[dict[str, Any]] = field(default_factory=list)  # every candidate's record
    rebuild: dict[str, Any] = field(default_factory=dict)  # how to rebuild the model from its weights (`save`)

    def save(self, out: str | Path, overwrite: bool = False, **extra: Any) -> Path:
        """`out/model.safetensors` and `out/fix.json` (the record, every candidate, how to rebuild the model,
        and `extra`); `corrective evaluate out` and `corrective fix --weights out` load it back."""

        def fill(tmp: Path) -> None:
            save_model(self.model, tmp / "model.safetensors", self.record.get("recipe"))
            write_json(
                tmp / "fix.json",
                {**extra, "record": self.record, "candidates": self.records, "rebuild": self.rebuild},
            )

        return write_dir(Path(out), overwrite, fill)


def spec_for(
    model: nn.Module, num_classes: int, in_channels: int, factory: Callable[[], nn.Module] | None, source: str | None
) -> ResetSpec:
    return ResetSpec(source or source_of(model), num_classes, in_channels, {}, template=model, factory=factory)


def fix(
    model: nn.Module,
    train: Any,
    flagged: Any,
    held_out: Any = None,
    *,
    method: str = "auto",
    recipe: Recipe | None = None,
    settings: dict[str, Any] | None = None,
    grid: bool | None = None,
    selection: str | None = None,
    max_class_drop: float | None = None,
    expand: str = "none",
    seed: int = 0,
    feature_layer: str | None = None,
    factory: Callable[[], nn.Module] | None = None,
    image_key: str = "image",
    label_key: str = "label",
    memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
    workers: int = DEFAULT_WORKERS,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    pipeline: Pipeline | None = None,
    source: str | None = None,
    spec: ModelSpec | None = None,
    changes: dict[str, Any] | None = None,
    progress: bool | None = False,
) -> FixResult:
    """Correct `model` given the training samples `flagged` (positions in `train`) found manipulated.

    `model`: any nn.Module mapping a batch of images to logits; features for expansion are read at the
    input of its classifier (`get_classifier()`, else its last nn.Linear, else the layer `feature_layer`
    names). `train` is the data the model was trained on (labels as given) and `held_out` trusted clean
    data (guarded selection compares classes on it; `auto` needs it): a torch Dataset of (image, label), a
    Hugging Face dataset (`image_key`, `label_key` columns), a pair (images, labels) or a Split; data whose
    images would take more than `memory_budget` bytes (default 4 GiB; None: no limit) is read a batch at a
    time from its source instead of held in memory (`data.adapters`), each pass read ahead by `workers`
    processes (a DataLoader's; 0: read in this process as each batch is needed; `data.streamed`). uint8
    images are normalised by `mean`/`std` (default: the training data's), float images are taken as the
    model's inputs. `recipe` is how the model was trained (method budgets are shares of it). A method that
    needs a fresh model gets a reset copy of `model`, or `factory()` where given (or `spec.build()`: a
    registered model's spec, with `changes` already applied to `model` as `models.adapters.changes_of`
    names them). `source` names how to rebuild the model (`torchvision:NAME`, `module:function`; default:
    its class); `result.save(folder)` writes it with that record. The other arguments are `api.correct`'s.
    """
    info = get_method(method)
    resolve_selection(method, selection, max_class_drop)
    check_expand(method, expand)
    if not isinstance(model, nn.Module):
        raise UserError(f"model must be a torch nn.Module, got a {type(model).__name__}")
    if not info.is_method:
        raise UserError(f"{method!r} is an oracle bound that needs every manipulated id; pick a method")
    if factory is not None and not callable(factory):
        raise UserError("factory must be a function returning a new model")
    dev = device_of(model)

    def read(data: Any, where: str) -> Split:
        keys = {"image_key": image_key, "label_key": label_key}
        return to_split(data, where, **keys, memory_budget=memory_budget, workers=workers).to(dev)

    tr = read(train, "train")
    ho = None if held_out is None else read(held_out, "held_out")
    if ho is not None and ho.x.shape[1:] != tr.x.shape[1:]:
        raise UserError(
            f"held-out images are {tuple(ho.x.shape[1:])} (C, H, W) but training images are "
            f"{tuple(tr.x.shape[1:])}; give both one shape"
        )
    if ho is not None and ho.x.dtype != tr.x.dtype:
        raise UserError("held-out and training images differ in kind (uint8 images vs model inputs); give both alike")
    pipe = pipeline or data_pipeline(tr, mean, std)
    classes = output_classes(model, tr, pipe)
    check_labels({"train": tr, **({"held_out": ho} if ho is not None else {})}, classes, "data")
    ids = torch.as_tensor(flagged, dtype=torch.long).reshape(-1) if not isinstance(flagged, torch.Tensor) else flagged
    net = model if feature_layer is None else Featured(model, feature_layer)
    build = factory
    if feature_layer is not None and factory is not None:
        build = lambda: Featured(factory(), feature_layer)  # noqa: E731
    if spec is None or feature_layer is not None:
        spec = spec_for(net, classes, int(tr.x.shape[1]), build, source or source_of(model))
    check_needs(method, net, spec)
    cfg = (recipe or Recipe()).config(len(tr), seed)
    before = accuracy(model, ho, pipe) if ho is not None else float("nan")
    result = correct(
        net,
        tr,
        ids,
        method=method,
        pipeline=pipe,
        config=cfg,
        spec=spec,
        held_out=ho,
        settings=settings,
        grid=grid,
        selection=selection,
        max_class_drop=max_class_drop,
        expand=expand,
        seed=seed,
        progress=progress,
    )
    corrected = result.model.model if isinstance(result.model, Featured) else result.model
    after = accuracy(corrected, ho, pipe) if ho is not None else float("nan")
    rebuild = {
        "source": spec.name,
        "num_classes": classes,
        "in_channels": int(tr.x.shape[1]),
        "kwargs": {} if isinstance(spec, ResetSpec) else spec.kwargs,
        "changes": {**(changes or {}), **changes_of(model, corrected)},
        "mean": list(pipe.mean),
        "std": list(pipe.std),
    }
    record = {
        **result.record,
        "model": spec.name,
        "num_classes": classes,
        "n_train": len(tr),
        "streamed": tr.streamed,  # the training images read a batch at a time (larger than memory_budget)
        "recipe": cfg.to_dict(),
        "held_out_acc_before": before,
        "held_out_acc_after": after,
    }
    return FixResult(corrected, record, result.records, rebuild)


def evaluate_fixed(folder: str | Path, device: str = "auto") -> dict[str, Any]:
    """Re-evaluate a model `corrective fix` wrote, from its folder alone: rebuilt as fix.json records, on the
    held-out data it names; the figures `fix` printed for it."""
    folder = Path(folder)
    path = folder / "fix.json"
    if not path.is_file():
        raise UserError(f"{folder} is not a folder written by `corrective fix` (no fix.json)")
    try:
        saved = json.loads(path.read_text())
        data = saved["data"]
        dataset, root = str(data["dataset"]), data["root"]
        image_key, label_key = str(data["image_key"]), str(data["label_key"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise UserError(
            f"{path} lacks the data it was fixed on; re-create it with this version of `corrective fix`"
        ) from None
    loaded = load_user_model(
        folder,
        None,
        dataset,
        None if root is None else Path(root),
        "",
        None,
        None,
        None,
        int(saved.get("record", {}).get("recipe", {}).get("seed", 0)),
        device,
        image_key=image_key,
        label_key=label_key,
    )
    test = loaded.test
    return {
        "test_acc_after": accuracy(loaded.model, test, loaded.pipeline) if test is not None else float("nan"),
        "n_test": 0 if test is None else len(test),
    }
