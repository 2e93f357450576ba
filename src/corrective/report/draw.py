"""The report's shared drawing helpers: a figure, its panels, one colour per method, the reference lines.

matplotlib is an optional extra: `available()` says whether it is installed, and it is imported only in the
report's figure builders, inside the functions, with the Agg canvas (no pyplot, no display, no global state).
Every figure builder (one per view, beside that view's aggregation and section) returns the figure itself, so
tests can read back the plotted data (lines, bars, images) exactly; `png` turns one into bytes.
"""

from __future__ import annotations

import importlib.util
import io
import math
from typing import TYPE_CHECKING, TypedDict

from corrective.report.groups import FLAT, ORACLE, ORIGINAL, TARGET_DROP, Group

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'corrective-unlearning[report]'"
FLAT_STYLE = {ORACLE: ("black", "--", "oracle (bound)"), ORIGINAL: ("dimgray", ":", "original (none)")}
ALPHA_LABEL = "alpha (share of S_m identified)"

Colour = tuple[float, float, float, float]  # RGBA, as a colormap gives it


class LineStyle(TypedDict):
    """The keyword arguments one method's line shares between `Axes.plot` and `Axes.errorbar`."""

    color: Colour | None
    marker: str
    ms: float
    lw: float
    ls: str
    label: str


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes, without a timestamp (the same figure gives the same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def panel_grid(fig: Figure, n: int, ncols: int = 3, sharey: bool = False) -> list[Axes]:
    """`n` axes in rows of at most `ncols`; the unused cells of the last row are removed."""
    cols = min(n, ncols)
    rows = math.ceil(n / cols)
    axes: list[Axes] = list(fig.subplots(rows, cols, squeeze=False, sharey=sharey).ravel())
    for ax in axes[n:]:
        ax.remove()
    return axes[:n]


def palette(name: str) -> list[Colour]:
    """A qualitative colormap's colours without its greys: grey and black mark the original model and the
    oracle (FLAT_STYLE), and no method may be drawn like them."""
    from matplotlib import colormaps

    cmap = colormaps[name]
    return [c for c in (cmap(i) for i in range(cmap.N)) if not c[0] == c[1] == c[2]]


def colours(methods: list[str]) -> dict[str, Colour]:
    """One colour per method, the same in every figure of a report, none of them grey (see `palette`)."""
    curves = sorted(m for m in set(methods) if m not in FLAT)
    tab10 = palette("tab10")
    pal = tab10 if len(curves) <= len(tab10) else palette("tab20")
    return {m: pal[i % len(pal)] for i, m in enumerate(curves)}


def shared_legend(fig: Figure, axes: list[Axes], top: float = 1.0) -> None:
    """One legend under the panels with every label any panel drew, in first-seen order."""
    entries: dict[str, Artist] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, h)
    rows = math.ceil(len(entries) / 5)
    fig.legend(
        list(entries.values()),
        list(entries),
        loc="lower center",
        ncol=min(len(entries), 5),
        fontsize=8.5,
        frameon=False,
    )
    fig.tight_layout(rect=(0, min(0.4, (0.2 * rows + 0.1) / fig.get_figheight()), 1, top))


def draw_references(ax: Axes, g: Group, metric: str) -> None:
    """The original model and the oracle as horizontal lines (they do not depend on alpha), ± std as a band."""
    for method, (col, ls, label) in FLAT_STYLE.items():
        ref = g.reference(method, metric)
        if ref is None or math.isnan(ref.mean):
            continue
        ax.axhline(100 * ref.mean, color=col, ls=ls, lw=1.4, label=label)
        if not math.isnan(ref.std):
            ax.axhspan(100 * (ref.mean - ref.std), 100 * (ref.mean + ref.std), color=col, alpha=0.08, lw=0)


def draw_curves(ax: Axes, g: Group, metric: str, colour: dict[str, Colour], bands: bool) -> None:
    """One line per method over alpha (mean over seeds; a hole is a gap), ± std as a band or error bars."""
    alphas = g.alphas
    for method in g.curves:
        stats = [g.cell(method, a, metric) for a in alphas]
        mean = [100 * s.mean for s in stats]
        std = [0.0 if math.isnan(s.std) else 100 * s.std for s in stats]
        style: LineStyle = {
            "color": colour.get(method),
            "marker": "o",
            "ms": 3.5,
            "lw": 1.4,
            "ls": "-" if g.is_method(method) else "-.",
            "label": method if g.is_method(method) else f"{method} (bound)",
        }
        if bands:
            ax.plot(alphas, mean, **style)
            ax.fill_between(
                alphas,
                [m - d for m, d in zip(mean, std, strict=True)],
                [m + d for m, d in zip(mean, std, strict=True)],
                color=colour.get(method),
                alpha=0.12,
                lw=0,
            )
        else:
            ax.errorbar(alphas, mean, yerr=std, capsize=2.5, **style)


def mark_flagged(ax: Axes, g: Group, metric: str) -> bool:
    """Red circles on the points whose target_acc is more than TARGET_DROP below the original's."""
    flagged = [(m, a) for m in g.curves for a in g.alphas if g.target_flag(m, a)]
    if flagged:
        ax.scatter(
            [a for _, a in flagged],
            [100 * g.cell(m, a, metric).mean for m, a in flagged],
            s=110,
            facecolors="none",
            edgecolors="red",
            linewidths=1.6,
            zorder=5,
            label=f"target_acc > {100 * TARGET_DROP:g} pts below original",
        )
    return bool(flagged)


def alpha_axis(ax: Axes, alphas: list[float]) -> None:
    ax.set_xlabel(ALPHA_LABEL, fontsize=9)
    ax.set_xticks(alphas)
    ax.set_xticklabels([f"{a:g}" for a in alphas], fontsize=8)
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.25)


def nearest(values: list[float], target: float) -> float:
    return min(values, key=lambda v: (abs(v - target), v))
