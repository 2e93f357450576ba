"""scikit-learn's 8x8 digits: the embedded default, no files needed."""

from __future__ import annotations

from pathlib import Path

import torch

from corrective.data.registry import DatasetInfo, RawData, register_dataset, stratified_val


def load_digits(root: Path | None = None, *, test_fraction: float = 0.25, split_seed: int = 0) -> RawData:
    """1797 images, 1 channel, values 0..16 rescaled to 0..255; a seeded stratified test split."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = torch.from_numpy(bunch.images).float().mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    y = torch.from_numpy(bunch.target).long()
    test = stratified_val(y, test_fraction, split_seed)
    return RawData(x[~test], y[~test], x[test], y[test], tuple(str(c) for c in range(10)))


register_dataset(
    DatasetInfo(
        name="digits",
        load=load_digits,
        files="nothing: shipped with scikit-learn",
        flip=False,
        crop_pad=1,
        model="cnn_small",
        preset="digits",
        interclass=(3, 8),  # the pair most alike in 8x8 digits, as cat/dog in CIFAR-10,
        embedded=True,
    )
)
