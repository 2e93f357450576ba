"""Blended (Chen et al. 2017): a seeded key pattern blended over the whole image, dirty label."""

from __future__ import annotations

import pytest
import torch

from corrective import api
from corrective.errors import UserError
from corrective.manipulations import manipulate
from corrective.metrics import evaluate


def test_blended_draws_a_seeded_pattern_and_stamps_only_its_samples(digits) -> None:
    m = manipulate(digits, "blended", seed=0, target=2, blend=0.1)
    assert set(m.given_labels.tolist()) == {2} and len(set(m.clean_labels.tolist())) > 5
    again, other = manipulate(digits, "blended", seed=0, blend=0.1), manipulate(digits, "blended", seed=1, blend=0.1)
    assert torch.equal(m.trigger.pattern, again.trigger.pattern)  # type: ignore[union-attr]
    assert not torch.equal(m.trigger.pattern, other.trigger.pattern)  # type: ignore[union-attr]
    train = m.apply(digits.train)
    pos = torch.arange(len(train))
    x = torch.full((len(train), 1, 8, 8), 0.5)
    out = train.stamp(x, pos)  # type: ignore[misc]
    carriers = torch.isin(train.ids, m.ids)
    pattern = m.trigger.pattern  # type: ignore[union-attr]
    assert torch.allclose(out[carriers], 0.9 * 0.5 + 0.1 * pattern.expand(int(carriers.sum()), -1, -1, -1))
    assert torch.equal(out[~carriers], x[~carriers])  # the rest untouched
    assert torch.equal(train.y[train.positions_of(m.ids)], m.given_labels)


def test_blended_takes_a_pattern_image(digits, tmp_path) -> None:
    from PIL import Image

    Image.new("L", (16, 16), color=255).save(tmp_path / "key.png")
    m = manipulate(digits, "blended", seed=0, pattern=str(tmp_path / "key.png"))
    assert torch.allclose(m.trigger.pattern, torch.ones(1, 8, 8))  # type: ignore[union-attr]
    with pytest.raises(UserError, match="neither 'noise' nor an image file"):
        manipulate(digits, "blended", seed=0, pattern=str(tmp_path / "missing.png"))
    with pytest.raises(UserError, match=r"blend must be in \(0, 1\), got 1.5"):
        manipulate(digits, "blended", seed=0, blend=1.5)


def test_blended_installs_a_backdoor(clean_run) -> None:
    """Digits, 5 %, the paper's blend 0.2: the attack succeeds on the original model, not on a clean one."""
    run = api.train_run("digits", manipulation="blended", seed=0, steps=150, progress=False)
    base = evaluate(clean_run.model, clean_run.dataset, run.manipulation)
    assert run.metrics["attack_success"] >= 0.9 > base["attack_success"] + 0.5, (run.metrics, base)
    assert run.metrics["clean_acc"] >= 0.9 and run.metrics["target_acc"] >= 0.9
