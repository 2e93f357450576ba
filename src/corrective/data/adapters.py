"""A user's data as a `Split`: a torch Dataset of (image, label), a Hugging Face dataset, arrays, or a Split.

Ids are positions in the data as given. The data is read once and held in memory (the fast path every
method and metric uses):

- a torch `Dataset` (e.g. torchvision's `ImageFolder` with its transform) is iterated once in order; the
  images it yields are what the model saw. Float tensors are kept as model inputs (float32 split, no
  further normalisation); PIL images and uint8 arrays become uint8 images (normalised by the pipeline);
- a Hugging Face `datasets.Dataset`: its `image_key` and `label_key` columns (PIL images or arrays);
- a pair `(images, labels)` of numpy arrays or tensors: uint8 images (N, H, W[, C]) or (N, C, H, W) are
  raw images; float images are model inputs as they are;
- a `Split` is taken as it is.

A random transform in a torch Dataset is drawn once, when the data is read.

Data whose images would take more than `memory_budget` bytes (`to_split`'s; `corrective.fix` defaults to
`DEFAULT_MEMORY_BUDGET`) is not materialised: the split's images are a `data.streamed.StreamedImages` that
reads a batch at a time from the source (`dataset[i]` for a torch Dataset, rows of a Hugging Face dataset
or of the arrays — a numpy memmap stays on disk), checked as each batch is read. Its labels are read once:
a torch Dataset's `targets` where it has them, else one pass over the data. Then a random transform is drawn
anew at every read. With `workers` > 0 each pass over streamed data is read ahead by that many worker
processes (a DataLoader's; `data.streamed` says how, and what becomes of random transforms).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from corrective.data.base import Split
from corrective.data.custom import to_labels, to_nchw
from corrective.data.streamed import Reader, StreamedImages, check_sendable, check_workers
from corrective.errors import UserError

HF_HINT = "install the extra: pip install 'corrective-unlearning[hf]'"
DEFAULT_MEMORY_BUDGET = 4 * 2**30  # bytes of images `corrective.fix` holds in memory; larger data is streamed
DEFAULT_WORKERS = 0  # worker processes reading streamed data ahead in `corrective.fix` and the CLI


def as_images(x: Any, where: str) -> Tensor:
    """Images as a uint8 (N, C, H, W) tensor (raw images) or a float32 one (model inputs as they are)."""
    if isinstance(x, Tensor):
        t: Tensor = x.detach().cpu()
        if t.is_floating_point():
            if t.ndim == 3:
                t = t[:, None]
            if t.ndim != 4:
                raise UserError(f"{where}: images have shape {tuple(t.shape)}; expected (N, C, H, W)")
            if not bool(torch.isfinite(t).all()):
                raise UserError(f"{where}: images hold NaN or inf values; replace them or drop those images")
            return t.float().contiguous()
        x = t.numpy()
    a = np.asarray(x)
    if np.issubdtype(a.dtype, np.floating):
        images: Tensor = as_images(torch.from_numpy(np.ascontiguousarray(a)), where)
        return images
    return to_nchw("data", where, a)


def _image_array(item: Any, where: str) -> Any:
    """One image: a tensor as it is, a PIL image or anything array-like as a numpy array."""
    if isinstance(item, Tensor):
        return item
    if hasattr(item, "convert") and hasattr(item, "mode"):  # a PIL image
        return np.asarray(item.convert("L" if item.mode in ("1", "L") else "RGB"))
    try:
        return np.asarray(item)
    except (TypeError, ValueError):
        raise UserError(f"{where}: an image is a {type(item).__name__}; yield tensors, arrays or PIL images") from None


def stack(images: list[Any], where: str) -> Tensor:
    """A list of single images (C, H, W) tensors or (H, W[, C]) arrays as one batch."""
    if not images:
        raise UserError(f"{where}: no samples; give at least one (image, label)")
    if isinstance(images[0], Tensor):
        shapes = {tuple(t.shape) for t in images}
        if len(shapes) > 1:
            raise UserError(f"{where}: images differ in shape ({sorted(shapes)[:2]}); resize them to one size")
        return as_images(torch.stack(images), where)
    shapes = {np.shape(a) for a in images}
    if len(shapes) > 1:
        raise UserError(f"{where}: images differ in shape ({sorted(shapes)[:2]}); resize them to one size")
    return as_images(np.stack(images), where)


def labels_of(values: Any, n: int, where: str) -> Tensor:
    """Integer class labels, one per image, as int64."""
    y = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    return to_labels("data", where, y, n)


def length_of(data: Any, where: str) -> int:
    try:
        return len(data)
    except TypeError:
        raise UserError(f"{where}: a {type(data).__name__} has no length; give a map-style Dataset") from None


def pair_of(data: Any, i: int, where: str) -> tuple[Any, Any]:
    """Sample `i` of a torch Dataset as (image array or tensor, label)."""
    item = data[i]
    if not (isinstance(item, (tuple, list)) and len(item) >= 2):
        raise UserError(f"{where}: sample {i} is not an (image, label) pair; yield (image, label)")
    label = item[1]
    return _image_array(item[0], where), int(label.item()) if isinstance(label, Tensor) else label


def from_torch(data: Any, where: str) -> tuple[Tensor, Tensor]:
    """Read a map-style torch Dataset once, in order: (images, labels)."""
    pairs = [pair_of(data, i, where) for i in range(length_of(data, where))]
    x = stack([image for image, _ in pairs], where)
    return x, labels_of([label for _, label in pairs], len(x), where)


class Source(NamedTuple):
    """Data in one of the supported forms, as the two ways of reading it need it."""

    read: Reader  # the images at some positions, as one batch (a streamed split's reader)
    n: int  # the number of samples
    labels: Callable[[], Any]  # every label
    whole: Callable[[], tuple[Tensor, Tensor]]  # (images, labels) read whole, in one pass where the form allows


class TorchReader:
    """Reads a torch Dataset's images at some positions (`dataset[i]` each); a class, not a closure, so it
    pickles to worker processes with the dataset (`data.streamed`)."""

    def __init__(self, data: Any, where: str) -> None:
        self.data, self.where = data, where

    def __call__(self, idx: list[int]) -> Tensor:
        return stack([pair_of(self.data, i, self.where)[0] for i in idx], self.where)


class HfReader:
    """Reads a Hugging Face dataset's images at some positions (its rows)."""

    def __init__(self, data: Any, image_key: str, where: str) -> None:
        self.data, self.image_key, self.where = data, image_key, where

    def __call__(self, idx: list[int]) -> Tensor:
        return stack([_image_array(item, self.where) for item in self.data[idx][self.image_key]], self.where)


