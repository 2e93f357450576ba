from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from corrective.manipulations import manipulate
from corrective.metrics import DEFENCE, METRICS, defence_effectiveness, evaluate


class Constant(nn.Module):
    """Predicts one class for every input."""

    def __init__(self, c: int, n: int = 10) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.c, self.n = c, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((len(x),), self.c), self.n).float() + self.w


def test_constant_target_model_on_poison(digits) -> None:
    m = manipulate(digits, "poison", seed=0)
    r = evaluate(Constant(0), digits, m, reference=Constant(0), forget_ids=m.forget_ids(0.5))
    share0 = float((digits.test.y == 0).float().mean())
    assert math.isclose(r["clean_acc"], share0, rel_tol=1e-6)
    assert r["attack_success"] == 1.0 and r["target_acc"] == 1.0
    assert math.isclose(r["acc_corr"], share0, rel_tol=1e-6)  # trigger images of class 0 count as correct
    assert r["forget_changed"] == 0.0
    assert math.isclose(r["healed"], float((m.clean_labels == 0).float().mean()), rel_tol=1e-6)
    assert math.isclose(r["score"], r["utility"] * r["healed"])
    assert set(METRICS) <= set(r)


def test_interclass_domains_and_forget_changed(digits) -> None:
    m = manipulate(digits, "interclass", seed=0)
    r = evaluate(Constant(3), digits, m, reference=Constant(5), forget_ids=m.ids)
    test_y = digits.test.y
    ab = (test_y == 3) | (test_y == 8)
    assert math.isclose(r["acc_corr"], float((test_y[ab] == 3).float().mean()), rel_tol=1e-6)
    assert r["acc_retain"] == 0.0 and r["utility"] == r["acc_retain"]
    assert r["forget_changed"] == 1.0
    assert "attack_success" not in r


def test_random_swap_corr_is_the_swapped_samples(digits) -> None:
    m = manipulate(digits, "random_swap", seed=0)
    r = evaluate(Constant(1), digits, m)
    assert r["acc_corr"] == r["healed"] == float((m.clean_labels == 1).float().mean())


def test_der_on_hand_computed_numbers() -> None:
    # FT-SAM (Zhu et al., ICCV 2023) Table 1, BadNets-A2O: backdoored 91.82 / 93.79, FT 90.29 / 1.70 -> DER 95.28
    assert defence_effectiveness(0.9182, 0.9379, 0.9029, 0.0170) == pytest.approx((0.9209 - 0.0153 + 1) / 2)
    assert defence_effectiveness(0.9182, 0.9379, 0.9029, 0.0170) == pytest.approx(0.9528, abs=5e-5)
    assert defence_effectiveness(0.9, 0.8, 0.9, 0.8) == 0.5  # nothing changed
    assert defence_effectiveness(1.0, 1.0, 1.0, 0.0) == 1.0  # attack gone at no cost
    assert defence_effectiveness(1.0, 0.5, 0.0, 0.5) == 0.0  # accuracy gone, attack kept
    assert defence_effectiveness(0.8, 0.2, 0.9, 0.6) == 0.5  # gains count as nothing (the max(0, ·) terms)
    assert defence_effectiveness(0.9, 0.9, 0.8, 0.3) == pytest.approx((0.6 - 0.1 + 1) / 2)


