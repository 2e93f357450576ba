"""Does the correction last? The relearn probe: each selected model before and after a short fine-tune, beside
the oracle's, as a figure and tables per block, for each kind of probe the records hold: `mixed` (clean data
mixed with a few samples of S_m) and `retain_only` (the clean data alone)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING

from corrective.names import RELEARN_DEFAULT, RELEARN_KINDS, relearn_prefix
from corrective.report import draw
from corrective.report.document import Cell, Section, Table, anchor, pm
from corrective.report.groups import (
    FLAT,
    ORACLE,
    ORIGINAL,
    BlockKey,
    Group,
    Stat,
    method_label,
    over_seeds,
    panel_title,
)
from corrective.report.view import Coverage, Figures, Items, covered_blocks, seeds_note

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RELEARN_ALPHAS = (0.1, 0.5, 1.0)  # the relearn figure's alphas (those of them the results hold)
RELEARN_OFFSETS = (-0.25, 0.0, 0.25)  # x offsets of the alphas beside each method
# Per kind of probe: the marker after it, the oracle's line style after it, the x shift of its segment.
KIND_STYLE: dict[str, tuple[str, str, float]] = {"mixed": ("v", "--", 0.0), "retain_only": ("s", ":", 0.07)}
KIND_WHAT = {
    "mixed": "the clean training data mixed with a fixed 1 % of samples drawn from S_m (the same samples for "
    "every method and alpha of a seed)",
    "retain_only": "the clean training data alone",
}


def kinds_of(g: Group) -> list[str]:
    """The kinds of relearn probe some record of the setting holds, in `names.RELEARN_KINDS` order."""
    return [k for k in RELEARN_KINDS if any(not math.isnan(r.get(f"{relearn_prefix(k)}acc_corr")) for r in g.rows)]


def has_relearn(g: Group) -> bool:
    """Whether any selected record holds the relearn probe's figures (of any kind)."""
    return bool(kinds_of(g))


def after_label(kind: str, kinds: list[str]) -> str:
    """`after` where the records hold the mixed probe alone (the tables of before kinds), else `after <kind>`."""
    return "after" if kinds == [RELEARN_DEFAULT] else f"after {kind}"


def relearn_alphas(g: Group) -> list[float]:
    return [a for a in g.alphas if any(math.isclose(a, b) for b in RELEARN_ALPHAS)]


def before_after(
    g: Group, method: str, alpha: float | None, metric: str, kind: str = RELEARN_DEFAULT
) -> tuple[Stat, Stat]:
    """`metric` of the selected model and that of its copy probed by `kind` (`relearn_<metric>` for mixed,
    `relearn_retain_only_<metric>`), over the seeds that hold both.

    For the original model and the oracle (alpha None) each seed's values are first averaged over the alphas
    they were recorded at, as for their reference lines."""
    per_seed: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in g.rows:
        if r.method == method and (method in FLAT or r.alpha == alpha):
            before, after = r.get(metric), r.get(f"{relearn_prefix(kind)}{metric}")
            if not (math.isnan(before) or math.isnan(after)):
                per_seed[r.seed].append((before, after))
    pairs = [(Stat.of(b for b, _ in v).mean, Stat.of(a for _, a in v).mean) for _, v in sorted(per_seed.items())]
    return Stat.of(b for b, _ in pairs), Stat.of(a for _, a in pairs)


