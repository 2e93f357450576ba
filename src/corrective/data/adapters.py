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

A random transform in a torch Dataset is drawn once, when the data is read. Streaming data larger than
memory through a DataLoader is not done yet: everything is materialised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from corrective.data.base import Split
from corrective.data.custom import to_labels, to_nchw
from corrective.errors import UserError

HF_HINT = "install the extra: pip install 'corrective-unlearning[hf]'"


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


def from_torch(data: Any, where: str) -> tuple[Tensor, Tensor]:
    """Read a map-style torch Dataset once, in order: (images, labels)."""
    try:
        n = len(data)
    except TypeError:
        raise UserError(f"{where}: a {type(data).__name__} has no length; give a map-style Dataset") from None
    images: list[Any] = []
    labels: list[Any] = []
    for i in range(n):
        item = data[i]
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise UserError(f"{where}: sample {i} is not an (image, label) pair; yield (image, label)")
        images.append(_image_array(item[0], where))
        label = item[1]
        labels.append(int(label.item()) if isinstance(label, Tensor) else label)
    x = stack(images, where)
    return x, labels_of(labels, len(x), where)


def from_hf(data: Any, image_key: str, label_key: str, where: str) -> tuple[Tensor, Tensor]:
    """A Hugging Face `datasets.Dataset`'s image and label columns."""
    columns = list(getattr(data, "column_names", []))
    missing = [k for k in (image_key, label_key) if k not in columns]
    if missing:
        raise UserError(
            f"{where}: the Hugging Face dataset has no column {' or '.join(map(repr, missing))} (it has "
            f"{', '.join(columns)}); name its columns with image_key=/label_key= (--image-key/--label-key)"
        )
    x = stack([_image_array(item, where) for item in data[image_key]], where)
    return x, labels_of(list(data[label_key]), len(x), where)


def is_hf(data: Any) -> bool:
    return type(data).__module__.startswith("datasets.") and hasattr(data, "column_names")


def to_split(data: Any, where: str, *, image_key: str = "image", label_key: str = "label") -> Split:
    """Any supported form of data as a Split whose ids are positions in it (see the module docstring)."""
    if isinstance(data, Split):
        return data
    if is_hf(data):
        x, y = from_hf(data, image_key, label_key, where)
    elif isinstance(data, tuple) and len(data) == 2:
        x = as_images(data[0], where)
        y = labels_of(data[1], len(x), where)
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        x, y = from_torch(data, where)
    else:
        raise UserError(
            f"{where}: a {type(data).__name__} is not data corrective reads; give a torch Dataset of "
            "(image, label), a Hugging Face dataset, a pair (images, labels) or a Split"
        )
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
