"""The report as a document: sections of paragraphs, warnings, figures and tables, and how numbers read in it.

The views (`curves.py`, `table1.py` … `setting.py`) fill it; the writers (`html.py`, `markdown.py`) turn it
into a page. Nothing here knows a metric or a figure library.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from corrective.report.groups import Stat

WARN = "⚠"
HOLE = "missing"


@dataclass(frozen=True)
class Cell:
    text: str
    cls: str = ""  # "warn", "hole", "bound" or "" (writers may style them)


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)
    text_cols: tuple[int, ...] = (0,)  # columns holding names or words (left-aligned); the rest are numbers
    breaks: set[int] = field(default_factory=set)  # row indices that start a new block (a rule above them)


@dataclass
class Figure:
    name: str  # file stem, e.g. for the markdown's PNG files
    caption: str
    png: bytes


@dataclass
class Section:
    title: str
    anchor: str
    warnings: list[str] = field(default_factory=list)
    items: list[str | Figure | Table] = field(default_factory=list)  # in page order; a str is a paragraph
    level: int = 2


@dataclass
class Document:
    title: str
    facts: list[str]
    notes: list[str]
    sections: list[Section]


def pct(x: float, digits: int = 1) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.{digits}f}"


def pm(stat: Stat) -> str:
    """'90.5 ± 1.2' in percent; no ± for a single value."""
    if stat.n == 0:
        return HOLE
    return pct(stat.mean) if math.isnan(stat.std) else f"{pct(stat.mean)} ± {pct(stat.std)}"


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
