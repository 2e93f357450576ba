"""User data: numpy .npz arrays and folders of images, one subfolder per class."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from corrective.data.registry import DatasetInfo, RawData, missing_files_error, register_dataset
from corrective.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


MAX_CHANNELS = 4  # a channel axis holds 1 (grey), 3 (RGB) or up to 4 (RGBA) values; image sides are larger


def to_nchw(name: str, where: str, x: np.ndarray) -> torch.Tensor:
    """Images (N, H, W), (N, H, W, C) or (N, C, H, W) as uint8 (N, C, H, W).

    The channel axis is the one of axes 1 and 3 with at most MAX_CHANNELS values; when both or neither
    could be, the layout is ambiguous and refused. uint8 is kept, other integers must lie in 0..255,
    floats in [0, 1] (scaled to 0..255); NaN and inf are refused.
    """
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        first, last = x.shape[1] <= MAX_CHANNELS, x.shape[3] <= MAX_CHANNELS
        if first == last:
            raise UserError(
                f"{name}: {where} has shape {x.shape}: cannot tell the channel axis (1 to {MAX_CHANNELS} "
                "values) from the image sides; save images as (N, H, W, C) or (N, C, H, W)"
            )
        if last:
            x = x.transpose(0, 3, 1, 2)
    else:
        raise UserError(f"{name}: {where} has shape {x.shape}; expected images (N, H, W), (N, H, W, C) or (N, C, H, W)")
    if x.dtype == np.uint8:
        pass
    elif np.issubdtype(x.dtype, np.floating):
        finite = np.isfinite(x)
        if not finite.all():
            i = int(np.argwhere(~finite)[0][0])
            raise UserError(
                f"{name}: {where} holds NaN or inf pixels ({int((~finite).sum())} values, the first in "
                f"image {i}); replace them or drop those images"
            )
        if x.size and not (x.min() >= 0 and x.max() <= 1):
            raise UserError(f"{name}: {where} holds floats outside [0, 1]; scale the images to [0, 1] or uint8 0..255")
        x = np.rint(x * 255).astype(np.uint8)
    elif np.issubdtype(x.dtype, np.integer) and (not x.size or (x.min() >= 0 and x.max() <= 255)):
        x = x.astype(np.uint8)
    else:
        raise UserError(f"{name}: {where} has dtype {x.dtype} or values outside 0..255; save images as uint8 0..255")
    return torch.from_numpy(np.ascontiguousarray(x))


def to_labels(name: str, where: str, y: np.ndarray, n: int) -> torch.Tensor:
    """Integer class labels (N,) or (N, 1) as int64; they must be non-negative and one per image."""
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{name}: {where} has shape {y.shape} and dtype {y.dtype}; expected integer labels (N,)")
    if len(y) != n:
        raise UserError(f"{name}: {where} has {len(y)} labels for {n} images; give one label per image")
    if n and y.min() < 0:
        raise UserError(f"{name}: {where} has negative labels; number the classes 0, 1, 2, ...")
    return torch.from_numpy(y.astype(np.int64))


def _raw(name: str, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor]) -> RawData:
    """Checks that train and test images match in shape; class names are the label numbers."""
    if train[0].shape[1:] != test[0].shape[1:]:
        raise UserError(
            f"{name}: training images are {tuple(train[0].shape[1:])} (C, H, W) but test images are "
            f"{tuple(test[0].shape[1:])}; give both splits one shape"
        )
    if not len(train[1]):
        raise UserError(f"{name}: the training split is empty; add training images")
    num_classes = int(max(train[1].max(), test[1].max() if len(test[1]) else 0)) + 1
    return RawData(*train, *test, tuple(str(c) for c in range(num_classes)))


def _npz_split(path: Path, x_key: str, y_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in (x_key, y_key) if k not in f.files]
            if missing:
                raise UserError(
                    f"npz: {path} has no array {' or '.join(missing)} (it has {', '.join(f.files)}); "
                    f"save it with np.savez(path, {x_key}=images, {y_key}=labels)"
                )
            x, y = f[x_key], f[y_key]
    except UserError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise UserError(f"npz: {path} is not a valid .npz file of plain arrays ({e}); save it with np.savez") from e
    images = to_nchw("npz", f"{path.name}:{x_key}", x)
    return images, to_labels("npz", f"{path.name}:{y_key}", y, len(images))


def load_npz(root: Path) -> RawData:
    """`root` is a folder with train.npz and test.npz (arrays x, y) or one .npz (x_train, y_train, x_test, y_test)."""
    if root.is_file():
        return _raw("npz", _npz_split(root, "x_train", "y_train"), _npz_split(root, "x_test", "y_test"))
    for f in ("train.npz", "test.npz"):
        if not (root / f).is_file():
            raise missing_files_error("npz", root, f"no {f}")
    return _raw("npz", _npz_split(root / "train.npz", "x", "y"), _npz_split(root / "test.npz", "x", "y"))


def load_imagefolder(root: Path) -> RawData:
    """root/train/<class>/*.png|jpg|jpeg and root/test/<class>/...; classes sorted by folder name.

    Images are read as grayscale when all of them are, else as RGB; all must share one size.
    """
    try:
        from PIL import Image
    except ImportError as e:
        raise UserError("imagefolder needs Pillow: pip install pillow (or 'corrective-unlearning[data]')") from e
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise missing_files_error("imagefolder", root, f"no {split} folder")
    classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir() and not d.name.startswith("."))
    extra = sorted(
        d.name for d in (root / "test").iterdir() if d.is_dir() and d.name[0] != "." and d.name not in classes
    )
    if not classes or extra:
        what = f"test classes {extra} have no training folder" if extra else "no class folders in train"
        raise missing_files_error("imagefolder", root, what)
    files: dict[str, list[tuple[Path, int]]] = {}
    for split in ("train", "test"):
        files[split] = [
            (p, c)
            for c, name in enumerate(classes)
            if (root / split / name).is_dir()
            for p in sorted((root / split / name).iterdir())
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not files[split]:
            raise missing_files_error("imagefolder", root / split, f"no {'/'.join(IMAGE_SUFFIXES)} images")
    arrays: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    first: tuple[Path, tuple[int, int]] | None = None
    for split, items in files.items():
        for path, _ in items:
            try:
                with Image.open(path) as im:
                    a = np.asarray(im.convert("L" if im.mode in ("1", "L") else "RGB"))
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                raise UserError(f"imagefolder: cannot read {path} as an image ({e}); fix or remove it") from e
            first = first or (path, a.shape[:2])
            if a.shape[:2] != first[1]:
                raise UserError(
                    f"imagefolder: {path} is {a.shape[1]}x{a.shape[0]} but {first[0]} is {first[1][1]}x{first[1][0]}; "
                    "resize all images to one size"
                )
            arrays[split].append(a)
    rgb = any(a.ndim == 3 for v in arrays.values() for a in v)
    out = []
    for split, items in files.items():
        x = np.stack([np.repeat(a[..., None], 3, axis=2) if rgb and a.ndim == 2 else a for a in arrays[split]])
        x = x.transpose(0, 3, 1, 2) if rgb else x[:, None]
        out.append((torch.from_numpy(np.ascontiguousarray(x)), torch.tensor([c for _, c in items], dtype=torch.long)))
    return RawData(*out[0], *out[1], tuple(classes))


register_dataset(
    DatasetInfo(
        name="npz",
        load=load_npz,
        files="train.npz and test.npz (arrays x: images (N,H,W[,C]) or (N,C,H,W), uint8 or floats in [0,1]; "
        "y: integer labels) in the folder, or one .npz with x_train, y_train, x_test, y_test; "
        "no flips or crops in augmentation",
        flip=False,
        crop_pad=0,
        model="resnet9",
        budget_in_epochs=True,
    )
)

register_dataset(
    DatasetInfo(
        name="imagefolder",
        load=load_imagefolder,
        files="train/<class>/*.png|jpg|jpeg and test/<class>/... (one size; class names sorted) in the folder; "
        "needs Pillow; no flips or crops in augmentation",
        flip=False,
        crop_pad=0,
        model="resnet9",
        budget_in_epochs=True,
    )
)
