"""The one input-preparation path of `topk` and `esvm_topk`: array wrapping, shape and
label checks, device and thread resolution. Everything a kernel entry point validates in
common lives here, so both report the same errors in the same words."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import backend
from .arrays import Matrix, as_keys, as_matrix
from .validate import check_k, check_labels


@dataclass
class KernelInputs:
    """Validated inputs of one kernel call.

    ``queries`` [nq, d] and ``keys`` [n, d] are wrapped (host or device); labels are int64
    arrays or both None (no class conditioning); ``device`` is "cpu" or "cuda"; ``n_threads``
    is 0 for all cores.
    """

    queries: Matrix
    keys: Matrix
    k: int
    query_labels: np.ndarray | None
    key_labels: np.ndarray | None
    device: str
    n_threads: int


def prepare_inputs(queries, keys, k, query_labels, key_labels, device, n_threads) -> KernelInputs:
    """Checks and wraps the arguments shared by every kernel entry point (see `topk`)."""
    Q = as_matrix("queries", queries)
    K = as_keys(keys)
    if K.dim != Q.dim:
        raise ValueError(f"keys: expected {Q.dim} columns to match queries, got {K.dim} (shape {K.rows}x{K.dim})")
    k = check_k(k)
    ql, kl = check_labels(query_labels, key_labels, Q.rows, K.rows)
    dev = backend.resolve_device(device, Q.on_device or K.on_device)
    nt = backend.resolve_threads(n_threads)
    check_output_memory(Q.rows, K.rows, k)
    return KernelInputs(Q, K, k, ql, kl, dev, nt)


def check_output_memory(nq: int, n: int, k: int) -> None:
    """Refuses a k whose outputs cannot be allocated, saying how much memory they would need:
    scores float32 and indices int64 [nq, k] (12 bytes an entry, padded to k) plus the running
    state of 2 min(k, n) packed 8-byte candidates per query (16 bytes an entry)."""
    need = nq * k * 12 + nq * min(k, n) * 16
    total = _physical_memory()
    if total and need > total:
        raise MemoryError(
            f"k: {k} for {nq} queries needs {need / 2**30:.1f} GiB for the outputs and running top-k state, "
            f"more than this machine's {total / 2**30:.1f} GiB; lower k (it may not exceed the keys, {n}, usefully)"
        )


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
