"""The report's figures, built from aggregates only, as matplotlib `Figure`s; `png` turns one into bytes.

matplotlib is an optional extra: `available()` says whether it is installed, and it is imported only here,
inside the functions, with the Agg canvas (no pyplot, no display, no global state). Every figure builder
returns the figure itself, so tests can read back the plotted data (lines, bars, images) exactly.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
from typing import TYPE_CHECKING, TypedDict

from corrective.report.aggregate import FLAT, ORACLE, ORIGINAL, TARGET_DROP, ExpansionCell, Group, Stat, TimingRow

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'corrective-unlearning[report]'"
PANELS = {
    "acc_corr": "acc_corr: clean labels on the affected domain",
    "target_acc": "target_acc: clean test accuracy, target class",
    "acc_retain": "acc_retain: outside the affected domain",
}
FLAT_STYLE = {ORACLE: ("black", "--", "oracle (bound)"), ORIGINAL: ("dimgray", ":", "original (none)")}
ALPHA_LABEL = "alpha (share of S_m identified)"
TRADEOFF_ALPHA = 0.5  # the paper's Figures 11-14 compare settings at this alpha (or the nearest recorded)
OUTLIER_LOG10 = 3.0  # the histogram legend counts parameters with I_f / I_r >= 10^3 (the paper's outliers: ~800)

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


def panel_title(g: Group) -> str:
    return f"{g.key.manipulation} ({g.key.setting()})" if g.key.setting() else g.key.manipulation


def short_title(g: Group) -> str:
    parts = [g.key.manipulation] + ([] if g.key.size is None else [f"{g.key.size:g}"])
    parts += [g.key.variant] if g.key.variant else []
    parts += [] if g.key.false_flags is None else [f"ff {g.key.false_flags:g}"]
    return " ".join(parts)


def method_label(method: str, is_method: bool) -> str:
    """'original (none)' for the original model; bounds (handed S_m, not methods) as 'name (bound)'."""
    if method == ORIGINAL:
        return "original (none)"
    return method if is_method else f"{method} (bound)"


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


def by_alpha(groups: list[Group], metric: str, colour: dict[str, Colour]) -> Figure:
    """The paper's Figure 2 (acc_corr) or Figures 5b/6b (healed): one panel per manipulation, a line per method."""
    fig = new_figure(4.6 * min(len(groups), 3), 3.7 * math.ceil(len(groups) / 3) + 0.7)
    axes = panel_grid(fig, len(groups), sharey=True)
    for ax, g in zip(axes, groups, strict=True):
        draw_curves(ax, g, metric, colour, bands=True)
        draw_references(ax, g, metric)
        if metric in ("acc_corr", "healed"):
            mark_flagged(ax, g, metric)
        ax.set_title(panel_title(g), fontsize=10)
        alpha_axis(ax, g.alphas)
        ax.set_ylabel(f"{metric} % (mean ± std over seeds)", fontsize=9)
    shared_legend(fig, axes)
    return fig


def group_figure(group: Group, colour: dict[str, Colour]) -> Figure:
    """One setting in detail: acc_corr, target_acc (poisoning) and acc_retain against alpha, error bars."""
    names = ["acc_corr", "target_acc", "acc_retain"] if group.backdoor else ["acc_corr", "acc_retain"]
    fig = new_figure(4.3 * len(names), 4.3)
    axes = fig.subplots(1, len(names), sharey=True)
    for ax, metric in zip(axes, names, strict=True):
        draw_curves(ax, group, metric, colour, bands=False)
        draw_references(ax, group, metric)
        if metric == "target_acc":
            original = group.reference(ORIGINAL, "target_acc")
            if original is not None and not math.isnan(original.mean):
                ax.axhline(100 * (original.mean - TARGET_DROP), color="red", lw=0.8, alpha=0.6)
        if metric in ("acc_corr", "target_acc"):
            mark_flagged(ax, group, metric)
        swap = metric == "acc_corr" and group.key.manipulation == "random_swap"
        ax.set_title("acc_corr: clean labels on the swapped samples" if swap else PANELS[metric], fontsize=9.5)
        alpha_axis(ax, group.alphas)
    axes[0].set_ylabel("% (mean ± std over seeds)", fontsize=9)
    fig.suptitle(group.key.label(), fontsize=10.5)
    shared_legend(fig, list(axes), top=0.95)
    return fig


