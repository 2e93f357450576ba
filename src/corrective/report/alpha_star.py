"""alpha*: the least share of S_m identified with which a method recovers the oracle's acc_corr, per block."""

from __future__ import annotations

import math

from corrective.report.document import WARN, Cell, Section, Table
from corrective.report.groups import (
    FLAT,
    ORACLE,
    TARGET_DROP,
    BlockKey,
    Group,
    block_label,
    method_label,
    ordered_methods,
    short_title,
)

ALPHA_STAR_SHARE = 0.9  # alpha* = smallest alpha with acc_corr >= this share of the oracle's


def alpha_star(g: Group, method: str) -> tuple[float | None, list[float]]:
    """(alpha*, the grid alphas below it with no data); alpha* None when no alpha reaches the bar.

    Raises LookupError when there is no oracle to compare with.
    """
    oracle = g.reference(ORACLE, "acc_corr")
    if oracle is None or math.isnan(oracle.mean):
        raise LookupError("no oracle records")
    gaps: list[float] = []
    for a in g.alphas:
        stat = g.cell(method, a, "acc_corr")
        if stat.n == 0:
            gaps.append(a)
        elif stat.mean >= ALPHA_STAR_SHARE * oracle.mean:
            return a, gaps
    return None, gaps


def alpha_star_table(groups: list[Group]) -> Table:
    rows = []
    gaps_seen = flagged = False
    for method, is_method in ordered_methods(groups):
        if method in FLAT:
            continue
        cells = [Cell(method_label(method, is_method), "" if is_method else "bound")]
        for g in groups:
            try:
                star, gaps = alpha_star(g, method)
            except LookupError:
                cells.append(Cell("no oracle", "hole"))
                continue
            text = "never" if star is None else f"{star:g}"
            cls = ""
            if gaps:
                gaps_seen = True
                text += f" ({', '.join(f'{a:g}' for a in gaps)} missing)"
                cls = "hole"
            if star is not None and g.target_flag(method, star):
                flagged = True
                text, cls = f"{WARN} {text}", "warn"
            cells.append(Cell(text, cls))
        rows.append(cells)
    notes = [
        f"alpha* = smallest alpha whose mean acc_corr reaches {ALPHA_STAR_SHARE:g} × the oracle's mean "
        "acc_corr; 'never' when no alpha of the grid does."
    ]
    if gaps_seen:
        notes.append("Alphas listed as missing have no record: alpha* could be one of them.")
    if flagged:
        notes.append(
            f"{WARN}: at alpha* the target class's clean accuracy (target_acc) is more than "
            f"{100 * TARGET_DROP:g} points below the original model's: the backdoor looks removed because "
            "the model stopped predicting the target class, not because it unlearned the trigger."
        )
    header = ["method"] + [short_title(g) for g in groups]
    if not rows:
        rows = [[Cell("no unlearning method recorded", "hole")] + [Cell("–") for _ in groups]]
    return Table("alpha*: least discovery rate that recovers acc_corr", header, rows, notes)


def alpha_star_section(by_block: dict[BlockKey, list[Group]]) -> Section:
    sec = Section("alpha*", "alpha-star")
    for key, gs in by_block.items():
        t = alpha_star_table(gs)
        t.title = f"{t.title} — {block_label(*key)}"
        sec.items.append(t)
    return sec
