"""SVHN (cropped digits) from the official MATLAB files train_32x32.mat and test_32x32.mat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from corrective.data.cifar import torchvision_download
from corrective.data.registry import DatasetInfo, RawData, missing_files_error, register_dataset
from corrective.errors import UserError


def _read_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 from X (32, 32, 3, N) and labels from y (N, 1), where 10 means digit 0."""
    try:
        from scipy.io import loadmat
    except ImportError as e:
        raise UserError("svhn needs scipy: pip install 'corrective-unlearning[data]'") from e
    if not path.is_file():
        raise missing_files_error("svhn", path.parent, f"no {path.name}")
    try:
        mat = loadmat(path, variable_names=["X", "y"])
        x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
        if x.dtype != np.uint8 or x.shape[:3] != (32, 32, 3) or x.ndim != 4 or x.shape[3] != len(y):
            raise ValueError(f"X of shape {x.shape} and dtype {x.dtype} with {len(y)} labels")
        y = y.astype(np.int64)
        if len(y) and not (y.min() >= 1 and y.max() <= 10):
            raise ValueError("labels outside 1..10")
    except Exception as e:  # scipy raises many types (MatReadError, ValueError, OSError, ...) for a bad file
        raise UserError(f"svhn: {path} is not a valid SVHN .mat file ({e}); re-download it") from e
    return torch.from_numpy(x.transpose(3, 2, 0, 1).copy()), torch.from_numpy(y % 10)


def load_svhn(root: Path) -> RawData:
    """73257 training and 26032 test digits; the label 10 of digit 0 becomes 0."""
    train_x, train_y = _read_mat(root / "train_32x32.mat")
    test_x, test_y = _read_mat(root / "test_32x32.mat")
    return RawData(train_x, train_y, test_x, test_y, tuple(str(c) for c in range(10)))


register_dataset(
    DatasetInfo(
        name="svhn",
        load=load_svhn,
        files="train_32x32.mat and test_32x32.mat (cropped digits, format 2) in the folder; needs scipy",
        flip=False,
        crop_pad=4,
        model="vit_small",
        interclass=(3, 5),
        download=torchvision_download("svhn", "SVHN", [{"split": "train"}, {"split": "test"}]),
    )
)