def relearn_table(g: Group) -> Table:
    """Before and after the relearn probe per method at the figure's alphas (target_acc beside for poisoning)."""
    poison = g.backdoor
    kinds = kinds_of(g)
    metrics = ["acc_corr", "healed"] + (["attack_success", "target_acc"] if poison else [])
    afters = [after_label(k, kinds) for k in kinds]
    header = (
        ["method", "alpha"]
        + [f"{m} {w}" for m in metrics for w in ("before", *afters)]
        + [f"Δ acc_corr{w[len('after') :]}" for w in afters]
        + ["n seeds"]
    )
    rows: list[list[Cell]] = []
    breaks: set[int] = set()
    for method in g.curves + [m for m in (ORIGINAL, ORACLE) if m in g.methods]:
        is_method = g.is_method(method) or method == ORIGINAL
        breaks.add(len(rows))
        for alpha in [None] if method in FLAT else relearn_alphas(g):
            per_kind = {k: [before_after(g, method, alpha, m, k) for m in metrics] for k in kinds}
            seeds = max(pairs[0][0].n for pairs in per_kind.values())
            if seeds == 0:
                continue
            cells = [
                Cell(method_label(method, is_method), "" if is_method else "bound"),
                Cell("any" if alpha is None else f"{alpha:g}"),
            ]
            for j, m in enumerate(metrics):
                lost = m == "target_acc" and g.target_flag(method, alpha) if alpha is not None else False
                before = max((per_kind[k][j][0] for k in kinds), key=lambda s: s.n)  # the seeds holding any kind
                cells += [Cell(pm(before), "warn" if lost else "")]
                cells += [Cell(pm(per_kind[k][j][1]) if per_kind[k][j][1].n else "–") for k in kinds]
            for k in kinds:
                before, after = per_kind[k][0]
                cells.append(Cell(f"{100 * (after.mean - before.mean):+.1f}" if after.n else "–"))
            rows.append([*cells, Cell(str(seeds))])
    notes = [
        "In %: the selected model before the probe and its copy after it ("
        + ("one seed" if len(g.seeds) == 1 else f"mean ± std over those of the {len(g.seeds)} seeds holding both")
        + "). Δ acc_corr in points: negative means the correction sprang back. Compare with the oracle, "
        "which never saw S_m and gets the same exposure."
    ]
    if kinds != [RELEARN_DEFAULT]:
        notes.append("; ".join(f"{after_label(k, kinds)}: fine-tuned on {KIND_WHAT[k]}" for k in kinds) + ".")
    if poison:
        notes.append("attack_success after the probe: the backdoor relearned; target_acc beside it, as everywhere.")
    return Table(f"{g.key.label()}: before and after the relearn probe", header, rows, notes, (0,), breaks)


def relearn_panels(groups: list[Group]) -> list[tuple[Group, str]]:
    """(setting, metric) per panel of the relearn figure: acc_corr, and target_acc beside it for poisoning."""
    return [(g, m) for g in groups for m in ("acc_corr", "target_acc") if m == "acc_corr" or g.backdoor]


