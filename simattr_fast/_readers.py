"""Readers for raw dataset files (no torch): IDX (MNIST family) and CIFAR python batches."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_PREFIX = {"train": "train", "test": "t10k"}
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist


def read_idx(path: str) -> np.ndarray:
    """Reads an IDX file (the MNIST format), gzip-compressed when the name ends in .gz."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: no IDX file at {path!r}")
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"path: {path!r} is not an IDX file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    count = int(np.prod(shape)) if shape else 0
    if len(data) - offset < count * dtype.itemsize:
        raise ValueError(f"path: {path!r} is truncated: header promises shape {shape}")
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)


def _idx_file(root: str, stem: str) -> str:
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(root, name)):
            return os.path.join(root, name)
    raise FileNotFoundError(f"root: no {stem}[.gz] in {root!r}")


def load_idx_split(root: str, split: str):
    """(images uint8 [n, H, W], labels int64 [n], images path) of an MNIST-family split."""
    prefix = _IDX_PREFIX.get(split)
    if prefix is None:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    img_path = _idx_file(root, f"{prefix}-images-idx3-ubyte")
    images = read_idx(img_path)
    labels = read_idx(_idx_file(root, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"root: {root!r} holds images {images.shape} and labels {labels.shape} that do not pair up")
    return images, labels.astype(np.int64), os.path.abspath(img_path)


def load_fashion_mnist(split: str = "train", root: str = FASHION_MNIST_DIR):
    """Returns (images uint8 [n, 28, 28], labels int64 [n]) for split 'train' or 'test'."""
    images, labels, _ = load_idx_split(root, split)
    return images, labels


def _unpickle(path: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"root: no CIFAR batch file {path!r}")
    with open(path, "rb") as f:
        try:
            return pickle.load(f, encoding="bytes")
        except Exception as exc:  # a truncated or foreign file
            raise ValueError(f"root: {path!r} is not a CIFAR python batch ({exc})") from None


def _field(d: dict, name: str):
    for key in (name.encode(), name):
        if key in d:
            return d[key]
    raise ValueError(f"CIFAR batch lacks the {name!r} entry (has {sorted(map(str, d))})")


def load_cifar(root: str, split: str):
    """(images uint8 [n, 32, 32, 3], labels int64 [n], name) from CIFAR-10 batches
    (``data_batch_1..5``, ``test_batch``) or CIFAR-100 (``train``/``test``, fine labels)."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if os.path.exists(os.path.join(root, "data_batch_1")) or os.path.exists(os.path.join(root, "test_batch")):
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        batches = [_unpickle(os.path.join(root, n)) for n in names]
        labels = np.concatenate([np.asarray(_field(b, "labels")) for b in batches])
        name = "cifar10"
    else:
        batches = [_unpickle(os.path.join(root, split))]
        labels = np.asarray(_field(batches[0], "fine_labels"))
        name = "cifar100"
    data = np.concatenate([np.asarray(_field(b, "data"), dtype=np.uint8) for b in batches])
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise ValueError(f"root: CIFAR data in {root!r} has shape {data.shape}, expected [n, 3072] with n labels")
    # Rows are 1024 red, then green, then blue values, each image row-major.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels.astype(np.int64), name
