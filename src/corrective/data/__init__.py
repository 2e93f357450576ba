"""Datasets as device tensors: loaders for the official file formats, splits, batches."""

from corrective.data import cifar, custom, digits, idx, pcam, svhn  # noqa: F401  (registers)
from corrective.data.base import Dataset, Split
from corrective.data.registry import DATASETS, DatasetInfo, RawData, get_info, load_dataset, register_dataset

__all__ = ["DATASETS", "Dataset", "DatasetInfo", "RawData", "Split", "get_info", "load_dataset", "register_dataset"]
