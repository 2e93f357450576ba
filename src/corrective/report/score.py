"""REM's view: its Figure 1 (a map of utility × healed per manipulation and alpha, per method) and its score
table (the mean over manipulations, alphas and seeds)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from corrective.report import draw
from corrective.report.document import Cell, Section, Table, anchor, pct
from corrective.report.groups import (
    FLAT,
    TARGET_DROP,
    BlockKey,
    Group,
    Stat,
    block_label,
    method_label,
    ordered_methods,
    over_seeds,
    seeds_of,
    short_title,
)
from corrective.report.records import Row
from corrective.report.view import Figures, coverage_note, seeds_note

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class ScoreRow:
    """REM's score for one (dataset, model, method, training type): means over manipulations, alphas, seeds."""

    dataset: str
    model: str | None
    method: str
    training: str
    is_method: bool
    score: Stat
    healed: Stat
    utility: Stat
    manipulations: tuple[str, ...]
    all_manipulations: tuple[str, ...]


def score_rows(groups: list[Group]) -> list[ScoreRow]:
    rows: dict[tuple[str, str | None, str, str], list[Row]] = defaultdict(list)  # dataset, model, method, training
    manips: dict[tuple[str, str | None], set[str]] = defaultdict(set)
    seen: set[int] = set()  # a row shared by several groups (an oracle across false-flag shares) counts once
    for g in groups:
        manips[(g.key.dataset, g.key.model)].add(g.key.manipulation)
        for r in g.rows:
            if id(r) not in seen:
                seen.add(id(r))
                rows[(g.key.dataset, g.key.model, r.method, r.training)].append(r)
    out = []
    for (dataset, model, method, training), rs in rows.items():
        out.append(
            ScoreRow(
                dataset,
                model,
                method,
                training,
                any(r.is_method for r in rs),
                Stat.of(r.get("score") for r in rs),
                Stat.of(r.get("healed") for r in rs),
                Stat.of(r.get("utility") for r in rs),
                tuple(sorted({r.manipulation for r in rs if not math.isnan(r.get("score"))})),
                tuple(sorted(manips[(dataset, model)])),
            )
        )
    return sorted(
        out, key=lambda s: (s.dataset, s.model or "", s.method in FLAT, not s.is_method, s.method, s.training)
    )


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
    fig = draw.new_figure(3.4 * cols + 0.8, (0.45 * len(groups) + 1.3) * math.ceil(len(methods) / cols) + 0.3)
    axes = draw.panel_grid(fig, len(methods), ncols=cols)
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


def score_table(groups: list[Group]) -> Table:
    rows = []
    partial = False
    for s in score_rows(groups):
        covered = len(s.manipulations) == len(s.all_manipulations)
        partial |= not covered
        rows.append(
            [
                Cell(s.dataset + (f" · {s.model}" if s.model else "")),
                Cell(method_label(s.method, s.is_method), "" if s.is_method else "bound"),
                Cell(s.training),
                Cell(pct(s.score.mean, 2), "" if covered else "hole"),
                Cell(pct(s.healed.mean, 2)),
                Cell(pct(s.utility.mean, 2)),
                Cell(str(s.score.n)),
                Cell(", ".join(s.manipulations) or "–", "" if covered else "hole"),
            ]
        )
    notes = [
        "REM's score = utility × healed (×100), per run, averaged over every manipulation, alpha and seed "
        "recorded (equal weight per record). utility = clean test accuracy (interclass: outside the two "
        "classes); healed = accuracy on all of S_m against clean labels."
    ]
    if partial:
        notes.append(
            "Rows whose manipulations do not cover every manipulation of their dataset are marked: their "
            "mean is not comparable with the others."
        )
    header = ["dataset", "method", "training", "score", "healed", "utility", "records", "manipulations"]
    return Table("REM score (mean of utility × healed, ×100)", header, rows, notes, (0, 1, 2, 7))


def score_section(groups: list[Group], figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    sec = Section("REM's map and score", "rem-map")
    for key, gs in by_block.items():
        label = block_label(*key)
        if figures is None:
            continue
        methods = ordered_methods(gs)
        caption = (
            f"REM's Figure 1, {label}: per method, utility × healed (×100, "
            f"{over_seeds(seeds_of(gs), std=False)}) for each manipulation (rows, most regular first) and alpha "
            "(columns); grey '–': no record. The original model and the oracle do not depend on alpha: their "
            "one value fills the row. Panel titles: the "
            "mean of the cells shown. Red squares: target_acc more than "
            f"{100 * TARGET_DROP:g} points below the original's — REM's score ignores the target class, so "
            f"there a high score partly comes from erasing it. {seeds_note(gs, [m for m, _ in methods])}"
        )
        sec.items.append(figures.make(f"rem-map-{anchor(label)}", caption, score_map(gs, methods)))
        note = coverage_note(gs)
        if note:
            sec.items.append(note)
    sec.items.append(score_table(groups))
    return sec
