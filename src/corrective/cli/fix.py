"""`corrective fix`: the practitioner's path — your model, your data, your flagged ids, a corrected model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from corrective import api
from corrective.api import practitioner
from corrective.api.practitioner import Recipe, load_user_model
from corrective.cli.app import app
from corrective.cli.common import (
    DeviceOpt,
    ExpandOpt,
    GridOpt,
    JsonOpt,
    MaxDropOpt,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    SeedOpt,
    SelectionOpt,
    names,
    no_grid_note,
    parse_bytes,
    parse_sets,
    print_metrics,
)
from corrective.data import DATASETS
from corrective.data.adapters import DEFAULT_WORKERS
from corrective.data.streamed import check_workers
from corrective.methods import METHODS, candidate_overrides, make_settings
from corrective.methods.selection import Reference, class_drops
from corrective.models import MODELS
from corrective.runs import check_out_dir
from corrective.training import DEFAULT_EPOCHS, PRESETS

# Options of the practitioner's path, shared by `fix` and `expand`
WeightsOpt = Annotated[
    Path,
    typer.Option(
        help="Your trained model's weights: .safetensors or a torch state dict .pt/.pth (torch.save("
        "model.state_dict())); or a folder written by `corrective fix` (rebuilt as its fix.json says)."
    ),
]
FlaggedOpt = Annotated[Path, typer.Option(help="File of flagged training sample ids (lines, JSON list or .npy).")]
DatasetOpt = Annotated[
    str,
    typer.Option(
        help=f"Loader of your data: {names(DATASETS)}, or hf (a Hugging Face dataset saved with save_to_disk "
        "in --root: its train and test splits; needs the hf extra)."
    ),
]
RootOpt = Annotated[Path | None, typer.Option(help="Folder with your data files.")]
ModelOpt = Annotated[
    str,
    typer.Option(
        help=f"Architecture of your model: {names(MODELS)}, torchvision:NAME, timm:NAME (the torchvision/timm "
        "extras) or package.module:function (an importable factory; gets num_classes/in_channels if it takes them)."
    ),
]
NumClassesOpt = Annotated[
    int | None,
    typer.Option(help="Classes of your model (default: its checkpoint's head rows, else the data's).", min=1),
]
ImageKeyOpt = Annotated[str, typer.Option(help="--dataset hf: the column of the images.")]
LabelKeyOpt = Annotated[str, typer.Option(help="--dataset hf: the column of the labels.")]
MemoryBudgetOpt = Annotated[
    str,
    typer.Option(
        help="--dataset hf: images larger than this (bytes, or with K/M/G) are read a batch at a time instead of "
        "held in memory; 'none': always held. The other datasets' loaders hold their files in memory."
    ),
]
WorkersOpt = Annotated[
    int,
    typer.Option(
        help="--dataset hf streamed under --memory-budget: worker processes reading each pass's batches ahead "
        "of the model (decoding in parallel; 0: read in this process)."
    ),
]
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
    grid: GridOpt = None,
    selection: SelectionOpt = None,
    max_class_drop: MaxDropOpt = None,
    expand: ExpandOpt = "none",
    epochs: Annotated[
        float | None,
        typer.Option(
            help=f"Epochs your model was trained for (method budgets are shares of it; default: the recipe "
            f"`corrective train`/`fix` saved in the weights file, else {DEFAULT_EPOCHS:g}, the paper's)."
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
    num_classes: NumClassesOpt = None,
    image_key: ImageKeyOpt = "image",
    label_key: LabelKeyOpt = "label",
    memory_budget: MemoryBudgetOpt = "4G",
    workers: WorkersOpt = DEFAULT_WORKERS,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help=f"Exit with code {HARM_EXIT} when the correction was refused (it lost more than the guard on "
            "your test split and your model was returned unchanged) or could not be checked (no test split).",
        ),
    ] = False,
) -> None:
    """Correct your trained model given the training samples you found manipulated.

    Your data's training split is the model's training data (labels as given) and its sample ids are
    positions in the training file; its test split is trusted held-out data: settings are selected on
    it, and it is the guard — when the corrected model's accuracy on it fell by more than
    --max-class-drop (default 0.05; one sample of a class always allowed) on any class or on the whole,
    your model is written back unchanged and a warning says so (with --strict, exit code 3).

    Example: corrective fix --root mydata --weights model.safetensors --flagged bad_ids.txt --method ssd --out fixed
    """
    api.resolve_selection(method, selection, max_class_drop)  # an unknown method or rule: fail before loading
    api.check_expand(method, expand)
    check_out_dir(out, overwrite)
    note = no_grid_note(method, grid)
    if note:
        typer.echo(f"fix: {note}", err=True)
    settings = parse_sets(set_)
    # an unknown setting fails here, before any work
    candidates = len([make_settings(method, o) for o in candidate_overrides(method, grid, settings)])
    data = load_user_model(
        weights,
        flagged,
        dataset,
        root,
        model,
        width,
        mean,
        std,
        seed,
        device,
        num_classes=num_classes,
        image_key=image_key,
        label_key=label_key,
        memory_budget=parse_bytes(memory_budget, "--memory-budget"),
        workers=check_workers(workers, "--workers"),
    )
    plan = Recipe(epochs, batch_size, lr, steps, preset, data.recipe)  # a --preset wins over the saved recipe
    cfg = plan.config(len(data.train), seed)
    if not (quiet or as_json):  # what the run will cost, before it starts
        n = len(data.train)
        told = any(v is not None for v in (epochs, steps, batch_size, lr, preset))
        where = " (saved in its weights file)" if plan.saved is not None and not told else ""
        typer.echo(
            f"fix: your model's recipe{where}: {cfg.steps} steps of batch {cfg.batch_size} "
            f"({cfg.steps * cfg.batch_size / n:.3g} epochs of {n} samples) at lr "
            f"{cfg.lr:g}; {method} spends a share of it on each setting it runs (at most {candidates})",
            err=True,
        )
        if plan.assumed:  # the paper's budget may be far from the user's
            typer.echo(
                f"fix: that recipe is assumed ({DEFAULT_EPOCHS:g} epochs, the paper's): pass --epochs N, the epochs "
                "your model trained, and every setting's cost scales to it",
                err=True,
            )
    result = practitioner.fix(
        data.model,
        data.train,
        data.ids,
        data.test,
        method=method,
        recipe=plan,
        settings=settings,
        grid=grid,
        selection=selection,
        max_class_drop=max_class_drop,
        expand=expand,
        seed=seed,
        pipeline=data.pipeline,
        spec=data.spec,
        changes=data.changes,
        progress=False if quiet or as_json else None,
    )
    record = result.record
    summary = {
        "method": method,
        "settings": record["settings"],
        "n_flagged": record["n_flagged"],
        "n_repeated_ids": record["n_repeated_ids"],
        "expand": record["expand"],
        "n_expanded": record["n_expanded"],
        **{k: record[k] for k in ("n_set_aside", "set_aside_ids") if record.get("n_set_aside")},
        "test_acc_before": record["held_out_acc_before"],
        "test_acc_after": record["held_out_acc_after"],
        "flagged_changed": record["forget_changed"],
        "selection": record["selection"],
        **({"guard_fallback": record["guard_fallback"]} if "guard_fallback" in record else {}),
        "max_class_drop": record["max_class_drop"],
        "do_no_harm": record["do_no_harm"],
        "returned_original": record["returned_original"],
        **({"stopped_unhealed": record["stopped_unhealed"]} if "stopped_unhealed" in record else {}),
        "unlearn_seconds": record["unlearn_seconds"],
        **search_cost(result.records),
    }
    for note in record["flag_notes"]:
        typer.echo(f"fix: note: {note}", err=True)
    warning = harm_warning(result.records, summary["test_acc_before"])
    if warning:
        typer.echo(f"fix: warning: {warning}", err=True)
    data_record = {"dataset": dataset, "root": None if root is None else str(root)}
    data_record |= {"image_key": image_key, "label_key": label_key}
    path = result.save(
        out, overwrite, summary=summary, weights=str(weights), flagged=str(flagged), model=model, data=data_record
    )
    print_metrics(summary, as_json, {"out": str(path)})
    if strict and summary["do_no_harm"] != "kept":
        raise typer.Exit(HARM_EXIT)


def candidates_tried(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of the candidates that ran (not the original's, where it was returned)."""
    return [r for r in records if not r.get("is_original")]


