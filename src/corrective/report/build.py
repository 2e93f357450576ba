"""The report's page order: the overview, then one section per view, then every setting in detail."""

from __future__ import annotations

from corrective.report import draw
from corrective.report.alpha_star import alpha_star_section
from corrective.report.curves import metric_section
from corrective.report.defence import defence_section
from corrective.report.document import WARN, Document, Section
from corrective.report.expansion import expansion_section
from corrective.report.groups import ORACLE, ORIGINAL, block_label, blocks, build_groups, short_title
from corrective.report.records import Results
from corrective.report.relearn import relearn_section
from corrective.report.score import score_section
from corrective.report.sensitivity import sensitivity_section
from corrective.report.setting import group_section, target_warning
from corrective.report.ssd import ssd_section
from corrective.report.table1 import retain_section
from corrective.report.timing import timing_section
from corrective.report.view import Figures, coverage_note


def jobs_recorded(results: Results) -> str:
    """'366 jobs recorded (3 original, 3 oracle, 30 expand, 330 unlearn)': one per record, a grid's candidates
    inside theirs (rows of one record share its line)."""
    records = {(r.line, r.job) for r in results.rows}
    originals = len({(r.line, r.job) for r in results.rows if r.method == ORIGINAL and r.alpha is None})
    oracles = len({(r.line, r.job) for r in results.rows if r.method == ORACLE})
    stages = {
        "original": originals,
        "oracle": oracles,
        "expand": len(results.expansions),
        "unlearn": len(records) - originals - oracles,
    }
    total = len(records) + len(results.expansions)
    return f"{total:,} jobs recorded ({', '.join(f'{n:,} {s}' for s, n in stages.items() if n)})"


def build_document(results: Results, with_plots: bool = True) -> Document:
    groups, notes = build_groups(results)
    notes = results.notes + notes
    figures = None
    if with_plots and draw.available() and groups:
        figures = Figures(groups)
    elif with_plots:
        notes.append(f"Plots need matplotlib: {draw.INSTALL_HINT}. Tables only.")
    selected = len({id(r) for g in groups for r in g.rows})
    facts = [
        f"source: {results.path}",
        f"{jobs_recorded(results)}; with every grid candidate they hold, {len(results.rows):,} evaluated models, "
        f"{selected:,} of them selected and shown; {len(groups)} settings (dataset, manipulation, its size and "
        "settings, false flags, model, training), "
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
            f"{block_label(*key)}: {', '.join(short_title(g) for g in gs)}; methods "
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
