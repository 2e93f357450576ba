from __future__ import annotations

import pytest
import torch

from corrective.data import Split, load_dataset
from corrective.data.registry import stratified_val
from corrective.errors import UserError


def make_split(n: int = 6) -> Split:
    x = torch.arange(n * 4, dtype=torch.uint8).view(n, 1, 2, 2)
    return Split(x, torch.arange(n) % 3, torch.arange(10, 10 + n))


def test_split_validates_dtype_and_shapes() -> None:
    with pytest.raises(ValueError, match="uint8 or float32"):
        Split(torch.zeros(2, 1, 2, 2, dtype=torch.float64), torch.zeros(2, dtype=torch.long), torch.arange(2))
    assert len(Split(torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long), torch.arange(2))) == 2  # model inputs
    with pytest.raises(ValueError, match="shape"):
        Split(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), torch.arange(2))


def test_positions_of_finds_ids_and_refuses_unknown() -> None:
    s = make_split()
    assert s.positions_of(torch.tensor([15, 10, 12])).tolist() == [5, 0, 2]
    with pytest.raises(UserError, match=r"\[99\]"):
        s.positions_of(torch.tensor([10, 99]))


def test_subset_and_without_keep_ids_and_remap_stamp() -> None:
    seen: list[list[int]] = []
    s = Split(make_split().x, make_split().y, make_split().ids, lambda x, pos: seen.append(pos.tolist()) or x)
    sub = s.subset(torch.tensor([4, 1]))
    assert sub.ids.tolist() == [14, 11]
    sub.stamp(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]))
    assert seen[-1] == [4, 1]  # positions translated back to the parent split
    assert s.without(torch.tensor([11, 13])).ids.tolist() == [10, 12, 14, 15]


def test_stratified_val_is_seeded_and_stratified() -> None:
    y = torch.arange(100) % 4
    a, b = stratified_val(y, 0.2, seed=1), stratified_val(y, 0.2, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, stratified_val(y, 0.2, seed=2))
    assert [int((y[a] == c).sum()) for c in range(4)] == [5, 5, 5, 5]
    with pytest.raises(UserError):
        stratified_val(y, 1.5, seed=0)


def test_digits_splits_are_disjoint_and_scaled() -> None:
    d = load_dataset("digits", val_fraction=0.1, seed=0)
    assert d.num_classes == 10 and d.in_channels == 1 and d.image_size == 8
    assert len(d.train) + len(d.val) + len(d.test) == 1797
    assert not set(d.train.ids.tolist()) & set(d.val.ids.tolist())
    assert d.train.x.dtype == torch.uint8 and int(d.train.x.max()) == 255
    assert not d.flip  # digits are not mirror-symmetric


def test_unknown_dataset_and_missing_folder_are_clear(tmp_path) -> None:
    with pytest.raises(UserError, match="unknown dataset 'nope'; known:"):
        load_dataset("nope")
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError, match=f"cifar10: data folder {missing} does not exist; put .*data_batch_1"):
        load_dataset("cifar10", missing)


def test_unknown_loader_option_is_clear() -> None:
    with pytest.raises(UserError, match="unknown loader option 'crop'; it takes: test_fraction, split_seed"):
        load_dataset("digits", crop=3)
