"""Dataset tensors: splits of uint8 images with labels and stable sample ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from corrective.data.streamed import StreamedImages
from corrective.errors import UserError

# (float images in [0, 1] after augmentation, positions in the split) -> images
Stamp = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Split:
    """One split: images uint8 (N, C, H, W), labels int64 (N,), stable ids int64 (N,).

    Images may also be float32 (N, C, H, W): model inputs as they are (a user's dataset with its own
    transform applied, `data.adapters`); the pipeline then skips the uint8 scaling. Images larger than the
    memory budget are a `StreamedImages` (`data.streamed`): read a batch at a time through `images` and
    `image_batches` (a pass's batches, read ahead by worker processes where it has workers), which every
    batch goes through; subsets are views of the same source.

    `stamp`, when set, is applied to every batch after augmentation (a BadNet trigger
    on the samples that carry it). It is part of the data as a learner sees it, so a
    method trains on the same inputs the original model saw without learning which
    samples carry a trigger.
    """

    x: Tensor | StreamedImages
    y: Tensor
    ids: Tensor
    stamp: Stamp | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.x)
        if self.x.dtype not in (torch.uint8, torch.float32) or self.x.ndim != 4:
            raise ValueError(f"images must be uint8 or float32 (N, C, H, W), got {self.x.dtype} {tuple(self.x.shape)}")
        if self.y.shape != (n,) or self.ids.shape != (n,):
            raise ValueError(
                f"labels and ids must have shape ({n},), got {tuple(self.y.shape)} and {tuple(self.ids.shape)}"
            )

    def __len__(self) -> int:
        return len(self.y)

    @property
    def streamed(self) -> bool:
        """Whether the images are read from their source batch by batch (`data.streamed`)."""
        return isinstance(self.x, StreamedImages)

    def images(self, positions: Tensor) -> Tensor:
        """The images at `positions` as one tensor (read from the source where streamed)."""
        if isinstance(self.x, StreamedImages):
            return self.x.take(positions)
        return self.x[positions]

    def image_batches(self, chunks: Sequence[Tensor]) -> Iterator[Tensor]:
        """The images at each of `chunks` (positions) in turn, as `images` gives them: read ahead by worker
        processes where the split is streamed with workers (`StreamedImages.batches`), else as each is asked for."""
        if isinstance(self.x, StreamedImages):
            return self.x.batches(chunks)
        return (self.images(pos) for pos in chunks)

    def positions_of(self, ids: Tensor) -> Tensor:
        """Positions in this split of the given sample ids; a clear error for unknown ids."""
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.ids.device).reshape(-1)
        order = torch.argsort(self.ids)
        sorted_ids = self.ids[order]
        pos = torch.searchsorted(sorted_ids, ids).clamp(max=max(len(sorted_ids) - 1, 0))
        found = sorted_ids[pos] == ids if len(sorted_ids) else torch.zeros_like(ids, dtype=torch.bool)
        if not bool(found.all()):
            missing = ids[~found][:5].tolist()
            raise UserError(f"sample ids {missing} are not in this split; ids must come from the training data's `ids`")
        return order[pos]

    def subset(self, positions: Tensor) -> Split:
        """The samples at `positions`, in that order (the stamp follows them)."""
        positions = torch.as_tensor(positions, dtype=torch.long, device=self.x.device)
        stamp = None
        if self.stamp is not None:
            parent = self.stamp
            stamp = lambda x, pos: parent(x, positions[pos])  # noqa: E731
        return Split(self.x[positions], self.y[positions], self.ids[positions], stamp)

    def without(self, ids: Tensor) -> Split:
        """This split minus the samples with the given ids."""
        keep = torch.ones(len(self), dtype=torch.bool, device=self.x.device)
        keep[self.positions_of(ids)] = False
        return self.subset(keep.nonzero().squeeze(1))

    def with_labels(self, y: Tensor) -> Split:
        return replace(self, y=y)

    def to(self, device: torch.device | str) -> Split:
        if self.x.device == torch.device(device):
            return self
        stamp = self.stamp
        return Split(self.x.to(device), self.y.to(device), self.ids.to(device), stamp)


def channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (at least 1e-3) of uint8 images scaled to [0, 1]: the data's own normalisation."""
    xf = x.float() / 255
    return tuple(xf.mean(dim=(0, 2, 3)).tolist()), tuple(xf.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist())


def split_channel_stats(split: Split, chunk: int = 256) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """`channel_stats` of a split's uint8 images read `chunk` at a time (in float64), so images held in memory
    and streamed ones (`data.streamed`) give the very same figures."""
    channels = int(split.x.shape[1])
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros_like(total)
    for images in split.image_batches(torch.arange(len(split)).split(chunk)):
        xf = images.cpu().double() / 255
        total += xf.sum(dim=(0, 2, 3))
        squares += (xf * xf).sum(dim=(0, 2, 3))
    count = len(split) * int(split.x.shape[2]) * int(split.x.shape[3])
    mean = total / count
    var = (squares - count * mean * mean) / max(count - 1, 1)  # unbiased, as torch.std
    std = var.clamp(min=0).sqrt().clamp(min=1e-3)
    return tuple(mean.float().tolist()), tuple(std.float().tolist())


@dataclass(frozen=True)
class Dataset:
    """A dataset as tensors: train (possibly manipulated later), clean val carved from train, test."""

    name: str
    num_classes: int
    train: Split
    val: Split
    test: Split
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool  # horizontal flips preserve the label
    crop_pad: int  # random-crop padding for augmentation (0: none)
    class_names: tuple[str, ...] = ()

    @property
    def in_channels(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.x.shape[-1])

    def to(self, device: torch.device | str) -> Dataset:
        return replace(self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device))
