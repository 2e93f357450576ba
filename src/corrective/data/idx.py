"""MNIST and Fashion-MNIST from the official IDX files (optionally gzipped), parsed with numpy."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from corrective.data.cifar import torchvision_download
from corrective.data.registry import DatasetInfo, RawData, missing_files_error, register_dataset
from corrective.errors import UserError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def read_idx(name: str, path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with `ndim` dimensions: magic 0 0 8 ndim, big-endian uint32 sizes, data."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise UserError(f"{name}: {path} is not a valid gzip file (truncated or corrupt); re-download it") from e
    except OSError as e:
        raise UserError(f"{name}: cannot read {path} ({e.strerror or e}); check the file and its permissions") from e
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes((0, 0, 8, ndim)):
        raise UserError(f"{name}: {path} is not an IDX file of bytes with {ndim} dimensions; re-download it")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    if len(data) != header + int(np.prod(dims)):
        raise UserError(
            f"{name}: {path} holds {len(data) - header} data bytes but its header says {dims} "
            "(truncated or corrupt); re-download it"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _folder(root: Path, sub: str) -> Path:
    """The first of `root`, `root/raw`, `root/<sub>/raw` (torchvision's layout) holding the training images."""
    for folder in (root, root / "raw", root / sub / "raw"):
        if any((folder / f"{FILES[0]}{ext}").is_file() for ext in ("", ".gz")):
            return folder
    return root


def _split(name: str, folder: Path, images: str, labels: str) -> tuple[torch.Tensor, torch.Tensor]:
    paths = []
    for base in (images, labels):
        path = next((p for p in (folder / base, folder / f"{base}.gz") if p.is_file()), None)
        if path is None:
            raise missing_files_error(name, folder, f"no {base} (or {base}.gz)")
        paths.append(path)
    x, y = read_idx(name, paths[0], 3), read_idx(name, paths[1], 1)
    if len(x) != len(y):
        raise UserError(f"{name}: {paths[0]} has {len(x)} images but {paths[1]} has {len(y)} labels; re-download them")
    if len(y) and y.max() > 9:
        raise UserError(f"{name}: {paths[1]} has labels above 9; re-download it")
    return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def _load(name: str, sub: str, root: Path, classes: tuple[str, ...]) -> RawData:
    folder = _folder(root, sub)
    train_x, train_y = _split(name, folder, FILES[0], FILES[1])
    test_x, test_y = _split(name, folder, FILES[2], FILES[3])
    return RawData(train_x, train_y, test_x, test_y, classes)


def load_mnist(root: Path) -> RawData:
    """60000 training and 10000 test handwritten digits, 1 x 28 x 28."""
    return _load("mnist", "MNIST", root, tuple(str(c) for c in range(10)))


def load_fashion_mnist(root: Path) -> RawData:
    """60000 training and 10000 test clothing images, 1 x 28 x 28."""
    return _load("fashion_mnist", "FashionMNIST", root, FASHION_CLASSES)


def _files(sub: str) -> str:
    return f"{', '.join(FILES)} (each optionally .gz) in the folder, its raw subfolder or {sub}/raw"


register_dataset(
    DatasetInfo(
        name="mnist",
        load=load_mnist,
        files=_files("MNIST"),
        flip=False,
        crop_pad=2,
        model="cnn28",
        preset="cpu28",
        interclass=(4, 9),  # the digits most alike
        download=torchvision_download("mnist", "MNIST", [{}]),
    )
)

register_dataset(
    DatasetInfo(
        name="fashion_mnist",
        load=load_fashion_mnist,
        files=_files("FashionMNIST"),
        flip=True,
        crop_pad=0,  # flips only: at cpu28's budget random crops cost test accuracy (docs/methods.md, cnn28)
        model="cnn28",
        preset="cpu28",
        interclass=(0, 6),  # T-shirt/top, Shirt
        system_roots=("/usr/share/datasets/fashion-mnist",),
        system_package="dataset-fashion-mnist",
        download=torchvision_download("fashion_mnist", "FashionMNIST", [{}]),
    )
)
