"""Timings (the paper's Table 3): unlearn_seconds per method, its ratio to retraining, and what a grid search
costs, as a table and as bars per block."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from corrective.report import draw
from corrective.report.document import Cell, Section, Table, anchor
from corrective.report.groups import FLAT, RETRAIN, BlockKey, Group, GroupKey, Stat, block_label, method_label
from corrective.report.records import Row
from corrective.report.view import Figures, seeds_note

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class TimingRow:
    """unlearn_seconds of one method in one (dataset, model, training): per selected setting, and per grid search.

    For a method handed an expanded forget set, the expansion's seconds are added (computed once per alpha and
    shared by the grid, they count once per selected setting and once per grid search)."""

    dataset: str
    model: str | None
    training: str
    method: str
    is_method: bool
    seconds: Stat
    grid_seconds: Stat | None  # sum over every candidate setting of one (alpha, seed); None without a grid
    retrain_ratio: float


def expand_seconds(row: Row) -> float:
    """The seconds of the expansion the row's method was handed (0 without one)."""
    seconds = row.get("expand_seconds")
    return 0.0 if math.isnan(seconds) else seconds


def timing_rows(groups: list[Group]) -> list[TimingRow]:
    chosen: dict[tuple[str, str | None, str, str], list[Row]] = defaultdict(list)  # dataset, model, training, method
    # the same key -> (setting, alpha, seed) -> the seconds of each grid candidate of that job
    grids: dict[tuple[str, str | None, str, str], dict[tuple[GroupKey, float | None, int], list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    seen: set[int] = set()  # a row shared by several groups counts once
    seen_candidates: set[int] = set()
    for g in groups:
        for r in g.rows:
            if id(r) not in seen:
                seen.add(id(r))
                chosen[(g.key.dataset, g.key.model, g.key.training, r.method)].append(r)
        for r in g.candidates:
            if id(r) in seen_candidates:
                continue
            seen_candidates.add(id(r))
            grids[(g.key.dataset, g.key.model, g.key.training, r.method)][(g.key, r.alpha, r.seed)].append(
                r.get("unlearn_seconds")
            )
    out = []
    for (dataset, model, training, method), rs in chosen.items():
        seconds = Stat.of(r.get("unlearn_seconds") + expand_seconds(r) for r in rs)
        per_job = grids[(dataset, model, training, method)].values()
        expansion = Stat.of(expand_seconds(r) for r in rs).mean if rs else 0.0
        grid = Stat.of(math.fsum(v) + expansion for v in per_job) if any(len(v) > 1 for v in per_job) else None
        retrain = chosen.get((dataset, model, training, RETRAIN))
        base = Stat.of(r.get("unlearn_seconds") for r in retrain).mean if retrain else math.nan
        ratio = seconds.mean / base if base and not math.isnan(base) else math.nan
        out.append(TimingRow(dataset, model, training, method, any(r.is_method for r in rs), seconds, grid, ratio))
    return sorted(
        out, key=lambda t: (t.dataset, t.model or "", t.training, t.method in FLAT, not t.is_method, t.method)
    )


def timing_table(groups: list[Group]) -> Table:
    rows = []
    for t in timing_rows(groups):
        rows.append(
            [
                Cell(block_label(t.dataset, t.model, t.training)),
                Cell(method_label(t.method, t.is_method), "" if t.is_method else "bound"),
                Cell(
                    "–"
                    if t.seconds.n == 0
                    else f"{t.seconds.mean:.2f}" + ("" if math.isnan(t.seconds.std) else f" ± {t.seconds.std:.2f}")
                ),
                Cell(str(t.seconds.n)),
                Cell("n/a" if math.isnan(t.retrain_ratio) else f"{t.retrain_ratio:.3f}"),
                Cell("–" if t.grid_seconds is None else f"{t.grid_seconds.mean:.2f}"),
            ]
        )
    notes = [
        "Wall-clock seconds of the method alone for the selected setting (mean ± std over its records). "
        f"Ratio: to the mean of {RETRAIN} (RewoD) in the same block; n/a without {RETRAIN} records. "
        "Grid search: seconds of every candidate setting of one (alpha, seed) added up, where the records "
        "hold the unselected candidates too. Timings from a shared machine are noisy; compare ratios."
    ]
    header = ["setting", "method", "seconds", "n", f"÷ {RETRAIN}", "grid search s"]
    return Table("Timings (unlearn_seconds)", header, rows, notes, (0, 1))


def timing_bars(rows: list[TimingRow], colour: dict[str, draw.Colour]) -> Figure:
    """Table 3 as bars: seconds per method (log scale), labelled with the ratio to retraining."""
    fig = draw.new_figure(7.5, 0.38 * len(rows) + 1.4)
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


def timing_section(groups: list[Group], figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    sec = Section("Timings (Table 3)", "timings")
    rows = timing_rows(groups)
    sec.items.append(timing_table(groups))
    if figures is None:
        return sec
    timed: dict[BlockKey, list[TimingRow]] = defaultdict(list)
    for t in rows:
        if t.seconds.n and t.seconds.mean > 0:
            timed[(t.dataset, t.model, t.training)].append(t)
    for key, ts in timed.items():
        label = block_label(*key)
        caption = (
            f"Wall time of the selected setting per method, {label}, mean over its records, log scale; "
            f"labels: seconds and the ratio to {RETRAIN} (RewoD) where it ran. Timings from a shared "
            f"machine are noisy: compare ratios. {seeds_note(by_block[key], [])}"
        )
        sec.items.append(figures.make(f"timings-{anchor(label)}", caption, timing_bars(ts, figures.colour)))
    return sec
