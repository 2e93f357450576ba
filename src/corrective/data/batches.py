"""Batches from device-resident tensors: whole-batch augmentation, trigger stamping, normalisation."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from corrective.data.base import Dataset, Split


@dataclass(frozen=True)
class Batch:
    x: Tensor  # float (B, C, H, W), normalised
    y: Tensor  # int64 (B,), labels as given
    ids: Tensor  # int64 (B,), stable sample ids
    pos: Tensor  # int64 (B,), positions in the split the batch came from


@dataclass(frozen=True)
class Pipeline:
    """How uint8 images become model inputs: augment, then stamp, then normalise."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool = False
    crop_pad: int = 0

    @classmethod
    def of(cls, dataset: Dataset) -> Pipeline:
        return cls(dataset.mean, dataset.std, dataset.flip, dataset.crop_pad)

    @classmethod
    def identity(cls, channels: int) -> Pipeline:
        """Images that are model inputs already (float splits): no scaling, no augmentation."""
        return cls((0.0,) * channels, (1.0,) * channels)

    def __call__(
        self,
        split: Split,
        pos: Tensor,
        *,
        augment: bool = False,
        gen: torch.Generator | None = None,
        images: Tensor | None = None,
    ) -> Tensor:
        """Model inputs for the samples of `split` at positions `pos` (uint8 images scaled to [0, 1] first;
        float images are taken as they are); `images`: those samples' images already read (`Split.image_batches`)."""
        return self.normalise(self.pixels(split, pos, augment=augment, gen=gen, images=images))

    def pixels(
        self,
        split: Split,
        pos: Tensor,
        *,
        augment: bool = False,
        gen: torch.Generator | None = None,
        images: Tensor | None = None,
    ) -> Tensor:
        """The images as the learner sees them before normalisation: uint8 scaled to [0, 1] (float images as
        they are), augmented when asked, the split's stamp applied."""
        x = split.images(pos) if images is None else images
        x = x.float().div_(255) if x.dtype == torch.uint8 else x
        if augment:
            x = augment_batch(x, self.crop_pad, self.flip, gen)
        if split.stamp is not None:
            x = split.stamp(x, pos)
        return x

    def normalise(self, x: Tensor) -> Tensor:
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


def augment_batch(x: Tensor, pad: int, flip: bool, gen: torch.Generator | None) -> Tensor:
    """Random crop with zero padding and optional horizontal flip, for a whole batch at once.

    Random numbers are drawn on the CPU generator, so a seed gives the same batch on any device.
    """
    n, _, h, w = x.shape
    if flip:
        mask = (torch.rand(n, generator=gen) < 0.5).to(x.device)
        x = torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)
    if pad > 0:
        shifts = torch.randint(0, 2 * pad + 1, (2, n), generator=gen).to(x.device)
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        rows = (torch.arange(h, device=x.device).view(1, h, 1) + shifts[0].view(n, 1, 1)).expand(n, h, w)
        cols = (torch.arange(w, device=x.device).view(1, 1, w) + shifts[1].view(n, 1, 1)).expand(n, h, w)
        x = padded[torch.arange(n, device=x.device).view(n, 1, 1), :, rows, cols].permute(0, 3, 1, 2)
    return x


def epochs(
    split: Split,
    pipeline: Pipeline,
    batch_size: int,
    gen: torch.Generator,
    *,
    augment: bool = True,
    shuffle: bool = True,
) -> Iterator[Batch]:
    """Endless batches over `split`, a fresh seeded permutation each epoch; the caller stops. A streamed
    split's images are read through `Split.image_batches` (ahead, by worker processes, where it has them)."""
    n = len(split)
    if n == 0:
        raise ValueError("cannot draw batches from an empty split")
    while True:
        order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
        chunks = order.to(split.x.device).split(batch_size)
        for pos, images in zip(chunks, split.image_batches(chunks), strict=True):
            x = pipeline(split, pos, augment=augment, gen=gen, images=images)
            yield Batch(x, split.y[pos], split.ids[pos], pos)


def one_epoch(
    split: Split, pipeline: Pipeline, batch_size: int, gen: torch.Generator, *, augment: bool = True
) -> Iterator[Batch]:
    """Exactly one shuffled pass over `split`: the first epoch of `epochs`."""
    return itertools.islice(
        epochs(split, pipeline, batch_size, gen, augment=augment), math.ceil(len(split) / batch_size)
    )


def one_pass(split: Split, pipeline: Pipeline, batch_size: int = 1024) -> Iterator[Batch]:
    """Each sample once, in order, no augmentation: for evaluation."""
    chunks = torch.arange(len(split), device=split.x.device).split(batch_size)
    for pos, images in zip(chunks, split.image_batches(chunks), strict=True):
        yield Batch(pipeline(split, pos, images=images), split.y[pos], split.ids[pos], pos)
