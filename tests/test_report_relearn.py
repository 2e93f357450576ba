"""The relearn figure and tables hold exactly the records' numbers (computed here straight from the JSON)."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from corrective.report import build_document, draw, read_results
from corrective.report.document import Table
from corrective.report.groups import build_groups
from corrective.report.relearn import relearn_figure
from report_records import jitter, original, record, write

MANIPULATIONS = ("poison", "interclass")
ALPHAS = (0.1, 0.3, 0.5, 1.0)  # 0.3 is not one of the figure's alphas
METHODS = ("finetune", "ssd", "oracle")
SEEDS = (0, 1)


def probe(manip: str, method: str, alpha: float | None, seed: int) -> dict[str, Any]:
    """Repeatable metrics before and after the probe, different everywhere."""
    out = {}
    for m in ("acc_corr", "healed", "acc_retain") + (("attack_success", "target_acc") if manip == "poison" else ()):
        out[m] = round(jitter("b", m, manip, method, alpha, seed), 4)
        out[f"relearn_{m}"] = round(jitter("a", m, manip, method, alpha, seed), 4)
    return out


def records() -> list[dict[str, Any]]:
    recs = []
    for manip in MANIPULATIONS:
        for s in SEEDS:
            recs.append(original(s, manipulation=manip, **probe(manip, "none", None, s)))
            recs.append(
                record("oracle", 1.0, s, manipulation=manip, **probe(manip, "oracle", 1.0, s)) | {"stage": "oracle"}
            )
            for method in METHODS[:-1]:
                for a in ALPHAS:
                    recs.append(record(method, a, s, manipulation=manip, **probe(manip, method, a, s)))
    return recs


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    recs = records()
    return recs, build_groups(read_results(write(tmp_path_factory.mktemp("relearn"), recs)))[0]


def from_file(recs, manip, method, alpha, metric) -> tuple[float, float]:
    """Mean over seeds before and after, straight from the records."""
    rows = [
        r
        for r in recs
        if r["manipulation"] == manip
        and (
            r["stage"] == "original"
            if method == "none"
            else r.get("method") == method and (method == "oracle" or r["alpha"] == alpha)
        )
    ]
    return statistics.fmean(r[metric] for r in rows), statistics.fmean(r[f"relearn_{metric}"] for r in rows)


def test_relearn_figure_data(probed):
    recs, groups = probed
    fig = relearn_figure(groups, draw.colours([m for g in groups for m in g.methods]))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "poison (size 0.05): acc_corr",
        "poison (size 0.05): target_acc",
        "interclass (size 0.05): acc_corr",
    ]  # target_acc beside acc_corr for poisoning
    for ax, (manip, metric) in zip(
        fig.axes, [("poison", "acc_corr"), ("poison", "target_acc"), ("interclass", "acc_corr")], strict=True
    ):
        lines = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
        expected = {f"{m}@{a:g}" for m in METHODS[:-1] for a in (0.1, 0.5, 1.0)} | {"none@any", "oracle@any"}
        assert set(lines) == expected  # alpha 0.3 is left out; the references once each
        for gid, line in lines.items():
            method, alpha = gid.split("@")
            before, after = from_file(recs, manip, method, None if alpha == "any" else float(alpha), metric)
            assert list(line.get_ydata()) == pytest.approx([100 * before, 100 * after])
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(dashed) == 1 and dashed[0].get_ydata()[0] == pytest.approx(
            100 * from_file(recs, manip, "oracle", None, metric)[1]
        )


def test_relearn_section_tables(probed, tmp_path):
    recs, _ = probed
    doc = build_document(read_results(write(tmp_path, recs)), with_plots=False)
    section = next(s for s in doc.sections if s.anchor == "relearn")
    tables = [t for t in section.items if isinstance(t, Table)]
    assert len(tables) == len(MANIPULATIONS)
    poison = tables[0]
    assert "target_acc before" in poison.header and "attack_success after" in poison.header
    row = next(r for r in poison.rows if r[0].text == "ssd" and r[1].text == "0.5")
    before, after = from_file(recs, "poison", "ssd", 0.5, "acc_corr")
    col = poison.header.index("acc_corr before")
    assert row[col].text.startswith(f"{100 * before:.1f}") and row[col + 1].text.startswith(f"{100 * after:.1f}")
    assert row[poison.header.index("Δ acc_corr")].text == f"{100 * (after - before):+.1f}"
    assert {r[1].text for r in poison.rows} == {"0.1", "0.5", "1", "any"}


def test_no_relearn_records_says_so(tmp_path):
    recs = [{k: v for k, v in r.items() if not k.startswith("relearn_")} for r in records()]
    doc = build_document(read_results(write(tmp_path, recs)), with_plots=False)
    section = next(s for s in doc.sections if s.anchor == "relearn")
    assert section.items == [
        "digits · cnn · standard training: no relearn records (run the bench with `relearn = true`)."
    ]


def test_relearn_figure_of_many_methods_is_legible(tmp_path):
    """As many methods as the default preset: no two alpha labels overlap, and every method's colour differs from
    the others' and from the original model's and the oracle's (a grey method read as the original before)."""
    from matplotlib.colors import to_rgba

    methods = ("bad_teacher", "finetune", "npo", "potion", "rem", "retrain", "scrub", "ssd", "rem_ideal")
    recs = [original(0, manipulation="poison", **probe("poison", "none", None, 0))]
    recs.append(record("oracle", 1.0, 0, **probe("poison", "oracle", 1.0, 0)) | {"stage": "oracle"})
    recs += [record(m, a, 0, **probe("poison", m, a, 0)) for m in methods for a in (0.1, 0.5, 1.0)]
    groups = build_groups(read_results(write(tmp_path, recs)))[0]
    colour = draw.colours([m for g in groups for m in g.methods])
    fig = relearn_figure(groups, colour)
    fig.canvas.draw()
    for ax in fig.axes:
        boxes = [t.get_window_extent() for t in ax.texts if t.get_text() in ("0.1", "0.5", "1")]
        assert len(boxes) == 3 * len(methods)
        overlaps = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]
        assert not overlaps
    drawn = {m: to_rgba(c) for m, c in colour.items()}
    references = {to_rgba(style[0]) for style in draw.FLAT_STYLE.values()}
    assert set(drawn) == set(methods) and len(set(drawn.values())) == len(methods)
    assert not set(drawn.values()) & references
    assert not [m for m, (r, g, b, _) in drawn.items() if r == g == b]  # no method in grey
    for ax in fig.axes:  # the segments are drawn in those colours, the references in theirs
        segments = {line.get_gid(): to_rgba(line.get_color()) for line in ax.get_lines() if line.get_gid()}
        assert segments["ssd@0.5"] == drawn["ssd"] and segments["none@any"] == to_rgba(draw.FLAT_STYLE["none"][0])
        assert segments["none@any"] not in drawn.values()


