"""The report as a document: sections of paragraphs, warnings, figures and tables, built from aggregates only.

Writers (`html.py`, `markdown.py`) turn it into a page; this module decides what is shown and how numbers read.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from corrective.names import MANIPULATIONS
from corrective.report import plots
from corrective.report.aggregate import (
    ALPHA_STAR_SHARE,
    FLAT,
    ORACLE,
    ORIGINAL,
    RETRAIN,
    TARGET_DROP,
    BlockKey,
    ExpansionCell,
    Group,
    Stat,
    TimingRow,
    build_groups,
    expansion_cells,
    rank,
    score_rows,
    timing_rows,
)
from corrective.report.records import Results

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

WARN = "⚠"
HOLE = "missing"


@dataclass(frozen=True)
class Cell:
    text: str
    cls: str = ""  # "warn", "hole", "bound" or "" (writers may style them)


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)
    text_cols: tuple[int, ...] = (0,)  # columns holding names or words (left-aligned); the rest are numbers
    breaks: set[int] = field(default_factory=set)  # row indices that start a new block (a rule above them)


@dataclass
class Figure:
    name: str  # file stem, e.g. for the markdown's PNG files
    caption: str
    png: bytes


@dataclass
class Section:
    title: str
    anchor: str
    warnings: list[str] = field(default_factory=list)
    items: list[str | Figure | Table] = field(default_factory=list)  # in page order; a str is a paragraph
    level: int = 2


@dataclass
class Document:
    title: str
    facts: list[str]
    notes: list[str]
    sections: list[Section]


def pct(x: float, digits: int = 1) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.{digits}f}"


def pm(stat: Stat) -> str:
    """'90.5 ± 1.2' in percent; no ± for a single value."""
    if stat.n == 0:
        return HOLE
    return pct(stat.mean) if math.isnan(stat.std) else f"{pct(stat.mean)} ± {pct(stat.std)}"


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def setting_label(g: Group) -> str:
    """A group's column label inside its (dataset, model, training) block."""
    return plots.short_title(g)


def block_label(dataset: str, model: str | None, training: str) -> str:
    return " · ".join([dataset] + ([model] if model else []) + [f"{training} training"])


def blocks(groups: list[Group]) -> dict[BlockKey, list[Group]]:
    out: dict[BlockKey, list[Group]] = defaultdict(list)
    for g in groups:
        out[(g.key.dataset, g.key.model, g.key.training)].append(g)
    return out


def ordered_methods(groups: list[Group]) -> list[tuple[str, bool]]:
    seen: dict[str, bool] = {}
    for g in groups:
        for m in g.methods:
            seen.setdefault(m, g.is_method(m))
    return sorted(seen.items(), key=lambda mi: (mi[0] in FLAT, not mi[1], mi[0]))


def table1(groups: list[Group]) -> Table:
    """The paper's Table 1: change in acc_retain vs the original model, mean ± std over alpha, in points."""
    rows = []
    short = False
    for method, is_method in ordered_methods(groups):
        if method == ORIGINAL:
            continue
        cells = [Cell(plots.method_label(method, is_method), "" if is_method else "bound")]
        for g in groups:
            delta, k = g.retain_change(method)
            partial = method not in FLAT and 0 < k < len(g.alphas)
            short |= partial
            spread = "" if math.isnan(delta.std) else f" ± {100 * delta.std:.2f}"
            cells.append(
                Cell(HOLE, "hole")
                if delta.n == 0
                else Cell(f"{100 * delta.mean:+.2f}{spread}{' †' if partial else ''}")
            )
        rows.append(cells)
    original = [Cell("original acc_retain (%)")]
    for g in groups:
        ref = g.reference(ORIGINAL, "acc_retain")
        original.append(Cell(HOLE, "hole") if ref is None else Cell(pct(ref.mean, 2)))
    notes = [
        "Change in acc_retain of the selected setting vs the original model, in points: mean ± std over the "
        "alphas (each alpha's value is itself a mean over seeds). Positive: the method kept or improved "
        "accuracy outside the affected domain."
    ]
    if short:
        notes.append("† averaged over fewer alphas than the grid: some alphas have no record (see the holes below).")
    if any(g.reference(ORIGINAL, "acc_retain") is None for g in groups):
        notes.append("'missing' in a whole column: no record of the original model (method none) for that setting.")
    header = ["method"] + [setting_label(g) for g in groups]
    return Table("Table 1: change in acc_retain (points)", header, rows + [original], notes)