def test_defence_view_of_constant_models_on_poison(digits) -> None:
    m = manipulate(digits, "poison", seed=0)
    y = digits.test.y
    n0, n1, n, others = int((y == 0).sum()), int((y == 1).sum()), len(y), int((y != 0).sum())
    # M_o predicts the target 0 everywhere (ASR 1, C-Acc n0/n); the new model predicts 1 everywhere.
    r = evaluate(Constant(1), digits, m, reference=Constant(0), forget_ids=m.forget_ids(0.5))
    assert r["c_acc"] == pytest.approx(n1 / n) and r["c_acc"] == r["clean_acc"]
    assert r["asr"] == 0.0 and r["asr"] == r["attack_success"]
    assert r["r_acc"] == pytest.approx(n1 / others)  # triggered non-target images predicted as their class
    assert r["der"] == pytest.approx((1.0 - max(0.0, n0 / n - n1 / n) + 1) / 2)
    backdoored = evaluate(Constant(0), digits, m, reference=Constant(1))
    assert backdoored["r_acc"] == 0.0 and backdoored["asr"] == 1.0
    assert backdoored["der"] == pytest.approx((0.0 - max(0.0, n1 / n - n0 / n) + 1) / 2)
    # The original's metrics, when given, are used instead of measuring the reference.
    given = evaluate(Constant(1), digits, m, original={"clean_acc": 0.95, "attack_success": 0.9})
    assert given["der"] == pytest.approx((0.9 - 0.0 - (0.95 - n1 / n) + 1) / 2)
    assert "der" not in evaluate(Constant(1), digits, m)  # the original itself: nothing to compare with


def test_no_defence_view_outside_poisoning(digits) -> None:
    m = manipulate(digits, "interclass", seed=0)
    r = evaluate(Constant(3), digits, m, reference=Constant(5))
    assert not set(DEFENCE) & set(r)


def test_unlearning_records_carry_der_against_the_original(poison_run) -> None:
    from corrective import api

    rec = api.unlearn(poison_run, "none", 0.5, progress=False).record
    assert rec["der"] == 0.5  # the original model unchanged: no gain, no cost
    assert rec["c_acc"] == poison_run.metrics["clean_acc"] and rec["asr"] == poison_run.metrics["attack_success"]


@pytest.mark.parametrize("kind", ["poison", "interclass", "random_swap", "sig"])
def test_each_split_predicted_once_gives_the_per_split_figures(digits, kind) -> None:
    """`evaluate` predicts each split once and reads the test domains from the test predictions; the figures are
    those of predicting every domain on its own."""
    from corrective.data.batches import Pipeline
    from corrective.metrics import accuracy, per_class_accuracy, predict, predictions_within
    from corrective.models import create_model

    torch.manual_seed(0)
    model = create_model("cnn_small", num_classes=10, in_channels=1)
    m = manipulate(digits, kind, seed=0)
    r = evaluate(model, digits, m)
    pipe = Pipeline.of(digits)
    corr, retain = m.test_domains(digits.test)
    assert r["acc_retain"] == accuracy(model, retain, pipe)
    if corr is not None:
        assert r["acc_corr"] == accuracy(model, corr, pipe)
    assert r["val_accuracy"] == accuracy(model, digits.val, pipe)
    assert r["val_per_class_acc"] == per_class_accuracy(model, digits.val, pipe, 10)
    # a part that is not the test set's own pixels is predicted, not read from the test predictions
    test_pred = predict(model, digits.test, pipe)
    shifted = digits.test.subset(torch.arange(5))
    shifted = type(shifted)(255 - shifted.x, shifted.y, shifted.ids)
    assert torch.equal(predictions_within(shifted, digits.test, test_pred, model, pipe), predict(model, shifted, pipe))


def test_predictions_do_not_depend_on_the_batch(poison_run) -> None:
    """`predict` feeds 256 rows at a time on a CPU (1,024 on an accelerator); the predictions are the same at any
    batch size (eval mode: each row's logits are its own)."""
    from corrective.data.batches import Pipeline
    from corrective.metrics import predict, predict_batch

    assert predict_batch(torch.device("cpu")) == 256 and predict_batch(torch.device("cuda")) == 1024
    split = poison_run.manipulation.apply(poison_run.dataset.train)
    pipe = Pipeline.of(poison_run.dataset)
    default = predict(poison_run.model, split, pipe)
    assert len(default) == len(split)
    for rows in (7, 1024):
        assert torch.equal(predict(poison_run.model, split, pipe, rows), default)
