"""`corrective fix`: the practitioner's path — your model, your data, your flagged ids, a corrected model."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import torch
import typer
from torch import nn

from corrective import api
from corrective.cli.app import app
from corrective.cli.common import (
    DeviceOpt,
    ExpandOpt,
    JsonOpt,
    MaxDropOpt,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    SeedOpt,
    SelectionOpt,
    names,
    parse_sets,
    print_metrics,
)
from corrective.data import DATASETS, Dataset, load_dataset
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.methods import METHODS, candidate_overrides, make_settings
from corrective.metrics import accuracy
from corrective.models import MODELS, ModelSpec, resolve_device
from corrective.models.registry import data_settings
from corrective.runs import check_out_dir, checkpoint_shapes, load_weights, save_model, write_dir, write_json
from corrective.training import PRESETS, TrainConfig, get_preset

# Options of the practitioner's path, shared by `fix` and `expand`
WeightsOpt = Annotated[Path, typer.Option(help="Your trained model's weights (.safetensors).")]
FlaggedOpt = Annotated[Path, typer.Option(help="File of flagged training sample ids (lines, JSON list or .npy).")]
DatasetOpt = Annotated[str, typer.Option(help=f"Loader of your data: {names(DATASETS)}.")]
RootOpt = Annotated[Path | None, typer.Option(help="Folder with your data files.")]
ModelOpt = Annotated[str, typer.Option(help=f"Architecture of your model: {names(MODELS)}.")]
WidthOpt = Annotated[float | None, typer.Option(help="Channel width multiplier of the model.")]
MeanOpt = Annotated[str | None, typer.Option(help="Per-channel mean your model expects, e.g. 0.49,0.48,0.45.")]
StdOpt = Annotated[str | None, typer.Option(help="Per-channel std your model expects.")]


def parse_channels(text: str | None, default: tuple[float, ...], flag: str) -> tuple[float, ...]:
    """A comma list of one float per channel, or the default."""
    if text is None:
        return default
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"{flag} {text!r} must be comma-separated numbers, one per channel") from None
    if len(values) != len(default):
        raise UserError(f"{flag} has {len(values)} values but the images have {len(default)} channels")
    if not all(math.isfinite(v) for v in values) or (flag == "--std" and not all(v > 0 for v in values)):
        rule = "finite numbers > 0" if flag == "--std" else "finite numbers"
        raise UserError(f"{flag} must be {rule}, one per channel, got {text}")
    return values


DEFAULT_EPOCHS = 40.0  # the paper's recipe: 4000 steps of 512 over CIFAR-10's 50,000 training images, ~41 epochs


def recipe(
    n: int,
    preset: str | None,
    epochs: float | None,
    steps: int | None,
    batch_size: int | None,
    lr: float | None,
    seed: int,
) -> TrainConfig:
    """The recipe the model was trained with: a preset's optimiser, the budget in epochs of `n` samples (or steps)."""
    for flag, value in (("--epochs", epochs), ("--steps", steps), ("--batch-size", batch_size), ("--lr", lr)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise UserError(f"{flag} must be a finite number > 0, got {value}")
    if epochs is not None and steps is not None:
        raise UserError("give --epochs or --steps, not both")
    base = get_preset(preset or "paper")
    batch = batch_size or base.batch_size
    if steps is None and epochs is None and preset is not None:
        steps = base.steps  # a named preset keeps its budget
    elif steps is None:
        steps = max(1, round((epochs or DEFAULT_EPOCHS) * n / batch))
    try:
        return replace(base, steps=steps, batch_size=batch, lr=lr or base.lr, seed=seed)
    except ValueError as e:
        raise UserError(f"training recipe: {e}") from None


def model_classes(spec: ModelSpec, weights: Path) -> int:
    """How many classes the checkpoint's model has (its head's rows), else the data's count."""
    head, tensor = list(spec.build().state_dict().items())[-1]
    shape = checkpoint_shapes(weights).get(head)
    return shape[0] if shape and tensor.shape[0] == spec.num_classes else spec.num_classes


def check_labels(ds: Dataset, classes: int, where: str) -> None:
    """Every label of the data must be one of the model's classes 0..classes-1."""
    for split in ("train", "test"):
        y = getattr(ds, split).y
        if len(y) and int(y.max()) >= classes:
            raise UserError(
                f"{where}: label {int(y.max())} in the {split} split is outside the model's {classes} "
                f"classes (0..{classes - 1}); relabel the data or check --model and --weights"
            )


def load_user_model(
    weights: Path,
    flagged: Path,
    dataset: str,
    root: Path | None,
    model: str,
    width: float | None,
    mean: str | None,
    std: str | None,
    seed: int,
    device: str,
) -> tuple[Dataset, nn.Module, ModelSpec, Pipeline, torch.Tensor]:
    """The practitioner's data (train split as given, test split held out), model, input pipeline, flagged ids
    (checked against the training data); the model's class count is the checkpoint's."""
    dev = resolve_device(device)
    ds = load_dataset(dataset, root, val_fraction=0.0, seed=seed).to(dev)
    ids = api.read_flagged(flagged)
    kwargs = {**({"width": width} if width is not None else {}), **data_settings(model, ds.image_size)}
    classes = model_classes(ModelSpec(model, ds.num_classes, ds.in_channels, kwargs), weights)
    check_labels(ds, classes, f"{dataset} data in {root}")
    spec = ModelSpec(model, classes, ds.in_channels, kwargs)
    net = load_weights(spec.build(), weights).to(dev).eval()
    pipe = Pipeline.of(ds)
    if mean or std:
        pipe = replace(pipe, mean=parse_channels(mean, pipe.mean, "--mean"), std=parse_channels(std, pipe.std, "--std"))
    return ds, net, spec, pipe, api.check_flagged(ds.train, ids)


@app.command()
def fix(
    weights: WeightsOpt,
    flagged: FlaggedOpt,
    out: OutOpt,
    dataset: DatasetOpt = "npz",
    root: RootOpt = None,
    model: ModelOpt = "resnet9",
    width: WidthOpt = None,
    method: Annotated[
        str,
        typer.Option(
            help="Unlearning method: auto (expand the flagged set, unlearn it, guarded "
            f"selection) or {names(n for n, m in METHODS.items() if m.is_method)} (see "
            "`corrective methods`)."
        ),
    ] = "auto",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Method setting key=value (repeatable).")] = None,
    grid: Annotated[bool, typer.Option(help="Search the method's grid; select on your test split.")] = False,
    selection: SelectionOpt = None,
    max_class_drop: MaxDropOpt = None,
    expand: ExpandOpt = "none",
    epochs: Annotated[
        float | None,
        typer.Option(
            help=f"Epochs your model was trained for (method budgets are shares "
            f"of it; default {DEFAULT_EPOCHS:g}, the paper's)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Batch size it was trained with (default: the preset's).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate it was trained with (default: the preset's).")
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help=f"A named recipe instead: {names(PRESETS)} (its steps, unless --epochs or --steps)."),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Optimiser steps it was trained for (instead of --epochs).")] = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Correct your trained model given the training samples you found manipulated.

    Your data's training split is the model's training data (labels as given) and its sample ids are
    positions in the training file; its test split is trusted held-out data (for --grid selection).

    Example: corrective fix --root mydata --weights model.safetensors --flagged bad_ids.txt --method ssd --out fixed
    """
    api.resolve_selection(method, selection, max_class_drop)  # an unknown method or rule: fail before loading
    api.check_expand(method, expand)
    check_out_dir(out, overwrite)
    settings = parse_sets(set_)
    # an unknown setting fails here, before any work
    candidates = len([make_settings(method, o) for o in candidate_overrides(method, grid, settings)])
    ds, net, spec, pipe, ids = load_user_model(weights, flagged, dataset, root, model, width, mean, std, seed, device)
    cfg = recipe(len(ds.train), preset, epochs, steps, batch_size, lr, seed)
    if not (quiet or as_json):  # what the run will cost, before it starts
        typer.echo(
            f"fix: your model's recipe: {cfg.steps} steps of batch {cfg.batch_size} "
            f"({cfg.steps * cfg.batch_size / len(ds.train):.3g} epochs of {len(ds.train)} samples) at lr "
            f"{cfg.lr:g}; {method} spends a share of it on each of {candidates} setting(s)",
            err=True,
        )
    result = api.correct(
        net,
        ds.train,
        ids,
        method=method,
        pipeline=pipe,
        config=cfg,
        spec=spec,
        held_out=ds.test,
        settings=settings,
        grid=grid,
        selection=selection,
        max_class_drop=max_class_drop,
        expand=expand,
        seed=seed,
        progress=False if quiet or as_json else None,
    )
    summary = {
        "method": method,
        "settings": result.record["settings"],
        "n_flagged": len(ids),
        "expand": result.record["expand"],
        "n_expanded": result.record["n_expanded"],
        **{k: result.record[k] for k in ("n_set_aside", "set_aside_ids") if result.record.get("n_set_aside")},
        "test_acc_before": accuracy(net, ds.test, pipe),
        "test_acc_after": accuracy(result.model, ds.test, pipe),
        "flagged_changed": result.record["forget_changed"],
        "selection": result.record["selection"],
        **({"guard_fallback": result.record["guard_fallback"]} if "guard_fallback" in result.record else {}),
        "unlearn_seconds": result.record["unlearn_seconds"],
    }

    def fill(tmp: Path) -> None:
        save_model(result.model, tmp / "model.safetensors")
        write_json(
            tmp / "fix.json",
            {
                "summary": summary,
                "candidates": result.records,
                "weights": str(weights),
                "flagged": str(flagged),
                "dataset": dataset,
                "root": str(root),
                "model": model,
            },
        )

    path = write_dir(out, overwrite, fill)
    print_metrics(summary, as_json, {"out": str(path)})
