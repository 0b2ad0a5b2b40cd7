"""Array-protocol dispatch: NumPy (and memmap), torch, cupy, anything with
``__cuda_array_interface__`` or DLPack. Host arrays stay NumPy views (never copied here);
device arrays are described by their pointer, shape and dtype.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._io import InputTypeError
from .validate import check_matrix


@dataclass
class Matrix:
    """A validated [rows, dim] float32/float16 matrix, on the host or on a CUDA device."""

    name: str
    rows: int
    dim: int
    dtype: np.dtype
    host: np.ndarray | None = None  # set for host arrays
    device_ptr: int = 0  # set for CUDA arrays
    device_obj: Any = None  # keeps the owner of device memory alive
    stream: int | None = None  # __cuda_array_interface__ v3: the producer's stream to wait for

    @property
    def on_device(self) -> bool:
        return self.host is None


_CAI_DTYPES = {"<f4": np.dtype(np.float32), "<f2": np.dtype(np.float16)}


def _from_cai(name: str, obj, cai: dict) -> Matrix:
    shape = tuple(cai["shape"])
    typestr = cai["typestr"]
    dtype = _CAI_DTYPES.get(typestr)
    if dtype is None:
        raise InputTypeError(
            f"{name}: expected dtype float32 or float16, got {np.dtype(typestr)}; convert with {name}.float()"
        )
    strides = cai.get("strides")
    contiguous = strides is None or (len(shape) == 2 and tuple(strides) == (shape[1] * dtype.itemsize, dtype.itemsize))
    rows, dim = check_matrix(name, shape, dtype, contiguous)
    stream = cai.get("stream")
    return Matrix(
        name,
        rows,
        dim,
        dtype,
        device_ptr=int(cai["data"][0]),
        device_obj=obj,
        stream=None if stream is None else int(stream),
    )


MAX_KEYS = 2**32 - 1  # the kernels pack a key's index into 32 bits


def as_keys(x) -> Matrix:
    """as_matrix for the keys argument, which may hold at most MAX_KEYS rows."""
    K = as_matrix("keys", x)
    if K.rows > MAX_KEYS:
        raise ValueError(
            f"keys: expected at most {MAX_KEYS} rows (indices are packed in 32 bits), got {K.rows}; "
            f"split the keys and merge the rankings"
        )
    return K


def as_matrix(name: str, x) -> Matrix:
    """Describes `x` without copying it. Raises TypeError/ValueError naming `name`."""
    if x is None:
        raise InputTypeError(f"{name}: expected a 2-D float array, got None")
    cai = getattr(x, "__cuda_array_interface__", None)
    if cai is not None:
        return _from_cai(name, x, cai)
    if hasattr(x, "__dlpack_device__") and not isinstance(x, np.ndarray):
        dev_type, _ = x.__dlpack_device__()
        if dev_type == 2:  # kDLCUDA: route through torch, which exposes the CUDA interface
            import torch

            t = torch.from_dlpack(x)
            return _from_cai(name, t, t.__cuda_array_interface__)
        if hasattr(x, "detach"):  # torch CPU tensor: share its memory
            x = x.detach().numpy()
        else:
            x = np.from_dlpack(x)
    if not isinstance(x, np.ndarray):
        if isinstance(x, (list, tuple)):
            x = np.asarray(x)
        else:
            raise InputTypeError(
                f"{name}: expected a NumPy array, memmap, torch tensor or cupy array, got {type(x).__name__}"
            )
    rows, dim = check_matrix(name, x.shape, x.dtype, x.flags.c_contiguous)
    return Matrix(name, rows, dim, x.dtype, host=x)


def release_pages(block: np.ndarray) -> None:
    """Drops the pages of a file-backed memmap slice from this process's resident set.

    Reading a memmap maps its pages into the process; without this, streaming a file far
    larger than RAM would show the whole file in RSS. MADV_DONTNEED on a shared file
    mapping only unmaps (the data stays in the file and the page cache); private
    copy-on-write mappings are left alone.
    """
    mm = getattr(block, "_mmap", None)
    if not isinstance(mm, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return
    if getattr(block, "mode", None) not in ("r", "r+", "w+"):
        return  # copy-on-write ('c'): dropping pages would discard the caller's edits
    if block.base is None or not block.flags.c_contiguous or block.nbytes == 0:
        return
    # Address of the mapping start, from the memmap chain's base buffer.
    base = np.frombuffer(mm, dtype=np.uint8)
    start = block.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    del base
    page = mmap.PAGESIZE
    hi = min(len(mm), start + block.nbytes)
    # Keep partial pages at either end: their other bytes may belong to the next block.
    lo_full = ((start + page - 1) // page) * page
    hi_full = (hi // page) * page
    if hi_full > lo_full:
        mm.madvise(mmap.MADV_DONTNEED, lo_full, hi_full - lo_full)
