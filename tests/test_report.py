"""The report reads only result records: aggregation, alpha*, Table 1, target_acc warnings, holes, pages, errors.

Records are hand-made here (`record`, `grid`, `realistic`), shaped like the bench's, so nothing is trained.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from corrective.errors import UserError
from corrective.report import build_document, draw, read_results, record_rows, write_report
from corrective.report.alpha_star import alpha_star, alpha_star_table
from corrective.report.expansion import expansion_cells, expansion_curves
from corrective.report.groups import Stat, build_groups
from corrective.report.score import score_rows
from corrective.report.setting import detail_table, group_figure, holes
from corrective.report.table1 import retain_change, table1
from corrective.report.timing import timing_rows
from report_records import grid, original, realistic, record, write


def groups_of(records: list[dict[str, Any]]):
    from corrective.report.records import Results

    return build_groups(Results(Path("results.jsonl"), [row for r in records for row in record_rows(r)]))[0]


def flat(value: float, **more: float) -> Callable[[str, float, int], dict[str, Any]]:
    return lambda m, a, s: {"acc_corr": value, **more}


def test_stat_skips_nulls_and_counts() -> None:
    s = Stat.of([0.1, 0.3, math.nan])
    assert s.n == 2 and s.mean == pytest.approx(0.2) and s.std == pytest.approx(math.sqrt(0.02))
    one = Stat.of([0.5])
    assert one.n == 1 and math.isnan(one.std)
    assert Stat.of([]).n == 0


def test_cells_average_over_seeds_and_reference_lines() -> None:
    recs = grid(
        lambda m, a, s: {"acc_corr": 0.1 * s + a, "acc_retain": None if s == 2 else 0.9},
        methods=("none", "oracle", "finetune"),
        alphas=[0.5, 1.0],
    )
    (g,) = groups_of(recs)
    cell = g.cell("finetune", 0.5, "acc_corr")
    assert (cell.n, cell.mean) == (3, pytest.approx(0.6)) and cell.std == pytest.approx(0.1)
    assert g.cell("finetune", 0.5, "acc_retain").n == 2  # a null is skipped, not a zero
    ref = g.reference("oracle", "acc_corr")  # per seed mean over alphas, then over seeds
    assert ref is not None and ref.n == 3 and ref.mean == pytest.approx(0.75 + 0.1)
    assert g.curves == ["finetune"] and g.methods[-2:] == ["none", "oracle"]


def test_alpha_star() -> None:
    def values(m: str, a: float, s: int) -> dict[str, Any]:
        corr = {"oracle": 0.9, "none": 0.1, "finetune": a, "ssd": 0.5}[m]
        return {"acc_corr": corr}

    recs = grid(values, methods=("none", "oracle", "finetune", "ssd"))
    (g,) = groups_of(recs)
    assert alpha_star(g, "finetune") == (0.9, [])  # 0.81 = 0.9 x 0.9 first reached at alpha 0.9
    assert alpha_star(g, "ssd") == (None, [])
    holed = [r for r in recs if not (r["method"] == "finetune" and r["alpha"] in (0.2, 0.3))]
    (g,) = groups_of(holed)
    assert alpha_star(g, "finetune") == (0.9, [0.2, 0.3])
    table = alpha_star_table([g])
    texts = {row[0].text: row[1].text for row in table.rows}
    assert texts == {"finetune": "0.9 (0.2, 0.3 missing)", "ssd": "never"}
    (g,) = groups_of([r for r in recs if r["method"] != "oracle"])
    with pytest.raises(LookupError):
        alpha_star(g, "finetune")
    assert alpha_star_table([g]).rows[0][1].text == "no oracle"
    assert holes(g) == ["oracle: no record for any seed"]


def test_table1_retain_change_in_points() -> None:
    def values(m: str, a: float, s: int) -> dict[str, Any]:
        retain = {"none": 0.90, "oracle": 0.92, "finetune": 0.91 if a <= 0.5 else 0.93, "ssd": 0.80}[m]
        return {"acc_retain": retain + 0.01 * s}

    (g,) = groups_of(grid(values, methods=("none", "oracle", "finetune", "ssd")))
    delta, k = retain_change(g, "finetune")  # +1 point at five alphas, +3 at the other five
    assert (delta.mean, delta.std, k) == (pytest.approx(0.02), pytest.approx(math.sqrt(10 * 0.01**2 / 9)), 10)
    assert retain_change(g, "ssd")[0].mean == pytest.approx(-0.10)
    t = table1([g])
    cells = {row[0].text: row[1].text for row in t.rows}
    assert cells == {
        "finetune": "+2.00 ± 1.05",
        "ssd": "-10.00 ± 0.00",
        "oracle (bound)": "+2.00",
        "original acc_retain (%)": "91.00",
    }


def test_target_acc_warning_only_when_the_target_class_is_lost(tmp_path: Path) -> None:
    recs = realistic()
    groups = {g.key.manipulation: g for g in groups_of(recs)}
    poison = groups["poison"]
    assert [a for a in poison.alphas if poison.target_flag("ssd", a)] == [0.1, 0.2, 0.3]
    assert not any(poison.target_flag(m, a) for m in ("finetune", "retrain") for a in poison.alphas)
    assert not any(
        groups["interclass"].target_flag(m, a) for m in groups["interclass"].curves for a in groups["interclass"].alphas
    )
    table = detail_table(poison)
    header = table.header
    assert header[2:4] == ["acc_corr", "target_acc"]  # target_acc right beside acc_corr
    warned = [(r[0].text, r[1].text) for r in table.rows if r[-1].text]
    assert warned == [("ssd", "0.1"), ("ssd", "0.2"), ("ssd", "0.3")]
    assert all(r[-1].cls == "warn" and "target class lost" in r[-1].text for r in table.rows if r[-1].text)
    stars = {row[0].text: row for row in alpha_star_table([groups["interclass"], poison]).rows}
    assert stars["ssd"][2].text.startswith("⚠") and stars["ssd"][1].text == "never"
    # a drop of 15 points (below the 20-point bar) is not flagged
    mild = grid(lambda m, a, s: {"target_acc": 0.80 if m == "ssd" else 0.95}, methods=("none", "oracle", "ssd"))
    (g,) = groups_of(mild)
    assert not any(g.target_flag("ssd", a) for a in g.alphas)
    doc = build_document(read_results(write(tmp_path, mild)), with_plots=False)
    assert not any(s.warnings for s in doc.sections)


def test_holes_are_shown_not_interpolated(tmp_path: Path) -> None:
    recs = [r for r in realistic() if r["manipulation"] == "interclass"]
    (g,) = groups_of(recs)
    assert g.missing("finetune") == [(0.5, 2), (0.7, 0), (0.7, 1), (0.7, 2)]
    rows = {(r[0].text, r[1].text): r for r in detail_table(g).rows}
    assert rows[("finetune", "0.7")][2].text == "missing" and rows[("finetune", "0.7")][-1].text == "0/3"
    assert rows[("finetune", "0.5")][-1].text == "2/3" and rows[("finetune", "0.5")][-1].cls == "hole"
    sec = next(
        s for s in build_document(read_results(write(tmp_path, recs)), with_plots=False).sections if s.level == 3
    )  # the setting's own section
    missing = [t for t in sec.items if getattr(t, "title", "").startswith("Missing runs")]
    assert missing and missing[0].rows[0][0].text == (
        "finetune: 4 of 30 runs missing: alpha 0.5 seed 2; alpha 0.7 (all seeds)"
    )
    # a method absent from one setting but run in another of the same dataset is a hole too
    other = grid(flat(0.5), methods=("none", "oracle", "ssd"), alphas=[0.5], manipulation="poison")
    other += grid(flat(0.5), methods=("none", "oracle"), alphas=[0.5], manipulation="interclass")
    g = {g.key.manipulation: g for g in groups_of(other)}["interclass"]
    assert g.missing("ssd") == [(0.5, 0), (0.5, 1), (0.5, 2)]


def test_duplicates_flat_candidates_and_the_specs_seeds(tmp_path: Path) -> None:
    recs = grid(flat(0.5), methods=("none", "oracle", "ssd"), alphas=[0.5], seeds=(0,))
    recs.append(record("ssd", 0.5, 0, acc_corr=0.7))  # a re-run of a finished job: the last one counts
    recs.append(record("ssd", 0.5, 0, acc_corr=0.1, selected=False))  # an unselected candidate, not nested
    write(tmp_path, recs)
    (tmp_path / "spec.json").write_text(json.dumps({"datasets": ["digits"], "seeds": [0, 1], "alphas": [0.5, 1.0]}))
    results = read_results(tmp_path)
    (g,), notes = build_groups(results)
    assert g.cell("ssd", 0.5, "acc_corr") == Stat(0.7, math.nan, 1)
    assert any("repeat" in n for n in notes)
    # seed 1 and alpha 1.0 have no record at all, but the spec asked for them
    assert g.missing("ssd") == [(0.5, 1), (1.0, 0), (1.0, 1)] and g.missing("oracle") == [(None, 1)]
    assert len(g.candidates) == 5


def test_bench_records_originals_and_nested_candidates() -> None:
    recs = [original(0, acc_corr=0.2), original(1, acc_corr=0.4), record("ssd", 0.5, 0)]
    recs[-1]["candidates"] = [dict(recs[-1], candidates=None), record("ssd", 0.5, 0, selected=False)]
    (g,) = groups_of(recs)
    ref = g.reference("none", "acc_corr")
    assert ref is not None and (ref.n, ref.mean) == (2, pytest.approx(0.3))
    assert g.alphas == [0.5] and g.curves == ["ssd"] and len(g.candidates) == 4


def test_score_and_timings() -> None:
    recs = realistic()
    scores = {s.method: s for s in score_rows(groups_of(recs))}
    ft = scores["finetune"]
    assert ft.manipulations == ("interclass", "poison") and ft.score.n == 56  # 60 minus the 4 holes
    expected = [r["utility"] * r["healed"] for r in recs if r["method"] == "finetune" and r["selected"]]
    assert ft.score.mean == pytest.approx(sum(expected) / len(expected))
    timings = {t.method: t for t in timing_rows(groups_of(recs))}
    assert timings["retrain"].retrain_ratio == pytest.approx(1.0)
    assert timings["finetune"].retrain_ratio == pytest.approx(6.0 / 21.0, rel=0.01)
    assert timings["ssd"].grid_seconds is not None and timings["finetune"].grid_seconds is None
    # ssd alpha 0.1 seed 0 adds a 0.4 s candidate to its 0.5 s selected one: the grid mean rises by 0.4/60
    assert timings["ssd"].grid_seconds.mean == pytest.approx(timings["ssd"].seconds.mean + 0.4 / 60)


def test_html_is_self_contained_with_the_expected_tables(tmp_path: Path) -> None:
    folder = write(tmp_path / "res", realistic())
    *pngs, html_path = write_report(folder, tmp_path / "out", "html")
    html = html_path.read_text()
    for needle in (
        "Table 1: change in acc_retain",
        "alpha*: least discovery rate",
        "REM score",
        "Timings",
        "results per method and alpha",
        "target_acc",
        "⚠ target class lost",
        "Missing runs",
        "oracle (bound)",
        "rem_ideal (bound)",
        "original (none)",
    ):
        assert needle in html, needle
    # Figures 2, 5b/6b, Table 1 bars, REM's map, timings (one block) and one per setting: embedded and beside it
    assert html_path.name == "report.html" and len(pngs) == 5 + 2
    assert html.count("data:image/png;base64,") == len(pngs) and all(p.parent.name == "figures" for p in pngs)
    assert "the SSD records hold no importance-ratio histogram" in html and "no method with more than one" in html
    assert "<script" not in html and "<link" not in html and 'src="http' not in html
    assert not (tmp_path / "out" / "report.md").exists()


def test_markdown_with_figure_files(tmp_path: Path) -> None:
    folder = write(tmp_path, realistic())
    paths = write_report(folder, fmt="md")
    assert paths[-1] == tmp_path / "report.md" and all(p.suffix == ".png" for p in paths[:-1])
    md = paths[-1].read_text()
    assert "| method | alpha | acc_corr | target_acc |" in md and "**⚠ target class lost**" in md
    pngs = sorted((tmp_path / "figures").glob("*.png"))
    assert pngs == sorted(paths[:-1]) and all(f"figures/{p.name}" in md for p in pngs)


def test_figures_are_deterministic() -> None:
    (g,) = groups_of([r for r in realistic() if r["manipulation"] == "poison"])
    colour = draw.colours(g.methods)
    a, b = (draw.png(group_figure(g, colour)) for _ in range(2))
    assert a == b and a.startswith(b"\x89PNG")


def test_without_matplotlib_tables_still_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(draw, "available", lambda: False)
    (path,) = write_report(write(tmp_path, realistic()), fmt="html")
    html = path.read_text()
    assert "data:image/png" not in html and "pip install &#x27;corrective-unlearning[report]&#x27;" in html
    assert "Table 1" in html


def test_torn_last_line_is_skipped_with_a_note(tmp_path: Path) -> None:
    results = read_results(write(tmp_path, [record("none", 1.0, 0)], tail='{"method": "ss'))
    assert len(results.rows) == 1 and "torn" in results.notes[0] and "line 2" in results.notes[0]


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.mkdir(), "has no results.jsonl"),
        (lambda d: write(d, []), "holds no records"),
        (lambda d: write(d, [], tail="\n\n"), "holds no records"),
        (
            lambda d: write(d, [], tail="{torn\n" + json.dumps(record("none", 1.0, 0)) + "\n"),
            "results.jsonl:1 is not valid",
        ),
        (lambda d: write(d, [], tail="[1, 2]\n"), "not a JSON object"),
        (
            lambda d: write(d, [{k: v for k, v in record("none", 1.0, 0).items() if k != "dataset"}]),
            "lacks field 'dataset'",
        ),
        (
            lambda d: write(d, [{k: v for k, v in record("none", 1.0, 0).items() if k != "acc_corr"}]),
            "lacks field 'acc_corr'",
        ),
        (lambda d: write(d, [record("none", 1.0, 0, acc_corr="high")]), "'acc_corr' should be a number"),
    ],
)
def test_bad_input_is_one_clear_user_error(tmp_path: Path, setup: Callable[[Path], Any], needle: str) -> None:
    folder = tmp_path / "res"
    setup(folder)
    with pytest.raises(UserError) as e:
        read_results(folder)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_cli_prints_paths_and_errors_in_one_line(tmp_path: Path) -> None:
    folder = write(tmp_path / "res", realistic())
    run = [sys.executable, "-m", "corrective", "report"]
    ok = subprocess.run(
        [*run, str(folder), "--out", str(tmp_path / "o"), "--no-plots"], capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == [str(tmp_path / "o" / "report.html"), str(tmp_path / "o" / "report.md")]
    bad = subprocess.run([*run, str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "does not exist" in bad.stderr
    with pytest.raises(UserError, match="unknown report format 'pdf'"):
        write_report(folder, fmt="pdf")


def expansion_record(
    manipulation: str, strategy: str, alpha: float, seed: int, precision: float, recall: float
) -> dict[str, Any]:
    """A record of the bench's expand stage."""
    return {
        "job_id": f"x-{manipulation}-{strategy}-{alpha}-{seed}",
        "stage": "expand",
        "dataset": "digits",
        "model": "cnn",
        "training": "standard",
        "manipulation": manipulation,
        "size": 0.05,
        "seed": seed,
        "method": None,
        "alpha": alpha,
        "expand": strategy,
        "expand_chosen": "neighbours" if strategy == "auto" else strategy,
        "n_expanded": 50,
        "expand_seconds": 0.5,
        "expand_precision": precision,
        "expand_recall": recall,
    }


