"""`corrective expand` and `corrective strategies`: find the rest of the manipulated data from the flagged few."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from corrective import api
from corrective.api.practitioner import UserData, from_saved, load_user_model
from corrective.cli.app import app
from corrective.cli.common import (
    DeviceOpt,
    JsonOpt,
    OverwriteOpt,
    QuietOpt,
    SeedOpt,
    parse_bytes,
    parse_sets,
    print_metrics,
    setting_lines,
)
from corrective.cli.fix import (
    DatasetOpt,
    ImageKeyOpt,
    LabelKeyOpt,
    MeanOpt,
    MemoryBudgetOpt,
    ModelOpt,
    NumClassesOpt,
    RootOpt,
    StdOpt,
    WidthOpt,
    WorkersOpt,
)
from corrective.data.adapters import DEFAULT_WORKERS
from corrective.data.streamed import check_workers
from corrective.errors import UserError
from corrective.expand import STRATEGIES, Expansion, expand, make_strategy_settings
from corrective.metrics import expansion_quality
from corrective.models.device import device_of
from corrective.models.embedding import PRECISIONS
from corrective.runs import write_json
from corrective.training import feature_precision


@app.command("expand")
def expand_cmd(
    out: Annotated[Path, typer.Option(help="Table of the expanded ids (id, score, source); usable as --flagged.")],
    run_dir: Annotated[
        Path | None,
        typer.Argument(
            help="A run folder written by `corrective train` (or use --weights/--flagged).", show_default=False
        ),
    ] = None,
    strategy: Annotated[str, typer.Option(help="An expansion strategy of `corrective strategies`.")] = "auto",
    alpha: Annotated[
        float, typer.Option(help="With RUN: discovery rate |S_f|/|S_m| in (0, 1], the first share of S_m.")
    ] = 1.0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Strategy setting key=value (repeatable).")] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Without RUN: your trained model's weights (.safetensors or .pt/.pth).")
    ] = None,
    flagged: Annotated[Path | None, typer.Option(help="Without RUN: file of flagged training sample ids.")] = None,
    dataset: DatasetOpt = "npz",
    root: RootOpt = None,
    model: ModelOpt = "resnet9",
    width: WidthOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    num_classes: NumClassesOpt = None,
    image_key: ImageKeyOpt = "image",
    label_key: LabelKeyOpt = "label",
    memory_budget: MemoryBudgetOpt = "4G",
    precision: Annotated[
        str | None,
        typer.Option(
            help="The feature pass's precision, fp32 or bf16: the one the model was trained in (default: a RUN's "
            "recipe's or the one saved in --weights, else fp32; bf16 about halves the pass on a CPU with bf16 "
            "instructions)."
        ),
    ] = None,
    workers: WorkersOpt = DEFAULT_WORKERS,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Expand the flagged samples S_f to the training samples manipulated like them; write their ids and scores.

    Sees only the model, the training data as given and S_f. With RUN the flagged samples are the first
    --alpha share of the run's manipulated ids and precision/recall against all of them are printed;
    without it, --weights/--flagged and the data options are those of `corrective fix`.

    Example: corrective expand runs/p0 --alpha 0.1 --strategy auto --out ids.txt
    """
    # a comma list (auto's candidates) stays one string: no strategy setting is a list
    settings = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in parse_sets(set_).items()}
    make_strategy_settings(strategy, settings)  # unknown strategy or bad setting: fail before loading anything
    if precision not in (None, *PRECISIONS):
        raise UserError(f"--precision must be fp32 or bf16, got {precision!r}")
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; pass --overwrite to replace it or choose another --out")
    progress = False if quiet or as_json else None
    quality: dict[str, Any] = {}
    if run_dir is not None:
        if weights is not None or flagged is not None:
            raise UserError("give either a RUN folder or --weights/--flagged, not both")
        if not 0.0 < alpha <= 1.0:
            raise UserError(f"--alpha must be in (0, 1], got {alpha}")
        run = api.load_run(run_dir, device)
        result = api.expand_run(run, alpha, strategy, settings, progress=progress, precision=precision)
        forget_ids = run.manipulation.forget_ids(alpha)
        quality = expansion_quality(result.ids, forget_ids, run.manipulation.ids)  # S_m known: report only
    else:
        if weights is None or flagged is None:
            raise UserError("give a RUN folder, or --weights and --flagged (with --dataset/--root/--model)")
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
        forget_ids = api.check_flagged(data.train, data.ids)  # each id once (the file may repeat some)
        result = expand(
            data.model,
            data.train,
            forget_ids,
            data.pipeline,
            strategy,
            settings,
            seed=seed,
            progress=progress,
            precision=precision or saved_precision(data),
        )
    write_table(out, result, forget_ids)
    write_json(
        out.with_name(out.name + ".json"),
        {"expansion": result.to_record(), "details": result.details, "n_flagged": len(forget_ids), **quality},
    )
    summary = {**result.to_record(), "n_flagged": len(forget_ids), "n_ids": len(result.ids), **quality}
    print_metrics(summary, as_json, {"out": str(out)})


def saved_precision(data: UserData) -> str:
    """The feature pass's precision for user weights: the one of the recipe saved in the file, else fp32."""
    if data.recipe is None:
        return "fp32"
    cfg = from_saved(data.recipe)
    return feature_precision(cfg, device_of(data.model), int(data.train.x.shape[-1]))


def write_table(path: Path, result: Expansion, flagged: Any) -> None:
    """`id<TAB>score<TAB>source`: the flagged ids kept (no score) then the added ones by descending score.

    Flagged ids the screen set aside are not in the table (it is meant as --flagged: they would be unlearned);
    the summary and the .json name them.
    """
    lines = ["id\tscore\tsource"]
    aside = set(result.set_aside.tolist())
    lines += [f"{i}\t\tflagged" for i in sorted(int(v) for v in flagged) if i not in aside]
    lines += [f"{int(i)}\t{float(s):.6g}\tadded" for i, s in zip(result.added, result.scores, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@app.command()
def strategies() -> None:
    """List the forget-set expansion strategies with their settings: default, allowed values, meaning."""
    for name, info in sorted(STRATEGIES.items()):
        typer.echo(f"{name:<13}{info.summary}")
        for line in setting_lines(info.settings):
            typer.echo(f"{'':<13}{line}")