def retain_bars(groups: list[Group], methods: list[tuple[str, bool]], colour: dict[str, Colour]) -> Figure:
    """The paper's Table 1 as bars: change in acc_retain per method, mean ± std over alpha, one bar per setting."""
    from matplotlib.patches import Patch

    shown = [(m, i) for m, i in methods if m != ORIGINAL]
    fig = new_figure(min(14.0, max(6.0, 0.3 * len(shown) * len(groups) + 1.5)), 4.2)
    ax = fig.subplots()
    width = 0.8 / len(groups)
    hatches = ["", "//", "..", "xx", "\\\\", "oo"]
    for k, g in enumerate(groups):
        deltas = [g.retain_change(m)[0] for m, _ in shown]
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


def score_matrix(g: Group, method: str, alphas: list[float | None]) -> list[float]:
    """REM's map row of one setting: mean score (utility × healed) per alpha; the flat references repeat."""
    if method in FLAT:
        ref = g.reference(method, "score")
        return [math.nan if ref is None else ref.mean] * len(alphas)
    return [math.nan if a is None else g.cell(method, a, "score").mean for a in alphas]


def score_map(groups: list[Group], methods: list[tuple[str, bool]]) -> Figure:
    """REM's Figure 1: per method, manipulation (rows, most regular first) × alpha coloured by utility × healed."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    recorded = sorted({a for g in groups for a in g.alphas})
    alphas: list[float | None] = [*recorded] if recorded else [None]  # None: "any" alpha
    cmap = colormaps["viridis"].with_extremes(bad="#dddddd")
    cols = min(len(methods), 4)
    fig = new_figure(3.4 * cols + 0.8, (0.45 * len(groups) + 1.3) * math.ceil(len(methods) / cols) + 0.3)
    axes = panel_grid(fig, len(methods), ncols=cols)
    image = None
    for k, (ax, (method, is_method)) in enumerate(zip(axes, methods, strict=True)):
        grid = np.array([score_matrix(g, method, alphas) for g in groups], dtype=float) * 100
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=100, aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(
                j,
                i,
                "–" if math.isnan(v) else f"{v:.0f}",
                ha="center",
                va="center",
                fontsize=6.5,
                color="black" if math.isnan(v) or v > 60 else "white",
            )
        for i, g in enumerate(groups):
            for j, a in enumerate(alphas):
                if method not in FLAT and a is not None and g.target_flag(method, a):
                    ax.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, ec="red", lw=1.6))
        mean = Stat.of(grid.ravel().tolist()).mean
        label = method_label(method, is_method)
        ax.set_title(f"{label}: {mean:.1f}" if not math.isnan(mean) else label, fontsize=9)
        ax.set_xticks(range(len(alphas)))
        ax.set_xticklabels(["any" if a is None else f"{a:g}" for a in alphas], fontsize=6.5)
        ax.set_yticks(range(len(groups)))
        ax.set_yticklabels([short_title(g) for g in groups] if k % cols == 0 else [], fontsize=7.5)
        ax.set_xlabel("alpha", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    if image is not None:
        bar = fig.colorbar(image, ax=axes, fraction=0.025, pad=0.02)
        bar.set_label("utility × healed (×100)", fontsize=8)
    return fig


def nearest(values: list[float], target: float) -> float:
    return min(values, key=lambda v: (abs(v - target), v))


def histogram_alphas(alphas: list[float]) -> list[float]:
    """The smallest, middle (nearest 0.5) and largest alpha with histograms, without repeats."""
    return sorted({alphas[0], nearest(alphas, 0.5), alphas[-1]})


def ratio_histograms(groups: list[Group]) -> Figure:
    """The paper's Figure 3: share of parameters per log10(I_f / I_r) bin, the settings overlaid, per alpha."""
    hists = {id(g): g.ratio_hists() for g in groups}
    alphas = histogram_alphas(sorted({a for h in hists.values() for a in h}))
    fig = new_figure(4.6 * len(alphas), 4.1 + 0.16 * len(groups))
    axes = panel_grid(fig, len(alphas), ncols=len(alphas), sharey=True)
    for ax, alpha in zip(axes, alphas, strict=True):
        for g in groups:
            if alpha not in hists[id(g)]:
                continue
            h, n = hists[id(g)][alpha]
            top = "–" if math.isnan(h.max_finite) else f"{h.max_finite:.3g}"
            above = sum(c for c, lo in zip(h.counts, h.edges, strict=False) if lo >= OUTLIER_LOG10)
            ax.stairs(
                [c / h.n_params for c in h.counts],
                h.edges,
                lw=1.5,
                label=f"{short_title(g)}: max {top}, {above} ≥ 1e{OUTLIER_LOG10:g}, {h.n_inf} inf "
                f"({n} seed{'s' * (n != 1)})",
            )
        ax.set_yscale("log")
        ax.set_title(f"alpha {alpha:g}", fontsize=10)
        ax.set_xlabel("log10(I_f / I_r) (ends: clipped)", fontsize=9)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=7.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    axes[0].set_ylabel("share of parameters", fontsize=9)
    fig.tight_layout()
    return fig


