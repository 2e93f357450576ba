"""Figures of one setting: acc_corr (and target_acc for poisoning) and acc_retain against alpha, as PNG bytes.

matplotlib is an optional extra: `available()` says whether it is installed, and it is imported only here,
inside the functions, with the Agg canvas (no pyplot, no display, no global state).
"""

from __future__ import annotations

import importlib.util
import io
import math

from corrective.report.aggregate import FLAT, ORACLE, ORIGINAL, TARGET_DROP, Group

INSTALL_HINT = "pip install 'corrective-unlearning[report]'"
PANELS = {
    "acc_corr": "acc_corr: clean labels on the affected domain",
    "target_acc": "target_acc: clean test accuracy, target class",
    "acc_retain": "acc_retain: outside the affected domain",
}
FLAT_STYLE = {ORACLE: ("black", "--", "oracle (bound)"), ORIGINAL: ("dimgray", ":", "original (none)")}


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def panels(group: Group) -> list[str]:
    """acc_corr, then target_acc beside it for poisoning, then acc_retain."""
    if group.key.manipulation == "poison":
        return ["acc_corr", "target_acc", "acc_retain"]
    return ["acc_corr", "acc_retain"]


def colours(methods: list[str]) -> dict[str, tuple]:
    """One colour per method, the same in every figure of a report."""
    from matplotlib import colormaps

    curves = sorted(m for m in set(methods) if m not in FLAT)
    cmap = colormaps["tab10" if len(curves) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(curves)}


def group_figure(group: Group, colour: dict[str, tuple]) -> bytes:
    """One row of panels over alpha: mean ± std over seeds per method; holes break the lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    names = panels(group)
    fig = Figure(figsize=(4.3 * len(names), 3.9))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(names), sharey=True)
    alphas = group.alphas
    flagged = [(m, a) for m in group.curves for a in alphas if group.target_flag(m, a)]
    for ax, metric in zip(axes, names, strict=True):
        for method in group.curves:
            stats = [group.cell(method, a, metric) for a in alphas]
            ax.errorbar(alphas, [100 * s.mean for s in stats],
                        yerr=[0.0 if math.isnan(s.std) else 100 * s.std for s in stats],
                        color=colour.get(method), marker="o", ms=3.5, lw=1.4, capsize=2.5,
                        ls="-" if group.is_method(method) else "-.",
                        label=method if group.is_method(method) else f"{method} (bound)")
        for method, (col, ls, label) in FLAT_STYLE.items():
            ref = group.reference(method, metric)
            if ref is None or math.isnan(ref.mean):
                continue
            ax.axhline(100 * ref.mean, color=col, ls=ls, lw=1.4, label=label)
            if not math.isnan(ref.std):
                ax.axhspan(100 * (ref.mean - ref.std), 100 * (ref.mean + ref.std), color=col, alpha=0.08, lw=0)
        if metric == "target_acc":
            original = group.reference(ORIGINAL, "target_acc")
            if original is not None and not math.isnan(original.mean):
                ax.axhline(100 * (original.mean - TARGET_DROP), color="red", lw=0.8, alpha=0.6)
        if flagged and metric in ("acc_corr", "target_acc"):
            ax.scatter([a for _, a in flagged], [100 * group.cell(m, a, metric).mean for m, a in flagged],
                       s=110, facecolors="none", edgecolors="red", linewidths=1.6, zorder=5)
        swap = metric == "acc_corr" and group.key.manipulation == "random_swap"
        ax.set_title("acc_corr: clean labels on the swapped samples" if swap else PANELS[metric], fontsize=9.5)
        ax.set_xlabel("alpha (share of S_m identified)", fontsize=9)
        ax.set_xticks(alphas)
        ax.set_xticklabels([f"{a:g}" for a in alphas], fontsize=8)
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.25)
    axes[0].set_ylabel("% (mean ± std over seeds)", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    if flagged:
        handles.append(Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec="red", mew=1.6))
        labels.append(f"target_acc > {100 * TARGET_DROP:g} pts below original")
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8.5, frameon=False)
    fig.suptitle(group.key.label(), fontsize=10.5)
    fig.tight_layout(rect=(0, 0.06 + 0.05 * math.ceil(len(labels) / 5), 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()
