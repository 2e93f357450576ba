"""Each setting in detail: acc_corr, target_acc (poisoning) and acc_retain against alpha with error bars, the
table of every method and alpha with its seed count, the target_acc warnings and the runs that are missing."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING

from corrective.report import draw
from corrective.report.document import WARN, Cell, Figure, Section, Table, anchor, pct, pm
from corrective.report.groups import FLAT, ORACLE, ORIGINAL, TARGET_DROP, Group, Stat, method_label, over_seeds
from corrective.report.view import seeds_note

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

PANELS = {
    "acc_corr": "acc_corr: clean labels on the affected domain",
    "target_acc": "target_acc: clean test accuracy, target class",
    "acc_retain": "acc_retain: outside the affected domain",
}


def holes(g: Group) -> list[str]:
    """One line per method with missing (alpha, seed) pairs."""
    lines = [f"{m}: no record for any seed" for m in FLAT if m not in g.methods]
    for method in g.methods:
        miss = g.missing(method)
        if not miss:
            continue
        if method in FLAT:
            lines.append(f"{method}: no record for seed {', '.join(str(s) for _, s in miss)}")
            continue
        by_alpha: dict[float, list[int]] = defaultdict(list)
        for a, s in miss:
            assert a is not None  # only a flat line's holes lack an alpha, and those were listed above
            by_alpha[a].append(s)
        parts = [
            f"alpha {a:g} (all seeds)" if len(ss) == len(g.seeds) else f"alpha {a:g} seed {', '.join(map(str, ss))}"
            for a, ss in sorted(by_alpha.items())
        ]
        lines.append(f"{method}: {len(miss)} of {len(g.alphas) * len(g.seeds)} runs missing: {'; '.join(parts)}")
    return lines


def target_warning(g: Group) -> list[str]:
    flagged = [f"{m} at alpha {a:g}" for m in g.curves for a in g.alphas if g.target_flag(m, a)]
    if not flagged:
        return []
    original = g.reference(ORIGINAL, "target_acc")
    assert original is not None  # a flag needs the original's target_acc
    return [
        f"{WARN} target_acc falls more than {100 * TARGET_DROP:g} points below the original model's "
        f"({pct(original.mean)} %) for {', '.join(flagged)}. There acc_corr looks recovered and attack_success "
        "low because the model no longer predicts the trigger's target class at all: the backdoor is not "
        "unlearned, a whole class is erased. Read those rows as failures."
    ]


def group_figure(group: Group, colour: dict[str, draw.Colour]) -> MplFigure:
    """One setting in detail: acc_corr, target_acc (poisoning) and acc_retain against alpha, error bars."""
    names = ["acc_corr", "target_acc", "acc_retain"] if group.backdoor else ["acc_corr", "acc_retain"]
    fig = draw.new_figure(4.3 * len(names), 4.3)
    axes = fig.subplots(1, len(names), sharey=True)
    for ax, metric in zip(axes, names, strict=True):
        draw.draw_curves(ax, group, metric, colour, bands=False)
        draw.draw_references(ax, group, metric)
        if metric == "target_acc":
            original = group.reference(ORIGINAL, "target_acc")
            if original is not None and not math.isnan(original.mean):
                ax.axhline(100 * (original.mean - TARGET_DROP), color="red", lw=0.8, alpha=0.6)
        if metric in ("acc_corr", "target_acc"):
            draw.mark_flagged(ax, group, metric)
        swap = metric == "acc_corr" and group.key.manipulation == "random_swap"
        ax.set_title("acc_corr: clean labels on the swapped samples" if swap else PANELS[metric], fontsize=9.5)
        draw.alpha_axis(ax, group.alphas)
    axes[0].set_ylabel(f"% ({over_seeds(len(group.seeds))})", fontsize=9)
    fig.suptitle(group.key.label(), fontsize=10.5)
    draw.shared_legend(fig, list(axes), top=0.95)
    return fig


def group_section(g: Group, colour: dict[str, draw.Colour] | None) -> Section:
    sec = Section(g.key.label(), anchor(g.key.label()), level=3)
    if g.backdoor and g.reference(ORIGINAL, "target_acc") is None:
        sec.warnings.append("No record of the original model (method none): target_acc drops cannot be checked.")
    sec.warnings += target_warning(g)
    if colour is not None:
        caption = (
            f"{over_seeds(len(g.seeds)).capitalize()} per alpha (n per point in the table below). Dashed: oracle "
            "(a bound: it knows all of S_m); dotted: the original model"
            + ("" if len(g.seeds) == 1 else "; bands: ± std")
            + ". Dash-dotted curves are bounds, not methods. A missing alpha breaks its line."
        )
        if g.backdoor:
            caption += (
                f" Red line on target_acc: the original's value minus {100 * TARGET_DROP:g} points; red "
                "circles: points below it."
            )
        sec.items.append(
            Figure(
                anchor(g.key.label()),
                caption + f" {seeds_note([g], g.curves)}",
                draw.png(group_figure(g, colour)),
            )
        )
    sec.items.append(detail_table(g))
    missing = holes(g)
    if missing:
        sec.items.append(
            Table(
                "Missing runs (left as holes, never interpolated)",
                ["what is missing"],
                [[Cell(x, "hole")] for x in missing],
            )
        )
    else:
        sec.items.append("Missing runs: none; every (method, alpha, seed) of the grid has a record.")
    return sec


def detail_table(g: Group) -> Table:
    """Method × alpha: acc_corr (target_acc beside it for poisoning), acc_retain, healed, n seeds, warnings."""
    poison = g.backdoor
    metrics = ["acc_corr"] + (["target_acc"] if poison else []) + ["acc_retain", "healed"]
    metrics += ["attack_success"] if poison else []
    header = ["method", "alpha"] + metrics + ["n seeds"] + (["warning"] if poison else [])
    expected = len(g.seeds)
    rows = []

    def row(label: str, cls: str, alpha: str, stats: list[Stat], n: int, flag: bool) -> list[Cell]:
        cells = [Cell(label, cls), Cell(alpha)]
        cells += [
            Cell(pm(s), "hole" if s.n == 0 else ("warn" if flag and m == "target_acc" else ""))
            for m, s in zip(metrics, stats, strict=True)
        ]
        cells.append(Cell(f"{n}/{expected}", "hole" if n < expected else ""))
        if poison:
            cells.append(Cell(f"{WARN} target class lost" if flag else "", "warn" if flag else ""))
        return cells

    for method in (ORIGINAL, ORACLE):
        refs = [ref for m in metrics if (ref := g.reference(method, m)) is not None]
        if len(refs) < len(metrics):  # no record of this method (then no metric has one)
            rows.append(row(method_label(method, False), "hole", "any", [Stat.of([])] * len(metrics), 0, False))
            continue
        n = len({r.seed for r in g.rows if r.method == method})
        rows.append(
            row(
                method_label(method, method == ORIGINAL),
                "bound",
                "any",
                refs,
                n,
                method != ORIGINAL and g.target_flag(method, None),
            )
        )
    breaks = set()
    for method in g.curves:
        is_method = g.is_method(method)
        breaks.add(len(rows))
        for a in g.alphas:
            n = len(g.values(method, a, "acc_corr"))
            rows.append(
                row(
                    method_label(method, is_method),
                    "" if is_method else "bound",
                    f"{a:g}",
                    [g.cell(method, a, m) for m in metrics],
                    n,
                    g.target_flag(method, a),
                )
            )
    notes = [
        f"In %: the selected setting, {over_seeds(len(g.seeds))}; 'n seeds' = records averaged / seeds "
        "in the grid. 'missing' = no record (not interpolated). The original model and the oracle do not "
        "depend on alpha: their values are averaged over the alphas they were recorded at."
    ]
    if g.key.manipulation == "random_swap":
        notes.append(
            "Random label swap has no test-side domain: acc_corr is measured on the swapped training "
            "samples themselves (it equals healed)."
        )
    if poison:
        notes.append(
            "target_acc = clean test accuracy on the trigger's target class; attack_success = share of "
            "triggered test images of other classes predicted as the target."
        )
    text = (0, len(header) - 1) if poison else (0,)
    return Table(f"{g.key.label()}: results per method and alpha", header, rows, notes, text, breaks)
