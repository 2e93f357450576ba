"""Data larger than the memory budget is streamed: read a batch at a time, never held whole (issue 19)."""

from __future__ import annotations

import pickle
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


class Targeted(Counted):
    """`Counted` with its labels beside the images (`targets`, as torchvision's datasets): no labels pass."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        super().__init__(x, y)
        self.targets = y.tolist()


class BrokenAt(Targeted):
    """Sample `bad` is not an (image, label) pair."""

    bad = 300

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if i == self.bad:
            return self.x[i]  # type: ignore[return-value]
        return super().__getitem__(i)


@pytest.mark.parametrize("method", ["scrub", "auto"])
def test_worker_processes_give_the_very_result_of_reading_in_this_process(data: dict[str, Any], method: str) -> None:
    """Streamed with 2 workers, streamed read in this process, held: the same weights and figures; with workers
    the passes of more than one batch are read by them, not in this process."""
    results, sources = {}, {}
    for budget, workers in ((None, 0), (0, 0), (0, 2)):
        sources[budget, workers] = source = Counted(data["x"], data["y"])
        results[budget, workers] = corrective.fix(
            data["net"],
            source,
            data["flagged"],
            held_out=(data["xt"], data["yt"]),
            method=method,
            recipe=FAST,
            memory_budget=budget,
            workers=workers,
        )
    held = results[None, 0]
    n = len(data["y"])
    assert sources[0, 0].reads > 1 + 2 * n  # the labels, then each pass (channel statistics, ...) read here
    assert sources[0, 2].reads < 1 + 2 * n  # here: the first image, the labels, one-batch passes (forget set)
    for key in ((0, 0), (0, 2)):
        streamed = results[key]
        assert streamed.record["streamed"]
        for k in ("held_out_acc_after", "forget_changed", "n_forget", "val_accuracy", "n_expanded"):
            assert streamed.record.get(k) == held.record.get(k), (key, k)
        a, b = held.model.state_dict(), streamed.model.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), key


def test_workers_zero_reads_in_this_process_without_a_data_loader(data: dict[str, Any], monkeypatch) -> None:
    """workers=0 is the in-process path: no DataLoader, every read here as the batch is asked for."""

    def refused(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("workers=0 made a DataLoader")

    monkeypatch.setattr(torch.utils.data, "DataLoader", refused)
    split = to_split(Targeted(data["x"], data["y"]), "train", memory_budget=0, workers=0)
    assert isinstance(split.x, StreamedImages) and split.x.workers == 0
    chunks = torch.arange(len(split)).split(100)
    assert torch.equal(torch.cat(list(split.image_batches(chunks))), data["x"])
    corrective.fix(data["net"], split, data["flagged"], method="scrub", recipe=FAST)


def test_a_pass_stopped_early_ends_its_workers_and_views_keep_them(data: dict[str, Any]) -> None:
    import multiprocessing

    split = to_split(Targeted(data["x"], data["y"]), "train", memory_budget=0, workers=2)
    part = split.without(torch.arange(10)).to("cpu")
    assert isinstance(part.x, StreamedImages) and part.x.workers == 2
    order = torch.randperm(len(part), generator=torch.Generator().manual_seed(0)).split(64)
    reading = part.image_batches(order)
    first = next(reading)
    assert torch.equal(first, data["x"][10:][order[0]]) and len(multiprocessing.active_children()) == 2
    reading.close()  # as when training stops mid-epoch
    assert multiprocessing.active_children() == []


def test_a_reader_error_in_a_worker_is_one_line(data: dict[str, Any]) -> None:
    split = to_split(BrokenAt(data["x"], data["y"]), "train", memory_budget=0, workers=2)
    with pytest.raises(UserError) as e:
        list(split.image_batches(torch.arange(len(split)).split(100)))
    assert str(e.value) == "train: sample 300 is not an (image, label) pair; yield (image, label)"


def test_data_that_cannot_be_sent_to_workers_is_refused_in_one_line(data: dict[str, Any], monkeypatch) -> None:
    """Where workers are spawned (macOS, Windows), the dataset is pickled to them: a class defined in a function
    is refused before any work, naming the fix; a module-level one pickles and reads the same."""

    class Local(Targeted):
        pass

    monkeypatch.setattr("corrective.data.streamed.start_method", lambda: "spawn")
    with pytest.raises(UserError, match=r"cannot be sent to worker processes \(spawn start.*module level.*workers=0"):
        to_split(Local(data["x"], data["y"]), "train", memory_budget=0, workers=1)  # before any pass
    with pytest.raises(UserError, match=r"cannot be sent to worker processes \(spawn start.*module level.*workers=0"):
        corrective.fix(
            data["net"], Local(data["x"], data["y"]), data["flagged"], method="scrub", recipe=FAST, memory_budget=0,
            workers=1,
        )  # fmt: skip
    split = to_split(Targeted(data["x"], data["y"]), "train", memory_budget=0, workers=1)
    assert isinstance(split.x, StreamedImages)
    sent = pickle.loads(pickle.dumps(split.x.read))
    assert torch.equal(sent([3, 1, 4]), data["x"][[3, 1, 4]])


@pytest.mark.parametrize("workers", [-1, 1.5, True, "2"])
def test_workers_must_be_a_count(data: dict[str, Any], workers: Any) -> None:
    with pytest.raises(UserError, match="workers is a number of worker processes >= 0"):
        corrective.fix(data["net"], (data["x"], data["y"]), data["flagged"], method="scrub", workers=workers)


class Jittered(Targeted):
    """A random transform: every pixel moved by -3..3, drawn from torch's global generator."""

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        image, label = super().__getitem__(i)
        noise = torch.randint(-3, 4, image.shape).numpy()
        return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8), label


