"""`corrective unlearn` and `corrective methods`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from corrective import api
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
    RunArg,
    SelectionOpt,
    fmt,
    names,
    no_grid_note,
    parse_sets,
    setting_lines,
    setting_str,
)
from corrective.errors import UserError
from corrective.methods import METHODS, NEEDS, make_settings
from corrective.runs import WEIGHTS, check_out_dir, dumps, save_model, write_dir, write_json

UNLEARN_FILE = "unlearn.json"
UNLEARN_FORMAT = "corrective-unlearn/1"
TABLE_METRICS = (
    "n_forget",
    "acc_corr",
    "acc_retain",
    "val_accuracy",
    "forget_changed",
    "val_class_drop",
    "target_acc",
    "unlearn_seconds",
)


@app.command()
def unlearn(
    run_dir: RunArg,
    out: OutOpt,
    method: Annotated[str, typer.Option(help=f"Method: {names(METHODS)} (see `corrective methods`).")] = "ssd",
    alpha: Annotated[float, typer.Option(help="Discovery rate |S_f|/|S_m| in (0, 1]: the first share of S_m.")] = 1.0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Method setting key=value (repeatable).")] = None,
    grid: GridOpt = None,
    selection: SelectionOpt = None,
    max_class_drop: MaxDropOpt = None,
    expand: ExpandOpt = "none",
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Unlearn the identified share of a run's manipulated samples; save the selected model and every candidate.

    Example: corrective unlearn runs/p0 --method ssd --alpha 0.1 --grid --out runs/p0-ssd
    """
    if not 0.0 < alpha <= 1.0:
        raise UserError(f"--alpha must be in (0, 1], got {alpha}")
    settings = parse_sets(set_)
    make_settings(method, settings)  # unknown method or bad setting: fail before loading anything
    api.resolve_selection(method, selection, max_class_drop)
    api.check_expand(method, expand)
    check_out_dir(out, overwrite)
    note = no_grid_note(method, grid)
    if note and not as_json:
        typer.echo(note, err=True)
    run = api.load_run(run_dir, device)
    result = api.unlearn(
        run,
        method,
        alpha,
        settings=settings,
        grid=grid,
        selection=selection,
        max_class_drop=max_class_drop,
        expand=expand,
        progress=False if quiet or as_json else None,
    )

    def fill(tmp: Path) -> None:
        save_model(result.model, tmp / WEIGHTS, run.config.to_dict())  # the recipe its budgets were shares of
        write_json(
            tmp / UNLEARN_FILE,
            {
                "format": UNLEARN_FORMAT,
                "run": str(run_dir),
                "method": method,
                "alpha": alpha,
                "selected": result.selected,
                "candidates": result.records,
            },
        )

    write_dir(out, overwrite, fill)
    if as_json:
        for rec in result.records:
            typer.echo(dumps(rec))
    else:
        print_table(result.records)
        rec = result.record
        if rec.get("expand", "none") != "none":
            typer.echo(
                f"expanded S_f ({rec['n_flagged']} ids) by {rec['n_expanded']} with {rec['expand']} "
                f"({rec.get('expand_chosen', rec['expand'])}) in {rec['expand_seconds']:.1f} s"
            )
            if rec.get("n_set_aside"):
                typer.echo(
                    f"set aside {rec['n_set_aside']} flagged ids that show no sign of manipulation (not unlearned): "
                    + " ".join(map(str, rec.get("set_aside_ids", [])))
                )
        for note in result.record.get("flag_notes", []):
            typer.echo(f"note: {note}")
        what = "the original model" if result.record.get("is_original") else f"candidate {result.selected}"
        typer.echo(f"selected {what} by the {selection_line(result.record)} -> {out / WEIGHTS}")


def print_table(records: list[dict[str, Any]]) -> None:
    """One line per candidate: its settings that vary, and the headline metrics."""
    varying = [k for k in records[0]["settings"] if len({repr(r["settings"].get(k)) for r in records}) > 1]
    shown = varying or list(records[0]["settings"])[:2]
    metrics = [m for m in TABLE_METRICS if m in records[0]]
    typer.echo("  ".join(["sel", *(f"{k:>10}" for k in shown), *(f"{m:>15}" for m in metrics)]))
    for rec in records:
        values = ["original"] * len(shown) if rec.get("is_original") else [rec["settings"][k] for k in shown]
        mark = "  *" if rec["selected"] else "  x" if rec.get("rejected_by_guard") else "   "
        cells = [mark, *(f"{setting_str(v):>10}" for v in values)]
        typer.echo("  ".join([*cells, *(f"{fmt(rec.get(m, float('nan'))):>15}" for m in metrics)]))


def selection_line(record: dict[str, Any]) -> str:
    """Which rule chose the record, and for the guarded one whether its guard held."""
    rule = record.get("selection", "paper")
    if record.get("stopped_unhealed"):
        return (
            f"{rule} rule: the search stopped at a candidate that lowered the clean validation accuracy of the classes "
            "it unlearned while the whole split held (the forget set's doing, which every candidate shares): the "
            "original model is returned unchanged (do no harm)"
        )
    if record.get("returned_original"):
        return (
            f"{rule} rule, whose choice (x) lost more than {record['max_class_drop']:g} (or one sample) on a class or "
            "the whole of the clean validation split: the original model is returned unchanged (do no harm)"
        )
    if rule != "guarded":
        return f"{rule} rule"
    drop = record["max_class_drop"]
    if record.get("guard_fallback"):
        return (
            f"guarded rule (no candidate kept every class within {drop:g} or one sample: the least damaging one, "
            f"a class down {record.get('val_class_drop', float('nan')):.3f})"
        )
    return f"guarded rule ({record['n_eligible']} of the candidates kept every class within {drop:g} or one sample)"


@app.command()
def methods() -> None:
    """List the unlearning methods with their settings: default, allowed values, meaning; grid sizes."""
    for name, info in sorted(METHODS.items()):
        kind = "oracle bound: needs S_m, not a method" if not info.is_method else f"grid {len(info.grid())}"
        typer.echo(f"{name:<13}{info.summary}  [{kind}]")
        typer.echo(f"{'':<13}needs {NEEDS[info.needs]}")
        for line in setting_lines(info.settings):
            typer.echo(f"{'':<13}{line}")
