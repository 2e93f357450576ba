"""What the views share: the figures maker, the seeds note, what a block lacks, and the walk over blocks that
says, for a view some records cannot fill, which settings it covers and why the others are not there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from corrective.names import MANIPULATIONS
from corrective.report import draw
from corrective.report.document import Figure, Section, Table
from corrective.report.groups import FLAT, ORACLE, BlockKey, Group, block_label, short_title

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure


class Figures:
    """Makes the report's figure items, with one colour per method in every figure."""

    def __init__(self, groups: list[Group]) -> None:
        self.colour = draw.colours([m for g in groups for m in g.methods])

    def make(self, name: str, caption: str, fig: MplFigure) -> Figure:
        return Figure(name, caption, draw.png(fig))


def seeds_note(groups: list[Group], methods: list[str]) -> str:
    """'Averages 3 seeds (0, 1, 2).' plus the range of records per point when some points have fewer."""
    seeds = sorted({s for g in groups for s in g.seeds})
    counts = [g.cell(m, a, "acc_corr").n for g in groups for m in methods if m not in FLAT for a in g.alphas]
    text = f"Averages {len(seeds)} seed{'s' * (len(seeds) != 1)} ({', '.join(map(str, seeds))})"
    if counts and min(counts) < len(seeds):
        text += f"; some points have fewer: {min(counts)} to {max(counts)} records per point (see the tables)"
    return text + "."


def absent_manipulations(groups: list[Group]) -> list[str]:
    have = {g.key.manipulation for g in groups}
    return [m for m in MANIPULATIONS if m not in have]


def coverage_note(groups: list[Group]) -> str | None:
    """What a block lacks: the papers' manipulations with no record, settings without an oracle."""
    parts = []
    absent = absent_manipulations(groups)
    if absent:
        parts.append(f"no records for {', '.join(absent)}: no panel for {'them' if len(absent) > 1 else 'it'}")
    no_oracle = [short_title(g) for g in groups if g.reference(ORACLE, "acc_corr") is None]
    if no_oracle:
        parts.append(f"no oracle records for {', '.join(no_oracle)}: no oracle line there")
    return f"Missing here: {'; '.join(parts)}." if parts else None


def block_intro(label: str, groups: list[Group]) -> str:
    """A block's sub-heading as a paragraph, so the topic sections read by dataset, model and training."""
    return f"{label}: {len(groups)} setting{'s' * (len(groups) != 1)} ({', '.join(short_title(g) for g in groups)})."


Items = list[str | Figure | Table]  # what a view adds to its section, in page order


@dataclass(frozen=True)
class Coverage:
    """Which settings of a block a view can show, and the lines that say why it shows fewer.

    `scope`: the settings the view is about (none: the `absent` line); `holds`: whether a setting's records
    hold what the view needs (none of them: the `older` line); `what`: the view's data in the closing
    'Missing here: no <what> for <settings>.' line; `also_lacking`: names to add to that line."""

    holds: Callable[[Group], bool]
    older: str  # "{label}" is replaced by the block's label, here and in `absent`
    what: str
    scope: Callable[[list[Group]], list[Group]] = lambda gs: gs
    absent: str = ""
    also_lacking: Callable[[list[Group]], list[str]] = lambda gs: []


def covered_blocks(
    sec: Section,
    by_block: dict[BlockKey, list[Group]],
    coverage: Coverage,
    show: Callable[[str, list[Group]], Items],
) -> Section:
    """Per block: the `absent` or `older` line, or what `show(label, settings that hold the data)` gives and
    the 'Missing here' line naming the settings in scope whose records lack it."""
    for key, gs in by_block.items():
        label = block_label(*key)
        scope = coverage.scope(gs)
        if not scope:
            sec.items += [coverage.absent.format(label=label)] if coverage.absent else []
            continue
        held = [g for g in scope if coverage.holds(g)]
        if not held:
            sec.items.append(coverage.older.format(label=label))
            continue
        sec.items += show(label, held)
        lacking = [short_title(g) for g in scope if g not in held] + coverage.also_lacking(gs)
        if lacking:
            sec.items.append(f"Missing here: no {coverage.what} for {', '.join(lacking)}.")
    return sec
