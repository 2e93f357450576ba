"""The paper's selection rule (§3.2) on hand-made candidates, and as `api.unlearn` applies it."""

from __future__ import annotations

import math

import pytest

from corrective import api
from corrective.methods import select, selection_score
from corrective.metrics import evaluate


def cand(val: float | None, changed: float | None, **extra: float) -> dict:
    return {"val_accuracy": val, "forget_changed": changed, **extra}


def test_score_is_half_validation_half_forget_changed() -> None:
    assert selection_score(cand(0.8, 0.4)) == pytest.approx(0.6)


def test_picks_the_highest_score_and_ignores_the_test_set() -> None:
    records = [cand(0.9, 0.1, acc_corr=1.0, clean_acc=1.0), cand(0.7, 0.6, acc_corr=0.0, clean_acc=0.0), cand(1.0, 0.0)]
    assert select(records) == 1


def test_ties_go_to_the_first_in_grid_order() -> None:
    assert select([cand(0.5, 0.5), cand(0.8, 0.2), cand(0.2, 0.8)]) == 0
    assert select([cand(0.1, 0.1), cand(0.8, 0.2), cand(0.2, 0.8)]) == 1


def test_nan_or_missing_never_wins_over_a_number() -> None:
    assert select([cand(math.nan, 1.0), cand(0.1, 0.0), cand(1.0, None), {}]) == 1
    assert selection_score(cand(math.nan, 0.5)) == float("-inf")


def test_all_nan_falls_back_to_the_first_and_empty_is_an_error() -> None:
    assert select([cand(math.nan, math.nan), cand(None, None)]) == 0
    with pytest.raises(ValueError):
        select([])


def test_unlearn_marks_exactly_the_selected_candidate(poison_run: api.Run) -> None:
    result = api.unlearn(poison_run, "scrub", 0.5, settings={"fraction": 0.05}, grid=True, progress=False)
    assert len(result.records) == 8
    assert [r["selected"] for r in result.records].count(True) == 1
    assert result.record["selected"] and result.selected == select(result.records)
    # the returned model is the selected candidate's: its metrics are the selected record's, not another's
    forget_ids = poison_run.manipulation.forget_ids(0.5)
    again = evaluate(result.model, poison_run.dataset, poison_run.manipulation, reference=poison_run.model,
                     forget_ids=forget_ids)
    assert {k: result.record[k] for k in again} == again
    assert any({k: r[k] for k in again} != again for r in result.records if not r["selected"])
    assert all(r["settings"]["fraction"] == 0.05 for r in result.records)
    assert {r["settings"]["alpha"] for r in result.records} == {0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0}
