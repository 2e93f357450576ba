"""CIFAR-10 and CIFAR-100 from the official python pickle batches, read with a restricted unpickler."""

from __future__ import annotations

import codecs
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from corrective.data.registry import DatasetInfo, RawData, missing_files_error, register_dataset
from corrective.errors import UserError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR pickle holds: numpy's array reconstruction (numpy 1 and 2 names), bytes."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]  # the same names, numpy 1's place
    allowed: dict[tuple[str, str], Any] = {}
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = multiarray._reconstruct
        # arrays pickled with protocol 5 (a private numpy helper its stubs do not declare)
        allowed[(f"{module}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = codecs.encode  # bytes in python 3 pickles of protocol 2
    return allowed


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, lists, dicts, strings and numbers; refuses every other global."""

    allowed = _numpy_globals()

    def __init__(self, file: Any, name: str, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self.name, self.path = name, path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise UserError(
                f"{self.name}: {self.path} refers to {module}.{name}, which no CIFAR batch holds; "
                "refusing to load it: re-download the official file"
            )
        return self.allowed[(module, name)]


def read_pickle(name: str, path: Path) -> dict[str, Any]:
    """A CIFAR pickle as a dict with str keys; a UserError for a missing, corrupt or unsafe file."""
    corrupt = UserError(f"{name}: {path} is not a valid CIFAR batch (truncated or corrupt); re-download it")
    try:
        with path.open("rb") as f:
            obj = _CifarUnpickler(f, name, path).load()
    except UserError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise corrupt from e
    except OSError as e:
        raise UserError(f"{name}: cannot read {path} ({e.strerror or e}); check the file and its permissions") from e
    if not isinstance(obj, dict):
        raise corrupt
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _names(value: Any) -> tuple[str, ...]:
    return tuple(v.decode("latin1") if isinstance(v, bytes) else str(v) for v in value)


def _batch(name: str, path: Path, label_key: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels int64 of one batch file."""
    d = read_pickle(name, path)
    try:
        x = np.asarray(d["data"])
        y = np.asarray(d[label_key], dtype=np.int64).reshape(-1)
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape != (len(y), 3072):
            raise ValueError(f"data of shape {x.shape} and dtype {x.dtype} with {len(y)} labels")
        if len(y) and not (y.min() >= 0 and y.max() < num_classes):
            raise ValueError(f"labels outside 0..{num_classes - 1}")
    except (KeyError, ValueError, TypeError) as e:
        raise UserError(f"{name}: {path} is not a valid CIFAR batch ({e}); re-download it") from e
    return torch.from_numpy(x.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(y)


def _folder(root: Path, sub: str) -> Path:
    """The batches folder: `root` itself or its `sub` folder as extracted from the official archive."""
    return root / sub if (root / sub).is_dir() else root


def _require(name: str, folder: Path, files: list[str]) -> None:
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise missing_files_error(name, folder, f"no {', '.join(missing)}")


def load_cifar10(root: Path) -> RawData:
    """The 5 training batches (50000 images) and the test batch (10000); class names from batches.meta."""
    folder = _folder(root, "cifar-10-batches-py")
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    _require("cifar10", folder, [*train_files, "test_batch"])
    names: tuple[str, ...] = CIFAR10_CLASSES
    if (folder / "batches.meta").is_file():
        meta = read_pickle("cifar10", folder / "batches.meta")
        names = _names(meta.get("label_names", CIFAR10_CLASSES))
        if len(names) != 10:
            raise UserError(
                f"cifar10: {folder / 'batches.meta'} lists {len(names)} label names, not 10; re-download it"
            )
    train = [_batch("cifar10", folder / f, "labels", 10) for f in train_files]
    test_x, test_y = _batch("cifar10", folder / "test_batch", "labels", 10)
    return RawData(torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]), test_x, test_y, names)


def load_cifar100(root: Path) -> RawData:
    """The train (50000) and test (10000) files with their 100 fine labels; class names from meta."""
    folder = _folder(root, "cifar-100-python")
    _require("cifar100", folder, ["train", "test", "meta"])
    meta = read_pickle("cifar100", folder / "meta")
    names = _names(meta.get("fine_label_names", ()))
    if len(names) != 100:
        raise UserError(f"cifar100: {folder / 'meta'} lists {len(names)} fine label names, not 100; re-download it")
    train_x, train_y = _batch("cifar100", folder / "train", "fine_labels", 100)
    test_x, test_y = _batch("cifar100", folder / "test", "fine_labels", 100)
    return RawData(train_x, train_y, test_x, test_y, names)


def torchvision_download(name: str, dataset: str, splits: list[dict[str, Any]]) -> Callable[[Path], None]:
    """A `download` that builds torchvision's `dataset` class once per keyword set in `splits`."""

    def download(root: Path) -> None:
        try:
            import torchvision.datasets
        except ImportError as e:
            raise UserError(
                f"{name}: downloading needs torchvision: pip install 'corrective-unlearning[download]' "
                "(or put the files there by hand)"
            ) from e
        root.mkdir(parents=True, exist_ok=True)
        try:
            for kwargs in splits:
                getattr(torchvision.datasets, dataset)(str(root), download=True, **kwargs)
        except (ImportError, OSError, RuntimeError) as e:  # offline, or a missing helper (gdown for pcam)
            raise UserError(f"{name}: download into {root} failed ({e}); retry or put the files there by hand") from e

    return download


register_dataset(
    DatasetInfo(
        name="cifar10",
        load=load_cifar10,
        files="data_batch_1..data_batch_5, test_batch (and batches.meta) from cifar-10-python.tar.gz, "
        "in the folder or its cifar-10-batches-py subfolder",
        model="resnet9",
        interclass=(3, 5),  # cat, dog
        download=torchvision_download("cifar10", "CIFAR10", [{}]),
    )
)

register_dataset(
    DatasetInfo(
        name="cifar100",
        load=load_cifar100,
        files="train, test, meta from cifar-100-python.tar.gz, in the folder or its cifar-100-python subfolder",
        model="wrn28_10",
        interclass=(47, 52),  # maple_tree, oak_tree
        download=torchvision_download("cifar100", "CIFAR100", [{}]),
    )
)
