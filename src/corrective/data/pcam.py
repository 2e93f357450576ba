"""PatchCamelyon from the official HDF5 files, centre-cropped as in the paper (32 px by default)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from corrective.data.cifar import torchvision_download
from corrective.data.registry import DatasetInfo, RawData, missing_files_error, register_dataset
from corrective.errors import UserError

PREFIX = "camelyonpatch_level_2_split"
CHUNK = 4096  # images read at a time, so the full 96 px training set (7 GB) is never in memory


def _read_split(h5py: ModuleType, folder: Path, split: str, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, crop, crop) uint8 from x (N, 96, 96, 3) and labels 0/1 from y (N, 1, 1, 1)."""
    paths = [folder / f"{PREFIX}_{split}_{v}.h5" for v in ("x", "y")]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise missing_files_error("pcam", folder, f"no {', '.join(missing)}")
    try:
        with h5py.File(paths[0], "r") as fx, h5py.File(paths[1], "r") as fy:
            xs, y = fx["x"], np.asarray(fy["y"]).reshape(-1)
            n, h, w, c = xs.shape if xs.ndim == 4 else (0, 0, 0, 0)
            if xs.dtype != np.uint8 or xs.ndim != 4 or c != 3 or h != w or n != len(y):
                raise ValueError(f"x of shape {xs.shape} and dtype {xs.dtype} with {len(y)} labels")
            if crop > h:
                raise UserError(f"pcam: crop={crop} is larger than the {h} px patches; use crop <= {h}")
            if not np.isin(y, (0, 1)).all():
                raise ValueError("labels other than 0 and 1")
            lo = (h - crop) // 2
            x = torch.empty((n, 3, crop, crop), dtype=torch.uint8)
            for i in range(0, n, CHUNK):
                part = xs[i : i + CHUNK, lo : lo + crop, lo : lo + crop, :]
                x[i : i + len(part)] = torch.from_numpy(part).permute(0, 3, 1, 2)
    except UserError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise UserError(f"pcam: {folder}/{PREFIX}_{split}_*.h5 are not valid PCam files ({e}); re-download them") from e
    return x, torch.from_numpy(y.astype(np.int64))


def load_pcam(root: Path, *, crop: int = 32) -> RawData:
    """262144 training and 32768 test patches; `crop` px from the centre (96 keeps the whole patch)."""
    if not isinstance(crop, int) or isinstance(crop, bool) or crop < 1:
        raise UserError(f"pcam: crop must be a positive number of pixels, got {crop!r}")
    try:
        import h5py
    except ImportError as e:
        raise UserError("pcam needs h5py: pip install 'corrective-unlearning[data]'") from e
    folder = root / "pcam" if (root / "pcam").is_dir() else root
    train_x, train_y = _read_split(h5py, folder, "train", crop)
    test_x, test_y = _read_split(h5py, folder, "test", crop)
    return RawData(train_x, train_y, test_x, test_y, ("normal", "metastatic"))


register_dataset(
    DatasetInfo(
        name="pcam",
        load=load_pcam,
        files=f"{PREFIX}_train_x.h5, _train_y.h5, _test_x.h5, _test_y.h5 (unzipped) in the folder "
        "or its pcam subfolder; needs h5py",
        flip=True,
        crop_pad=4,
        model="wrn28_10",
        download=torchvision_download("pcam", "PCAM", [{"split": "train"}, {"split": "test"}]),
    )
)