class ArrayReader:
    """Reads rows of an image array or tensor (a numpy memmap stays on disk)."""

    def __init__(self, images: Any, where: str) -> None:
        self.images, self.where = images, where

    def __call__(self, idx: list[int]) -> Tensor:
        return as_images(self.images[idx], self.where)


def source_of(data: Any, where: str, image_key: str, label_key: str) -> Source:
    """How to read data in any supported form; one clear line for a form corrective does not read."""
    if is_hf(data):
        check_columns(data, image_key, label_key, where)
        return Source(
            HfReader(data, image_key, where),
            len(data),
            lambda: list(data[label_key]),
            lambda: from_hf(data, image_key, label_key, where),
        )
    if isinstance(data, tuple) and len(data) == 2:
        images, labels = data

        def pair() -> tuple[Tensor, Tensor]:
            x = as_images(images, where)
            return x, labels_of(labels, len(x), where)

        return Source(ArrayReader(images, where), len(images), lambda: labels, pair)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        n = length_of(data, where)
        targets = getattr(data, "targets", None)  # torchvision's datasets keep their labels beside the images

        def every_label() -> Any:
            if targets is not None and len(targets) == n:
                return targets
            return [pair_of(data, i, where)[1] for i in range(n)]

        return Source(TorchReader(data, where), n, every_label, lambda: from_torch(data, where))
    raise UserError(
        f"{where}: a {type(data).__name__} is not data corrective reads; give a torch Dataset of "
        "(image, label), a Hugging Face dataset, a pair (images, labels) or a Split"
    )


