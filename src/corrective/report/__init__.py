"""Tables, plots and an HTML/Markdown report from benchmark result records.

Reads only `results.jsonl` records; never recomputes a metric and never imports methods, bench or training.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from corrective.errors import UserError
from corrective.report.build import build_document
from corrective.report.document import Document, Figure
from corrective.report.html import render_html
from corrective.report.markdown import render_md
from corrective.report.records import Results, Row, read_results, record_rows, to_row

FORMATS = {"html": ("html",), "md": ("md",), "both": ("html", "md")}
FIGURES = "figures"


def write_report(
    results_dir: str | Path, out: str | Path | None = None, fmt: str = "both", plots: bool = True
) -> list[Path]:
    """Write `figures/*.png` and `report.html` (figures embedded) and/or `report.md` (figures linked) for a
    results folder; return the files written, the report pages last."""
    if fmt not in FORMATS:
        raise UserError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    results = read_results(results_dir)
    out = Path(out) if out is not None else results.path.parent
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose another path")
    out.mkdir(parents=True, exist_ok=True)
    doc = build_document(results, with_plots=plots)
    generated = datetime.date.today().isoformat()
    figures = [item for s in doc.sections for item in s.items if isinstance(item, Figure)]
    if figures:
        (out / FIGURES).mkdir(exist_ok=True)
    written = []
    for f in figures:
        written.append(out / FIGURES / f"{f.name}.png")
        written[-1].write_bytes(f.png)
    if "html" in FORMATS[fmt]:
        written.append(out / "report.html")
        written[-1].write_text(render_html(doc, generated), encoding="utf-8")
    if "md" in FORMATS[fmt]:
        written.append(out / "report.md")
        written[-1].write_text(render_md(doc, generated, FIGURES), encoding="utf-8")
    return written


__all__ = ["Document", "Results", "Row", "build_document", "read_results", "record_rows", "to_row", "write_report"]
