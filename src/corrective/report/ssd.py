"""SSD's importance ratios (the paper's Figure 3): the histograms of log10(I_f / I_r) the SSD records carry,
summed over seeds, at the smallest, middle and largest alpha, per block."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING

from corrective.errors import UserError
from corrective.report import draw
from corrective.report.document import Section, anchor
from corrective.report.groups import BlockKey, Group, short_title
from corrective.report.records import RatioHist
from corrective.report.view import Coverage, Figures, Items, absent_manipulations, covered_blocks, seeds_note

if TYPE_CHECKING:
    from matplotlib.figure import Figure

OUTLIER_LOG10 = 3.0  # the histogram legend counts parameters with I_f / I_r >= 10^3 (the paper's outliers: ~800)


def ratio_hists(g: Group) -> dict[float, tuple[RatioHist, int]]:
    """SSD's importance-ratio histograms per alpha, summed over seeds: (histogram, records summed)."""
    by: dict[float, dict[int, RatioHist]] = defaultdict(dict)
    for r in g.rows:
        if r.ratio_hist is not None and r.alpha is not None:
            by[r.alpha][r.seed] = r.ratio_hist
    return {a: (sum_hists(list(h.values())), len(h)) for a, h in sorted(by.items())}


def sum_hists(hists: list[RatioHist]) -> RatioHist:
    """Add histograms over the same bins (a UserError if the bins differ); max_finite is the largest."""
    first = hists[0]
    if any(h.edges != first.edges for h in hists):
        raise UserError(
            "SSD importance-ratio histograms with different bins cannot be added; "
            "re-run the SSD jobs with one version of corrective"
        )
    maxima = [h.max_finite for h in hists if not math.isnan(h.max_finite)]
    return RatioHist(
        first.edges,
        tuple(map(sum, zip(*(h.counts for h in hists), strict=True))),
        sum(h.n_params for h in hists),
        sum(h.n_inf for h in hists),
        sum(h.n_nan for h in hists),
        sum(h.n_zero for h in hists),
        max(maxima) if maxima else math.nan,
    )


def histogram_alphas(alphas: list[float]) -> list[float]:
    """The smallest, middle (nearest 0.5) and largest alpha with histograms, without repeats."""
    return sorted({alphas[0], draw.nearest(alphas, 0.5), alphas[-1]})


def ratio_histograms(groups: list[Group]) -> Figure:
    """The paper's Figure 3: share of parameters per log10(I_f / I_r) bin, the settings overlaid, per alpha."""
    hists = {id(g): ratio_hists(g) for g in groups}
    alphas = histogram_alphas(sorted({a for h in hists.values() for a in h}))
    fig = draw.new_figure(4.6 * len(alphas), 4.1 + 0.16 * len(groups))
    axes = draw.panel_grid(fig, len(alphas), ncols=len(alphas), sharey=True)
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


SSD_COVERAGE = Coverage(
    scope=lambda gs: gs if any(r.method == "ssd" for g in gs for r in g.rows) else [],
    holds=lambda g: bool(ratio_hists(g)),
    absent="{label}: no SSD records, so no importance ratios.",
    older="{label}: the SSD records hold no importance-ratio histogram (written by an older corrective, or by a "
    "run without diagnostics); re-run the SSD jobs to get Figure 3.",
    what="histogram",
    also_lacking=lambda gs: [m for m in ("poison", "interclass") if m in absent_manipulations(gs)],
)


def ssd_section(figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    """The paper's Figure 3 where the SSD records hold their importance-ratio histograms; else why not."""

    def show(label: str, held: list[Group]) -> Items:
        if figures is None:
            return []
        caption = (
            f"Figure 3, {label}: share of the model's parameters per bin of log10(I_f / I_r), the ratio "
            "SSD thresholds to choose what to dampen (default recipe: I_r on the retain set), counts "
            "summed over the seeds given in the legend, at the smallest, middle and largest alpha "
            "recorded. Legend: the largest finite ratio, how many parameters have a ratio of at least "
            "10^3, and how many have I_r = 0 < I_f (inf), summed over those seeds. The paper: poisoning has a "
            "few outlier parameters, interclass confusion none. "
            f"{seeds_note(held, [])}"
        )
        return [figures.make(f"ssd-ratios-{anchor(label)}", caption, ratio_histograms(held))]

    return covered_blocks(Section("SSD's importance ratios (Figure 3)", "ssd-ratios"), by_block, SSD_COVERAGE, show)