def relearn_figure(groups: list[Group], colour: dict[str, draw.Colour]) -> Figure:
    """Does the correction last? Per setting and method, a metric before the relearn probe (filled circle) and
    after it, joined by a segment, at the alphas of RELEARN_ALPHAS (written under the points), for each kind of
    probe the records hold: mixed (open triangle; gid 'method@alpha', 'method@any' for the flat references; the
    oracle's value after it as a dashed line) and retain_only (open square, its segment shifted right; gid
    'method@alpha/retain_only'; the oracle's after it dotted)."""
    panels = relearn_panels(groups)
    cols = min(len(panels), 2)
    fig = draw.new_figure(7.2 * cols, 3.9 * math.ceil(len(panels) / cols) + 0.8)
    axes = draw.panel_grid(fig, len(panels), ncols=cols)
    for ax, (g, metric) in zip(axes, panels, strict=True):
        methods = g.curves + [m for m in (ORIGINAL, ORACLE) if m in g.methods]
        alphas = relearn_alphas(g)
        kinds = kinds_of(g)
        for i, method in enumerate(methods):
            col = draw.FLAT_STYLE[method][0] if method in FLAT else colour.get(method)
            slots: list[tuple[float | None, float]] = (
                [(None, 0.0)]
                if method in FLAT
                else [
                    (a, RELEARN_OFFSETS[k] if len(alphas) == 3 else (k - (len(alphas) - 1) / 2) * 0.25)
                    for k, a in enumerate(alphas)
                ]
            )
            for alpha, dx in slots:
                drawn = False
                for kind in kinds:
                    before, after = before_after(g, method, alpha, metric, kind)
                    if before.n == 0:
                        continue
                    marker, _, shift = KIND_STYLE[kind]
                    x, gid = i + dx + shift, f"{method}@{'any' if alpha is None else f'{alpha:g}'}"
                    ax.plot(
                        [x, x],
                        [100 * before.mean, 100 * after.mean],
                        color=col,
                        lw=1.6,
                        gid=gid if kind == RELEARN_DEFAULT else f"{gid}/{kind}",
                    )
                    ax.scatter([x], [100 * before.mean], color=col, s=26, zorder=4)
                    ax.scatter(
                        [x], [100 * after.mean], marker=marker, facecolors="white", edgecolors=col, s=34, zorder=5
                    )
                    drawn = True
                x = i + dx
                if (
                    drawn and alpha is not None
                ):  # written vertically, so that neighbouring alphas' labels cannot overlap
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
        ax.scatter([], [], color="black", s=26, label="before the probe")  # legend entries in neutral black
        for kind in kinds:
            marker, ls, _ = KIND_STYLE[kind]
            after_what = "after the probe" if kinds == [RELEARN_DEFAULT] else f"after the {kind} probe"
            ax.scatter([], [], marker=marker, facecolors="white", edgecolors="black", s=34, label=after_what)
            _, oracle_after = before_after(g, ORACLE, None, metric, kind)
            if oracle_after.n:
                ax.axhline(100 * oracle_after.mean, color="black", ls=ls, lw=0.9, label=f"oracle {after_what}")
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(
            [method_label(m, g.is_method(m) or m == ORIGINAL) for m in methods], rotation=30, ha="right", fontsize=8
        )
        ax.set_ylim(-13, 103)  # room under 0 for the alpha labels
        ax.set_ylabel(f"{metric} % ({over_seeds(len(g.seeds), std=False)})", fontsize=9)
        ax.set_title(f"{panel_title(g)}: {metric}", fontsize=9.5)
        ax.grid(axis="y", alpha=0.25)
    draw.shared_legend(fig, axes)
    return fig


RELEARN_COVERAGE = Coverage(
    holds=has_relearn,
    older="{label}: no relearn records (run the bench with `relearn = true`).",
    what="relearn records",
)


def relearn_section(figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    """Does the correction last? acc_corr before and after the relearn probe, per method, with the oracle's."""

    def show(label: str, probed: list[Group]) -> Items:
        items: Items = []
        alphas = sorted({a for g in probed for a in relearn_alphas(g)})
        kinds = [k for k in RELEARN_KINDS if any(k in kinds_of(g) for g in probed)]
        if figures is not None:
            marks = {
                "mixed": "open triangle, the oracle's after it dashed",
                "retain_only": "open square, shifted right, the oracle's after it dotted",
            }
            caption = (
                f"{label}: each selected model (filled circle) was fine-tuned as a copy for 5 % of the "
                "training steps at the recipe's learning rate on "
                + "; or on ".join(f"{KIND_WHAT[k]} ({k}: {marks[k]})" for k in kinds)
                + f". Per method, alphas {', '.join(f'{a:g}' for a in alphas)} "
                "left to right; the original model and the oracle once. "
                "A genuine removal behaves like the oracle; a masked one springs back. Poisoning panels show "
                f"target_acc beside acc_corr. {seeds_note(probed, [])}"
            )
            items.append(figures.make(f"relearn-{anchor(label)}", caption, relearn_figure(probed, figures.colour)))
        return items + [relearn_table(g) for g in probed]

    return covered_blocks(
        Section("Does the correction last? (relearn probe)", "relearn"), by_block, RELEARN_COVERAGE, show
    )
