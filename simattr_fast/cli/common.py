"""Shared by the `simattr` subcommands."""

import os

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