def both_kinds() -> list[dict[str, Any]]:
    """The records above with a retain_only probe beside the mixed one (values of their own)."""
    out = []
    for r in records():
        extra = {
            f"relearn_retain_only_{k[len('relearn_') :]}": round(jitter("r", k, r["manipulation"], r["seed"], v), 4)
            for k, v in r.items()
            if k.startswith("relearn_")
        }
        out.append(r | extra)
    return out


def test_relearn_view_shows_both_kinds(tmp_path):
    """Both kinds in one table (an `after` column per kind, a Δ per kind) and in the figure (a segment per kind,
    the oracle's after each kind: dashed for mixed, dotted for retain_only), each from its own record fields."""
    recs = both_kinds()
    doc = build_document(read_results(write(tmp_path, recs)), with_plots=False)
    section = next(s for s in doc.sections if s.anchor == "relearn")
    poison = [t for t in section.items if isinstance(t, Table)][0]
    for m in ("acc_corr", "target_acc"):
        i = poison.header.index(f"{m} before")
        assert poison.header[i + 1 : i + 3] == [f"{m} after mixed", f"{m} after retain_only"]
    assert "Δ acc_corr mixed" in poison.header and "Δ acc_corr retain_only" in poison.header
    row = next(r for r in poison.rows if r[0].text == "ssd" and r[1].text == "0.5")
    col = poison.header.index("acc_corr after retain_only")
    rows = [r for r in recs if r["manipulation"] == "poison" and r.get("method") == "ssd" and r["alpha"] == 0.5]
    retain = statistics.fmean(r["relearn_retain_only_acc_corr"] for r in rows)
    before, mixed = from_file(recs, "poison", "ssd", 0.5, "acc_corr")
    assert row[col].text.startswith(f"{100 * retain:.1f}")
    assert row[poison.header.index("acc_corr after mixed")].text.startswith(f"{100 * mixed:.1f}")
    assert row[poison.header.index("Δ acc_corr retain_only")].text == f"{100 * (retain - before):+.1f}"
    assert any("retain_only: fine-tuned on the clean training data alone" in n for n in poison.notes)

    groups = build_groups(read_results(write(tmp_path / "fig", recs)))[0]
    fig = relearn_figure(groups, draw.colours([m for g in groups for m in g.methods]))
    ax = fig.axes[0]  # poison: acc_corr
    lines = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
    assert list(lines["ssd@0.5/retain_only"].get_ydata()) == pytest.approx([100 * before, 100 * retain])
    assert list(lines["ssd@0.5"].get_ydata()) == pytest.approx([100 * before, 100 * mixed])
    oracle_rows = [r for r in recs if r["manipulation"] == "poison" and r["stage"] == "oracle"]
    dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 1 and dotted[0].get_ydata()[0] == pytest.approx(
        100 * statistics.fmean(r["relearn_retain_only_acc_corr"] for r in oracle_rows)
    )


def test_retain_only_alone_is_a_relearn_record(tmp_path):
    """Records holding only the retain_only probe still fill the view (not 'no relearn records')."""
    recs = []
    for r in both_kinds():
        kept = {k: v for k, v in r.items() if not k.startswith("relearn_") or k.startswith("relearn_retain_only_")}
        recs.append(kept)
    doc = build_document(read_results(write(tmp_path, recs)), with_plots=False)
    section = next(s for s in doc.sections if s.anchor == "relearn")
    tables = [t for t in section.items if isinstance(t, Table)]
    assert len(tables) == len(MANIPULATIONS)
    assert "acc_corr after retain_only" in tables[0].header and "acc_corr after mixed" not in tables[0].header
