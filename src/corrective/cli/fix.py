"""`corrective fix`: the practitioner's path — your model, your data, your flagged ids, a corrected model."""

from __future__ import annotations

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
    parse_sets,
    print_metrics,
)
from corrective.data import Dataset, load_dataset
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.metrics import accuracy
from corrective.runs import ModelSpec, check_out_dir, load_weights, save_model, write_dir, write_json
from corrective.training import get_preset

# Options of the practitioner's path, shared by `fix` and `expand`
WeightsOpt = Annotated[Path, typer.Option(help="Your trained model's weights (.safetensors).")]
FlaggedOpt = Annotated[Path, typer.Option(help="File of flagged training sample ids (lines, JSON list or .npy).")]
DatasetOpt = Annotated[str, typer.Option(help="Loader of your data: npz, imagefolder or a named dataset.")]
RootOpt = Annotated[Path | None, typer.Option(help="Folder with your data files.")]
ModelOpt = Annotated[str, typer.Option(help="Architecture of your model (a registered name).")]
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
    return values


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
    """The practitioner's data (train split as given, test split held out), model, input pipeline, flagged ids."""
    dev = api.resolve_device(device)
    ds = load_dataset(dataset, root, val_fraction=0.0, seed=seed).to(dev)
    ids = api.read_flagged(flagged)
    spec = ModelSpec(model, ds.num_classes, ds.in_channels, {"width": width} if width is not None else {})
    net = load_weights(spec.build(), weights).to(dev).eval()
    pipe = Pipeline.of(ds)
    if mean or std:
        pipe = replace(pipe, mean=parse_channels(mean, pipe.mean, "--mean"), std=parse_channels(std, pipe.std, "--std"))
    return ds, net, spec, pipe, ids


@app.command()
def fix(
    weights: WeightsOpt,
    flagged: FlaggedOpt,
    out: OutOpt,
    dataset: DatasetOpt = "npz",
    root: RootOpt = None,
    model: ModelOpt = "resnet9",
    width: WidthOpt = None,
    method: Annotated[str, typer.Option(help="Unlearning method (see `corrective methods`); auto: expand the "
                                                 "flagged set, unlearn it, guarded selection.")] = "auto",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Method setting key=value (repeatable).")] = None,
    grid: Annotated[bool, typer.Option(help="Search the method's grid; select on your test split.")] = False,
    selection: SelectionOpt = None,
    max_class_drop: MaxDropOpt = None,
    expand: ExpandOpt = "none",
    preset: Annotated[str, typer.Option(help="The recipe your model was trained with: paper or digits.")] = "paper",
    steps: Annotated[int | None, typer.Option(help="Steps your model was trained for (budgets are shares).")] = None,
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
    ds, net, spec, pipe, ids = load_user_model(weights, flagged, dataset, root, model, width, mean, std, seed, device)
    cfg = get_preset(preset)
    cfg = cfg.scaled(steps / cfg.steps, seed=seed) if steps else cfg.scaled(1.0, seed=seed)
    result = api.correct(
        net,
        ds.train,
        ids,
        method=method,
        pipeline=pipe,
        config=cfg,
        spec=spec,
        held_out=ds.test,
        settings=parse_sets(set_),
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
