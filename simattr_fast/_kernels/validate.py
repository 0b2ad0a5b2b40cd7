"""Input validation shared by the public functions.

Every error names the argument, what was expected and what was given, and how to fix it.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._io import InputTypeError
from . import _cpu

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))
# The metric names are the compiled enum's members (bound once, in csrc/python/bind_cpu.cpp).
METRICS = tuple(_cpu.Metric.__members__)


def check_matrix(name: str, shape, dtype, contiguous: bool) -> tuple[int, int]:
    """Checks a [rows, dim] float32/float16 row-major matrix described by shape/dtype."""
    if len(shape) != 2:
        raise ValueError(f"{name}: expected a 2-D array [n, d], got {len(shape)}-D with shape {tuple(shape)}")
    if np.dtype(dtype) not in FLOAT_DTYPES:
        raise InputTypeError(
            f"{name}: expected dtype float32 or float16, got {np.dtype(dtype)}; convert with {name}.astype(np.float32)"
        )
    if not contiguous:
        raise ValueError(
            f"{name}: expected a C-contiguous (row-major) array, got a non-contiguous view; "
            f"pass np.ascontiguousarray({name}) (or .contiguous() for a torch tensor)"
        )
    if shape[1] == 0:
        raise ValueError(f"{name}: expected at least one feature column, got shape {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def check_k(k) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
        raise InputTypeError(f"k: expected a positive integer, got {type(k).__name__} {k!r}")
    if k <= 0:
        raise ValueError(f"k: expected a positive integer (k >= 1), got {k}")
    return int(k)


def check_metric(metric) -> str:
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    return metric


def check_labels(query_labels, key_labels, nq: int, nk: int):
    """Returns (query_labels, key_labels) as int64 arrays, or (None, None) for no conditioning."""
    if (query_labels is None) != (key_labels is None):
        given = "query_labels" if key_labels is None else "key_labels"
        missing = "key_labels" if key_labels is None else "query_labels"
        raise ValueError(
            f"{missing}: expected an array because {given} was given; class conditioning "
            f"needs both label arrays (or neither)"
        )
    if query_labels is None:
        return None, None
    return check_label_array("query_labels", query_labels, nq, "queries"), check_label_array(
        "key_labels", key_labels, nk, "keys"
    )


def check_label_array(name: str, labels, n: int, rows_of: str) -> np.ndarray:
    """Class labels as int64 [n]; float labels are refused, not truncated."""
    if hasattr(labels, "detach"):  # torch tensor
        labels = labels.detach().cpu().numpy()
    elif hasattr(labels, "get") and hasattr(labels, "__cuda_array_interface__"):  # cupy
        labels = labels.get()
    a = np.asarray(labels)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of length {n}, got shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"{name}: expected one label per row of {rows_of} ({n}), got {a.shape[0]} labels")
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise InputTypeError(f"{name}: expected an integer dtype, got {a.dtype}")
    return a.astype(np.int64, copy=False)


def check_positive(name: str, value, integer: bool = False):
    ok_type = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, ok_type):
        kind = "integer" if integer else "number"
        raise InputTypeError(f"{name}: expected a positive {kind}, got {type(value).__name__} {value!r}")
    if (not integer and not np.isfinite(value)) or value <= 0:
        raise ValueError(f"{name}: expected a positive finite value, got {value!r}")
    return int(value) if integer else float(value)