def settings_labels(settings: list[str]) -> list[str]:
    """Short labels: only the keys whose values differ between the settings."""
    parsed = [json.loads(s) for s in settings]
    keys = sorted({k for p in parsed for k in p if len({json.dumps(q.get(k)) for q in parsed}) > 1})
    return [", ".join(f"{k}={p.get(k)}" for k in keys) or "default" for p in parsed]


def sensitivity(groups: list[Group], method: str, colour: dict[str, Colour]) -> Figure:
    """Figures 7-14: top, acc_corr against alpha for every grid setting; bottom, acc_corr vs acc_retain at 0.5."""
    from matplotlib import colormaps

    fig = new_figure(4.4 * len(groups), 7.6)
    axes = fig.subplots(2, len(groups), squeeze=False)
    settings = sorted({s for g in groups for s in g.settings_cells(method, "acc_corr")})
    labels = dict(zip(settings, settings_labels(settings), strict=True))
    cmap = colormaps["viridis"]
    shade = {s: cmap(i / max(1, len(settings) - 1)) for i, s in enumerate(settings)}
    legend = len(settings) <= 8
    for k, g in enumerate(groups):
        top, bottom = axes[0][k], axes[1][k]
        corr, retain = g.settings_cells(method, "acc_corr"), g.settings_cells(method, "acc_retain")
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
        draw_references(top, g, "acc_corr")
        top.set_title(panel_title(g), fontsize=10)
        alpha_axis(top, alphas)
        at = nearest(alphas, TRADEOFF_ALPHA) if alphas else TRADEOFF_ALPHA
        points = [(100 * retain[s][at].mean, 100 * corr[s][at].mean, s) for s in corr if at in corr[s]]
        bottom.scatter(
            [p[0] for p in points], [p[1] for p in points], c=[shade[p[2]] for p in points], s=22, edgecolors="none"
        )
        chosen = (g.cell(method, at, "acc_retain").mean, g.cell(method, at, "acc_corr").mean)
        bottom.scatter([100 * chosen[0]], [100 * chosen[1]], marker="*", s=160, color="red", zorder=5)
        for ref, (col, _, label) in FLAT_STYLE.items():
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
    axes[0][0].set_ylabel("acc_corr % (mean over seeds)", fontsize=9)
    axes[1][0].set_ylabel("acc_corr %", fontsize=9)
    fig.suptitle(
        f"{method}: {len(settings)} settings" + ("" if legend else " (colour: order in the grid, dark to light)"),
        fontsize=10.5,
    )
    shared_legend(fig, [axes[0][0]], top=0.96)
    return fig


RELEARN_OFFSETS = (-0.25, 0.0, 0.25)  # x offsets of the alphas beside each method


def relearn_panels(groups: list[Group]) -> list[tuple[Group, str]]:
    """(setting, metric) per panel of the relearn figure: acc_corr, and target_acc beside it for poisoning."""
    return [(g, m) for g in groups for m in ("acc_corr", "target_acc") if m == "acc_corr" or g.backdoor]


