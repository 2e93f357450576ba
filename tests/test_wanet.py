"""WaNet (Nguyen & Tran 2021): a fixed smooth warp, dirty label, and noise-mode samples at their true labels."""

from __future__ import annotations

import torch

from corrective import api
from corrective.manipulations import manipulate
from corrective.metrics import evaluate


def test_wanet_warps_its_samples_and_the_noise_mode_ones(digits) -> None:
    m = manipulate(digits, "wanet", seed=0, target=1, strength=2.0)
    n = len(digits.train)
    k = round(0.05 * n)
    assert len(m.ids) == k and set(m.given_labels.tolist()) == {1}
    train = m.apply(digits.train)
    x = digits.train.x.float() / 255
    out = train.stamp(x, torch.arange(n))  # type: ignore[misc]
    changed = (out - x).abs().flatten(1).amax(1) > 1e-6
    carriers = torch.isin(train.ids, m.ids)
    assert torch.allclose(out[carriers], m.trigger.stamp(x[carriers]))  # type: ignore[union-attr]
    noise = changed & ~carriers  # the noise-mode samples: warped otherwise, labels true
    assert abs(int(noise.sum()) - 2 * k) <= 0.02 * k  # the paper's share: 2 per poisoned sample (a blank few unmoved)
    assert torch.equal(train.y[noise], digits.train.y[noise])
    assert not torch.allclose(out[noise], m.trigger.stamp(x[noise]))  # a random field, not the backdoor's
    again = train.stamp(x, torch.arange(n))  # type: ignore[misc]
    assert torch.equal(out, again)  # each sample's field is fixed: the data, not the training loop, is attacked
    field = m.trigger.grid  # type: ignore[union-attr]
    assert field.shape == (1, 8, 8, 2) and float(field.abs().max()) <= 1.0


def test_wanet_installs_a_backdoor(clean_run) -> None:
    """Digits, 5 %: a 2-pixel-strength warp without the noise mode (8x8 images: the paper's s = 0.5 moves
    pixels by a quarter of a pixel) succeeds on the original model, not on a clean one."""
    settings = {"strength": 2.0, "noise_share": 0.0}
    run = api.train_run(
        "digits", manipulation="wanet", seed=0, steps=150, progress=False, manipulation_settings=settings
    )
    base = evaluate(clean_run.model, clean_run.dataset, run.manipulation)
    assert run.metrics["attack_success"] >= 0.6 > base["attack_success"] + 0.4, (run.metrics, base)
    assert run.metrics["clean_acc"] >= 0.9
