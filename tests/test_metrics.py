from __future__ import annotations

import math

import torch
from torch import nn

from corrective.manipulations import manipulate
from corrective.metrics import METRICS, evaluate


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
