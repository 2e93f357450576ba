"""The paper's Table 1: the change in acc_retain of each method against the original model, as a table and as
bars, per block."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from corrective.report import draw
from corrective.report.document import HOLE, Cell, Section, Table, anchor, pct
from corrective.report.groups import (
    FLAT,
    ORIGINAL,
    BlockKey,
    Group,
    Stat,
    block_label,
    method_label,
    ordered_methods,
    over_seeds,
    panel_title,
    seeds_of,
    short_title,
)
from corrective.report.view import Figures, seeds_note

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def retain_change(g: Group, method: str) -> tuple[Stat, int]:
    """The method's mean acc_retain minus the original model's, mean ± std over alpha; how many alphas."""
    original = g.reference(ORIGINAL, "acc_retain")
    if original is None:
        return Stat.of([]), 0
    if method in FLAT:
        ref = g.reference(method, "acc_retain")
        return (Stat.of([]), 0) if ref is None else (Stat(ref.mean - original.mean, math.nan, 1), 1)
    delta = Stat.of(g.cell(method, a, "acc_retain").mean - original.mean for a in g.alphas)
    return delta, delta.n


def table1(groups: list[Group]) -> Table:
    """The paper's Table 1: change in acc_retain vs the original model, mean ± std over alpha, in points."""
    rows = []
    short = False
    for method, is_method in ordered_methods(groups):
        if method == ORIGINAL:
            continue
        cells = [Cell(method_label(method, is_method), "" if is_method else "bound")]
        for g in groups:
            delta, k = retain_change(g, method)
            partial = method not in FLAT and 0 < k < len(g.alphas)
            short |= partial
            spread = "" if math.isnan(delta.std) else f" ± {100 * delta.std:.2f}"
            cells.append(
                Cell(HOLE, "hole")
                if delta.n == 0
                else Cell(f"{100 * delta.mean:+.2f}{spread}{' †' if partial else ''}")
            )
        rows.append(cells)
    original = [Cell("original acc_retain (%)")]
    for g in groups:
        ref = g.reference(ORIGINAL, "acc_retain")
        original.append(Cell(HOLE, "hole") if ref is None else Cell(pct(ref.mean, 2)))
    notes = [
        "Change in acc_retain of the selected setting vs the original model, in points: mean ± std over the "
        f"alphas (each alpha's value is itself the {over_seeds(seeds_of(groups), std=False)}). Positive: the "
        "method kept or improved accuracy outside the affected domain."
    ]
    if short:
        notes.append("† averaged over fewer alphas than the grid: some alphas have no record (see the holes below).")
    if any(g.reference(ORIGINAL, "acc_retain") is None for g in groups):
        notes.append("'missing' in a whole column: no record of the original model (method none) for that setting.")
    header = ["method"] + [short_title(g) for g in groups]
    return Table("Table 1: change in acc_retain (points)", header, rows + [original], notes)


def retain_bars(groups: list[Group], methods: list[tuple[str, bool]], colour: dict[str, draw.Colour]) -> Figure:
    """The paper's Table 1 as bars: change in acc_retain per method, mean ± std over alpha, one bar per setting."""
    from matplotlib.patches import Patch

    shown = [(m, i) for m, i in methods if m != ORIGINAL]
    fig = draw.new_figure(min(14.0, max(6.0, 0.3 * len(shown) * len(groups) + 1.5)), 4.2)
    ax = fig.subplots()
    width = 0.8 / len(groups)
    hatches = ["", "//", "..", "xx", "\\\\", "oo"]
    for k, g in enumerate(groups):
        deltas = [retain_change(g, m)[0] for m, _ in shown]
        xs = [i + (k - (len(groups) - 1) / 2) * width for i in range(len(shown))]
        ax.bar(
            xs,
            [100 * d.mean for d in deltas],
            width,
            yerr=[0.0 if math.isnan(d.std) else 100 * d.std for d in deltas],
            capsize=2,
            color=[colour.get(m, "lightgray") for m, _ in shown],
            edgecolor="black",
            lw=0.5,
            hatch=hatches[k % len(hatches)],
            label=panel_title(g),
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels([method_label(m, i) for m, i in shown], rotation=30, ha="right", fontsize=8.5)
    ax.set_ylabel("Δ acc_retain vs original (points)", fontsize=9)
    ax.grid(axis="y", alpha=0.25)
    legend = ax.legend(fontsize=8, frameon=False, title="bar hatch: setting", title_fontsize=8)
    for handle in legend.legend_handles:
        if isinstance(handle, Patch):  # the bars' handles: show their hatch on white, not one method's colour
            handle.set_facecolor("white")
    fig.tight_layout()
    return fig


def retain_section(figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    sec = Section("Change in acc_retain (Table 1)", "table-1")
    for key, gs in by_block.items():
        label = block_label(*key)
        t = table1(gs)
        t.title = f"{t.title} — {label}"
        sec.items.append(t)
        if figures is not None:
            caption = (
                f"Table 1 as bars, {label}: change in acc_retain vs the original, mean over alpha; whiskers: "
                f"± std over alpha; one bar per setting (hatch). {seeds_note(gs, [])}"
            )
            sec.items.append(
                figures.make(f"retain-{anchor(label)}", caption, retain_bars(gs, ordered_methods(gs), figures.colour))
            )
    return sec
