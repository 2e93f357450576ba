"""Shared option aliases and output helpers, so a flag has one spelling and help everywhere."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from corrective.errors import UserError
from corrective.runs import dumps
from corrective.settings import help_of, parse_value, rule_of

SeedOpt = Annotated[int, typer.Option(help="Seed of every random draw (split, manipulation, init, batches).")]
DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA if available), cpu, cuda or cuda:N.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace an existing output folder.")]
OutOpt = Annotated[Path, typer.Option(help="Output folder (refused if it exists, unless --overwrite).")]
RunArg = Annotated[Path, typer.Argument(help="A run folder written by `corrective train`.", show_default=False)]
SelectionOpt = Annotated[
    str | None,
    typer.Option(
        help="How the grid's candidate is picked: paper (0.5 val acc + 0.5 share of S_f changed) or guarded (the "
        "same among candidates losing at most --max-class-drop on every class of clean held-out data). "
        "Default: the method's own rule (guarded for auto), else paper.",
        show_default=False,
    ),
]
MaxDropOpt = Annotated[
    float | None,
    typer.Option(
        help="Guarded selection: the largest fall of any class's held-out accuracy allowed, as a fraction "
        "(default 0.05); one sample of the class is always allowed.",
        show_default=False,
    ),
]
ExpandOpt = Annotated[
    str,
    typer.Option(
        help="Forget-set expansion (see `corrective expand --help`): add the training samples that look "
        "manipulated like the flagged ones; the method is handed the expanded set. none: S_f as given."
    ),
]
GridOpt = Annotated[
    bool | None,
    typer.Option(
        "--grid/--no-grid",
        help="Search the method's grid of settings; the selection rule picks. Default: auto searches its grid, "
        "the other methods run their defaults.",
        show_default=False,
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def no_grid_note(method: str, grid: bool | None) -> str | None:
    """One line saying what `--no-grid` gives up, for a method that searches its grid by default (auto)."""
    from corrective.methods import get_method

    if grid is False and get_method(method).grid_by_default:
        return (
            f"{method} --no-grid: one setting, no search: the selection rule can only keep it or (where it loses "
            "more than the guard) the original model"
        )
    return None


UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str, flag: str) -> int | None:
    """A size as `4G`, `512M`, `100000` (bytes) or `none` (no limit)."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    if value == "NONE":
        return None
    number, unit = (value[:-1], value[-1]) if value[-1:] in UNITS and value[-1:] else (value, "")
    try:
        size = float(number) * UNITS[unit]
    except ValueError:
        raise UserError(f"{flag} is a size such as 4G, 512M or a number of bytes (or none), got {text!r}") from None
    if not (size >= 0 and math.isfinite(size)):
        raise UserError(f"{flag} must be >= 0, got {text!r}")
    return int(size)


def names(registry: Iterable[str]) -> str:
    """A registry's names for a --help text, so the help lists exactly what the code accepts."""
    return ", ".join(sorted(registry))


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`key=value` pairs; values parsed as int, float, bool or comma list where they look like one."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--set {item!r} is not key=value; write e.g. --set lr=0.01")
        key, raw = item.split("=", 1)
        if key.strip() in out:
            raise UserError(f"--set {key.strip()} is given twice; give each setting once")
        out[key.strip()] = parse_value(raw.strip())
    return out


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, list):
        return "[" + " ".join(fmt(v) for v in value) + "]"
    return str(value)


def print_metrics(metrics: dict[str, Any], as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """The metrics as `name  value` lines, or one JSON object with the metric names as top-level keys."""
    if as_json:
        typer.echo(dumps({**(extra or {}), **metrics}))
        return
    items = {**(extra or {}), **metrics}
    width = max([16, *(len(k) + 2 for k in items)])  # a long name never runs into its value
    for key, value in items.items():
        typer.echo(f"{key:<{width}}{fmt(value)}")


def setting_str(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(setting_str(v) for v in value)  # as `--set` takes it: 3,8
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting_lines(settings: type) -> list[str]:
    """`--set NAME=DEFAULT  RULE; HELP` for each field of a settings dataclass (`corrective methods`, `strategies`)."""
    lines = []
    for f in dataclasses.fields(settings):
        note = "; Python keyword: write lambda_" if f.name == "lambda_" else ""
        about = "; ".join(x for x in (rule_of(f).describe(), help_of(f) + note) if x)
        flag = f"--set {f.name}={setting_str(f.default)}"
        lines.append(f"{flag:<34}{f'  {about}' if about else ''}".rstrip())
    return lines
