"""The report's figures hold exactly the results file's numbers; partial results say what is missing.

Expected values are computed here straight from the JSON records (plain means), independently of the
report's own aggregation, and compared with the data inside the matplotlib figures (lines, bands, bars,
images, histograms, scatter points).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.container import BarContainer
from matplotlib.patches import Rectangle, StepPatch

from corrective.report import build_document, draw, read_results
from corrective.report.curves import by_alpha
from corrective.report.groups import build_groups, ordered_methods
from corrective.report.score import score_map
from corrective.report.sensitivity import sensitivity
from corrective.report.ssd import ratio_histograms
from corrective.report.table1 import retain_bars
from corrective.report.timing import timing_bars, timing_rows
from report_records import SETTINGS, full_bench, original, record, write

MANIPULATIONS = ["poison", "interclass", "random_swap"]
ALPHAS = [0.1, 0.5, 1.0]
CURVES = ["finetune", "retrain", "ssd", "rem_ideal"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], list]:
    """The records as written, and the report's groups read back from the file."""
    recs = full_bench()
    folder = write(tmp_path_factory.mktemp("bench"), recs)
    return recs, build_groups(read_results(folder))[0]


def lines_from_file(recs: list[dict[str, Any]], manip: str, method: str, metric: str) -> dict[float, list[float]]:
    """Selected values per alpha straight from the records (candidates nested in a record are not selected)."""
    out: dict[float, list[float]] = defaultdict(list)
    for r in recs:
        if r["manipulation"] == manip and r.get("method") == method and r.get("selected", True):
            out[r["alpha"]].append(r[metric])
    return out


def flat_from_file(recs: list[dict[str, Any]], manip: str, method: str, metric: str) -> float:
    """The original (stage original) or the oracle: one record per seed, their mean."""
    values = [
        r[metric]
        for r in recs
        if r["manipulation"] == manip and (r["stage"] == "original" if method == "none" else r.get("method") == method)
    ]
    return statistics.fmean(values)


def approx_list(values: list[float]) -> Any:
    return pytest.approx(values, nan_ok=True)


@pytest.mark.parametrize("metric", ["acc_corr", "healed"])
def test_metric_against_alpha_panels_lines_points_and_bands(bench: tuple, metric: str) -> None:
    recs, groups = bench
    fig = by_alpha(groups, metric, draw.colours([m for g in groups for m in g.methods]))
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [f"{m} (size 0.05)" for m in MANIPULATIONS]
    for ax, manip in zip(axes, MANIPULATIONS, strict=True):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert sorted(lines) == sorted(
            ["finetune", "retrain", "ssd", "rem_ideal (bound)", "original (none)", "oracle (bound)"]
        )
        for method in CURVES:
            line = lines[method if method != "rem_ideal" else "rem_ideal (bound)"]
            per_alpha = lines_from_file(recs, manip, method, metric)
            assert list(line.get_xdata()) == ALPHAS  # three points, one per alpha
            assert list(line.get_ydata()) == approx_list([100 * statistics.fmean(per_alpha[a]) for a in ALPHAS])
        for method, label in (("none", "original (none)"), ("oracle", "oracle (bound)")):
            assert lines[label].get_ydata()[0] == pytest.approx(100 * flat_from_file(recs, manip, method, metric))
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == len(CURVES)  # one ± std band per curve
        ssd = lines_from_file(recs, manip, "ssd", metric)
        top = max(statistics.fmean(v) + statistics.stdev(v) for v in ssd.values())
        assert max(bands[CURVES.index("ssd")].get_paths()[0].vertices[:, 1]) == pytest.approx(100 * top)
        circles = [c for c in ax.collections if isinstance(c, PathCollection)]
        if manip == "poison":  # SSD at alpha 0.1 lost the target class (target_acc 5 % vs 97 %): circled
            (c,) = circles
            assert c.get_offsets().tolist() == [[0.1, pytest.approx(100 * statistics.fmean(ssd[0.1]))]]
        else:
            assert not circles
    # the hole: finetune interclass alpha 0.5 has two seeds, and the point is their mean, not a gap
    assert len(lines_from_file(recs, "interclass", "finetune", metric)[0.5]) == 2


def test_rem_map_cells_are_the_mean_score_and_flag_the_lost_target(bench: tuple) -> None:
    recs, groups = bench
    methods = ordered_methods(groups)
    fig = score_map(groups, methods)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == len(methods) == len(CURVES) + 2
    for ax, (method, _) in zip(panels, methods, strict=True):
        grid = ax.images[0].get_array().filled(math.nan)
        assert grid.shape == (3, 3)
        for i, manip in enumerate(MANIPULATIONS):
            if method in ("none", "oracle"):
                expected = [100 * flat_from_file(recs, manip, method, "score")] * 3
            else:
                per_alpha = lines_from_file(recs, manip, method, "score")
                expected = [100 * statistics.fmean(per_alpha[a]) for a in ALPHAS]
            assert grid[i].tolist() == approx_list(expected)
        flagged = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
        assert len(flagged) == (1 if method == "ssd" else 0)  # poison row, alpha 0.1