def test_expansions_and_guarded_selection_are_their_own_entries(tmp_path: Path) -> None:
    recs = grid(flat(0.5), methods=("none", "oracle", "ssd"), alphas=[0.1, 0.5], seeds=(0, 1))
    recs += [
        r
        | {
            "expand": "auto",
            "n_expanded": 50,
            "expand_seconds": 2.0,
            "expand_precision": 0.9,
            "expand_recall": 0.8,
            "job_id": r["job_id"] + "-x",
            "acc_corr": 0.9,
        }
        for r in recs
        if r["method"] == "ssd"
    ]
    recs += [
        r | {"selection": "guarded", "guard_fallback": False, "job_id": r["job_id"] + "-g", "acc_corr": 0.7}
        for r in recs
        if r["method"] == "ssd" and "expand" not in r
    ]
    recs += [
        expansion_record("poison", s, a, seed, p, 0.5 + 0.4 * a)
        for s, p in (("auto", 0.95), ("neighbours", 0.8))
        for a in (0.1, 0.5)
        for seed in (0, 1)
    ]
    results = read_results(write(tmp_path / "r", recs))
    assert len(results.expansions) == 8 and all(r.method != "auto" for r in results.rows)
    (g,) = build_groups(results)[0]
    assert g.curves == ["ssd", "ssd+auto", "ssd[guarded]"]
    assert g.cell("ssd+auto", 0.1, "acc_corr").mean == pytest.approx(0.9)
    assert g.cell("ssd[guarded]", 0.5, "acc_corr").mean == pytest.approx(0.7)
    timing = {t.method: t.seconds.mean for t in timing_rows([g])}
    assert timing["ssd+auto"] == pytest.approx(timing["ssd"] + 2.0)  # the expansion's time counts
    doc = build_document(results, with_plots=draw.available())
    (sec,) = [s for s in doc.sections if s.anchor == "expansion"]
    (table,) = [i for i in sec.items if hasattr(i, "rows")]
    cells = {(r[0].text, r[2].text): (r[3].text, r[4].text, r[7].text) for r in table.rows}
    assert cells[("auto", "0.1")] == ("95.0 ± 0.0", "54.0 ± 0.0", "neighbours")
    assert cells[("neighbours", "0.5")][1] == "70.0 ± 0.0"
    if draw.available():
        (fig,) = [i for i in sec.items if hasattr(i, "png")]
        assert fig.name.startswith("expansion-") and fig.png[:4] == b"\x89PNG"
        panels = expansion_curves({"poison": expansion_cells(results.expansions)})
        lines = {c.get_label(): list(c.lines[0].get_ydata()) for c in panels.axes[0].containers}
        assert lines["auto precision"] == pytest.approx([95.0, 95.0])
        assert lines["neighbours recall"] == pytest.approx([54.0, 70.0])
    none = build_document(read_results(write(tmp_path / "n", recs[:6])), with_plots=False)
    assert "No expansion records" in next(s for s in none.sections if s.anchor == "expansion").items[0]


