"""Images too large for the memory budget: read from their source batch by batch, never held whole.

A `StreamedImages` stands in for a split's image tensor (`Split.x`). It knows the images' shape and kind
(read from the first one) and a function that reads the images at given positions of the source as one
batch tensor (uint8 raw images or float32 model inputs, `data.adapters`). Indexing it with positions
(`Split.subset`, `Split.without`) gives another view of the same source — nothing is read; only
`take(positions)` (`Split.images`, which every batch of the pipeline goes through) reads, one batch at a
time. So a streamed split costs its labels and ids in memory, plus the batch being read.

The source is read anew at every access: a torch Dataset whose transform is random draws it anew each
time (an in-memory split draws it once, when read).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# positions in the source (a list of ints) -> their images, a (len, C, H, W) uint8 or float32 tensor
Reader = Callable[[list[int]], Tensor]


class StreamedImages:
    """A lazy (N, C, H, W) image tensor: `take` reads the images at some positions from the source."""

    def __init__(
        self,
        read: Reader,
        item_shape: tuple[int, ...],
        dtype: torch.dtype,
        index: Tensor,
        device: torch.device | str = "cpu",
    ) -> None:
        self.read = read
        self.item_shape = tuple(item_shape)
        self.dtype = dtype
        self.index = index.cpu()  # position in the source of each image, in this view's order
        self.device = torch.device(device)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.index), *self.item_shape))

    @property
    def ndim(self) -> int:
        return 1 + len(self.item_shape)

    @property
    def nbytes(self) -> int:
        """What the images would take in memory, read whole."""
        return len(self.index) * int(torch.Size(self.item_shape).numel()) * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, positions: Tensor) -> StreamedImages:
        """The images at `positions`, as another view of the source (nothing is read)."""
        index = self.index[torch.as_tensor(positions, dtype=torch.long).cpu()]
        return StreamedImages(self.read, self.item_shape, self.dtype, index, self.device)

    def to(self, device: torch.device | str) -> StreamedImages:
        """The same view, its batches delivered on `device`."""
        return StreamedImages(self.read, self.item_shape, self.dtype, self.index, device)

    def take(self, positions: Tensor) -> Tensor:
        """The images at `positions`, read from the source as one tensor on this view's device."""
        chosen = self.index[torch.as_tensor(positions, dtype=torch.long).cpu()]
        batch = self.read(chosen.tolist())
        if tuple(batch.shape[1:]) != self.item_shape or batch.dtype != self.dtype:
            raise ValueError(
                f"the source gave {batch.dtype} {tuple(batch.shape[1:])} images where the first was "
                f"{self.dtype} {self.item_shape}; give images of one size and kind"
            )
        return batch.to(self.device)