def test_random_transforms_in_workers_draw_from_seeds_of_their_own(data: dict[str, Any]) -> None:
    """As `data.streamed` says: read here, a random transform draws anew at every pass from the global generator;
    in workers it draws from the workers' own seeds — the same draws for the same order, other draws than here,
    and the global generator untouched."""
    chunks = torch.arange(len(data["y"])).split(256)
    here = to_split(Jittered(data["x"], data["y"]), "train", memory_budget=0, workers=0)
    there = to_split(Jittered(data["x"], data["y"]), "train", memory_budget=0, workers=2)
    first, second = (torch.cat(list(here.image_batches(chunks))) for _ in range(2))
    assert not torch.equal(first, second)
    state = torch.get_rng_state()
    one, two = (torch.cat(list(there.image_batches(chunks))) for _ in range(2))
    assert torch.equal(one, two) and not torch.equal(one, first)
    assert torch.equal(torch.get_rng_state(), state)
    assert (one.short() - data["x"].short()).abs().max() <= 3


def test_spawned_workers_read_the_same_images(data: dict[str, Any], monkeypatch) -> None:
    """Where workers are spawned (macOS, Windows; Python 3.14's Linux default is forkserver) the reader and the
    dataset are pickled to them: a module-level dataset reads the same images there."""
    import multiprocessing

    monkeypatch.setattr("corrective.data.streamed.start_method", lambda: "spawn")
    real = torch.utils.data.DataLoader
    spawned = lambda *a, **k: real(*a, **k, multiprocessing_context=multiprocessing.get_context("spawn"))  # noqa: E731
    monkeypatch.setattr(torch.utils.data, "DataLoader", spawned)
    split = to_split(Targeted(data["x"][:300], data["y"][:300]), "train", memory_budget=0, workers=1)
    chunks = torch.randperm(300, generator=torch.Generator().manual_seed(0)).split(100)
    assert torch.equal(torch.cat(list(split.image_batches(chunks))), data["x"][torch.cat(chunks)])