def test_defence_view_table_of_poisoning_settings(tmp_path: Path) -> None:
    from corrective.report.defence import defence_table

    def values(m: str, a: float, s: int) -> dict[str, Any]:
        return {
            "c_acc": 0.9,
            "asr": 0.1 + 0.1 * s,
            "r_acc": 0.8,
            "der": 0.85 if m != "none" else 0.5,
            "target_acc": 0.9,
        }

    recs = grid(values, methods=("none", "oracle", "ssd"), alphas=[0.5, 1.0])
    recs += grid(values, methods=("none", "ssd"), alphas=[0.5], manipulation="interclass")
    poison = next(g for g in groups_of(recs) if g.key.manipulation == "poison")
    table = defence_table(poison)
    assert table.header[:7] == ["method", "alpha", "C-Acc", "ASR", "R-Acc", "DER", "target_acc"]
    rows = {(r[0].text, r[1].text): [c.text for c in r] for r in table.rows}
    assert rows[("ssd", "0.5")][2:8] == ["90.0 ± 0.0", "20.0 ± 10.0", "80.0 ± 0.0", "85.0 ± 0.0", "90.0 ± 0.0", "3/3"]
    assert rows[("original (none)", "any")][5] == "50.0 ± 0.0"
    doc = build_document(read_results(write(tmp_path, recs)), with_plots=False)
    (sec,) = [s for s in doc.sections if s.anchor == "defence"]
    assert [t.title for t in sec.items if not isinstance(t, str)] == [table.title]  # poisoning only


