"""Readers for raw dataset files (no torch): IDX (MNIST family) and CIFAR python batches."""

from __future__ import annotations

import gzip
import math
import os
import pickle

import numpy as np

from ._io import FileFormatError

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
        raise FileFormatError(f"path: {path!r} is not an IDX file (bad magic number)")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if ndim == 0 or len(data) < offset:
        raise FileFormatError(f"path: {path!r} is not an IDX file (header of {ndim} dimensions is cut short)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = math.prod(shape)  # Python ints: a crafted header cannot overflow this
    if len(data) - offset != count * dtype.itemsize:
        what = "truncated" if len(data) - offset < count * dtype.itemsize else "longer than its header says"
        raise FileFormatError(f"path: {path!r} is {what}: header promises shape {shape} of {dtype}")
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)


MAX_LABEL = 1 << 20  # no image-classification label set has more classes


def check_label_values(labels: np.ndarray, path: str) -> np.ndarray:
    """Class labels read from a file: integers in [0, MAX_LABEL), as int64."""
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise FileFormatError(f"labels: {path!r} holds {labels.dtype} labels; class labels must be integers")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= MAX_LABEL):
        raise FileFormatError(
            f"labels: {path!r} holds labels in [{int(labels.min())}, {int(labels.max())}]; "
            f"class labels must lie in [0, {MAX_LABEL})"
        )
    return labels.astype(np.int64)


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
    lab_path = _idx_file(root, f"{prefix}-labels-idx1-ubyte")
    labels = check_label_values(read_idx(lab_path), lab_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise FileFormatError(
            f"root: {root!r} holds images {images.shape} and labels {labels.shape} that do not pair up"
        )
    return images, labels.astype(np.int64), os.path.abspath(img_path)


def load_fashion_mnist(split: str = "train", root: str = FASHION_MNIST_DIR):
    """Returns (images uint8 [n, 28, 28], labels int64 [n]) for split 'train' or 'test'."""
    images, labels, _ = load_idx_split(root, split)
    return images, labels


class UntrustedPickleError(FileFormatError):
    """A pickle asked for a type a CIFAR batch never holds; nothing from it was run."""


# Everything a real CIFAR python batch (Python 2 cPickle, or a NumPy re-pickle) can ask for:
# numpy arrays and dtypes, and the byte-string codec of protocol-2 pickles made by Python 3.
# Dicts, lists, strings, bytes and numbers need no lookup at all.
_CIFAR_PICKLE_TYPES = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that admits only the types of _CIFAR_PICKLE_TYPES: a crafted batch cannot
    make it import or call anything else (pickle's find_class is where every global is
    resolved, so refusing there refuses before any code runs)."""

    def __init__(self, f, path: str):
        super().__init__(f, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_PICKLE_TYPES:
            raise UntrustedPickleError(
                f"root: {self._path!r} asks to load {module}.{name}; a CIFAR batch holds only dicts, lists, "
                "bytes and numpy arrays, so it was refused unread"
            )
        return super().find_class(module, name)


def _unpickle(path: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"root: no CIFAR batch file {path!r}")
    with open(path, "rb") as f:
        try:
            batch = _CifarUnpickler(f, path).load()
        except UntrustedPickleError:
            raise
        except Exception as exc:  # a truncated or foreign file
            raise FileFormatError(f"root: {path!r} is not a CIFAR python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise FileFormatError(f"root: {path!r} is not a CIFAR python batch (holds a {type(batch).__name__})")
    return batch


def _field(d: dict, name: str):
    for key in (name.encode(), name):
        if key in d:
            return d[key]
    raise FileFormatError(f"CIFAR batch lacks the {name!r} entry (has {sorted(map(str, d))})")


def _labels(batch: dict, name: str, root: str) -> np.ndarray:
    try:
        labels = np.asarray(_field(batch, name))
    except (ValueError, TypeError) as exc:
        raise FileFormatError(f"root: CIFAR {name} in {root!r} are not a list of integers ({exc})") from None
    if labels.ndim != 1:
        raise FileFormatError(f"root: CIFAR {name} in {root!r} have shape {labels.shape}, expected [n]")
    return check_label_values(labels, root)


def load_cifar(root: str, split: str):
    """(images uint8 [n, 32, 32, 3], labels int64 [n], name) from CIFAR-10 batches
    (``data_batch_1..5``, ``test_batch``) or CIFAR-100 (``train``/``test``, fine labels)."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if os.path.exists(os.path.join(root, "data_batch_1")) or os.path.exists(os.path.join(root, "test_batch")):
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        batches = [_unpickle(os.path.join(root, n)) for n in names]
        labels = np.concatenate([_labels(b, "labels", root) for b in batches])
        name = "cifar10"
    else:
        batches = [_unpickle(os.path.join(root, split))]
        labels = _labels(batches[0], "fine_labels", root)
        name = "cifar100"
    parts = [np.asarray(_field(b, "data")) for b in batches]
    if any(p.dtype != np.uint8 or p.ndim != 2 for p in parts):
        raise FileFormatError(f"root: CIFAR data in {root!r} must be uint8 [n, 3072] arrays")
    data = np.concatenate(parts)
    if data.shape[1] != 3072 or len(data) != len(labels):
        raise FileFormatError(f"root: CIFAR data in {root!r} has shape {data.shape}, expected [n, 3072] with n labels")
    # Rows are 1024 red, then green, then blue values, each image row-major.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels.astype(np.int64), name
