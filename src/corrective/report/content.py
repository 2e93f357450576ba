"""The report as a document: sections of paragraphs, warnings, figures and tables, built from aggregates only.

Writers (`html.py`, `markdown.py`) turn it into a page; this module decides what is shown and how numbers read.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

from corrective.report import plots
from corrective.report.aggregate import (
    ALPHA_STAR_SHARE,
    FLAT,
    ORACLE,
    ORIGINAL,
    RETRAIN,
    TARGET_DROP,
    Group,
    Stat,
    build_groups,
    score_rows,
    timing_rows,
)
from corrective.report.records import Results

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


def method_label(method: str, is_method: bool) -> str:
    if method == ORIGINAL:
        return "original (none)"
    return method if is_method else f"{method} (bound)"


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def setting_label(g: Group) -> str:
    """A group's column label inside its (dataset, model, training) block."""
    return g.key.manipulation if g.key.size is None else f"{g.key.manipulation} {g.key.size:g}"


def block_label(dataset: str, model: str | None, training: str) -> str:
    return " · ".join([dataset] + ([model] if model else []) + [f"{training} training"])


def blocks(groups: list[Group]) -> dict[tuple, list[Group]]:
    out: dict[tuple, list[Group]] = defaultdict(list)
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
    """The paper's Table 1: change in acc_retain vs the original model, mean over alpha, in points."""
    rows = []
    short = False
    for method, is_method in ordered_methods(groups):
        if method == ORIGINAL:
            continue
        cells = [Cell(method_label(method, is_method), "" if is_method else "bound")]
        for g in groups:
            delta, k = g.retain_change(method)
            partial = method not in FLAT and 0 < k < len(g.alphas)
            short |= partial
            cells.append(Cell(HOLE, "hole") if math.isnan(delta) else
                          Cell(f"{100 * delta:+.2f}{' †' if partial else ''}"))
        rows.append(cells)
    original = [Cell("original acc_retain (%)")]
    for g in groups:
        ref = g.reference(ORIGINAL, "acc_retain")
        original.append(Cell(HOLE, "hole") if ref is None else Cell(pct(ref.mean, 2)))
    notes = ["Change in acc_retain of the selected setting vs the original model, in points, averaged over the "
             "alphas (each alpha's value is itself a mean over seeds). Positive: the method kept or improved "
             "accuracy outside the affected domain."]
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
        cells = [Cell(method_label(method, is_method), "" if is_method else "bound")]
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
    notes = [f"alpha* = smallest alpha whose mean acc_corr reaches {ALPHA_STAR_SHARE:g} × the oracle's mean "
             "acc_corr; 'never' when no alpha of the grid does."]
    if gaps_seen:
        notes.append("Alphas listed as missing have no record: alpha* could be one of them.")
    if flagged:
        notes.append(f"{WARN}: at alpha* the target class's clean accuracy (target_acc) is more than "
                     f"{100 * TARGET_DROP:g} points below the original model's: the backdoor looks removed because "
                     "the model stopped predicting the target class, not because it unlearned the trigger.")
    header = ["method"] + [setting_label(g) for g in groups]
    if not rows:
        rows = [[Cell("no unlearning method recorded", "hole")] + [Cell("–") for _ in groups]]
    return Table("alpha*: least discovery rate that recovers acc_corr", header, rows, notes)