def relearn_figure(groups: list[Group], colour: dict[str, Colour]) -> Figure:
    """Does the correction last? Per setting and method, a metric before the relearn probe (filled circle) and
    after it (open triangle), joined by a segment (gid 'method@alpha', 'method@any' for the flat references), at
    the alphas of RELEARN_ALPHAS (written under the points); the oracle's value after the probe as a dashed line."""
    panels = relearn_panels(groups)
    cols = min(len(panels), 2)
    fig = new_figure(7.2 * cols, 3.9 * math.ceil(len(panels) / cols) + 0.8)
    axes = panel_grid(fig, len(panels), ncols=cols)
    for ax, (g, metric) in zip(axes, panels, strict=True):
        methods = g.curves + [m for m in (ORIGINAL, ORACLE) if m in g.methods]
        alphas = g.relearn_alphas()
        for i, method in enumerate(methods):
            col = FLAT_STYLE[method][0] if method in FLAT else colour.get(method)
            slots: list[tuple[float | None, float]] = (
                [(None, 0.0)]
                if method in FLAT
                else [
                    (a, RELEARN_OFFSETS[k] if len(alphas) == 3 else (k - (len(alphas) - 1) / 2) * 0.25)
                    for k, a in enumerate(alphas)
                ]
            )
            for alpha, dx in slots:
                before, after = g.before_after(method, alpha, metric)
                if before.n == 0:
                    continue
                x = i + dx
                ax.plot(
                    [x, x],
                    [100 * before.mean, 100 * after.mean],
                    color=col,
                    lw=1.6,
                    gid=f"{method}@{'any' if alpha is None else f'{alpha:g}'}",
                )
                if alpha is not None:  # written vertically, so that neighbouring alphas' labels cannot overlap
                    ax.text(
                        x,
                        0.02,
                        f"{alpha:g}",
                        transform=ax.get_xaxis_transform(),
                        ha="center",
                        va="bottom",
                        rotation=90,
                        fontsize=6.5,
                        color="dimgray",
                    )
                ax.scatter([x], [100 * before.mean], color=col, s=26, zorder=4)
                ax.scatter([x], [100 * after.mean], marker="v", facecolors="white", edgecolors=col, s=34, zorder=5)
        ax.scatter([], [], color="black", s=26, label="before the probe")  # legend entries in neutral black
        ax.scatter([], [], marker="v", facecolors="white", edgecolors="black", s=34, label="after the probe")
        _, oracle_after = g.before_after(ORACLE, None, metric)
        if oracle_after.n:
            ax.axhline(100 * oracle_after.mean, color="black", ls="--", lw=0.9, label="oracle after the probe")
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(
            [method_label(m, g.is_method(m) or m == ORIGINAL) for m in methods], rotation=30, ha="right", fontsize=8
        )
        ax.set_ylim(-13, 103)  # room under 0 for the alpha labels
        ax.set_ylabel(f"{metric} % (mean over seeds)", fontsize=9)
        ax.set_title(f"{panel_title(g)}: {metric}", fontsize=9.5)
        ax.grid(axis="y", alpha=0.25)
    shared_legend(fig, axes)
    return fig


def timing_bars(rows: list[TimingRow], colour: dict[str, Colour]) -> Figure:
    """Table 3 as bars: seconds per method (log scale), labelled with the ratio to retraining."""
    fig = new_figure(7.5, 0.38 * len(rows) + 1.4)
    ax = fig.subplots()
    ys = list(range(len(rows)))[::-1]
    ax.barh(
        ys,
        [t.seconds.mean for t in rows],
        color=[colour.get(t.method, "lightgray") for t in rows],
        edgecolor="black",
        lw=0.5,
    )
    for y, t in zip(ys, rows, strict=True):
        ratio = "" if math.isnan(t.retrain_ratio) else f"  {t.retrain_ratio:.3g}× retrain"
        ax.text(t.seconds.mean, y, f" {t.seconds.mean:.3g} s{ratio}", va="center", fontsize=8)
    ax.set_yticks(ys)
    ax.set_yticklabels([method_label(t.method, t.is_method) for t in rows], fontsize=8.5)
    ax.set_xscale("log")
    ax.set_xlabel("unlearn_seconds, selected setting (mean over records, log scale)", fontsize=9)
    ax.grid(axis="x", alpha=0.25)
    ax.margins(x=0.35)
    fig.tight_layout()
    return fig


def expansion_curves(panels: dict[str, list[ExpansionCell]]) -> Figure:
    """Per manipulation, precision (solid) and recall (dashed) of S_m of each expansion strategy against alpha."""
    from matplotlib import colormaps

    names = list(panels)
    strategies = sorted({c.strategy for cells in panels.values() for c in cells})
    cmap = colormaps["tab10"]
    colour = {s: cmap(i % cmap.N) for i, s in enumerate(strategies)}
    fig = new_figure(4.6 * min(len(names), 3), 3.7 * math.ceil(len(names) / 3) + 0.7)
    axes = panel_grid(fig, len(names), sharey=True)
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
        alpha_axis(ax, alphas)
        ax.set_ylabel("% of S_m (mean ± std over seeds)", fontsize=9)
    shared_legend(fig, axes)
    return fig
