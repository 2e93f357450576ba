"""A poisoning setting in BackdoorBench's terms: C-Acc, ASR, R-Acc and DER per method and alpha, target_acc
beside them, for every poisoning setting whose records hold them."""

from __future__ import annotations

import math

from corrective.names import DEFENCE
from corrective.report.document import WARN, Cell, Section, Table, pm
from corrective.report.groups import FLAT, ORACLE, ORIGINAL, BlockKey, Group, Stat, method_label, over_seeds
from corrective.report.view import Coverage, Items, covered_blocks

DEFENCE_COLUMNS = (("C-Acc", "c_acc"), ("ASR", "asr"), ("R-Acc", "r_acc"), ("DER", "der"), ("target_acc", "target_acc"))


def has_defence(g: Group) -> bool:
    """Whether any selected record holds BackdoorBench's C-Acc, ASR, R-Acc or DER (older records do not)."""
    return any(not math.isnan(r.get(m)) for r in g.rows for m in DEFENCE)


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
                method_label(method, method == ORIGINAL),
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
                    method_label(method, is_method),
                    "" if is_method else "bound",
                    f"{a:g}",
                    [g.cell(method, a, m) for _, m in DEFENCE_COLUMNS],
                    len(g.values(method, a, "acc_corr")),
                    g.target_flag(method, a),
                )
            )
    notes = [
        f"In %: the selected setting, {over_seeds(len(g.seeds))}. C-Acc = clean test accuracy (clean_acc); "
        "ASR = share of triggered test images of the other classes predicted as the target (attack_success); "
        "R-Acc = share of them predicted as their true class; DER = [max(0, ΔASR) − max(0, ΔC-Acc) + 1] / 2 "
        "with Δ = original − new (50 = no change, 100 = attack gone at no cost). acc_corr differs from R-Acc "
        "in counting the target class's triggered images too. 'missing': records without these fields."
    ]
    return Table(f"{g.key.label()}: backdoor defence view", header, rows, notes, (0, len(header) - 1), breaks)


DEFENCE_COVERAGE = Coverage(
    scope=lambda gs: [g for g in gs if g.backdoor],
    holds=has_defence,
    absent="{label}: no poisoning setting, so no defence view.",
    older="{label}: the poisoning records hold no C-Acc, ASR, R-Acc or DER (written by an older corrective); "
    "re-run the poisoning jobs to get the defence view.",
    what="C-Acc, ASR, R-Acc or DER",
)


def defence_section(by_block: dict[BlockKey, list[Group]]) -> Section:
    """BackdoorBench's metrics for every poisoning setting whose records hold them, target_acc beside them;
    else one line saying why not (records older than these metrics)."""

    def show(label: str, held: list[Group]) -> Items:
        return [defence_table(g) for g in held]

    return covered_blocks(
        Section("Backdoor defence view (C-Acc, ASR, R-Acc, DER)", "defence"), by_block, DEFENCE_COVERAGE, show
    )
