"""`corrective fix`: the practitioner's path — your model, your data, your flagged ids, a corrected model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
from corrective.data import DATASETS
from corrective.methods import METHODS, candidate_overrides, make_settings
from corrective.metrics import accuracy
from corrective.models import MODELS
from corrective.practitioner import DEFAULT_EPOCHS, load_user_model, recipe
from corrective.runs import check_out_dir, save_model, write_dir, write_json
from corrective.training import PRESETS

# Options of the practitioner's path, shared by `fix` and `expand`
WeightsOpt = Annotated[Path, typer.Option(help="Your trained model's weights (.safetensors).")]
FlaggedOpt = Annotated[Path, typer.Option(help="File of flagged training sample ids (lines, JSON list or .npy).")]
DatasetOpt = Annotated[str, typer.Option(help=f"Loader of your data: {names(DATASETS)}.")]
RootOpt = Annotated[Path | None, typer.Option(help="Folder with your data files.")]
ModelOpt = Annotated[str, typer.Option(help=f"Architecture of your model: {names(MODELS)}.")]
WidthOpt = Annotated[float | None, typer.Option(help="Channel width multiplier of the model.")]
MeanOpt = Annotated[str | None, typer.Option(help="Per-channel mean your model expects, e.g. 0.49,0.48,0.45.")]
StdOpt = Annotated[str | None, typer.Option(help="Per-channel std your model expects.")]


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