def test_defence_view_of_records_without_its_metrics_is_one_line_not_a_table_of_missing(tmp_path: Path) -> None:
    """Records older than C-Acc/ASR/R-Acc/DER: the section says so in one line (as SSD's Figure 3 does for records
    without histograms); where only some poisoning settings lack them, their tables go and one line names them."""
    old = grid(lambda m, a, s: {"target_acc": 0.9}, methods=("none", "oracle", "ssd"), alphas=[0.5, 1.0])
    doc = build_document(read_results(write(tmp_path / "old", old)), with_plots=False)
    (sec,) = [s for s in doc.sections if s.anchor == "defence"]
    assert len(sec.items) == 1 and isinstance(sec.items[0], str)
    assert "hold no C-Acc, ASR, R-Acc or DER" in sec.items[0] and "older corrective" in sec.items[0]
    write_report(tmp_path / "old", fmt="md", plots=False)
    page = (tmp_path / "old" / "report.md").read_text()
    assert "| C-Acc |" not in page and "backdoor defence view**" not in page

    new = grid(
        lambda m, a, s: {"c_acc": 0.9, "asr": 0.1, "r_acc": 0.8, "der": 0.9},
        methods=("none", "oracle", "ssd"),
        alphas=[0.5, 1.0],
    )
    for r in old:
        r["size"] = 0.1  # a second poisoning setting, its records without the defence metrics
    doc = build_document(read_results(write(tmp_path / "mixed", new + old)), with_plots=False)
    (sec,) = [s for s in doc.sections if s.anchor == "defence"]
    tables = [t for t in sec.items if not isinstance(t, str)]
    assert [t.title for t in tables] == ["digits · poison · size 0.05 · cnn · standard training: backdoor defence view"]
    assert all(c.text != "missing" for r in tables[0].rows for c in r[2:6])
    assert sec.items[-1] == "Missing here: no C-Acc, ASR, R-Acc or DER for poison 0.1."


