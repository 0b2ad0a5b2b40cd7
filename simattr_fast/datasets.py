"""Image datasets in their real on-disk formats, as torch datasets with integer labels.

Every dataset here yields ``(image, label)`` with ``image`` a float32 tensor ``[C, H, W]`` in
[0, 1] and ``label`` a Python int, and exposes ``targets`` (int64 ``[n]``), ``describe()`` (what it
is, for metadata) and ``fingerprint()`` (a SHA-256 that changes when the data changes).

- Fashion-MNIST / MNIST IDX files, gzip or raw (Debian ``dataset-fashion-mnist`` lives in
  /usr/share/datasets/fashion-mnist): :func:`idx_dataset`.
- CIFAR-10 / CIFAR-100 python batches (``cifar-10-batches-py``, ``cifar-100-python``):
  :func:`cifar_dataset`.
- ImageFolder trees (``root/<class>/<image>``): :class:`FolderDataset`.
- In-memory arrays: :class:`ArrayDataset`.  scikit-learn digits: :func:`digits_dataset`.

:func:`open_dataset` resolves a name or a path to one of these.
"""

from __future__ import annotations

import hashlib
import os
import zipfile

import numpy as np
import torch
from torch.utils.data import Dataset

from ._io import FileFormatError, InputTypeError
from ._readers import (  # noqa: F401 (re-exported)
    FASHION_MNIST_DIR,
    check_label_values,
    load_cifar,
    load_fashion_mnist,
    load_idx_split,
    read_idx,
)

