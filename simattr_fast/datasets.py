"""Readers for the datasets that exist offline on these machines.

- Fashion-MNIST / MNIST IDX files (gzip or raw), e.g. Debian's ``dataset-fashion-mnist``
  in /usr/share/datasets/fashion-mnist.
- scikit-learn digits (ships inside scikit-learn; no download).
"""
from __future__ import annotations

import gzip
import os

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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


def load_fashion_mnist(split: str = "train", root: str = FASHION_MNIST_DIR):
    """Returns (images uint8 [n, 28, 28], labels int64 [n]) for split 'train' or 'test'."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    images = read_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"))
    return images, labels.astype(np.int64)


def load_digits():
    """scikit-learn's 8x8 digits: (images float32 [1797, 8, 8] in [0, 1], labels int64)."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)