def test_covered_blocks_says_why_a_view_is_empty_and_what_it_lacks() -> None:
    from corrective.report.document import Section
    from corrective.report.groups import blocks
    from corrective.report.view import Coverage, covered_blocks

    recs = [
        r
        for manipulation in ("poison", "interclass")
        for r in grid(flat(0.5), methods=("none", "finetune"), alphas=[0.5], manipulation=manipulation)
    ]
    by_block = blocks(groups_of(recs))

    def view(**kw: Any) -> list[Any]:
        coverage = Coverage(older="{label}: too old", what="things", absent="{label}: nothing here", **kw)
        return covered_blocks(Section("t", "t"), by_block, coverage, lambda label, held: [len(held)]).items

    assert view(holds=lambda g: True) == [2]  # every setting holds it: what `show` gave, no 'missing' line
    assert view(holds=lambda g: False) == ["digits · cnn · standard training: too old"]
    assert view(holds=lambda g: g.key.manipulation == "poison") == [1, "Missing here: no things for interclass 0.05."]
    assert view(holds=lambda g: True, scope=lambda gs: []) == ["digits · cnn · standard training: nothing here"]
    only_poison = view(holds=lambda g: True, scope=lambda gs: [g for g in gs if g.key.manipulation == "poison"])
    assert only_poison == [1]  # a setting out of scope is not 'missing'