def test_table1_bars_are_the_mean_change_over_alpha(bench: tuple) -> None:
    recs, groups = bench
    methods = ordered_methods(groups)
    fig = retain_bars(groups, methods, draw.colours([m for m, _ in methods]))
    bars = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    assert len(bars) == 3
    shown = [m for m, _ in methods if m != "none"]
    for container, manip in zip(bars, MANIPULATIONS, strict=True):
        original_retain = flat_from_file(recs, manip, "none", "acc_retain")
        for patch, method in zip(container.patches, shown, strict=True):
            if method == "oracle":
                expected = flat_from_file(recs, manip, "oracle", "acc_retain") - original_retain
            else:
                per_alpha = lines_from_file(recs, manip, method, "acc_retain")
                expected = statistics.fmean(statistics.fmean(per_alpha[a]) for a in ALPHAS) - original_retain
            assert patch.get_height() == pytest.approx(100 * expected)


def test_ssd_histograms_sum_the_seeds_counts(bench: tuple) -> None:
    recs, groups = bench
    fig = ratio_histograms(groups)
    assert [ax.get_title() for ax in fig.axes] == [f"alpha {a:g}" for a in ALPHAS]
    for ax, alpha in zip(fig.axes, ALPHAS, strict=True):
        steps = [p for p in ax.patches if isinstance(p, StepPatch)]
        assert len(steps) == 2  # poison and interclass; random swap's records hold none
        for step, manip in zip(steps, ["poison", "interclass"], strict=True):
            hists = [
                r["diagnostics"]["importance_ratio"]
                for r in recs
                if r.get("method") == "ssd" and r["manipulation"] == manip and r["alpha"] == alpha
            ]
            assert len(hists) == 3
            total = sum(h["n_params"] for h in hists)
            expected = [sum(h["counts"][k] for h in hists) / total for k in range(64)]
            data = step.get_data()
            assert data.values.tolist() == pytest.approx(expected) and data.edges.tolist() == hists[0]["log10_edges"]
            above = sum(h["counts"][k] for h in hists for k in range(44, 64))  # log10 ratio >= 3
            assert f"max {max(h['max_finite'] for h in hists):.3g}, {above} ≥ 1e3, 3 inf" in step.get_label()
            assert (above > 0) == (manip == "poison")
    # the poisoned model's tail of outliers (log10 ratio 2.75-3.25, bins 43-44) is drawn; interclass has none
    poison, interclass = (s.get_data() for s in fig.axes[0].patches if isinstance(s, StepPatch))
    assert poison.values[43:45].sum() > 0 and interclass.values[43:45].sum() == 0


