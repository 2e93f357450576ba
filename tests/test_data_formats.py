"""Loaders of the official file formats: tiny files written in each format, loaded back, and bad files refused."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from corrective.data import DATASETS, Dataset, get_info, load_dataset
from corrective.errors import UserError

RNG = np.random.default_rng(0)


def check_splits(ds: Dataset, n_train: int, n_test: int, shape: tuple[int, int, int]) -> None:
    """Shapes and dtypes, and a val split disjoint from train that together cover the training file."""
    assert ds.train.x.dtype == torch.uint8 and ds.train.y.dtype == torch.int64
    assert ds.train.x.shape[1:] == shape and ds.test.x.shape == (n_test, *shape)
    assert len(ds.train) + len(ds.val) == n_train and len(ds.val) > 0
    assert not set(ds.train.ids.tolist()) & set(ds.val.ids.tolist())
    assert sorted(ds.train.ids.tolist() + ds.val.ids.tolist()) == list(range(n_train))


# CIFAR


class Evil:
    """Unpickling this would run a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def write_pickle(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj))


def cifar_batch(n: int, label_key: bytes, num_classes: int) -> dict[bytes, object]:
    labels = [i % num_classes for i in range(n)]
    return {b"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: labels, b"batch_label": b"x"}


@pytest.fixture
def cifar10_root(tmp_path: Path) -> Path:
    """The extracted archive: tmp_path/cifar-10-batches-py/{data_batch_1..5, test_batch}, 10 images each."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        write_pickle(folder / f, cifar_batch(10, b"labels", 10))
    return tmp_path


def test_cifar10_loads_batches_with_default_names(cifar10_root: Path) -> None:
    ds = load_dataset("cifar10", cifar10_root, val_fraction=0.2)
    check_splits(ds, 50, 10, (3, 32, 32))
    assert ds.num_classes == 10 and ds.class_names[3] == "cat" and ds.class_names[5] == "dog"
    raw = pickle.loads((cifar10_root / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    first = ds.val if 0 in ds.val.ids else ds.train
    pos = int(first.positions_of(torch.tensor([0])))
    assert first.x[pos, 1].numpy().tolist() == raw[b"data"][0, 1024:2048].reshape(32, 32).tolist()  # green plane
    assert first.y[pos] == raw[b"labels"][0]


def test_cifar10_reads_meta_names_from_the_folder_itself(cifar10_root: Path) -> None:
    folder = cifar10_root / "cifar-10-batches-py"
    names = [f"class{i}".encode() for i in range(10)]
    write_pickle(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": 10})
    ds = load_dataset("cifar10", folder, val_fraction=0.2)
    assert ds.class_names == tuple(f"class{i}" for i in range(10))


def test_cifar100_fine_labels_and_meta(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    write_pickle(folder / "train", cifar_batch(500, b"fine_labels", 100))
    write_pickle(folder / "test", cifar_batch(20, b"fine_labels", 100))
    names = [f"c{i}" for i in range(100)]
    write_pickle(folder / "meta", {b"fine_label_names": [n.encode() for n in names], b"coarse_label_names": []})
    ds = load_dataset("cifar100", tmp_path, val_fraction=0.2)
    check_splits(ds, 500, 20, (3, 32, 32))
    assert ds.num_classes == 100 and ds.class_names == tuple(names)
    assert get_info("cifar100").interclass == (47, 52) and get_info("cifar100").model == "wrn28_10"


def test_cifar_reads_python2_style_pickles(cifar10_root: Path) -> None:
    """The official files: protocol 2, str keys, arrays under numpy 1's `numpy.core` module name."""
    batch = {k.decode(): v for k, v in cifar_batch(10, b"labels", 10).items()}
    data = pickle.dumps(batch, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in data
    (cifar10_root / "cifar-10-batches-py" / "data_batch_1").write_bytes(data)
    ds = load_dataset("cifar10", cifar10_root, val_fraction=0.2)
    assert torch.equal(
        ds.train.x[ds.train.ids < 10].flatten(1), torch.from_numpy(batch["data"])[ds.train.ids[ds.train.ids < 10]]
    )


def test_cifar_refuses_a_pickle_with_a_forbidden_global(cifar10_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    write_pickle(cifar10_root / "cifar-10-batches-py" / "data_batch_2", {b"data": Evil(marker), b"labels": []})
    with pytest.raises(UserError, match="data_batch_2 refers to .*system"):
        load_dataset("cifar10", cifar10_root)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (lambda b: b[: len(b) // 2], "not a valid CIFAR batch .truncated or corrupt"),
        (lambda b: b"not a pickle", "not a valid CIFAR batch .truncated or corrupt"),
        (lambda b: pickle.dumps([1, 2]), "not a valid CIFAR batch"),
        (lambda b: pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}), r"shape \(2, 10\)"),
        (lambda b: pickle.dumps({b"labels": [0]}), "not a valid CIFAR batch .'data'"),
    ],
)
def test_cifar_bad_batch(cifar10_root: Path, content, match: str) -> None:
    path = cifar10_root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(content(path.read_bytes()))
    with pytest.raises(UserError, match=match):
        load_dataset("cifar10", cifar10_root)


def test_cifar_missing_file_and_folder(cifar10_root: Path) -> None:
    (cifar10_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(UserError, match="cifar10: no data_batch_3 in .*; expected data_batch_1"):
        load_dataset("cifar10", cifar10_root)
    with pytest.raises(UserError, match="data folder .*nowhere does not exist; put train, test, meta"):
        load_dataset("cifar100", cifar10_root / "nowhere")
    with pytest.raises(UserError, match="no train, test, meta in"):
        load_dataset("cifar100", cifar10_root)


@pytest.mark.parametrize("name", sorted(n for n, info in DATASETS.items() if info.download))
def test_download_without_torchvision(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(UserError, match="needs torchvision: pip install"):
        load_dataset(name, tmp_path / "new", download=True)


# SVHN


def write_svhn(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import savemat

    x = RNG.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10, 10 is digit 0
    savemat(path, {"X": x, "y": y})
    return x, y


def test_svhn_maps_label_10_to_0(tmp_path: Path) -> None:
    x, y = write_svhn(tmp_path / "train_32x32.mat", 50)
    write_svhn(tmp_path / "test_32x32.mat", 10)
    ds = load_dataset("svhn", tmp_path, val_fraction=0.2)
    check_splits(ds, 50, 10, (3, 32, 32))
    assert ds.class_names == tuple("0123456789") and ds.test.y.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    split = ds.train if 9 in ds.train.ids else ds.val
    pos = int(split.positions_of(torch.tensor([9])))
    assert split.y[pos] == 0 and torch.equal(split.x[pos], torch.from_numpy(x[..., 9].transpose(2, 0, 1).copy()))


def test_svhn_bad_files(tmp_path: Path) -> None:
    write_svhn(tmp_path / "train_32x32.mat", 10)
    with pytest.raises(UserError, match="svhn: no test_32x32.mat in"):
        load_dataset("svhn", tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes((tmp_path / "train_32x32.mat").read_bytes()[:3000])
    with pytest.raises(UserError, match="test_32x32.mat is not a valid SVHN .mat file"):
        load_dataset("svhn", tmp_path)


# PCam


def write_pcam(folder: Path, split: str, n: int) -> np.ndarray:
    import h5py

    x = RNG.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
    with h5py.File(folder / f"camelyonpatch_level_2_split_{split}_x.h5", "w") as f:
        f.create_dataset("x", data=x)
    with h5py.File(folder / f"camelyonpatch_level_2_split_{split}_y.h5", "w") as f:
        f.create_dataset("y", data=(np.arange(n) % 2).astype(np.uint8).reshape(n, 1, 1, 1))
    return x


@pytest.fixture
def pcam_root(tmp_path: Path) -> tuple[Path, np.ndarray]:
    x = write_pcam(tmp_path, "train", 10)
    write_pcam(tmp_path, "test", 4)
    return tmp_path, x


def test_pcam_centre_crop(pcam_root: tuple[Path, np.ndarray]) -> None:
    root, x = pcam_root
    ds = load_dataset("pcam", root, val_fraction=0.2)
    check_splits(ds, 10, 4, (3, 32, 32))
    assert ds.num_classes == 2 and ds.test.y.tolist() == [0, 1, 0, 1]
    split = ds.train if 3 in ds.train.ids else ds.val
    pos = int(split.positions_of(torch.tensor([3])))
    assert torch.equal(split.x[pos], torch.from_numpy(x[3, 32:64, 32:64].transpose(2, 0, 1).copy()))
    full = load_dataset("pcam", root, val_fraction=0.2, crop=96)
    assert full.image_size == 96
    with pytest.raises(UserError, match="crop=100 is larger than the 96 px patches"):
        load_dataset("pcam", root, crop=100)


def test_pcam_bad_files(pcam_root: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = pcam_root
    path = root / "camelyonpatch_level_2_split_test_x.h5"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError, match="_test_.*.h5 are not valid PCam files"):
        load_dataset("pcam", root)
    path.unlink()
    with pytest.raises(UserError, match="pcam: no camelyonpatch_level_2_split_test_x.h5 in"):
        load_dataset("pcam", root)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(UserError, match=r"pcam needs h5py: pip install 'corrective-unlearning\[data\]'"):
        load_dataset("pcam", root)


# MNIST, Fashion-MNIST


def idx_bytes(a: np.ndarray) -> bytes:
    return bytes((0, 0, 8, a.ndim)) + np.array(a.shape, ">u4").tobytes() + a.astype(np.uint8).tobytes()


def write_idx(folder: Path, gz: bool) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    x = RNG.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    arrays = {"train-images-idx3-ubyte": x, "train-labels-idx1-ubyte": np.arange(50) % 10}
    arrays |= {"t10k-images-idx3-ubyte": x[:10], "t10k-labels-idx1-ubyte": np.arange(10)}
    for name, a in arrays.items():
        data = idx_bytes(a)
        (folder / f"{name}.gz").write_bytes(gzip.compress(data)) if gz else (folder / name).write_bytes(data)
    return x


@pytest.mark.parametrize(("name", "gz", "sub"), [("mnist", False, ""), ("fashion_mnist", True, "FashionMNIST/raw")])
def test_idx_loads(tmp_path: Path, name: str, gz: bool, sub: str) -> None:
    x = write_idx(tmp_path / sub, gz)
    ds = load_dataset(name, tmp_path, val_fraction=0.2)
    check_splits(ds, 50, 10, (1, 28, 28))
    assert torch.equal(ds.test.x[:, 0], torch.from_numpy(x[:10])) and ds.test.y.tolist() == list(range(10))
    assert ds.class_names[0] == ("0" if name == "mnist" else "T-shirt/top") and ds.flip == (name == "fashion_mnist")


@pytest.mark.parametrize(
    ("damage", "suffix", "match"),
    [
        (lambda b: b[:-7], "", r"holds 7833 data bytes but its header says \(10, 28, 28\)"),
        (lambda b: b"\x00\x00\x0d\x03" + b[4:], "", "not an IDX file of bytes with 3 dimensions"),
        (lambda b: gzip.compress(b)[:100], ".gz", "not a valid gzip file"),
    ],
)
def test_idx_bad_files(tmp_path: Path, damage, suffix: str, match: str) -> None:
    write_idx(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    data = damage(path.read_bytes())
    path.unlink()
    path.with_name(path.name + suffix).write_bytes(data)
    with pytest.raises(UserError, match=match):
        load_dataset("mnist", tmp_path)


def test_idx_missing_and_mismatched(tmp_path: Path) -> None:
    write_idx(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(9)))
    with pytest.raises(UserError, match="has 10 images but .* has 9 labels"):
        load_dataset("mnist", tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError, match=r"no t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte.gz\) in"):
        load_dataset("mnist", tmp_path)


# npz


def test_npz_folder_channels_last_uint8(tmp_path: Path) -> None:
    x = RNG.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "train.npz", x=x, y=np.arange(20) % 4)
    np.savez(tmp_path / "test.npz", x=x[:6], y=(np.arange(6) % 4).reshape(6, 1))
    ds = load_dataset("npz", tmp_path, val_fraction=0.2)
    check_splits(ds, 20, 6, (3, 8, 8))
    assert torch.equal(ds.test.x, torch.from_numpy(x[:6].transpose(0, 3, 1, 2).copy()))
    assert ds.class_names == ("0", "1", "2", "3") and not ds.flip and ds.crop_pad == 0


def test_npz_single_file_floats_and_grayscale(tmp_path: Path) -> None:
    xf = RNG.random((20, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=xf, y_train=np.arange(20) % 2, x_test=xf[:4], y_test=np.arange(4) % 2)
    ds = load_dataset("npz", tmp_path / "d.npz", val_fraction=0.2)
    check_splits(ds, 20, 4, (3, 8, 8))
    assert torch.equal(ds.test.x, torch.from_numpy(np.rint(xf[:4] * 255).astype(np.uint8)))
    g = RNG.integers(0, 256, (10, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "g.npz", x_train=g, y_train=np.arange(10) % 2, x_test=g, y_test=np.arange(10) % 2)
    assert load_dataset("npz", tmp_path / "g.npz", val_fraction=0.2).in_channels == 1


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x_train": np.full((4, 8, 8), 2.0), "y_train": np.arange(4)}, r"floats outside \[0, 1\]"),
        (
            {"x_train": np.where(np.arange(256).reshape(4, 8, 8) == 70, np.nan, 0.5), "y_train": np.arange(4)},
            r"x_train holds NaN or inf pixels \(1 values, the first in image 1\)",
        ),
        ({"x_train": np.full((4, 8, 8), np.inf), "y_train": np.arange(4)}, "NaN or inf"),
        ({"x_train": np.zeros((4, 8, 8, 8), np.uint8), "y_train": np.arange(4)}, "cannot tell the channel axis"),
        ({"x_train": np.zeros((4, 3, 8, 2), np.uint8), "y_train": np.arange(4)}, "cannot tell the channel axis"),
        ({"x_train": np.zeros((4, 8, 8), np.uint8)}, "has no array y_train"),
        ({"x_train": np.zeros((4, 8, 8), np.uint8), "y_train": np.arange(3)}, "3 labels for 4 images"),
        ({"x_train": np.zeros((4, 8, 8), np.uint8), "y_train": np.arange(4) / 2}, "expected integer labels"),
        ({"x_train": np.array([object()] * 4), "y_train": np.arange(4)}, "not a valid .npz file of plain arrays"),
    ],
)
def test_npz_bad_arrays(tmp_path: Path, arrays: dict[str, np.ndarray], match: str) -> None:
    test = {"x_test": np.zeros((2, 8, 8), np.uint8), "y_test": np.arange(2)}
    np.savez(tmp_path / "d.npz", **arrays, **test)
    with pytest.raises(UserError, match=match):
        load_dataset("npz", tmp_path / "d.npz")


def test_npz_missing_and_truncated(tmp_path: Path) -> None:
    np.savez(tmp_path / "train.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.arange(4))
    with pytest.raises(UserError, match="npz: no test.npz in"):
        load_dataset("npz", tmp_path)
    (tmp_path / "test.npz").write_bytes((tmp_path / "train.npz").read_bytes()[:100])
    with pytest.raises(UserError, match="test.npz is not a valid .npz file"):
        load_dataset("npz", tmp_path)


# image folders


def write_images(root: Path, sizes: dict[str, tuple[int, int]] | None = None, mode: str = "RGB") -> None:
    from PIL import Image

    for split, n in (("train", 5), ("test", 2)):
        for c in ("dog", "cat"):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                name = f"{split}/{c}/{i}.png"
                size = (sizes or {}).get(name, (8, 8))
                Image.new(mode, size, color=(40 * i, 0, 0) if mode == "RGB" else 40 * i).save(root / name)


def test_imagefolder_sorted_classes(tmp_path: Path) -> None:
    write_images(tmp_path)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")
    ds = load_dataset("imagefolder", tmp_path, val_fraction=0.2)
    check_splits(ds, 10, 4, (3, 8, 8))
    assert ds.class_names == ("cat", "dog") and ds.test.y.tolist() == [0, 0, 1, 1]
    assert ds.test.x[1, 0, 0, 0] == 40 and ds.test.x[1, 1].max() == 0 and not ds.flip


def test_imagefolder_grayscale_and_mixed(tmp_path: Path) -> None:
    from PIL import Image

    write_images(tmp_path, mode="L")
    assert load_dataset("imagefolder", tmp_path, val_fraction=0.2).in_channels == 1
    Image.new("RGB", (8, 8)).save(tmp_path / "test" / "dog" / "rgb.jpg")
    assert load_dataset("imagefolder", tmp_path, val_fraction=0.2).in_channels == 3


def test_imagefolder_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_images(tmp_path, sizes={"train/dog/3.png": (9, 8)})
    with pytest.raises(UserError, match=r"train/dog/3.png is 9x8 but .*train/cat/0.png is 8x8; resize"):
        load_dataset("imagefolder", tmp_path)
    (tmp_path / "train" / "dog" / "3.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read .*3.png as an image"):
        load_dataset("imagefolder", tmp_path)
    (tmp_path / "test" / "bird").mkdir()
    with pytest.raises(UserError, match=r"test classes \['bird'\] have no training folder"):
        load_dataset("imagefolder", tmp_path)
    with pytest.raises(UserError, match="imagefolder: no train folder in"):
        load_dataset("imagefolder", tmp_path / "test")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(UserError, match="imagefolder needs Pillow: pip install pillow"):
        load_dataset("imagefolder", tmp_path)


FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


def test_fashion_mnist_found_where_debian_installs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's dataset-fashion-mnist (installed by scripts/setup.sh and .ci/run): read without --root."""
    if not (FASHION_SYSTEM / "train-images-idx3-ubyte.gz").is_file():
        why = "Debian's package dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    monkeypatch.chdir(tmp_path)  # no data/fashion_mnist here: the system folder is the one found
    ds = load_dataset("fashion_mnist", val_fraction=0.0)
    assert tuple(ds.train.x.shape) == (60000, 1, 28, 28) and tuple(ds.test.x.shape) == (10000, 1, 28, 28)
    assert torch.bincount(ds.train.y).tolist() == [6000] * 10 and torch.bincount(ds.test.y).tolist() == [1000] * 10
    first = ds.train.x[0, 0].numpy().tobytes()
    assert hashlib.sha256(first).hexdigest() == "5bd44e331a6d6998daf675700cd0c13dcd7af8ab954b7585124124da61459e7b"
    assert int(ds.train.y[0]) == 9  # an ankle boot, as the official file starts


def test_missing_dataset_names_the_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    info = get_info("fashion_mnist")
    monkeypatch.setitem(DATASETS, "fashion_mnist", replace(info, system_roots=(str(tmp_path / "nowhere"),)))
    with pytest.raises(UserError, match=r"data/fashion_mnist does not exist; .* apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist")
