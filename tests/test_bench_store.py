"""The results store: atomic appends, torn tails, no duplicates; summary aggregation."""

from __future__ import annotations

import json
import math

import pytest

from corrective.bench import ResultStore, read_records, summarize
from corrective.bench.store import write_summary


def test_append_read_and_no_duplicates(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    store.append({"job_id": "a", "x": 1.0})
    store.append({"job_id": "a", "x": 2.0})  # same job again: ignored
    store.append({"job_id": "b", "x": float("nan")})
    assert [r["job_id"] for r in read_records(tmp_path / "r.jsonl")] == ["a", "b"]
    assert read_records(tmp_path / "r.jsonl")[1]["x"] is None
    assert ResultStore(tmp_path / "r.jsonl").done() == {"a", "b"}


def test_torn_last_line_is_ignored_then_cut(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"job_id": "a"}\n{"job_id": "b", "x": 1')  # a crash mid-write
    assert [r["job_id"] for r in read_records(path)] == ["a"]
    store = ResultStore(path)
    assert store.done() == {"a"}
    store.append({"job_id": "b", "x": 2})
    assert path.read_bytes() == b'{"job_id": "a"}\n{"job_id": "b", "x": 2}\n'


def rec(seed, method, alpha, acc_corr, manipulation="poison", stage="unlearn", **extra):
    return {
        "job_id": f"{method}{alpha}{seed}{manipulation}",
        "stage": stage,
        "dataset": "d",
        "model": "m",
        "training": "standard",
        "manipulation": manipulation,
        "size": 0.05,
        "seed": seed,
        "method": method,
        "alpha": alpha,
        "is_method": True,
        "settings": {"a": seed % 2},
        "acc_corr": acc_corr,
        **extra,
    }


def test_summary_aggregates_over_seeds():
    records = [
        rec(0, "ssd", 0.5, 0.5, target_acc=0.9),
        rec(1, "ssd", 0.5, 0.7, target_acc=None),  # a missing value is left out of its n
        rec(2, "ssd", 0.5, 0.9, target_acc=0.7),
        rec(0, "ssd", 1.0, 0.2),
        rec(0, "ssd", 0.5, 0.4, manipulation="interclass"),
        rec(0, None, None, 0.1, stage="original"),  # originals are not summarized
    ]
    rows = summarize(records)
    assert len(rows) == 3
    row = next(r for r in rows if r["alpha"] == 0.5 and r["manipulation"] == "poison")
    assert row["acc_corr_mean"] == pytest.approx(0.7)
    assert row["acc_corr_std"] == pytest.approx(0.2)  # sample std (n - 1)
    assert row["acc_corr_n"] == 3
    assert row["target_acc_mean"] == pytest.approx(0.8) and row["target_acc_n"] == 2
    assert row["seeds"] == "0 1 2"
    assert row["settings"] == " | ".join(sorted({json.dumps({"a": 0}), json.dumps({"a": 1})}))
    single = next(r for r in rows if r["alpha"] == 1.0)
    assert single["acc_corr_n"] == 1 and math.isnan(single["acc_corr_std"])
    assert math.isnan(single["healed_mean"]) and single["healed_n"] == 0


def test_summary_has_the_defence_view_columns(tmp_path):
    rows = summarize([rec(0, "ssd", 0.5, 0.5, c_acc=0.9, asr=0.2, r_acc=0.7, der=0.8)])
    write_summary(rows, tmp_path / "summary.csv")
    header = (tmp_path / "summary.csv").read_text().splitlines()[0].split(",")
    for m in ("c_acc", "asr", "r_acc", "der"):
        assert f"{m}_mean" in header and f"{m}_n" in header
    assert rows[0]["der_mean"] == 0.8 and rows[0]["asr_n"] == 1


def test_keep_records_compresses_the_records_and_copies_summary_and_spec(tmp_path) -> None:
    """The kept records (gzip) read back as the results file does."""
    import gzip

    from corrective.bench import keep_records, read_records

    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text('{"job_id": "a"}\n{"job_id": "b"}\n')
    (run / "summary.csv").write_text("x\n1\n")
    (run / "spec.json").write_text("{}")
    kept = keep_records(run, tmp_path / "kept")
    assert gzip.decompress(kept.read_bytes()) == (run / "results.jsonl").read_bytes()
    assert (tmp_path / "kept" / "summary.csv").read_text() == "x\n1\n"
    assert (tmp_path / "kept" / "spec.json").read_text() == "{}"
    assert read_records(kept) == read_records(run / "results.jsonl") == [{"job_id": "a"}, {"job_id": "b"}]


def test_a_cached_expansion_keeps_what_the_screen_set_aside(tmp_path) -> None:
    """The bench caches each expansion and hands it to every method: the set-aside flags come back with it, so
    the unlearn records say what was set aside as the expand record does."""
    import torch

    from corrective.bench.jobs import expansion_json, expansion_path, load_expansion
    from corrective.expand import Expansion

    exp = Expansion("auto", "neighbours", torch.tensor([1, 2, 5]), torch.tensor([5]), torch.tensor([0.7]), 1.5, {})
    exp = Expansion(**{**exp.__dict__, "set_aside": torch.tensor([3, 4])})
    path = expansion_path(tmp_path, "e1")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(expansion_json(exp)))
    back = load_expansion(tmp_path, "e1")
    assert back.set_aside.tolist() == [3, 4] and back.to_record() == exp.to_record()
    older = {k: v for k, v in expansion_json(exp).items() if k != "set_aside"}  # a cache written before
    path.write_text(json.dumps(older))
    assert load_expansion(tmp_path, "e1").set_aside.tolist() == []
