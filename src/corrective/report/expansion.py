"""Forget-set expansion: precision and recall of S_m of each strategy's expanded set against alpha, from the
bench's expand-stage records, as curves and a table per block."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from corrective.report import draw
from corrective.report.document import Cell, Section, Table, anchor, pm
from corrective.report.groups import BlockKey, Stat, block_label, over_seeds, rank
from corrective.report.records import ExpansionRow, Results
from corrective.report.view import Figures

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class ExpansionCell:
    """One expansion strategy at one alpha of one setting, over seeds."""

    dataset: str
    model: str | None
    training: str
    manipulation: str
    size: float | None
    panel: str  # the setting: manipulation, size, settings, false flags
    strategy: str
    alpha: float
    precision: Stat
    recall: Stat
    n_expanded: Stat
    seconds: Stat
    chosen: tuple[str, ...]  # what `auto` picked, over seeds


def expansion_cells(rows: list[ExpansionRow]) -> list[ExpansionCell]:
    """The bench's expand-stage records averaged over seeds, per (setting, strategy, alpha)."""
    by: dict[tuple[str, str | None, str, str, float | None, str, str, float], list[ExpansionRow]] = defaultdict(list)
    for r in rows:
        by[(r.dataset, r.model, r.training, r.manipulation, r.size, r.panel(), r.strategy, r.alpha)].append(r)
    out = [
        ExpansionCell(
            *key,
            Stat.of(r.precision for r in rs),
            Stat.of(r.recall for r in rs),
            Stat.of(r.n_expanded for r in rs),
            Stat.of(r.seconds for r in rs),
            tuple(sorted({r.chosen for r in rs})),
        )
        for key, rs in by.items()
    ]
    return sorted(
        out,
        key=lambda c: (
            c.dataset,
            c.model or "",
            c.training,
            rank(c.manipulation),
            c.manipulation,
            -1.0 if c.size is None else c.size,
            c.panel,
            c.strategy,
            c.alpha,
        ),
    )


def expansion_curves(panels: dict[str, list[ExpansionCell]]) -> Figure:
    """Per manipulation, precision (solid) and recall (dashed) of S_m of each expansion strategy against alpha."""
    from matplotlib import colormaps

    names = list(panels)
    strategies = sorted({c.strategy for cells in panels.values() for c in cells})
    n = max(c.precision.n for cells in panels.values() for c in cells)
    seeds = over_seeds(n) if n == 1 else f"mean ± std over up to {n} seeds"
    cmap = colormaps["tab10"]
    colour = {s: cmap(i % cmap.N) for i, s in enumerate(strategies)}
    fig = draw.new_figure(4.6 * min(len(names), 3), 3.7 * math.ceil(len(names) / 3) + 0.7)
    axes = draw.panel_grid(fig, len(names), sharey=True)
    for ax, name in zip(axes, names, strict=True):
        cells = panels[name]
        alphas = sorted({c.alpha for c in cells})
        for strategy in strategies:
            mine = sorted((c for c in cells if c.strategy == strategy), key=lambda c: c.alpha)
            if not mine:
                continue
            xs = [c.alpha for c in mine]
            for attr, ls, what in (("precision", "-", "precision"), ("recall", "--", "recall")):
                stats = [getattr(c, attr) for c in mine]
                ax.errorbar(
                    xs,
                    [100 * st.mean for st in stats],
                    yerr=[0.0 if math.isnan(st.std) else 100 * st.std for st in stats],
                    capsize=2.5,
                    color=colour[strategy],
                    ls=ls,
                    marker="o",
                    ms=3.5,
                    lw=1.4,
                    label=f"{strategy} {what}",
                )
        ax.set_title(name, fontsize=10)
        draw.alpha_axis(ax, alphas)
        ax.set_ylabel(f"% of S_m ({seeds})", fontsize=9)
    draw.shared_legend(fig, axes)
    return fig


def expansion_section(results: Results, figures: Figures | None) -> Section:
    """Forget-set expansion: per block, precision and recall of S_m against alpha per manipulation (a line per
    strategy), and the full table (strategy x manipulation x alpha: precision, recall, n added, seconds)."""
    sec = Section("Forget-set expansion", "expansion")
    cells = expansion_cells(results.expansions)
    if not cells:
        sec.items.append(
            'No expansion records (the spec\'s expand axis was ["none"] and no method expands S_f '
            "itself): nothing to show."
        )
        return sec
    sec.items.append(
        "Each strategy of corrective.expand adds to S_f the training samples it scores as manipulated, "
        "seeing only the original model, the training data as given and S_f; precision and recall are "
        "of the expanded set (S_f included) against the true S_m, which only the benchmark knows. "
        "Methods handed an expanded set appear in every figure as method+strategy."
    )
    by_block: dict[BlockKey, list[ExpansionCell]] = defaultdict(list)
    for c in cells:
        by_block[(c.dataset, c.model, c.training)].append(c)
    for key, cs in by_block.items():
        label = block_label(*key)
        panels: dict[str, list[ExpansionCell]] = defaultdict(list)
        for c in cs:
            panels[c.panel].append(c)
        n = max(c.precision.n for c in cs)
        seeds_text = over_seeds(n) if n == 1 else f"mean ± std over up to {n} seeds"
        if figures is not None:
            caption = (
                f"Expansion quality, {label}: precision (solid) and recall (dashed) of S_m of the expanded "
                f"forget set of each strategy against alpha, {seeds_text}."
            )
            sec.items.append(figures.make(f"expansion-{anchor(label)}", caption, expansion_curves(dict(panels))))
        header = ["strategy", "setting", "alpha", "precision", "recall", "n added", "seconds", "chosen"]
        rows = [
            [
                Cell(c.strategy),
                Cell(c.panel),
                Cell(f"{c.alpha:g}"),
                Cell(pm(c.precision)),
                Cell(pm(c.recall)),
                Cell("–" if c.n_expanded.n == 0 else f"{c.n_expanded.mean:.1f}"),
                Cell("–" if c.seconds.n == 0 else f"{c.seconds.mean:.2f}"),
                Cell(", ".join(c.chosen)),
            ]
            for c in sorted(cs, key=lambda c: (c.strategy, rank(c.manipulation), c.panel, c.alpha))
        ]
        sec.items.append(
            Table(
                f"Expansion — {label} (precision and recall in %, {seeds_text}; n added and seconds: "
                + ("one seed)" if n == 1 else "means)"),
                header,
                rows,
                text_cols=(0, 1, 7),
            )
        )
    return sec
