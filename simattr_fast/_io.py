"""The one atomic writer: every artifact the package writes goes through ``atomic_write``.

A reader sees the previous file or the new one, never half of one. The temporary file is
created next to the target by ``tempfile.mkstemp`` (O_CREAT | O_EXCL, a fresh random name), so
it never follows a planted link and two writers never share it; it is flushed and fsynced,
then renamed over the target with ``os.replace``, and removed on any error. A full disk is
reported as such and leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from typing import IO

import numpy as np


class InputTypeError(TypeError):
    """An argument of the wrong type or dtype (a user error, reported in one line by the CLI;
    a plain TypeError from our own code is a bug and keeps its traceback)."""


class FileFormatError(ValueError):
    """A file is damaged, truncated, crafted or of another format. The message is one line
    that names the file."""


class DiskFullError(OSError):
    """Raised when an artifact cannot be written because the disk is full (the previous file,
    if any, is left intact)."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Opens a fresh temporary file beside ``path``; on a clean exit it replaces ``path``.

    ``mode`` is "wb" or "w" (text, UTF-8). Writes exactly ``path`` (no suffix is added).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode: expected 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            # mkstemp creates the file 0600; the result gets what open() would have given it.
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(exc.errno, f"disk full while writing {path!r}; the previous file is unchanged") from exc
        raise
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(folder)


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (setting it, even
    briefly, would race with other threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """``obj`` as JSON at ``path``, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=indent)


def write_text(path: str | os.PathLike, text: str) -> None:
    """``text`` (UTF-8) at ``path``, atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``array`` in ``.npy`` format at exactly ``path`` (``np.save`` would append ``.npy``)."""
    with atomic_write(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _fsync_dir(folder: str) -> None:
    """Makes the rename itself durable (best effort: some file systems refuse it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
