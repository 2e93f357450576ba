"""Settings sensitivity (the paper's Figures 7–14): every grid setting of a method, not only the selected one,
against alpha and as acc_corr against acc_retain, per block."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import TYPE_CHECKING

from corrective.report import draw
from corrective.report.document import Section, anchor
from corrective.report.groups import (
    FLAT,
    BlockKey,
    Group,
    Stat,
    block_label,
    ordered_methods,
    over_seeds,
    panel_title,
    seeds_of,
)
from corrective.report.view import Figures, seeds_note

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TRADEOFF_ALPHA = 0.5  # the paper's Figures 11-14 compare settings at this alpha (or the nearest recorded)


def settings_cells(g: Group, method: str, metric: str) -> dict[str, dict[float, Stat]]:
    """Every grid setting of `method` (selected or not): settings JSON -> alpha -> Stat over seeds."""
    by: dict[str, dict[float, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in g.candidates:
        if r.method == method and r.alpha is not None:
            by[r.settings][r.alpha][r.seed] = r.get(metric)  # a repeated record: the last one counts
    return {s: {a: Stat.of(v.values()) for a, v in sorted(per.items())} for s, per in sorted(by.items())}


def varying_keys(settings: list[str]) -> list[str]:
    """The keys whose values differ between the settings (JSON texts)."""
    parsed = [json.loads(s) for s in settings]
    return sorted({k for p in parsed for k in p if len({json.dumps(q.get(k)) for q in parsed}) > 1})


def settings_labels(settings: list[str]) -> list[str]:
    """Short labels: only the keys whose values differ between the settings."""
    keys = varying_keys(settings)
    return [", ".join(f"{k}={value_text(p.get(k))}" for k in keys) or "default" for p in map(json.loads, settings)]


def value_text(value: object) -> str:
    """A setting's value as read: 0.01 for 0.010000000000000002, 1e+06 for 1000000.0."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def in_grid_order(settings: list[str]) -> list[str]:
    """The settings ordered by the values of their varying keys, numbers as numbers (a=2 before a=10)."""
    keys = varying_keys(settings)

    def key(text: str) -> tuple[tuple[int, float, str], ...]:
        p = json.loads(text)
        return tuple(
            (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, json.dumps(v))
            for v in (p.get(k) for k in keys)
        )

    return sorted(settings, key=key)


KEY_TICKS = 6  # settings named on the colour key when there are too many for a legend


