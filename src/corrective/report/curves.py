"""The metric against alpha: the paper's Figure 2 (acc_corr) and Figures 5b/6b (healed), a panel per
setting and a line per method, per block."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from corrective.report import draw
from corrective.report.document import Section, anchor
from corrective.report.groups import (
    TARGET_DROP,
    BlockKey,
    Group,
    block_label,
    over_seeds,
    panel_title,
    seeds_of,
    short_title,
)
from corrective.report.view import Figures, block_intro, coverage_note, seeds_note

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def band_caption(n_seeds: int) -> str:
    """What the lines and bands of Figure 2 are, for the number of seeds they hold."""
    lines = (
        "Lines: one seed's value of the setting the selection rule picked (one seed: no std, no bands). "
        "Dotted: the original model; dashed: the oracle (a bound: it knows all of S_m). "
        if n_seeds == 1
        else f"Lines: mean over {n_seeds} seeds of the setting the selection rule picked; bands: ± sample std over "
        "seeds. Dotted: the original model; dashed: the oracle (a bound: it knows all of S_m), each ± std. "
    )
    return (
        lines + "Dash-dotted curves are bounds, not methods. A missing alpha is a gap in its line, never interpolated."
    )


def by_alpha(groups: list[Group], metric: str, colour: dict[str, draw.Colour]) -> Figure:
    """The paper's Figure 2 (acc_corr) or Figures 5b/6b (healed): one panel per manipulation, a line per method."""
    fig = draw.new_figure(4.6 * min(len(groups), 3), 3.7 * math.ceil(len(groups) / 3) + 0.7)
    axes = draw.panel_grid(fig, len(groups), sharey=True)
    for ax, g in zip(axes, groups, strict=True):
        draw.draw_curves(ax, g, metric, colour, bands=True)
        draw.draw_references(ax, g, metric)
        if metric in ("acc_corr", "healed"):
            draw.mark_flagged(ax, g, metric)
        ax.set_title(panel_title(g), fontsize=10)
        draw.alpha_axis(ax, g.alphas)
        ax.set_ylabel(f"{metric} % ({over_seeds(seeds_of(groups))})", fontsize=9)
    draw.shared_legend(fig, axes)
    return fig


def metric_section(title: str, metric: str, figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    """Figure 2 (acc_corr) or Figures 5b/6b (healed) per block: a panel per manipulation, a line per method."""
    sec = Section(title, anchor(title))
    for key, gs in by_block.items():
        label = block_label(*key)
        sec.items.append(block_intro(label, gs))
        if figures is None:
            continue
        seeds = seeds_note(gs, [m for g in gs for m in g.curves])
        caption = f"{metric} against alpha, {label}. {band_caption(seeds_of(gs))} {seeds}"
        if any(g.backdoor for g in gs):
            caption += (
                f" Red circles: points whose target_acc is more than {100 * TARGET_DROP:g} points below the "
                "original's (the target class erased, not the backdoor unlearned)."
            )
        if any(g.key.manipulation == "random_swap" for g in gs) and metric == "acc_corr":
            caption += " Random swap has no test-side domain: its acc_corr is measured on the swapped samples."
        sec.items.append(figures.make(f"{metric}-{anchor(label)}", caption, by_alpha(gs, metric, figures.colour)))
        note = coverage_note(gs)
        if note:
            sec.items.append(note)
        unrecorded = [short_title(g) for g in gs if all(math.isnan(r.get(metric)) for r in g.rows)]
        if unrecorded:
            sec.items.append(f"{metric} is not recorded for {', '.join(unrecorded)}: those panels are empty.")
    return sec
