"""SIG (Barni et al. 2019): a sinusoid on target-class samples only, labels unchanged (clean label)."""

from __future__ import annotations

import pytest
import torch

from corrective import api
from corrective.errors import UserError
from corrective.manipulations import manipulate
from corrective.metrics import evaluate


def test_sig_poisons_the_target_class_only_and_keeps_every_label(digits) -> None:
    m = manipulate(digits, "sig", seed=0, target=4)
    assert set(m.clean_labels.tolist()) == {4} and torch.equal(m.given_labels, m.clean_labels)
    train = m.apply(digits.train)
    assert torch.equal(train.y, digits.train.y)  # clean label: no label changed
    x = torch.full((len(train), 1, 8, 8), 0.5)
    out = train.stamp(x, torch.arange(len(train)))  # type: ignore[misc]
    carriers = torch.isin(train.ids, m.ids)
    assert torch.equal(out[~carriers], x[~carriers])
    row = out[carriers][0, 0, 0] - 0.5  # v(j) = delta sin(2 pi j f / W) along the row, the same on every row
    j = torch.arange(8, dtype=torch.float32)
    assert torch.allclose(row, 20 / 255 * torch.sin(2 * torch.pi * j * 6 / 8), atol=1e-6)
    assert torch.allclose(out[carriers], out[carriers][:1].expand(int(carriers.sum()), -1, -1, -1))
    with pytest.raises(UserError, match="SIG poisons the target class only"):
        manipulate(digits, "sig", seed=0, size=0.5)


def test_sig_installs_a_backdoor(clean_run) -> None:
    """Digits, 5 % (half the target class): with a stronger signal than the paper's 20/255 (0.4 in training,
    0.6 at test; 8x8 images carry little of a sinusoid), other classes' images with the signal go to the target
    on the original model and not on a clean one."""
    settings = {"delta": 0.4, "test_delta": 0.6}
    run = api.train_run("digits", manipulation="sig", seed=0, steps=150, progress=False, manipulation_settings=settings)
    base = evaluate(clean_run.model, clean_run.dataset, run.manipulation)
    assert run.metrics["attack_success"] >= 0.5 > base["attack_success"] + 0.3, (run.metrics, base)
    assert run.metrics["clean_acc"] >= 0.9 and run.metrics["target_acc"] >= 0.9