def detail_table(g: Group) -> Table:
    """Method × alpha: acc_corr (target_acc beside it for poisoning), acc_retain, healed, n seeds, warnings."""
    poison = g.key.manipulation == "poison"
    metrics = ["acc_corr"] + (["target_acc"] if poison else []) + ["acc_retain", "healed"]
    metrics += ["attack_success"] if poison else []
    header = ["method", "alpha"] + metrics + ["n seeds"] + (["warning"] if poison else [])
    expected = len(g.seeds)
    rows = []

    def row(label: str, cls: str, alpha: str, stats: list[Stat], n: int, flag: bool) -> list[Cell]:
        cells = [Cell(label, cls), Cell(alpha)]
        cells += [Cell(pm(s), "hole" if s.n == 0 else ("warn" if flag and m == "target_acc" else ""))
                  for m, s in zip(metrics, stats, strict=True)]
        cells.append(Cell(f"{n}/{expected}", "hole" if n < expected else ""))
        if poison:
            cells.append(Cell(f"{WARN} target class lost" if flag else "", "warn" if flag else ""))
        return cells

    for method in (ORIGINAL, ORACLE):
        refs = [g.reference(method, m) for m in metrics]
        if refs[0] is None:
            rows.append(row(method_label(method, False), "hole", "any", [Stat.of([])] * len(metrics), 0, False))
            continue
        n = len({r.seed for r in g.rows if r.method == method})
        rows.append(row(method_label(method, method == ORIGINAL), "bound", "any", refs, n,
                        method != ORIGINAL and g.target_flag(method, None)))
    breaks = set()
    for method in g.curves:
        is_method = g.is_method(method)
        breaks.add(len(rows))
        for a in g.alphas:
            n = len(g.values(method, a, "acc_corr"))
            rows.append(row(method_label(method, is_method), "" if is_method else "bound", f"{a:g}",
                            [g.cell(method, a, m) for m in metrics], n, g.target_flag(method, a)))
    notes = ["In %: mean ± sample std over seeds of the selected setting; 'n seeds' = records averaged / seeds "
             "in the grid. 'missing' = no record (not interpolated). The original model and the oracle do not "
             "depend on alpha: their values are averaged over the alphas they were recorded at."]
    if g.key.manipulation == "random_swap":
        notes.append("Random label swap has no test-side domain: acc_corr is measured on the swapped training "
                     "samples themselves (it equals healed).")
    if poison:
        notes.append("target_acc = clean test accuracy on the trigger's target class; attack_success = share of "
                     "triggered test images of other classes predicted as the target.")
    text = (0, len(header) - 1) if poison else (0,)
    return Table(f"{g.key.label()}: results per method and alpha", header, rows, notes, text, breaks)


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
            by_alpha[a].append(s)
        parts = [f"alpha {a:g} (all seeds)" if len(ss) == len(g.seeds) else
                 f"alpha {a:g} seed {', '.join(map(str, ss))}" for a, ss in sorted(by_alpha.items())]
        lines.append(f"{method}: {len(miss)} of {len(g.alphas) * len(g.seeds)} runs missing: {'; '.join(parts)}")
    return lines


def target_warning(g: Group) -> list[str]:
    flagged = [f"{m} at alpha {a:g}" for m in g.curves for a in g.alphas if g.target_flag(m, a)]
    if not flagged:
        return []
    original = g.reference(ORIGINAL, "target_acc")
    assert original is not None  # a flag needs the original's target_acc
    return [f"{WARN} target_acc falls more than {100 * TARGET_DROP:g} points below the original model's "
            f"({pct(original.mean)} %) for {', '.join(flagged)}. There acc_corr looks recovered and attack_success "
            "low because the model no longer predicts the trigger's target class at all: the backdoor is not "
            "unlearned, a whole class is erased. Read those rows as failures."]


def group_section(g: Group, colour: dict[str, tuple] | None) -> Section:
    sec = Section(g.key.label(), anchor(g.key.label()), level=3)
    if g.key.manipulation == "poison" and g.reference(ORIGINAL, "target_acc") is None:
        sec.warnings.append("No record of the original model (method none): target_acc drops cannot be checked.")
    sec.warnings += target_warning(g)
    if colour is not None:
        caption = ("Mean ± std over seeds per alpha (n per point in the table below). Dashed: oracle (a bound: "
                   "it knows all of S_m); dotted: the original model; bands: ± std. Dash-dotted curves are bounds, "
                   "not methods. A missing alpha breaks its line.")
        if g.key.manipulation == "poison":
            caption += (f" Red line on target_acc: the original's value minus {100 * TARGET_DROP:g} points; red "
                        "circles: points below it.")
        sec.items.append(Figure(anchor(g.key.label()), caption, plots.group_figure(g, colour)))
    sec.items.append(detail_table(g))
    missing = holes(g)
    if missing:
        sec.items.append(Table("Missing runs (left as holes, never interpolated)", ["what is missing"],
                                    [[Cell(x, "hole")] for x in missing]))
    else:
        sec.items.append("Missing runs: none; every (method, alpha, seed) of the grid has a record.")
    return sec