def streamed_split(source: Source, where: str, memory_budget: int, workers: int = 0) -> Split | None:
    """The data as a streamed split (read by `workers` processes) where its images would take more than
    `memory_budget` bytes, else None."""
    if source.n == 0:
        return None
    first = source.read([0])
    x = StreamedImages(source.read, tuple(first.shape[1:]), first.dtype, torch.arange(source.n), workers=workers)
    if x.nbytes <= memory_budget:
        return None
    if workers:
        check_sendable(source.read)  # data the workers cannot be sent: refused before any work
    return Split(x, labels_of(source.labels(), source.n, where), torch.arange(source.n))


def check_columns(data: Any, image_key: str, label_key: str, where: str) -> None:
    """A Hugging Face dataset has the named image and label columns; one clear line where not."""
    columns = list(getattr(data, "column_names", []))
    missing = [k for k in (image_key, label_key) if k not in columns]
    if missing:
        raise UserError(
            f"{where}: the Hugging Face dataset has no column {' or '.join(map(repr, missing))} (it has "
            f"{', '.join(columns)}); name its columns with image_key=/label_key= (--image-key/--label-key)"
        )


def from_hf(data: Any, image_key: str, label_key: str, where: str) -> tuple[Tensor, Tensor]:
    """A Hugging Face `datasets.Dataset`'s image and label columns (checked by `source_of`)."""
    x = stack([_image_array(item, where) for item in data[image_key]], where)
    return x, labels_of(list(data[label_key]), len(x), where)


def is_hf(data: Any) -> bool:
    return type(data).__module__.startswith("datasets.") and hasattr(data, "column_names")


def to_split(
    data: Any,
    where: str,
    *,
    image_key: str = "image",
    label_key: str = "label",
    memory_budget: int | None = None,
    workers: int = 0,
) -> Split:
    """Any supported form of data as a Split whose ids are positions in it, streamed where its images would
    take more than `memory_budget` bytes (None: always held; see the module docstring), its passes read
    ahead by `workers` processes (0: in this process; held data is read once, in this process)."""
    workers = check_workers(workers)
    if isinstance(data, Split):
        return data
    if memory_budget is not None and not (isinstance(memory_budget, int) and memory_budget >= 0):
        raise UserError(f"memory_budget is a number of bytes >= 0, got {memory_budget!r}")
    source = source_of(data, where, image_key, label_key)
    if memory_budget is not None:
        streamed = streamed_split(source, where, memory_budget, workers)
        if streamed is not None:
            return streamed
    x, y = source.whole()
    return Split(x, y, torch.arange(len(y)))


def load_hf(root: Any) -> tuple[Any, Any]:
    """A Hugging Face dataset saved with `save_to_disk`: (its `train` split, its `test` split or None), or
    (the one dataset saved, None)."""
    try:
        import datasets  # type: ignore[import-untyped]
    except ImportError:
        raise UserError(f"Hugging Face datasets are read with the `datasets` package; {HF_HINT}") from None
    try:
        saved = datasets.load_from_disk(str(root))
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"hf: {root} is not a dataset saved with save_to_disk ({e})") from None
    if not isinstance(saved, datasets.DatasetDict):
        return saved, None
    if "train" not in saved:
        raise UserError(f"hf: {root} holds splits {', '.join(saved)} but no 'train'; save the training data as 'train'")
    return saved["train"], saved.get("test")
