"""Images too large for the memory budget: read from their source batch by batch, never held whole.

A `StreamedImages` stands in for a split's image tensor (`Split.x`). It knows the images' shape and kind
(read from the first one) and a function that reads the images at given positions of the source as one
batch tensor (uint8 raw images or float32 model inputs, `data.adapters`). Indexing it with positions
(`Split.subset`, `Split.without`) gives another view of the same source — nothing is read; only
`take(positions)` (`Split.images`) and `batches(chunks)` (`Split.image_batches`, which every pass of the
pipeline goes through: `data.batches.epochs`, `one_pass`) read, one batch at a time. So a streamed split
costs its labels and ids in memory, plus the batches being read.

Workers: with `workers=0` every batch is read in this process when it is asked for. With `workers=N > 0`
a pass's batches, whose positions are known when the pass starts (an epoch's permutation is drawn first),
are read ahead by a `torch.utils.data.DataLoader` with N worker processes — each worker runs the same
reader on one batch's positions, so decoding (PIL, a dataset's transform) runs in N processes beside the
model's compute. The workers start with each pass (forked: ~0.1 s each on a loaded machine) and end with it;
a pass of one batch (a small forget set) is read in this process, having nothing to read ahead. At most 2·N
batches are in flight (the DataLoader's default prefetch of 2 per worker), plus the one in use; each worker
also holds memory of its own (tens of MiB to ~100 MiB measured: `benchmarks/results/streaming.md`). The images are the
very ones the in-process read gives, for a source that reads the same each time.

Random transforms: the source is read anew at every access, so a torch Dataset whose transform is random
draws it anew each time (an in-memory split draws it once, when read). In this process it draws from
torch's global generator; in the workers from each worker's own generators, which the DataLoader seeds from
`WORKER_SEED` and the worker's number at every pass — so with workers a random transform's draws differ
from the in-process read's, and a pass over the same positions in the same order draws the same.

Workers are started the platform's way (`torch.multiprocessing`'s start method: fork on Linux, spawn on
macOS and Windows). Where they are not forked the reader, with the dataset in it, is pickled to each worker:
a dataset that cannot be pickled (a class defined inside a function, an open file, a lambda transform) is
refused before any work with one line naming the fix.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from corrective.errors import UserError

# positions in the source (a list of ints) -> their images, a (len, C, H, W) uint8 or float32 tensor
Reader = Callable[[list[int]], Tensor]
WORKER_SEED = 0  # the DataLoader's base seed for its workers' generators (random transforms), every pass


def check_workers(workers: object, name: str = "workers") -> int:
    """A number of worker processes >= 0; one clear line otherwise."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise UserError(f"{name} is a number of worker processes >= 0 (0: read in this process), got {workers!r}")
    return workers


def start_method() -> str:
    """How worker processes start here (`torch.multiprocessing`'s default: fork, spawn or forkserver)."""
    return str(torch.multiprocessing.get_start_method())


class Failed:
    """A reader's `UserError` in a worker, sent back as its one line (a DataLoader would add its traceback)."""

    def __init__(self, message: str) -> None:
        self.message = message


class Reads(torch.utils.data.Dataset[Tensor | Failed]):
    """The reader as a DataLoader's dataset: item `positions` (a list) is the batch of images at them."""

    def __init__(self, read: Reader) -> None:
        self.read = read

    def __getitem__(self, positions: list[int]) -> Tensor | Failed:
        try:
            return self.read(positions)
        except UserError as e:
            return Failed(str(e))


def check_sendable(read: Reader) -> None:
    """Where workers are not forked, the reader must pickle; one line naming the fix where it does not."""
    if start_method() == "fork":
        return
    try:
        pickle.dumps(read)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"workers: the data cannot be sent to worker processes ({start_method()} start, the data must "
            f"pickle: {first}); define the dataset's class and transforms at module level, or give workers=0 "
            "(--workers 0)"
        ) from None


class StreamedImages:
    """A lazy (N, C, H, W) image tensor: `take` reads the images at some positions from the source."""

    def __init__(
        self,
        read: Reader,
        item_shape: tuple[int, ...],
        dtype: torch.dtype,
        index: Tensor,
        device: torch.device | str = "cpu",
        workers: int = 0,
    ) -> None:
        self.read = read
        self.item_shape = tuple(item_shape)
        self.dtype = dtype
        self.index = index.cpu()  # position in the source of each image, in this view's order
        self.device = torch.device(device)
        self.workers = check_workers(workers)  # worker processes reading a pass's batches ahead (0: none)

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

    def view(self, index: Tensor, device: torch.device | str) -> StreamedImages:
        return StreamedImages(self.read, self.item_shape, self.dtype, index, device, self.workers)

    def __getitem__(self, positions: Tensor) -> StreamedImages:
        """The images at `positions`, as another view of the source (nothing is read)."""
        return self.view(self.index[torch.as_tensor(positions, dtype=torch.long).cpu()], self.device)

    def to(self, device: torch.device | str) -> StreamedImages:
        """The same view, its batches delivered on `device`."""
        return self.view(self.index, device)

    def checked(self, batch: Tensor | Failed) -> Tensor:
        """A batch read from the source, checked against the first image's shape and kind, on this view's device."""
        if isinstance(batch, Failed):
            raise UserError(batch.message)
        if tuple(batch.shape[1:]) != self.item_shape or batch.dtype != self.dtype:
            raise ValueError(
                f"the source gave {batch.dtype} {tuple(batch.shape[1:])} images where the first was "
                f"{self.dtype} {self.item_shape}; give images of one size and kind"
            )
        return batch.to(self.device)

    def source_positions(self, positions: Tensor) -> list[int]:
        chosen: list[int] = self.index[torch.as_tensor(positions, dtype=torch.long).cpu()].tolist()
        return chosen

    def take(self, positions: Tensor) -> Tensor:
        """The images at `positions`, read from the source (in this process) as one tensor on this view's device."""
        return self.checked(self.read(self.source_positions(positions)))

    def batches(self, chunks: Sequence[Tensor]) -> Iterator[Tensor]:
        """The images at each of `chunks` (positions) in turn: read in this process as each is asked for
        (workers 0), else read ahead by `workers` processes (see the module docstring)."""
        if self.workers == 0 or len(chunks) < 2:  # one batch: nothing to read ahead, a worker would only cost
            for pos in chunks:
                yield self.take(pos)
            return
        check_sendable(self.read)  # `to_split` checked it before any work; a view built otherwise is checked here
        loader = torch.utils.data.DataLoader(
            Reads(self.read),
            sampler=[self.source_positions(pos) for pos in chunks],
            batch_size=None,  # each sampled item is a whole batch's positions
            num_workers=min(self.workers, len(chunks)),
            generator=torch.Generator().manual_seed(WORKER_SEED),  # leaves the global generator untouched
        )
        reading = iter(loader)
        try:
            for batch in reading:
                yield self.checked(batch)
        finally:
            del reading  # a pass stopped early (training stops mid-epoch): its workers end now
