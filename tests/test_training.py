from __future__ import annotations

import pytest
import torch

from corrective.data import Split
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.models import create_model
from corrective.training import PRESETS, TrainConfig, lr_at, train


def test_lr_schedule_warms_up_then_decays_linearly() -> None:
    cfg = TrainConfig(steps=1000, lr=0.1, warmup=0.01, t_mult=1.25)
    assert lr_at(0, cfg) == pytest.approx(0.01)
    assert lr_at(9, cfg) == pytest.approx(0.1)
    assert lr_at(10, cfg) == pytest.approx(0.1)
    assert lr_at(999, cfg) == pytest.approx(0.1 * (1 - 989 / 1250))
    assert all(lr_at(s, cfg) > 0 for s in range(1000))
    assert lr_at(500, TrainConfig(schedule="constant", lr=0.3)) == 0.3


def test_presets_follow_the_paper() -> None:
    p = PRESETS["paper"]
    assert (p.lr, p.batch_size, p.steps, p.momentum, p.weight_decay) == (0.025, 512, 4000, 0.9, 5e-4)
    assert PRESETS["paper"].scaled(0.25).steps == 1000


def fit_once(digits, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model("cnn_small", 10, 1)
    train(
        model,
        digits.train,
        Pipeline.of(digits),
        TrainConfig(steps=20, lr=0.05, batch_size=32, seed=seed),
        progress=False,
    )
    return model.state_dict()


def test_training_is_deterministic_for_a_seed(digits) -> None:
    a, b, c = fit_once(digits, 0), fit_once(digits, 0), fit_once(digits, 1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_training_learns(digits) -> None:
    torch.manual_seed(0)
    model = create_model("cnn_small", 10, 1)
    pipe = Pipeline.of(digits)
    train(model, digits.train, pipe, TrainConfig(steps=120, lr=0.05, batch_size=64), progress=False)
    from corrective.metrics import accuracy

    assert accuracy(model, digits.test, pipe) > 0.85


def test_empty_training_set_is_refused(digits) -> None:
    empty = Split(
        torch.zeros(0, 1, 8, 8, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    )
    with pytest.raises(UserError, match="empty"):
        train(create_model("cnn_small", 10, 1), empty, Pipeline.of(digits), TrainConfig(steps=1))