def alpha_star_table(groups: list[Group]) -> Table:
    rows = []
    gaps_seen = flagged = False
    for method, is_method in ordered_methods(groups):
        if method in FLAT:
            continue
        cells = [Cell(plots.method_label(method, is_method), "" if is_method else "bound")]
        for g in groups:
            try:
                star, gaps = g.alpha_star(method)
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
    header = ["method"] + [setting_label(g) for g in groups]
    if not rows:
        rows = [[Cell("no unlearning method recorded", "hole")] + [Cell("–") for _ in groups]]
    return Table("alpha*: least discovery rate that recovers acc_corr", header, rows, notes)


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
            rows.append(row(plots.method_label(method, False), "hole", "any", [Stat.of([])] * len(metrics), 0, False))
            continue
        n = len({r.seed for r in g.rows if r.method == method})
        rows.append(
            row(
                plots.method_label(method, method == ORIGINAL),
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
                    plots.method_label(method, is_method),
                    "" if is_method else "bound",
                    f"{a:g}",
                    [g.cell(method, a, m) for m in metrics],
                    n,
                    g.target_flag(method, a),
                )
            )
    notes = [
        "In %: mean ± sample std over seeds of the selected setting; 'n seeds' = records averaged / seeds "
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


DEFENCE_COLUMNS = (("C-Acc", "c_acc"), ("ASR", "asr"), ("R-Acc", "r_acc"), ("DER", "der"), ("target_acc", "target_acc"))


def defence_table(g: Group) -> Table:
    """A poisoning setting in BackdoorBench's terms: C-Acc, ASR, R-Acc and DER per method and alpha,
    target_acc beside them."""
    header = ["method", "alpha"] + [label for label, _ in DEFENCE_COLUMNS] + ["n seeds", "warning"]
    expected = len(g.seeds)
    rows = []

    def row(label: str, cls: str, alpha: str, stats: list[Stat], n: int, flag: bool) -> list[Cell]:
        cells = [Cell(label, cls), Cell(alpha)]
        cells += [
            Cell(pm(st), "hole" if st.n == 0 else ("warn" if flag and m == "target_acc" else ""))
            for (_, m), st in zip(DEFENCE_COLUMNS, stats, strict=True)
        ]
        cells.append(Cell(f"{n}/{expected}", "hole" if n < expected else ""))
        cells.append(Cell(f"{WARN} target class lost" if flag else "", "warn" if flag else ""))
        return cells

    for method in (ORIGINAL, ORACLE):
        refs = [g.reference(method, m) for _, m in DEFENCE_COLUMNS]
        if refs[0] is None:
            continue
        n = len({r.seed for r in g.rows if r.method == method})
        rows.append(
            row(
                plots.method_label(method, method == ORIGINAL),
                "bound",
                "any",
                [Stat.of([]) if r is None else r for r in refs],
                n,
                method != ORIGINAL and g.target_flag(method, None),
            )
        )
    breaks = set()
    for method in g.curves:
        if method in FLAT:
            continue
        is_method = g.is_method(method)
        breaks.add(len(rows))
        for a in g.alphas:
            rows.append(
                row(
                    plots.method_label(method, is_method),
                    "" if is_method else "bound",
                    f"{a:g}",
                    [g.cell(method, a, m) for _, m in DEFENCE_COLUMNS],
                    len(g.values(method, a, "acc_corr")),
                    g.target_flag(method, a),
                )
            )
    notes = [
        "In %: mean ± sample std over seeds of the selected setting. C-Acc = clean test accuracy (clean_acc); "
        "ASR = share of triggered test images of the other classes predicted as the target (attack_success); "
        "R-Acc = share of them predicted as their true class; DER = [max(0, ΔASR) − max(0, ΔC-Acc) + 1] / 2 "
        "with Δ = original − new (50 = no change, 100 = attack gone at no cost). acc_corr differs from R-Acc "
        "in counting the target class's triggered images too. 'missing': records without these fields."
    ]
    return Table(f"{g.key.label()}: backdoor defence view", header, rows, notes, (0, len(header) - 1), breaks)


def defence_section(by_block: dict[BlockKey, list[Group]]) -> Section:
    """BackdoorBench's metrics for every poisoning setting whose records hold them, target_acc beside them;
    else one line saying why not (records older than these metrics)."""
    sec = Section("Backdoor defence view (C-Acc, ASR, R-Acc, DER)", "defence")
    for key, gs in by_block.items():
        label = block_label(*key)
        poison = [g for g in gs if g.backdoor]
        if not poison:
            sec.items.append(f"{label}: no poisoning setting, so no defence view.")
            continue
        held = [g for g in poison if g.has_defence()]
        if not held:
            sec.items.append(
                f"{label}: the poisoning records hold no C-Acc, ASR, R-Acc or DER (written by an older "
                "corrective); re-run the poisoning jobs to get the defence view."
            )
            continue
        sec.items += [defence_table(g) for g in held]
        lacking = [setting_label(g) for g in poison if g not in held]
        if lacking:
            sec.items.append(f"Missing here: no C-Acc, ASR, R-Acc or DER for {', '.join(lacking)}.")
    return sec


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


def group_section(g: Group, colour: dict[str, plots.Colour] | None) -> Section:
    sec = Section(g.key.label(), anchor(g.key.label()), level=3)
    if g.backdoor and g.reference(ORIGINAL, "target_acc") is None:
        sec.warnings.append("No record of the original model (method none): target_acc drops cannot be checked.")
    sec.warnings += target_warning(g)
    if colour is not None:
        caption = (
            "Mean ± std over seeds per alpha (n per point in the table below). Dashed: oracle (a bound: "
            "it knows all of S_m); dotted: the original model; bands: ± std. Dash-dotted curves are bounds, "
            "not methods. A missing alpha breaks its line."
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
                plots.png(plots.group_figure(g, colour)),
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


def score_table(groups: list[Group]) -> Table:
    rows = []
    partial = False
    for s in score_rows(groups):
        covered = len(s.manipulations) == len(s.all_manipulations)
        partial |= not covered
        rows.append(
            [
                Cell(s.dataset + (f" · {s.model}" if s.model else "")),
                Cell(plots.method_label(s.method, s.is_method), "" if s.is_method else "bound"),
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


def timing_table(groups: list[Group]) -> Table:
    rows = []
    for t in timing_rows(groups):
        rows.append(
            [
                Cell(block_label(t.dataset, t.model, t.training)),
                Cell(plots.method_label(t.method, t.is_method), "" if t.is_method else "bound"),
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


BAND_CAPTION = (
    "Lines: mean over seeds of the setting the selection rule picked; bands: ± sample std over seeds. "
    "Dotted: the original model; dashed: the oracle (a bound: it knows all of S_m), each ± std. "
    "Dash-dotted curves are bounds, not methods. A missing alpha is a gap in its line, never "
    "interpolated."
)


def seeds_note(groups: list[Group], methods: list[str]) -> str:
    """'Averages 3 seeds (0, 1, 2).' plus the range of records per point when some points have fewer."""
    seeds = sorted({s for g in groups for s in g.seeds})
    counts = [g.cell(m, a, "acc_corr").n for g in groups for m in methods if m not in FLAT for a in g.alphas]
    text = f"Averages {len(seeds)} seed{'s' * (len(seeds) != 1)} ({', '.join(map(str, seeds))})"
    if counts and min(counts) < len(seeds):
        text += f"; some points have fewer: {min(counts)} to {max(counts)} records per point (see the tables)"
    return text + "."


def absent_manipulations(groups: list[Group]) -> list[str]:
    have = {g.key.manipulation for g in groups}
    return [m for m in MANIPULATIONS if m not in have]


def coverage_note(groups: list[Group]) -> str | None:
    """What a block lacks: the papers' manipulations with no record, settings without an oracle."""
    parts = []
    absent = absent_manipulations(groups)
    if absent:
        parts.append(f"no records for {', '.join(absent)}: no panel for {'them' if len(absent) > 1 else 'it'}")
    no_oracle = [setting_label(g) for g in groups if g.reference(ORACLE, "acc_corr") is None]
    if no_oracle:
        parts.append(f"no oracle records for {', '.join(no_oracle)}: no oracle line there")
    return f"Missing here: {'; '.join(parts)}." if parts else None


class Figures:
    """Makes the report's figure items, with one colour per method in every figure."""

    def __init__(self, groups: list[Group]) -> None:
        self.colour = plots.colours([m for g in groups for m in g.methods])

    def make(self, name: str, caption: str, fig: MplFigure) -> Figure:
        return Figure(name, caption, plots.png(fig))


def block_intro(label: str, groups: list[Group]) -> str:
    """A block's sub-heading as a paragraph, so the topic sections read by dataset, model and training."""
    return f"{label}: {len(groups)} setting{'s' * (len(groups) != 1)} ({', '.join(setting_label(g) for g in groups)})."


def metric_section(title: str, metric: str, figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    """Figure 2 (acc_corr) or Figures 5b/6b (healed) per block: a panel per manipulation, a line per method."""
    sec = Section(title, anchor(title))
    for key, gs in by_block.items():
        label = block_label(*key)
        sec.items.append(block_intro(label, gs))
        if figures is None:
            continue
        caption = f"{metric} against alpha, {label}. {BAND_CAPTION} {seeds_note(gs, [m for g in gs for m in g.curves])}"
        if any(g.backdoor for g in gs):
            caption += (
                f" Red circles: points whose target_acc is more than {100 * TARGET_DROP:g} points below the "
                "original's (the target class erased, not the backdoor unlearned)."
            )
        if any(g.key.manipulation == "random_swap" for g in gs) and metric == "acc_corr":
            caption += " Random swap has no test-side domain: its acc_corr is measured on the swapped samples."
        sec.items.append(figures.make(f"{metric}-{anchor(label)}", caption, plots.by_alpha(gs, metric, figures.colour)))
        note = coverage_note(gs)
        if note:
            sec.items.append(note)
        unrecorded = [setting_label(g) for g in gs if all(math.isnan(r.get(metric)) for r in g.rows)]
        if unrecorded:
            sec.items.append(f"{metric} is not recorded for {', '.join(unrecorded)}: those panels are empty.")
    return sec


def retain_section(figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    sec = Section("Change in acc_retain (Table 1)", "table-1")
    for key, gs in by_block.items():
        label = block_label(*key)
        t = table1(gs)
        t.title = f"{t.title} — {label}"
        sec.items.append(t)
        if figures is not None:
            caption = (
                f"Table 1 as bars, {label}: change in acc_retain vs the original, mean over alpha; whiskers: "
                f"± std over alpha; one bar per setting (hatch). {seeds_note(gs, [])}"
            )
            sec.items.append(
                figures.make(
                    f"retain-{anchor(label)}", caption, plots.retain_bars(gs, ordered_methods(gs), figures.colour)
                )
            )
    return sec


def score_section(groups: list[Group], figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    sec = Section("REM's map and score", "rem-map")
    for key, gs in by_block.items():
        label = block_label(*key)
        if figures is None:
            continue
        methods = ordered_methods(gs)
        caption = (
            f"REM's Figure 1, {label}: per method, the mean over seeds of utility × healed (×100) for each "
            "manipulation (rows, most regular first) and alpha (columns); grey '–': no record. The original "
            "model and the oracle do not depend on alpha: their one value fills the row. Panel titles: the "
            "mean of the cells shown. Red squares: target_acc more than "
            f"{100 * TARGET_DROP:g} points below the original's — REM's score ignores the target class, so "
            f"there a high score partly comes from erasing it. {seeds_note(gs, [m for m, _ in methods])}"
        )
        sec.items.append(figures.make(f"rem-map-{anchor(label)}", caption, plots.score_map(gs, methods)))
        note = coverage_note(gs)
        if note:
            sec.items.append(note)
    sec.items.append(score_table(groups))
    return sec


def alpha_star_section(by_block: dict[BlockKey, list[Group]]) -> Section:
    sec = Section("alpha*", "alpha-star")
    for key, gs in by_block.items():
        t = alpha_star_table(gs)
        t.title = f"{t.title} — {block_label(*key)}"
        sec.items.append(t)
    return sec


def ssd_section(figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    """The paper's Figure 3 where the SSD records hold their importance-ratio histograms; else why not."""
    sec = Section("SSD's importance ratios (Figure 3)", "ssd-ratios")
    for key, gs in by_block.items():
        label = block_label(*key)
        ssd = [r for g in gs for r in g.rows if r.method == "ssd"]
        if not ssd:
            sec.items.append(f"{label}: no SSD records, so no importance ratios.")
            continue
        held = [g for g in gs if g.ratio_hists()]
        if not held:
            sec.items.append(
                f"{label}: the SSD records hold no importance-ratio histogram (written by an older "
                "corrective, or by a run without diagnostics); re-run the SSD jobs to get Figure 3."
            )
            continue
        lacking = [setting_label(g) for g in gs if g not in held]
        lacking += [m for m in ("poison", "interclass") if m in absent_manipulations(gs)]
        if figures is not None:
            caption = (
                f"Figure 3, {label}: share of the model's parameters per bin of log10(I_f / I_r), the ratio "
                "SSD thresholds to choose what to dampen (default recipe: I_r on the retain set), counts "
                "summed over the seeds given in the legend, at the smallest, middle and largest alpha "
                "recorded. Legend: the largest finite ratio, how many parameters have a ratio of at least "
                "10^3, and how many have I_r = 0 < I_f (inf), summed over seeds. The paper: poisoning has a "
                "few outlier parameters, interclass confusion none. "
                f"{seeds_note(held, [])}"
            )
            sec.items.append(figures.make(f"ssd-ratios-{anchor(label)}", caption, plots.ratio_histograms(held)))
        if lacking:
            sec.items.append(f"Missing here: no histogram for {', '.join(lacking)}.")
    return sec


def sensitivity_section(figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    """Figures 7-14: every grid setting of each method with more than one, per block."""
    sec = Section("Settings sensitivity (Figures 7–14)", "sensitivity")
    for key, gs in by_block.items():
        label = block_label(*key)
        n_settings = {
            m: len({s for g in gs for s in g.settings_cells(m, "acc_corr")})
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
                "settings (mean over "
                "seeds; thin lines) and the setting the rule selected per alpha and seed (red); bottom, "
                f"acc_corr against acc_retain per setting at alpha {plots.TRADEOFF_ALPHA:g} (or the nearest "
                f"recorded), the selected one as a star, the original and the oracle as crosses. "
                f"{seeds_note(gs, [method])}"
            )
            sec.items.append(
                figures.make(
                    f"sensitivity-{method}-{anchor(label)}", caption, plots.sensitivity(gs, method, figures.colour)
                )
            )
    return sec


def relearn_table(g: Group) -> Table:
    """Before and after the relearn probe per method at the figure's alphas (target_acc beside for poisoning)."""
    poison = g.backdoor
    metrics = ["acc_corr", "healed"] + (["attack_success", "target_acc"] if poison else [])
    header = (
        ["method", "alpha"] + [f"{m} {w}" for m in metrics for w in ("before", "after")] + ["Δ acc_corr", "n seeds"]
    )
    rows: list[list[Cell]] = []
    breaks: set[int] = set()
    for method in g.curves + [m for m in (ORIGINAL, ORACLE) if m in g.methods]:
        is_method = g.is_method(method) or method == ORIGINAL
        breaks.add(len(rows))
        for alpha in [None] if method in FLAT else g.relearn_alphas():
            pairs = [g.before_after(method, alpha, m) for m in metrics]
            if pairs[0][0].n == 0:
                continue
            cells = [
                Cell(plots.method_label(method, is_method), "" if is_method else "bound"),
                Cell("any" if alpha is None else f"{alpha:g}"),
            ]
            for m, (before, after) in zip(metrics, pairs, strict=True):
                lost = m == "target_acc" and g.target_flag(method, alpha) if alpha is not None else False
                cells += [Cell(pm(before), "warn" if lost else ""), Cell(pm(after))]
            before, after = pairs[0]
            cells += [Cell(f"{100 * (after.mean - before.mean):+.1f}"), Cell(str(pairs[0][0].n))]
            rows.append(cells)
    notes = [
        "In %: the selected model before the probe and its copy after it (mean ± std over the seeds holding "
        "both). Δ acc_corr in points: negative means the correction sprang back. Compare with the oracle, "
        "which never saw S_m and gets the same exposure."
    ]
    if poison:
        notes.append("attack_success after the probe: the backdoor relearned; target_acc beside it, as everywhere.")
    return Table(f"{g.key.label()}: before and after the relearn probe", header, rows, notes, (0,), breaks)


def relearn_section(figures: Figures | None, by_block: dict[BlockKey, list[Group]]) -> Section:
    """Does the correction last? acc_corr before and after the relearn probe, per method, with the oracle's."""
    sec = Section("Does the correction last? (relearn probe)", "relearn")
    for key, gs in by_block.items():
        label = block_label(*key)
        probed = [g for g in gs if g.has_relearn()]
        if not probed:
            sec.items.append(f"{label}: no relearn records (run the bench with `relearn = true`).")
            continue
        alphas = sorted({a for g in probed for a in g.relearn_alphas()})
        if figures is not None:
            caption = (
                f"{label}: each selected model (filled circle) was fine-tuned as a copy for 5 % of the "
                "training steps at the recipe's learning rate on the clean training data mixed with a fixed "
                "1 % of samples drawn from S_m (open triangle: after this probe); the same samples for every "
                f"method and alpha of a seed. Per method, alphas {', '.join(f'{a:g}' for a in alphas)} "
                "left to right; the original model and the oracle once. Dashed: the oracle after the probe. "
                "A genuine removal behaves like the oracle; a masked one springs back. Poisoning panels show "
                f"target_acc beside acc_corr. {seeds_note(probed, [])}"
            )
            sec.items.append(
                figures.make(f"relearn-{anchor(label)}", caption, plots.relearn_figure(probed, figures.colour))
            )
        sec.items += [relearn_table(g) for g in probed]
        lacking = [setting_label(g) for g in gs if g not in probed]
        if lacking:
            sec.items.append(f"Missing here: no relearn records for {', '.join(lacking)}.")
    return sec


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
        sec.items.append(figures.make(f"timings-{anchor(label)}", caption, plots.timing_bars(ts, figures.colour)))
    return sec


def expansion_section(results: Results, figures: Figures | None) -> Section:
    """Forget-set expansion: per block, precision and recall of S_m against alpha per manipulation (a line per
    strategy), and the full table (strategy x manipulation x alpha: precision, recall, n added, seconds)."""
    sec = Section("Forget-set expansion", "expansion")
    cells = expansion_cells(results.expansions)
    if not cells:
        sec.items.append(
            'No expansion records (the spec\'s expand axis was ["none"] and no method expands S_f '
            "itself): nothing to show."
        )
        return sec
    sec.items.append(
        "Each strategy of corrective.expand adds to S_f the training samples it scores as manipulated, "
        "seeing only the original model, the training data as given and S_f; precision and recall are "
        "of the expanded set (S_f included) against the true S_m, which only the benchmark knows. "
        "Methods handed an expanded set appear in every figure as method+strategy."
    )
    by_block: dict[BlockKey, list[ExpansionCell]] = defaultdict(list)
    for c in cells:
        by_block[(c.dataset, c.model, c.training)].append(c)
    for key, cs in by_block.items():
        label = block_label(*key)
        panels: dict[str, list[ExpansionCell]] = defaultdict(list)
        for c in cs:
            panels[c.panel].append(c)
        if figures is not None:
            n = max(c.precision.n for c in cs)
            caption = (
                f"Expansion quality, {label}: precision (solid) and recall (dashed) of S_m of the expanded "
                f"forget set of each strategy against alpha, mean ± std over up to {n} seed(s)."
            )
            sec.items.append(figures.make(f"expansion-{anchor(label)}", caption, plots.expansion_curves(dict(panels))))
        header = ["strategy", "setting", "alpha", "precision", "recall", "n added", "seconds", "chosen"]
        rows = [
            [
                Cell(c.strategy),
                Cell(c.panel),
                Cell(f"{c.alpha:g}"),
                Cell(pm(c.precision)),
                Cell(pm(c.recall)),
                Cell("–" if c.n_expanded.n == 0 else f"{c.n_expanded.mean:.1f}"),
                Cell("–" if c.seconds.n == 0 else f"{c.seconds.mean:.2f}"),
                Cell(", ".join(c.chosen)),
            ]
            for c in sorted(cs, key=lambda c: (c.strategy, rank(c.manipulation), c.panel, c.alpha))
        ]
        sec.items.append(
            Table(
                f"Expansion — {label} (precision and recall in %, mean ± std over seeds; n added and seconds: means)",
                header,
                rows,
                text_cols=(0, 1, 7),
            )
        )
    return sec


def build_document(results: Results, with_plots: bool = True) -> Document:
    groups, notes = build_groups(results)
    notes = results.notes + notes
    figures = None
    if with_plots and plots.available() and groups:
        figures = Figures(groups)
    elif with_plots:
        notes.append(f"Plots need matplotlib: {plots.INSTALL_HINT}. Tables only.")
    selected = len({id(r) for g in groups for r in g.rows})
    facts = [
        f"source: {results.path}",
        f"{len(results.rows)} results ({selected} selected settings used, the rest unselected grid candidates "
        f"or repeats), {len(groups)} settings (dataset, manipulation, its size and settings, false flags, model, "
        "training), "
        f"seeds {', '.join(map(str, sorted({r.seed for r in results.rows})))}",
        "All metrics are fractions shown ×100 (%). Bounds (is_method false: the oracle, rem_ideal …) are "
        "handed S_m and are not methods; they are labelled '(bound)'.",
    ]
    by_block = blocks(groups)
    overview = Section("Overview", "overview")
    flagged = [line for g in groups for line in target_warning(g)]
    if flagged:
        overview.warnings.append(
            f"{WARN} target_acc warnings in {len(flagged)} setting(s): there a method 'removes' "
            "the backdoor by erasing the target class; see the red circles and the settings' "
            "sections."
        )
    for key, gs in by_block.items():
        note = coverage_note(gs)
        overview.items.append(
            f"{block_label(*key)}: {', '.join(setting_label(g) for g in gs)}; methods "
            f"{', '.join(m for m in gs[0].curves)}." + (f" {note}" if note else "")
        )
    sections = [
        overview,
        metric_section("acc_corr against alpha (Figure 2)", "acc_corr", figures, by_block),
        metric_section("healed against alpha (Figures 5b, 6b)", "healed", figures, by_block),
        retain_section(figures, by_block),
        score_section(groups, figures, by_block),
        defence_section(by_block),
        alpha_star_section(by_block),
        ssd_section(figures, by_block),
        sensitivity_section(figures, by_block),
        relearn_section(figures, by_block),
        timing_section(groups, figures, by_block),
        expansion_section(results, figures),
    ]
    colour = None if figures is None else figures.colour
    sections.append(
        Section(
            "Per setting",
            "per-setting",
            items=[
                "Each setting in detail: acc_corr, target_acc (poisoning) and acc_retain against alpha, every number "
                "with its seed count, and the runs that are missing."
            ],
        )
    )
    sections += [group_section(g, colour) for g in groups]
    return Document("Corrective unlearning benchmark report", facts, notes, sections)
