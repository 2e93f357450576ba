"""`corrective train` and `corrective evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from corrective import api
from corrective.api.practitioner import evaluate_fixed
from corrective.cli.app import app
from corrective.cli.common import (
    DeviceOpt,
    JsonOpt,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    RunArg,
    SeedOpt,
    names,
    parse_sets,
    print_metrics,
    setting_lines,
)
from corrective.data import DATASETS
from corrective.errors import UserError
from corrective.manipulations import MANIPULATIONS, ordered
from corrective.models import MODELS
from corrective.models.masks import TRAINING_TYPES
from corrective.training import DEFAULT_EPOCHS, PRESETS, TrainConfig


def announce_recipe(cfg: TrainConfig, n: int) -> None:
    """What the training will cost, before it starts."""
    typer.echo(
        f"train: {cfg.steps} steps of batch {cfg.batch_size} ({cfg.steps * cfg.batch_size / n:.3g} epochs of {n} "
        f"samples) at lr {cfg.lr:g}; --steps or --epochs changes it",
        err=True,
    )


@app.command()
def train(
    out: OutOpt,
    dataset: Annotated[str, typer.Option(help=f"Dataset: {names(DATASETS)} (see `corrective datasets`).")] = "digits",
    manipulation: Annotated[str, typer.Option(help=f"Manipulation: {names(MANIPULATIONS)}.")] = "poison",
    size: Annotated[float | None, typer.Option(help="Share of S_tr (<1) or a count (>=1); default 0.05.")] = None,
    seed: SeedOpt = 0,
    root: Annotated[Path | None, typer.Option(help="Folder with the dataset's files (default data/NAME).")] = None,
    model: Annotated[str | None, typer.Option(help=f"Model: {names(MODELS)} (default: the dataset's).")] = None,
    width: Annotated[float | None, typer.Option(help="Channel width multiplier of the model.")] = None,
    preset: Annotated[
        str | None, typer.Option(help=f"Training preset: {names(PRESETS)} (default: the dataset's).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Override the preset's step budget.")] = None,
    epochs: Annotated[
        float | None,
        typer.Option(
            help=f"The budget in epochs of the training split instead (npz and imagefolder default to "
            f"{DEFAULT_EPOCHS:g}, the paper's; the other datasets to their preset's steps)."
        ),
    ] = None,
    target: Annotated[int | None, typer.Option(help="A backdoor's target class (default 0).")] = None,
    trigger_size: Annotated[int | None, typer.Option(help="Poison: trigger side in px (default 3; 2 on 8x8).")] = None,
    classes: Annotated[str | None, typer.Option(help="Interclass: the two classes, e.g. 3,5.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Manipulation setting key=value, e.g. blend=0.2 (see `corrective manipulations`)."),
    ] = None,
    val_fraction: Annotated[float, typer.Option(help="Clean validation share carved from the training data.")] = 0.1,
    option: Annotated[list[str] | None, typer.Option(help="Loader option key=value, e.g. crop=96 (pcam).")] = None,
    download: Annotated[bool, typer.Option(help="Fetch missing files with torchvision.")] = False,
    training: Annotated[
        str,
        typer.Option(
            help=f"Training type: {names(TRAINING_TYPES)} (capacity: half the masked "
            "channels trained, room reserved for REM; etd: example-tied dropout)."
        ),
    ] = "standard",
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Manipulate a dataset, train a model on it, save the run and print its metrics.

    Example: corrective train --dataset digits --manipulation poison --size 0.05 --seed 0 --out runs/p0
    """
    settings: dict[str, Any] = parse_sets(set_)
    if target is not None:
        settings["target"] = target
    if trigger_size is not None:
        settings["trigger_size"] = trigger_size
    if classes is not None:
        try:
            settings["classes"] = [int(c) for c in classes.split(",")]
        except ValueError:
            raise UserError(f"--classes {classes!r} must be two class numbers like 3,5") from None
        if len(settings["classes"]) != 2:
            raise UserError(f"--classes needs exactly two classes, got {classes!r}")
    run = api.train_run(
        dataset,
        manipulation=manipulation,
        size=size,
        seed=seed,
        root=root,
        model=model,
        width=width,
        preset=preset,
        steps=steps,
        epochs=epochs,
        val_fraction=val_fraction,
        device=device,
        manipulation_settings=settings,
        dataset_options=parse_sets(option),
        download=download,
        out=out,
        overwrite=overwrite,
        progress=False if quiet or as_json else None,
        training=training,
        announce=None if quiet or as_json else announce_recipe,
    )
    print_metrics(run.metrics, as_json, {"run_dir": str(run.path), "train_seconds": run.train_seconds})


@app.command()
def manipulations() -> None:
    """List the manipulations with their settings (`corrective train --set`, bench axes): default, rule, meaning."""
    for name, info in ordered().items():
        kind = "backdoor" if info.backdoor else "labels" if info.takes_size else "baseline"
        typer.echo(f"{name:<13}{info.summary}  [{kind}]")
        for line in setting_lines(info.settings):
            typer.echo(f"{'':<13}{line}")


@app.command()
def evaluate(run_dir: RunArg, device: DeviceOpt = "auto", as_json: JsonOpt = False) -> None:
    """Re-compute a run's metrics from its files (or a `corrective fix` folder's held-out accuracy)."""
    if (run_dir / "fix.json").is_file():
        print_metrics(evaluate_fixed(run_dir, device), as_json, {"fix_dir": str(run_dir)})
        return
    print_metrics(api.evaluate_run(run_dir, device), as_json, {"run_dir": str(run_dir)})
