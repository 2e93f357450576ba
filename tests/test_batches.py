from __future__ import annotations

import torch

from corrective.data import Split
from corrective.data.batches import Pipeline, augment_batch, epochs, one_pass
from corrective.manipulations import Trigger


def images(n: int = 8, size: int = 6) -> torch.Tensor:
    return torch.rand(n, 3, size, size)


def test_augment_is_seeded_and_keeps_shape() -> None:
    x = images()
    a = augment_batch(x, 2, True, torch.Generator().manual_seed(0))
    b = augment_batch(x, 2, True, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)


def test_augment_crop_is_a_shift_of_the_padded_image() -> None:
    x = images(64)
    out = augment_batch(x, 1, False, torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(len(x)):
        windows = [padded[i, :, r : r + 6, c : c + 6] for r in range(3) for c in range(3)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert not torch.equal(out, x)


def test_no_padding_no_flip_is_identity() -> None:
    x = images()
    assert torch.equal(augment_batch(x, 0, False, torch.Generator()), x)


def test_epochs_visit_every_sample_once_per_epoch() -> None:
    n = 10
    s = Split(torch.zeros(n, 1, 4, 4, dtype=torch.uint8), torch.arange(n), torch.arange(100, 100 + n))
    it = epochs(s, Pipeline((0.0,), (1.0,)), 3, torch.Generator().manual_seed(0))
    seen = torch.cat([next(it).ids for _ in range(4)])  # 4 batches of 3,3,3,1 = one epoch
    assert sorted(seen.tolist()) == list(range(100, 110))


def test_trigger_is_stamped_after_augmentation() -> None:
    n = 16
    x = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    mask = torch.arange(n) % 2 == 0
    s = Split(x, torch.zeros(n, dtype=torch.long), torch.arange(n), Trigger(2).stamp_where(mask))
    pipe = Pipeline((0.0,), (1.0,), flip=True, crop_pad=2)
    out = pipe(s, torch.arange(n), augment=True, gen=torch.Generator().manual_seed(0))
    corner = out[:, 0, -2:, -2:]
    assert bool((corner[mask] == 1).all()) and bool((corner[~mask] == 0).all())


def test_one_pass_is_ordered_and_complete() -> None:
    n = 5
    s = Split(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.arange(n), torch.arange(n))
    assert torch.cat([b.ids for b in one_pass(s, Pipeline((0.0,), (1.0,)), 2)]).tolist() == list(range(n))
