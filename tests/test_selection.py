"""The paper's selection rule (§3.2) on hand-made candidates, and as `api.unlearn` applies it."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from corrective import api
from corrective.errors import UserError
from corrective.methods import Selection, select, selection_score
from corrective.methods.selection import (
    HEAL_TOLERANCE,
    Reference,
    class_drop,
    heal_change,
    selection_record,
    unhealed,
    whole_drop,
)
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
    with pytest.raises(ValueError, match="no candidates"):
        select([])


def test_unlearn_marks_exactly_the_selected_candidate(poison_run: api.Run) -> None:
    result = api.unlearn(poison_run, "scrub", 0.5, settings={"budget": 0.05}, grid=True, progress=False)
    assert len(result.records) == 8
    assert [r["selected"] for r in result.records].count(True) == 1
    assert result.record["selected"] and result.selected == select(result.records)
    # the returned model is the selected candidate's: its metrics are the selected record's, not another's
    forget_ids = poison_run.manipulation.forget_ids(0.5)
    again = evaluate(
        result.model, poison_run.dataset, poison_run.manipulation, reference=poison_run.model, forget_ids=forget_ids
    )
    assert {k: result.record[k] for k in again} == again
    assert any({k: r[k] for k in again} != again for r in result.records if not r["selected"])
    assert all(r["settings"]["budget"] == 0.05 for r in result.records)
    assert {r["settings"]["kl_weight"] for r in result.records} == {0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0}


# ---------------------------------------------------------------- guarded selection

REF = Reference((0.9,) * 10)  # the original model's validation accuracy per class (sample counts not given)


def per_class(drop_class: int | None = None, value: float = 0.0, base: float = 0.9) -> list[float]:
    out = [base] * 10
    if drop_class is not None:
        out[drop_class] = value
    return out


def test_guarded_rejects_a_class_erasing_candidate_with_the_best_paper_score() -> None:
    erasing = cand(0.82, 1.0, val_per_class_acc=per_class(0, 0.0))  # paper score 0.91: flips all of S_f
    honest = cand(0.9, 0.3, val_per_class_acc=per_class(0, 0.87))  # paper score 0.60, class 0 down 3 points
    unchanged = cand(0.9, 0.0, val_per_class_acc=per_class())  # paper score 0.45
    records = [unchanged, erasing, honest]
    assert select(records) == 1  # the paper's rule takes the class eraser
    guarded = Selection("guarded")
    assert select(records, guarded, REF) == 2
    info = selection_record(records, 2, guarded, REF)
    assert info == {"selection": "guarded", "max_class_drop": 0.05, "n_eligible": 2, "guard_fallback": False}
    assert class_drop(erasing, REF) == pytest.approx(0.9)
    # a stricter guard (2 points) leaves only the unchanged model eligible
    assert select(records, Selection("guarded", 0.02), REF) == 0


def test_guarded_falls_back_to_the_least_damaging_candidate_and_says_so() -> None:
    records = [
        cand(0.5, 1.0, val_per_class_acc=per_class(3, 0.1)),  # class 3 down 80 points
        cand(0.6, 0.9, val_per_class_acc=per_class(5, 0.7)),  # class 5 down 20 points: least damage
        cand(0.7, 0.8, val_per_class_acc=per_class(1, 0.5)),
    ]  # class 1 down 40 points
    guarded = Selection("guarded")
    chosen = select(records, guarded, REF)
    assert chosen == 1
    assert selection_record(records, chosen, guarded, REF)["guard_fallback"] is True
    assert selection_record(records, chosen, guarded, REF)["n_eligible"] == 0


def test_guarded_skips_classes_missing_from_validation_and_needs_per_class_figures() -> None:
    ref = Reference((float("nan"), *[0.9] * 9))
    rec = cand(0.9, 0.5, val_per_class_acc=[0.0, *[0.9] * 9])
    assert class_drop(rec, ref) == 0.0
    assert class_drop(cand(0.9, 0.5), REF) == math.inf  # no per-class figures: never eligible


def test_guarded_always_allows_one_validation_sample_of_a_class() -> None:
    # 13 validation samples a class (digits): one sample is 7.7 points, more than the 5-point limit
    ref = Reference((1.0,) * 10, (13,) * 10)
    one = cand(0.99, 0.85, val_per_class_acc=per_class(2, 12 / 13, base=1.0))  # the stronger correction
    two = cand(0.98, 0.90, val_per_class_acc=per_class(2, 11 / 13, base=1.0))  # two samples of class 2 lost
    mild = cand(1.0, 0.55, val_per_class_acc=per_class(base=1.0))
    guarded = Selection("guarded")
    assert [guarded.eligible(r, ref) for r in (one, two, mild)] == [True, False, True]
    assert select([mild, one, two], guarded, ref) == 1
    # without the counts the limit alone decides, and the one-sample fall is refused
    assert select([mild, one, two], guarded, Reference(ref.accuracy)) == 0
    # with many samples a class the 5-point limit holds: 6 points is refused, 4 allowed
    big = Reference((1.0,) * 10, (1000,) * 10)
    assert not guarded.eligible(cand(1.0, 1.0, val_per_class_acc=per_class(0, 0.94, base=1.0)), big)
    assert guarded.eligible(cand(1.0, 1.0, val_per_class_acc=per_class(0, 0.96, base=1.0)), big)
    assert big.allowed(0.05) == [0.05] * 10 and ref.allowed(0.05) == pytest.approx([1 / 13] * 10)
    # accuracies are recorded as float32 fractions: one sample of 14 (1 - 0.92857140...) is still one sample
    lost = float(torch.tensor(13 / 14, dtype=torch.float32))
    assert 1.0 - lost > 1 / 14
    assert guarded.eligible(
        cand(1.0, 1.0, val_per_class_acc=per_class(9, lost, base=1.0)), Reference((1.0,) * 10, (14,) * 10)
    )


def test_guarded_holds_the_whole_split_to_the_limit_too() -> None:
    # every class loses its one allowed sample: each class is within its allowance, the whole falls 7.7 points
    ref = Reference((1.0,) * 10, (13,) * 10)
    every = cand(12 / 13, 1.0, val_per_class_acc=[12 / 13] * 10)
    three = cand(1 - 3 / 130, 0.9, val_per_class_acc=[12 / 13] * 3 + [1.0] * 7)  # three classes lose one sample
    assert whole_drop(every, ref) == pytest.approx(1 / 13) and whole_drop(three, ref) == pytest.approx(3 / 130)
    guarded = Selection("guarded")
    assert not guarded.eligible(every, ref) and guarded.eligible(three, ref)
    assert select([every, three], guarded, ref) == 1
    assert whole_drop(every, Reference(ref.accuracy)) == 0.0  # without counts each class's limit bounds the whole


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("best",), "selection: rule must be one of 'paper', 'guarded', got 'best'"),
        (("guarded", 1.5), "selection: max_class_drop must be in [0, 1), got 1.5"),
        (("guarded", -0.1), "selection: max_class_drop must be in [0, 1), got -0.1"),
        (("guarded", "x"), "selection: max_class_drop must be a number, got 'x'"),
    ],
)
def test_bad_selection_is_one_line(args: tuple, needle: str) -> None:
    with pytest.raises(UserError) as e:
        Selection(*args)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unlearn_with_guarded_selection_records_the_rule_and_each_drop(poison_run: api.Run) -> None:
    grid = [{"a": a, "lambda_": a} for a in (0.1, 1.0, 10.0)]
    paper = api.unlearn(poison_run, "ssd", 0.1, grid=grid, progress=False)
    guarded = api.unlearn(poison_run, "ssd", 0.1, grid=grid, selection="guarded", progress=False)
    assert all(r["selection"] == "paper" and "guard_fallback" not in r for r in paper.records)
    assert all(r["selection"] == "guarded" and r["max_class_drop"] == 0.05 for r in guarded.records)
    original = poison_run.metrics["val_per_class_acc"]
    counts = torch.bincount(poison_run.dataset.val.y.cpu(), minlength=10).tolist()
    eligible = []
    for r in guarded.records:
        assert len(r["val_per_class_acc"]) == 10 and r["val_class_drop"] >= -1
        drops = [o - c for o, c in zip(original, r["val_per_class_acc"], strict=True)]
        assert r["val_class_drop"] == pytest.approx(max(drops))
        # eligible: no class falls more than 5 points or one of its validation samples, whichever is more,
        # and the whole split no more than 5 points
        whole = sum(d * n for d, n in zip(drops, counts, strict=True)) / sum(counts)
        classes = all(d <= max(0.05, 1 / n) + 1e-9 for d, n in zip(drops, counts, strict=True))
        eligible.append(classes and whole <= 0.05 + 1e-9)
    assert guarded.record["guard_fallback"] is (not any(eligible))
    if any(eligible):
        assert eligible[guarded.selected]
    with pytest.raises(UserError, match="max_class_drop"):
        api.unlearn(poison_run, "none", 0.1, selection="guarded", max_class_drop=2.0, progress=False)


def test_heal_weighs_the_forget_sets_classes_and_allows_half_a_point_or_one_sample() -> None:
    # the forget set holds classes 0 and 1 three to one: their validation accuracy must not fall
    big = Reference((0.9,) * 10, (600,) * 10, heal=(0.75, 0.25, *[0.0] * 8))
    assert big.heal_allowed() == HEAL_TOLERANCE  # one sample of 600 is less than half a point
    healed = cand(0.9, 0.5, val_per_class_acc=per_class(1, 0.95))  # class 1 up 5 points, class 0 the same
    assert heal_change(healed, big) == pytest.approx(0.0125) and not unhealed(healed, big)
    fell = cand(0.9, 0.5, val_per_class_acc=per_class(0, 0.89))  # class 0 down one point: 0.75 of it
    assert heal_change(fell, big) == pytest.approx(-0.0075) and unhealed(fell, big)
    elsewhere = cand(0.9, 0.5, val_per_class_acc=per_class(5, 0.87))  # a class outside the forget set: no heal matter
    assert heal_change(elsewhere, big) == pytest.approx(0.0) and not unhealed(elsewhere, big)
    guarded = Selection("guarded")
    assert guarded.eligible(healed, big) and not guarded.eligible(fell, big) and guarded.eligible(elsewhere, big)
    assert guarded.eligible(fell, dataclasses.replace(big, heal=None))  # without heal classes: the class guard alone
    assert heal_change(fell, REF) is None and not unhealed(fell, REF)
    # few samples a class (digits: 14): one sample of each heal class, weighted, is the allowance
    small = Reference((1.0,) * 10, (14,) * 10, heal=(0.5, 0.5, *[0.0] * 8))
    assert small.heal_allowed() == pytest.approx(1 / 14)
    assert not unhealed(cand(1.0, 0.5, val_per_class_acc=per_class(0, 12 / 14, base=1.0)), small)  # 2 of 28
    assert unhealed(cand(1.0, 0.5, val_per_class_acc=[12 / 14, 13 / 14, *[1.0] * 8]), small)  # 3 of 28


def test_a_fall_of_the_heal_classes_alone_is_the_forget_sets_fault() -> None:
    ref = Reference((0.9,) * 10, (600,) * 10, heal=(0.5, 0.5, *[0.0] * 8))
    guarded = Selection("guarded")
    pair = cand(0.89, 0.5, val_per_class_acc=[0.85, 0.9, *[0.9] * 8])  # one heal class down 5 points, the rest held
    assert unhealed(pair, ref) and guarded.forget_set_fault(pair, ref)
    wrecked = cand(0.5, 0.5, val_per_class_acc=[0.5] * 10)  # a harsh setting takes the whole split down: not it
    assert unhealed(wrecked, ref) and not guarded.forget_set_fault(wrecked, ref)
    assert not guarded.forget_set_fault(cand(0.9, 0.5, val_per_class_acc=[0.9] * 10), ref)
    assert not guarded.forget_set_fault(pair, None)