def score_table(groups: list[Group]) -> Table:
    rows = []
    partial = False
    for s in score_rows(groups):
        covered = len(s.manipulations) == len(s.all_manipulations)
        partial |= not covered
        rows.append([Cell(s.dataset + (f" · {s.model}" if s.model else "")),
                     Cell(method_label(s.method, s.is_method), "" if s.is_method else "bound"), Cell(s.training),
                     Cell(pct(s.score.mean, 2), "" if covered else "hole"), Cell(pct(s.healed.mean, 2)),
                     Cell(pct(s.utility.mean, 2)), Cell(str(s.score.n)),
                     Cell(", ".join(s.manipulations) or "–", "" if covered else "hole")])
    notes = ["REM's score = utility × healed (×100), per run, averaged over every manipulation, alpha and seed "
             "recorded (equal weight per record). utility = clean test accuracy (interclass: outside the two "
             "classes); healed = accuracy on all of S_m against clean labels."]
    if partial:
        notes.append("Rows whose manipulations do not cover every manipulation of their dataset are marked: their "
                     "mean is not comparable with the others.")
    header = ["dataset", "method", "training", "score", "healed", "utility", "records", "manipulations"]
    return Table("REM score (mean of utility × healed, ×100)", header, rows, notes, (0, 1, 2, 7))


def timing_table(groups: list[Group]) -> Table:
    rows = []
    for t in timing_rows(groups):
        rows.append([Cell(block_label(t.dataset, t.model, t.training)),
                     Cell(method_label(t.method, t.is_method), "" if t.is_method else "bound"),
                     Cell("–" if t.seconds.n == 0 else f"{t.seconds.mean:.2f}" +
                          ("" if math.isnan(t.seconds.std) else f" ± {t.seconds.std:.2f}")),
                     Cell(str(t.seconds.n)),
                     Cell("n/a" if math.isnan(t.retrain_ratio) else f"{t.retrain_ratio:.3f}"),
                     Cell("–" if t.grid_seconds is None else f"{t.grid_seconds.mean:.2f}")])
    notes = ["Wall-clock seconds of the method alone for the selected setting (mean ± std over its records). "
             f"Ratio: to the mean of {RETRAIN} (RewoD) in the same block; n/a without {RETRAIN} records. "
             "Grid search: seconds of every candidate setting of one (alpha, seed) added up, where the records "
             "hold the unselected candidates too. Timings from a shared machine are noisy; compare ratios."]
    header = ["setting", "method", "seconds", "n", f"÷ {RETRAIN}", "grid search s"]
    return Table("Timings (unlearn_seconds)", header, rows, notes, (0, 1))


def build_document(results: Results, with_plots: bool = True) -> Document:
    groups, notes = build_groups(results)
    notes = results.notes + notes
    colour = None
    if with_plots and plots.available() and groups:
        colour = plots.colours([m for g in groups for m in g.methods])
    elif with_plots:
        notes.append(f"Plots need matplotlib: {plots.INSTALL_HINT}. Tables only.")
    selected = sum(len(g.rows) for g in groups)
    facts = [f"source: {results.path}",
             f"{len(results.rows)} results ({selected} selected settings used, the rest unselected grid candidates "
             f"or repeats), {len(groups)} settings (dataset, manipulation, size, model, training), "
             f"seeds {', '.join(map(str, sorted({r.seed for r in results.rows})))}",
             "All metrics are fractions shown ×100 (%). Bounds (is_method false: the oracle, rem_ideal …) are "
             "handed S_m and are not methods; they are labelled '(bound)'."]
    sections = []
    overview = Section("Overview", "overview")
    flagged = [line for g in groups for line in target_warning(g)]
    if flagged:
        overview.warnings.append(f"{WARN} target_acc warnings in {len(flagged)} setting(s); see their sections.")
    for (dataset, model, training), gs in blocks(groups).items():
        label = block_label(dataset, model, training)
        for t in (table1(gs), alpha_star_table(gs)):
            t.title = f"{t.title} — {label}"
            overview.items.append(t)
    overview.items += [score_table(groups), timing_table(groups)]
    sections.append(overview)
    for g in groups:
        sections.append(group_section(g, colour))
    return Document("Corrective unlearning benchmark report", facts, notes, sections)
