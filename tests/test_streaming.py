"""Data larger than the memory budget is streamed: read a batch at a time, never held whole (issue 19)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import corrective
from byo_data import ones_as_sevens
from corrective.api.practitioner import Recipe
from corrective.data.adapters import to_split
from corrective.data.base import channel_stats, split_channel_stats
from corrective.data.streamed import StreamedImages
from corrective.errors import UserError
from corrective.training import TrainConfig

FAST = Recipe(epochs=1, batch_size=64, lr=0.02)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.classify = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.body(x).flatten(1))


class Counted(torch.utils.data.Dataset[tuple[np.ndarray, int]]):
    """uint8 (H, W) images with labels; counts how many images are read, and the most at once per batch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x[:, 0].numpy(), y
        self.reads = 0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        self.reads += 1
        return self.x[i], int(self.y[i])


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return ones_as_sevens(Net, TrainConfig(steps=100, batch_size=64))


def test_a_budget_below_the_data_streams_it_and_one_above_holds_it(data: dict[str, Any]) -> None:
    size = data["x"].nelement()  # uint8: one byte a pixel
    held = to_split((data["x"], data["y"]), "train", memory_budget=size)
    streamed = to_split((data["x"], data["y"]), "train", memory_budget=size - 1)
    assert not held.streamed and isinstance(held.x, torch.Tensor)
    assert streamed.streamed and isinstance(streamed.x, StreamedImages) and streamed.x.nbytes == size
    assert streamed.x.shape == held.x.shape and streamed.x.dtype == held.x.dtype
    assert torch.equal(streamed.y, held.y) and torch.equal(streamed.ids, held.ids)
    pos = torch.tensor([5, 0, 17])
    assert torch.equal(streamed.images(pos), held.images(pos))
    part = streamed.without(torch.arange(10))  # a view: nothing read, the same images at the same ids
    assert part.streamed and torch.equal(part.images(torch.arange(3)), held.without(torch.arange(10)).x[:3])
    assert split_channel_stats(streamed) == split_channel_stats(held)
    mean, std = channel_stats(held.x)  # the registered datasets' (float32, whole)
    assert split_channel_stats(held)[0] == pytest.approx(mean, abs=1e-5)
    assert split_channel_stats(held)[1] == pytest.approx(std, abs=1e-5)
    with pytest.raises(UserError, match="memory_budget is a number of bytes"):
        to_split((data["x"], data["y"]), "train", memory_budget=-1)


@pytest.mark.parametrize("method", ["scrub", "auto", "retrain"])
def test_streamed_data_gives_the_very_result_of_held_data(data: dict[str, Any], method: str) -> None:
    """Same seed, same batches: reading the images a batch at a time changes no figure and no weight."""
    results = {}
    for budget in (None, 0):
        results[budget] = corrective.fix(
            data["net"],
            Counted(data["x"], data["y"]),
            data["flagged"],
            held_out=(data["xt"], data["yt"]),
            method=method,
            recipe=FAST,
            memory_budget=budget,
        )
    held, streamed = results[None], results[0]
    assert not held.record["streamed"] and streamed.record["streamed"]
    for key in ("held_out_acc_after", "forget_changed", "n_forget", "val_accuracy"):
        assert streamed.record[key] == held.record[key], key
    a, b = held.model.state_dict(), streamed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_streamed_training_data_is_never_read_whole(data: dict[str, Any]) -> None:
    """Every read is at most one batch (the largest: an evaluation pass's 1024), fewer than the samples; the
    dataset is read anew at each pass (auto: expansion, candidates, measurements). Without `targets`, its
    labels take one pass of their own."""
    source = Counted(data["x"], data["y"])
    split = to_split(source, "train", memory_budget=0)
    assert isinstance(split.x, StreamedImages)
    read, sizes = split.x.read, []

    def counting(idx: list[int]) -> torch.Tensor:
        sizes.append(len(idx))
        return read(idx)

    split.x.read = counting
    corrective.fix(data["net"], split, data["flagged"], held_out=(data["xt"], data["yt"]), method="auto", recipe=FAST)
    assert 0 < max(sizes) <= 1024 < len(split)
    assert sum(sizes) > 3 * len(split)  # the data is read anew at each pass
    assert source.reads == sum(sizes) + 1 + len(split)  # + the first image (shape) + one pass for the labels