NAMES = ("fashion-mnist", "mnist", "cifar10", "cifar100", "digits")
CLASS_NAMES = {
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def _npz_dataset(path: str) -> ArrayDataset:
    """An .npz of 'images' and 'labels', read without pickles; any damage names the file."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            if "images" not in z.files or "labels" not in z.files:
                raise FileFormatError(
                    f"dataset: {path!r} must hold arrays 'images' and 'labels', has {sorted(z.files)}"
                )
            images, labels = z["images"], z["labels"]
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise FileFormatError(f"dataset: {path!r} is not a readable .npz ({type(exc).__name__}: {exc})") from None
    labels = check_label_values(labels, path)
    try:
        return ArrayDataset(images, labels, name=os.path.basename(path), source=os.path.abspath(path))
    except (ValueError, TypeError) as exc:
        raise FileFormatError(f"dataset: {path!r}: {exc}") from None


class ArrayDataset(Dataset):
    """Images held in memory: ``images`` ``[n, H, W]`` (grey) or ``[n, H, W, C]``, uint8 in
    [0, 255] or floating in [0, 1]; ``labels`` ``[n]`` integers."""

    def __init__(self, images, labels, name: str = "arrays", source: str | None = None):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim not in (3, 4):
            raise ValueError(f"images: expected [n, H, W] or [n, H, W, C], got shape {images.shape}")
        if images.ndim == 4 and images.shape[3] not in (1, 3):
            raise ValueError(f"images: expected 1 or 3 channels last, got shape {images.shape}")
        if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
            raise InputTypeError(f"images: expected uint8 or floating dtype, got {images.dtype}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"labels: expected shape ({len(images)},) to match images, got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise InputTypeError(f"labels: expected integer dtype, got {labels.dtype}")
        self.images = images if images.ndim == 4 else images[..., None]
        self.targets = labels.astype(np.int64)
        self.name, self.source = name, source

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return _to_tensor(self.images[i]), int(self.targets[i])

    def tensors(self) -> torch.Tensor:
        """All images as one float32 tensor ``[n, C, H, W]`` in [0, 1] (for in-memory training)."""
        return _to_tensor(self.images)

    def describe(self) -> dict:
        n, h, w, c = self.images.shape
        return {
            "name": self.name,
            "source": self.source,
            "count": int(n),
            "image_shape": [int(c), int(h), int(w)],
            "classes": int(self.targets.max()) + 1 if n else 0,
            "spec": getattr(self, "spec", None),
            "class_names": CLASS_NAMES.get(self.name),
        }

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(str(self.images.shape).encode())
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.targets.tobytes())
        return h.hexdigest()


SPLITS = ("train", "test", "all")  # what open_dataset accepts


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    """[..., H, W, C] uint8 or float -> float32 [..., C, H, W] in [0, 1]."""
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:  # IDX arrays are read-only views of the file bytes
        a = a.copy()
    t = torch.from_numpy(a).movedim(-1, -3)
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def idx_dataset(root: str, split: str = "train", name: str = "mnist") -> ArrayDataset:
    """MNIST-family IDX files in ``root`` (``train``/``t10k`` ``-images-idx3-ubyte`` and
    ``-labels-idx1-ubyte``, each gzip-compressed or raw)."""
    images, labels, source = load_idx_split(root, split)
    return ArrayDataset(images, labels, name=name, source=source)


def cifar_dataset(root: str, split: str = "train") -> ArrayDataset:
    """CIFAR-10 (``data_batch_1..5``, ``test_batch``) or CIFAR-100 (``train``, ``test``; fine
    labels) python batches in ``root``."""
    images, labels, name = load_cifar(root, split)
    return ArrayDataset(images, labels, name=name, source=os.path.abspath(root))


def digits_dataset(split: str = "all") -> ArrayDataset:
    """scikit-learn's 8x8 digits (no download). ``split``: ``'all'`` (1,797 images), or the fixed
    stratified ``'train'`` (1,347) / ``'test'`` (450) split used by the demo."""
    images, labels = load_digits()
    idx = digits_split(labels, split)
    return ArrayDataset(images[idx], labels[idx], name=f"digits-{split}", source="sklearn.datasets.load_digits")


def digits_split(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of the fixed digits split: a stratified 75/25 split with seed 0."""
    if split == "all":
        return np.arange(len(labels))
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train', 'test' or 'all', got {split!r}")
    from sklearn.model_selection import train_test_split

    tr, te = train_test_split(np.arange(len(labels)), test_size=0.25, random_state=0, stratify=labels)
    return np.sort(tr if split == "train" else te)


def load_digits():
    """scikit-learn's 8x8 digits: (images float32 [1797, 8, 8] in [0, 1], labels int64)."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


class FolderDataset(Dataset):
    """An ImageFolder tree ``root/<class>/<image>`` read with torchvision (classes sorted by
    name). ``image_size`` resizes the shorter side and centre-crops to a square, so that
    images of different sizes can be batched; without it all images must share one size."""

    def __init__(self, root: str, image_size: int | None = None):
        from torchvision import datasets, transforms

        if not os.path.isdir(root):
            raise FileNotFoundError(f"root: no image folder at {root!r}")
        steps = [transforms.Resize(image_size), transforms.CenterCrop(image_size)] if image_size else []
        self.transform = transforms.Compose(steps + [transforms.ToTensor()])
        self.folder = datasets.ImageFolder(root, transform=self.transform)
        self.targets = np.asarray(self.folder.targets, dtype=np.int64)
        self.root, self.image_size = os.path.abspath(root), image_size

    def __len__(self):
        return len(self.folder)

    def __getitem__(self, i):
        return self.folder[i]

    def describe(self) -> dict:
        return {
            "name": "imagefolder",
            "source": self.root,
            "count": len(self),
            "image_size": self.image_size,
            "classes": len(self.folder.classes),
            "class_names": list(self.folder.classes),
            "spec": getattr(self, "spec", None),
        }

    def fingerprint(self) -> str:
        # Paths, sizes and labels: cheap on ImageNet-sized trees, and changes when files change.
        h = hashlib.sha256()
        for path, label in self.folder.samples:
            h.update(f"{os.path.relpath(path, self.root)}\0{os.path.getsize(path)}\0{label}\n".encode())
        return h.hexdigest()


def open_dataset(name_or_path: str, split: str = "train", root: str | None = None, image_size: int | None = None):
    """Opens a dataset by name or path.

    Parameters
    ----------
    name_or_path : str
        A name (``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``digits``) or a path: a
        folder of IDX files or of CIFAR python batches (read without running any code in them),
        an ImageFolder tree (its ``split`` subfolder when one exists), or an ``.npz`` with
        ``images`` and ``labels``.
    split : {"train", "test", "all"}, default "train"
        ``"all"`` for digits and folders only.
    root : str or None, default None
        Where a named dataset's files are (Fashion-MNIST defaults to Debian's location).
    image_size : int or None, default None
        Resize and centre-crop ImageFolder images to this square size.

    Returns
    -------
    Dataset
        Items ``(float32 [C, H, W] in [0, 1], int label)``; ``targets``, ``describe()``,
        ``fingerprint()``, and ``spec``: how it was opened, so that a report can reopen it.

    Raises
    ------
    ValueError
        Unknown names, bad splits, damaged or crafted files (with the file named).
    FileNotFoundError
        A missing path.

    Examples
    --------
    >>> from simattr_fast.datasets import open_dataset
    >>> ds = open_dataset("digits", "test")
    >>> len(ds), ds[0][0].shape
    (450, torch.Size([1, 8, 8]))
    """
    ds = _open(name_or_path, split, root, image_size)
    absolute = lambda p: p and (os.path.abspath(p) if os.path.exists(p) else p)  # noqa: E731
    named = name_or_path.lower() in NAMES
    ds.spec = {
        "dataset": name_or_path if named else absolute(name_or_path),
        "split": split,
        "root": absolute(root),
        "image_size": image_size,
    }
    return ds


def _open(name_or_path: str, split: str, root: str | None, image_size: int | None):
    if split not in SPLITS:
        raise ValueError(f"split: expected 'train', 'test' or 'all', got {split!r}")
    key = name_or_path.lower()
    if key in NAMES:
        if key == "digits":
            return digits_dataset(split)
        if split == "all":
            raise ValueError(f"split: {name_or_path} has 'train' and 'test' splits, got 'all'")
        if key == "fashion-mnist":
            return idx_dataset(root or FASHION_MNIST_DIR, split, name="fashion-mnist")
        if root is None:
            raise ValueError(f"root: dataset {name_or_path!r} needs --data-root (the folder holding its files)")
        return idx_dataset(root, split, name="mnist") if key == "mnist" else cifar_dataset(root, split)
    path = name_or_path
    if not os.path.exists(path):
        raise FileNotFoundError(f"dataset: {path!r} is neither a known name ({', '.join(NAMES)}) nor an existing path")
    if os.path.isfile(path):
        if not path.endswith(".npz"):
            raise ValueError(f"dataset: expected a folder or an .npz file with 'images' and 'labels', got {path!r}")
        return _npz_dataset(path)
    files = set(os.listdir(path))
    if any(f.startswith(("train-images-idx3", "t10k-images-idx3")) for f in files):
        return idx_dataset(path, split, name="idx")
    if "data_batch_1" in files or {"train", "test", "meta"} <= files:
        return cifar_dataset(path, split)
    if split in files and os.path.isdir(os.path.join(path, split)):
        path = os.path.join(path, split)
    return FolderDataset(path, image_size=image_size)