def colour_key(fig: Figure, axes: list[Axes], settings: list[str], labels: dict[str, str]) -> None:
    """A colour bar right of `axes` naming every few settings: the key to lines too many for a legend."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig.subplots_adjust(right=0.76)
    top, bottom = axes[0].get_position(), axes[-1].get_position()
    cax = fig.add_axes((0.78, bottom.y0, 0.012, top.y1 - bottom.y0), label="colour key")
    mappable = ScalarMappable(Normalize(0, max(1, len(settings) - 1)), colormaps["viridis"])
    bar = fig.colorbar(mappable, cax=cax)
    ticks = sorted({round(i * (len(settings) - 1) / (KEY_TICKS - 1)) for i in range(KEY_TICKS)})
    bar.set_ticks(ticks, labels=[labels[settings[i]] for i in ticks], fontsize=7)
    bar.set_label(f"{len(settings)} settings, ordered by {', '.join(varying_keys(settings))}", fontsize=8)


def sensitivity(groups: list[Group], method: str, colour: dict[str, draw.Colour]) -> Figure:
    """Figures 7-14: top, acc_corr against alpha for every grid setting; bottom, acc_corr vs acc_retain at 0.5."""
    from matplotlib import colormaps

    fig = draw.new_figure(4.4 * len(groups), 7.6)
    axes = fig.subplots(2, len(groups), squeeze=False)
    settings = in_grid_order(list({s for g in groups for s in settings_cells(g, method, "acc_corr")}))
    labels = dict(zip(settings, settings_labels(settings), strict=True))
    cmap = colormaps["viridis"]
    shade = {s: cmap(i / max(1, len(settings) - 1)) for i, s in enumerate(settings)}
    legend = len(settings) <= 8
    for k, g in enumerate(groups):
        top, bottom = axes[0][k], axes[1][k]
        corr, retain = settings_cells(g, method, "acc_corr"), settings_cells(g, method, "acc_retain")
        alphas = g.alphas
        for s, per in corr.items():
            top.plot(
                alphas,
                [100 * per[a].mean if a in per else math.nan for a in alphas],
                color=shade[s],
                lw=0.9,
                alpha=0.8,
                marker=".",
                ms=3,
                label=labels[s] if legend else None,
            )
        top.plot(
            alphas,
            [100 * g.cell(method, a, "acc_corr").mean for a in alphas],
            color="red",
            lw=2.2,
            label="selected by the rule",
        )
        draw.draw_references(top, g, "acc_corr")
        top.set_title(panel_title(g), fontsize=10)
        draw.alpha_axis(top, alphas)
        at = draw.nearest(alphas, TRADEOFF_ALPHA) if alphas else TRADEOFF_ALPHA
        points = [(100 * retain[s][at].mean, 100 * corr[s][at].mean, s) for s in corr if at in corr[s]]
        bottom.scatter(
            [p[0] for p in points], [p[1] for p in points], c=[shade[p[2]] for p in points], s=22, edgecolors="none"
        )
        chosen = (g.cell(method, at, "acc_retain").mean, g.cell(method, at, "acc_corr").mean)
        bottom.scatter([100 * chosen[0]], [100 * chosen[1]], marker="*", s=160, color="red", zorder=5)
        for ref, (col, _, label) in draw.FLAT_STYLE.items():
            r, c = g.reference(ref, "acc_retain"), g.reference(ref, "acc_corr")
            if r is not None and c is not None:
                bottom.scatter([100 * r.mean], [100 * c.mean], marker="X", s=70, color=col, zorder=4)
                bottom.annotate(
                    label, (100 * r.mean, 100 * c.mean), fontsize=7, xytext=(4, 4), textcoords="offset points"
                )
        bottom.set_title(f"alpha {at:g}: one point per setting (star: selected)", fontsize=9)
        bottom.set_xlabel("acc_retain %", fontsize=9)
        bottom.set_ylim(-3, 103)
        bottom.grid(alpha=0.25)
    axes[0][0].set_ylabel(f"acc_corr % ({over_seeds(seeds_of(groups), std=False)})", fontsize=9)
    axes[1][0].set_ylabel("acc_corr %", fontsize=9)
    fig.suptitle(f"{method}: {len(settings)} settings", fontsize=10.5)
    draw.shared_legend(fig, [axes[0][0]], top=0.96)
    if not legend:
        colour_key(fig, [axes[0][-1], axes[1][-1]], settings, labels)
    return fig


def sensitivity_section(figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    """Figures 7-14: every grid setting of each method with more than one, per block."""
    sec = Section("Settings sensitivity (Figures 7–14)", "sensitivity")
    for key, gs in by_block.items():
        label = block_label(*key)
        n_settings = {
            m: len({s for g in gs for s in settings_cells(g, m, "acc_corr")})
            for m, _ in ordered_methods(gs)
            if m not in FLAT
        }
        gridded = [m for m, n in n_settings.items() if n > 1]
        if not gridded:
            sec.items.append(
                f"{label}: no method with more than one setting in these records (the bench keeps "
                "every candidate of a grid; these results have none)."
            )
            continue
        if figures is None:
            continue
        for method in gridded:
            caption = (
                f"{method}, {label}: top, acc_corr against alpha for each of its {n_settings[method]} grid "
                f"settings ({over_seeds(seeds_of(gs), std=False)}; thin lines, coloured by setting: legend, or "
                "with many settings a colour key) and the setting the rule selected per alpha and seed (red); bottom, "
                f"acc_corr against acc_retain per setting at alpha {TRADEOFF_ALPHA:g} (or the nearest "
                f"recorded), the selected one as a star, the original and the oracle as crosses. "
                f"{seeds_note(gs, [method])}"
            )
            sec.items.append(
                figures.make(f"sensitivity-{method}-{anchor(label)}", caption, sensitivity(gs, method, figures.colour))
            )
    return sec
