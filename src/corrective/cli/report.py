"""`corrective report`: tables, plots and an HTML/Markdown page from a results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from corrective.cli.app import app


@app.command()
def report(
    results: Annotated[
        Path,
        typer.Argument(
            help="A results folder written by `corrective bench` (or its results.jsonl).", show_default=False
        ),
    ],
    out: Annotated[Path | None, typer.Option(help="Folder for the report (default: the results folder).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html, md or both.")] = "both",
    plots: Annotated[bool, typer.Option(help="Draw plots (needs matplotlib).")] = True,
) -> None:
    """Write report.html (self-contained) and/or report.md, and the figures as PNGs, from benchmark records.

    Example: corrective report results/digits --out reports/digits --format html
    """
    from corrective.report import write_report

    written = write_report(results, out, fmt, plots=plots)
    for path in written:
        if path.suffix != ".png":
            typer.echo(str(path))
    pngs = [p for p in written if p.suffix == ".png"]
    if pngs:
        typer.echo(f"{pngs[0].parent} ({len(pngs)} figures as PNG)")