def test_sensitivity_draws_every_setting_and_the_tradeoff_at_half(bench: tuple) -> None:
    recs, groups = bench
    fig = sensitivity(groups, "ssd", draw.colours(["ssd"]))
    top, bottom = fig.axes[:3], fig.axes[3:]
    labels = {
        json.dumps(s, sort_keys=True): lab
        for s, lab in zip(SETTINGS, ["a=1, lambda_=1", "a=10, lambda_=1", "a=10, lambda_=10"], strict=True)
    }
    for ax, scatter_ax, manip in zip(top, bottom, MANIPULATIONS, strict=True):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(labels.values()) | {"selected by the rule", "original (none)", "oracle (bound)"} == set(lines)
        per_setting: dict[str, dict[float, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
        for r in recs:
            if r.get("method") == "ssd" and r["manipulation"] == manip:
                for c in r["candidates"]:
                    per_setting[json.dumps(c["settings"], sort_keys=True)][c["alpha"]].append(
                        (c["acc_retain"], c["acc_corr"])
                    )
        for key, label in labels.items():
            expected = [100 * statistics.fmean(c for _, c in per_setting[key][a]) for a in ALPHAS]
            assert list(lines[label].get_ydata()) == approx_list(expected)
        points, star = _scatter(scatter_ax)
        expected_points = [
            100 * statistics.fmean(v[i] for v in per_setting[k][0.5]) for k in sorted(per_setting) for i in (0, 1)
        ]  # (acc_retain, acc_corr) per setting
        assert points.get_offsets().ravel().tolist() == pytest.approx(expected_points)
        assert len(star.get_offsets()) == 1


def _scatter(ax: Any) -> tuple[PathCollection, PathCollection]:
    """The bottom panel's settings points and the selected star (the first two scatter calls)."""
    points, star = [c for c in ax.collections if isinstance(c, PathCollection)][:2]
    return points, star


def test_timing_bars_are_the_selected_settings_mean_seconds(bench: tuple) -> None:
    recs, groups = bench
    rows = [t for t in timing_rows(groups) if t.seconds.n]
    fig = timing_bars(rows, draw.colours([t.method for t in rows]))
    (bars,) = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    for patch, t in zip(bars.patches, rows, strict=True):
        seconds = [r["unlearn_seconds"] for r in recs if r.get("method") == t.method and r.get("selected", True)]
        assert patch.get_width() == pytest.approx(statistics.fmean(seconds))
    assert "oracle" in [t.method for t in rows] and "none" not in [t.method for t in rows]  # originals: no time


def texts(doc: Any) -> str:
    return "\n".join(str(item) for s in doc.sections for item in s.items if isinstance(item, str))


def test_a_partial_results_folder_gives_what_it_can_and_names_what_is_missing(tmp_path: Path) -> None:
    recs = [original(s) for s in (0, 1)] + [record("finetune", a, s, acc_corr=0.3 + a) for a in ALPHAS for s in (0, 1)]
    doc = build_document(read_results(write(tmp_path, recs)))
    names = [i.name for s in doc.sections for i in s.items if hasattr(i, "png")]
    assert names == [
        "acc_corr-digits-cnn-standard-training",
        "healed-digits-cnn-standard-training",
        "retain-digits-cnn-standard-training",
        "rem-map-digits-cnn-standard-training",
        "timings-digits-cnn-standard-training",
        "digits-poison-size-0-05-cnn-standard-training",
    ]
    said = texts(doc)
    assert (
        "Missing here: no records for interclass, random_swap: no panel for them; no oracle records for "
        "poison 0.05: no oracle line there." in said
    )
    assert "no SSD records, so no importance ratios" in said and "no method with more than one setting" in said
    # only the originals: still a report, with the reference lines
    doc = build_document(read_results(write(tmp_path / "only", [original(0)])))
    assert doc.sections[1].items and "no SSD records" in texts(doc)


def test_the_full_bench_document_names_the_missing_histogram(bench: tuple, tmp_path: Path) -> None:
    recs, _ = bench
    doc = build_document(read_results(write(tmp_path, recs)))
    said = texts(doc)
    assert "Missing here: no histogram for random_swap 0.05." in said
    names = [i.name for s in doc.sections for i in s.items if hasattr(i, "png")]
    assert {"ssd-ratios-digits-cnn-standard-training", "sensitivity-ssd-digits-cnn-standard-training"} <= set(names)
    assert all("Averages 3 seeds (0, 1, 2)" in i.caption for s in doc.sections for i in s.items if hasattr(i, "png"))


def test_many_settings_get_a_colour_key_in_grid_order(tmp_path: Path) -> None:
    # twelve settings: too many for a legend; their JSON texts sort a=10 before a=2, the key must not
    grid = [{"a": a, "lambda_": lam} for a in (0.5, 2.0, 10.0, 100.0) for lam in (0.1, 1.0, 10.0)]
    recs = [original(0, manipulation="poison")]
    for alpha in (0.5, 1.0):
        rec = record("ssd", alpha, 0, settings=grid[0], acc_corr=0.0)  # the selected one: setting 0
        rec["candidates"] = [
            {**record("ssd", alpha, 0, selected=k == 0, acc_corr=0.01 * k), "settings": st} for k, st in enumerate(grid)
        ]
        recs.append(rec)
    groups = build_groups(read_results(write(tmp_path, recs)))[0]
    fig = sensitivity(groups, "ssd", draw.colours(["ssd"]))
    (key,) = [ax for ax in fig.axes if ax.get_label() == "colour key"]
    names = [t.get_text() for t in key.get_yticklabels()]
    assert names[0] == "a=0.5, lambda_=0.1" and names[-1] == "a=100, lambda_=10" and len(names) == 6
    assert "12 settings, ordered by a, lambda_" in key.get_ylabel()
    assert all(line.get_label().startswith("_") for line in fig.axes[0].get_lines()[:12])  # no legend entry each
    shades = {round(line.get_ydata()[0], 6): line.get_color() for line in fig.axes[0].get_lines()[:12]}
    # acc_corr 0.01 k marks setting k (grid order): its colour is the k-th of the key's colour map
    from matplotlib import colormaps

    assert [shades[round(k, 6)] for k in range(12)] == [colormaps["viridis"](k / 11) for k in range(12)]


def test_the_header_counts_jobs_and_one_seed_is_not_a_mean(tmp_path: Path) -> None:
    recs = [r for r in full_bench(seeds=(0,)) if r["manipulation"] == "poison"]
    doc = build_document(read_results(write(tmp_path, recs)), with_plots=True)
    jobs = len(recs)  # one line per job, the grid candidates inside SSD's records
    rows = jobs + sum(len(r["candidates"]) - 1 for r in recs if "candidates" in r)
    assert doc.facts[1].startswith(f"{jobs} jobs recorded (1 original, 1 oracle, {jobs - 2} unlearn); ")
    assert f"{rows} evaluated models" in doc.facts[1]
    text = " ".join(
        str(item) if isinstance(item, str) else getattr(item, "caption", "") + " ".join(getattr(item, "notes", []))
        for s in doc.sections
        for item in s.items
    )
    assert "over seeds" not in text and "std over 1" not in text
    assert "one seed" in text
