"""Shared by the `simattr` subcommands."""

import os

import numpy as np

from .._kernels.backend import DEVICES  # noqa: F401 (the CLI offers what the API accepts)
from ..datasets import SPLITS


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def require_file(option: str, path: str) -> str:
    """``path`` when it exists, else the one-line error naming the option."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{option}: no such file or folder {path!r}")
    return path


def dataset_args(p, split_default="train"):
    p.add_argument(
        "--dataset",
        required=True,
        help="fashion-mnist | mnist | cifar10 | cifar100 | digits, or a path: a folder of IDX files, "
        "of CIFAR batches, an ImageFolder tree, or an .npz with 'images' and 'labels'",
    )
    p.add_argument("--split", choices=SPLITS, default=split_default)
    p.add_argument("--data-root", help="folder holding the dataset's files (needed for mnist/cifar by name)")
    p.add_argument("--image-size", type=int, help="resize+centre-crop ImageFolder images to this square size")


def load_side(path, labels_path, name):
    """(features, labels) from an embed folder or a .npy (+ labels .npy)."""
    from ..embed import load_embeddings

    if os.path.isdir(require_file(f"--{name}", path)):
        if labels_path:
            raise CliError(f"--{name}-labels: an embed folder brings its own labels; drop the option")
        return load_embeddings(path), None
    x = np.load(path, mmap_mode="r", allow_pickle=False)
    if labels_path is None:
        return x, None
    y = np.load(require_file(f"--{name}-labels", labels_path), allow_pickle=False)
    if y.ndim != 1 or len(y) != len(x):
        raise CliError(f"--{name}-labels: expected one label per embedding ({len(x)}), got shape {y.shape}")
    return x, y
