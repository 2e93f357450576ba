"""The dataset registry: name -> loader of the official files, and `load_dataset`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from corrective.data.base import Dataset, Split, channel_stats
from corrective.errors import UserError
from corrective.registry import Registry


@dataclass(frozen=True)
class RawData:
    """What a loader returns: the official train and test sets, images uint8 (N, C, H, W)."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    load: Callable[..., RawData]  # load(root: Path, **options) -> RawData
    files: str  # which files go where, shown in errors and `corrective datasets`
    flip: bool = True
    crop_pad: int = 4
    model: str = "resnet9"
    preset: str = "paper"  # the training preset (`training.PRESETS`) a run on this dataset uses by default
    # A user's own data (npz, imagefolder): the preset's optimiser over a budget in epochs of the data's size
    # (`training.DEFAULT_EPOCHS`), not the preset's step count, which is sized for another data set.
    budget_in_epochs: bool = False
    interclass: tuple[int, int] | None = None
    download: Callable[[Path], None] | None = None  # fetch the files (needs torchvision, online)
    embedded: bool = False
    # Folders where a system package installs the files, tried after data/NAME when no root is given
    # (Debian's dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist).
    system_roots: tuple[str, ...] = ()
    system_package: str = ""  # the Debian package that installs them there


DATASETS: Registry[DatasetInfo] = Registry("dataset", see="corrective datasets")


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    return DATASETS.register(info.name, info)


def get_info(name: str) -> DatasetInfo:
    return DATASETS.lookup(name)


def missing_files_error(name: str, root: Path, missing: str) -> UserError:
    """The error for a data folder without the expected files: says what to put where."""
    info = get_info(name)
    return UserError(f"{name}: {missing} in {root}; expected {info.files}")


def stratified_val(y: Tensor, fraction: float, seed: int) -> Tensor:
    """Boolean mask of a seeded, class-stratified validation share of `y`."""
    if not 0.0 <= fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {fraction}")
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(len(y), dtype=torch.bool)
    for c in torch.unique(y).tolist():
        idx = (y == c).nonzero().squeeze(1)
        k = int(round(fraction * len(idx)))
        mask[idx[torch.randperm(len(idx), generator=gen)[:k]]] = True
    return mask


def default_root(info: DatasetInfo) -> Path:
    """Where a dataset's files are looked for without `--root`: data/NAME, else the first system folder that exists."""
    local = Path("data") / info.name
    if local.exists():
        return local
    return next((Path(p) for p in info.system_roots if Path(p).is_dir()), local)


def load_dataset(
    name: str = "digits",
    root: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    download: bool = False,
    **options: object,
) -> Dataset:
    """Load a registered dataset and carve the clean validation split from its training data.

    Sample ids are positions in the official training (or test) file, so they stay stable
    whatever split or manipulation is applied later.
    """
    info = get_info(name)
    path = default_root(info) if root is None else Path(root).expanduser()
    if not info.embedded and not path.exists():
        if download and info.download is not None:
            info.download(path)
        else:
            hint = " or pass --download (needs torchvision and a network)" if info.download else ""
            if info.system_package and root is None:
                hint += f", or install Debian's package: apt-get install {info.system_package}"
            raise UserError(f"{name}: data folder {path} does not exist; put {info.files} there{hint}")
    accepted = [p for p in inspect.signature(info.load).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UserError(f"{name}: unknown loader option {unknown[0]!r}; it takes: {', '.join(accepted) or 'none'}")
    raw = info.load(path, **options)
    val_mask = stratified_val(raw.train_y, val_fraction, seed)
    ids = torch.arange(len(raw.train_y))
    train_x = raw.train_x[~val_mask]
    train = Split(train_x, raw.train_y[~val_mask], ids[~val_mask])
    val = Split(raw.train_x[val_mask], raw.train_y[val_mask], ids[val_mask])
    test = Split(raw.test_x, raw.test_y, torch.arange(len(raw.test_y)))
    mean, std = channel_stats(train_x)
    num_classes = len(raw.class_names) if raw.class_names else int(raw.train_y.max()) + 1
    return Dataset(name, num_classes, train, val, test, mean, std, info.flip, info.crop_pad, raw.class_names)