def search_cost(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the whole correction cost: how many candidates ran, and the seconds of all of them plus the expansion
    (the summary's `unlearn_seconds` is the returned candidate's alone)."""
    tried = candidates_tried(records)
    seconds = math.fsum(r["unlearn_seconds"] for r in tried) + float(records[-1].get("expand_seconds") or 0.0)
    return {"candidates_run": len(tried), "search_seconds": seconds}


def worst_class(record: dict[str, Any], original: dict[str, Any]) -> str:
    """'class N', the class whose test-split accuracy fell most from the original's to `record`'s."""
    drops = class_drops(record, Reference(tuple(original["val_per_class_acc"])))
    return f"class {max(drops, key=drops.__getitem__)}" if drops else "a class"


HARM_EXIT = 3  # `fix --strict`: the correction was refused by the guard (or the guard could not be checked)


def harm_warning(records: list[dict[str, Any]], before: float) -> str | None:
    """One line when the guard refused the correction (or could not check it); None when it held."""
    rejected = next((r for r in records if r.get("rejected_by_guard")), None)
    if rejected is not None:
        tried = len(candidates_tried(records))
        chosen = "the one" if tried == 1 else f"the {rejected['selection']} rule's choice of the {tried}"
        if rejected.get("unhealed"):  # auto on label noise: the classes of the unlearned samples fell
            return (
                f"the correction did not heal the classes of the samples it unlearned: {chosen} tried lowered their "
                f"accuracy on your test split by {-rejected['val_heal']:.3f} ({worst_class(rejected, records[-1])} "
                f"down {rejected['val_class_drop']:.3f}; all {before:.4f} -> {rejected['val_accuracy']:.4f}); your "
                "model is returned unchanged"
            )
        return (
            f"the correction lost more than the guard ({rejected['max_class_drop']:g} or one sample of a class) on "
            f"your test split: {chosen} tried took {worst_class(rejected, records[-1])} down "
            f"{rejected['val_class_drop']:.3f} (all {before:.4f} -> {rejected['val_accuracy']:.4f}); your model is "
            "returned unchanged"
        )
    if records[-1].get("do_no_harm") == "unchecked":
        return "no test split to check the correction on: it may have lost accuracy (the guard could not run)"
    return None
