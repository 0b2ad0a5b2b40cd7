"""simattr_fast.topk: exact top-k by cosine, inner product or squared L2."""

from __future__ import annotations

import os

import numpy as np

from . import backend
from .inputs import prepare_inputs
from .stream import ClassGroups, block_rows_for, key_blocks, padded, prepare_rows
from .validate import check_metric

# Accumulator memory per query row is 2k candidates of 8 bytes; queries are processed in
# chunks that keep it under this bound (each chunk streams the keys once).
_ACC_BYTES = 1 << 30


def topk(
    queries,
    keys,
    k: int,
    *,
    metric: str = "cosine",
    query_labels=None,
    key_labels=None,
    device: str = "auto",
    n_threads: int | None = None,
    block_rows: int | None = None,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k keys for each query, by cosine, inner product or squared L2.

    Parameters
    ----------
    queries : array [nq, d], float32 or float16
        NumPy, memmap, torch or cupy (a GPU array runs on the CUDA backend).
    keys : array [n, d], float32 or float16
        An ``np.memmap`` may be far larger than RAM: it is streamed in blocks of ``block_rows``
        rows, holding about ``block_rows * d * 4`` bytes of keys, plus
        ``nq * 2 * min(k, n) * 8`` bytes of running top-k state (capped at 1 GiB by processing
        queries in chunks), plus the outputs. At most 2^32 - 1 keys.
    k : int
        Keys kept per query (>= 1). May equal or exceed the candidates; short rows are padded.
    metric : {"cosine", "ip", "l2"}, default "cosine"
        cosine and ip rank descending, l2 (squared Euclidean distance) ascending.
    query_labels, key_labels : int arrays [nq] and [n], or None (default)
        When both are given, each query only ranks the keys of its own label.
    device : {"auto", "cpu", "cuda"}, default "auto"
        "auto" picks CUDA when an input lives on a GPU or a GPU is usable, else the CPU.
    n_threads : int or None, default None
        CPU threads (None: all cores).
    block_rows : int or None, default None
        Keys per streamed block (None: 128 MiB of float32 on the CPU, 64 MiB on CUDA;
        ``SIMATTR_BLOCK_MB`` overrides).
        Results do not depend on it.
    progress : bool or None, default None
        Progress bar over key blocks (None: only on a terminal).

    Returns
    -------
    scores : ndarray float32 [nq, k]
        Best first (for l2 the squared distances, ascending).
    indices : ndarray int64 [nq, k]
        Rows of ``keys``; -1 (with score NaN) pads rows with fewer than k candidates. Ties go
        to the lower key index.

    Raises
    ------
    ValueError, TypeError
        Bad shapes, dtypes, labels, ``k`` or ``metric``; NaN or Inf in a row (named).
    RuntimeError
        ``device="cuda"`` without a usable CUDA backend (the reason is given).

    Examples
    --------
    >>> import numpy as np, simattr_fast as sa
    >>> keys = np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32)
    >>> scores, indices = sa.topk(keys[:1], keys, 2, metric="ip")
    >>> indices
    array([[0, 2]])
    >>> sa.topk(keys[:1], keys, 5, metric="l2")[1].tolist()
    [[0, 2, 1, 3, -1]]
    """
    metric = check_metric(metric)
    inp = prepare_inputs(queries, keys, k, query_labels, key_labels, device, n_threads)
    Q, K, k, ql, kl = inp.queries, inp.keys, inp.k, inp.query_labels, inp.key_labels
    if block_rows is None:
        block_rows = block_rows_for(K.dim, backend.default_block_bytes(inp.device))
    elif isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows <= 0:
        raise ValueError(f"block_rows: expected a positive integer or None, got {block_rows!r}")
    k_eff = _max_class_keys(k, K.rows, ql, kl)
    if Q.rows == 0 or k_eff == 0:
        return padded(Q.rows, k, np.zeros((Q.rows, 0), np.float32), np.zeros((Q.rows, 0), np.int64))
    if inp.device == "cuda":
        from .topk_cuda import topk_cuda

        s, i = topk_cuda(Q, K, k_eff, metric, ql, kl, block_rows)
    else:
        with backend.kernel_threads():
            s, i = _topk_cpu(Q.host, K.host, k_eff, metric, ql, kl, inp.n_threads, block_rows, progress)
    return padded(Q.rows, k, s, i)


PREFILTER_MODES = {"off": 0, "on": 1, "auto": 2}


def prefilter_mode() -> int:
    """The CPU ``topk`` first pass in bfloat16 (identical results; only on CPUs with
    AVX512-BF16), from ``SIMATTR_PREFILTER``: ``auto`` (default) tries it on the first query
    tiles and keeps it where few candidates need re-scoring (small k against many keys),
    ``on`` always, ``off`` never."""
    value = os.environ.get("SIMATTR_PREFILTER", "auto").strip().lower()
    if value not in PREFILTER_MODES:
        raise ValueError(f"SIMATTR_PREFILTER: expected one of auto, on, off; got {value!r}")
    return PREFILTER_MODES[value]


def _max_class_keys(k: int, n: int, ql, kl) -> int:
    """The most keys any query can be ranked against, capped at k: the width of the running state."""
    if ql is None:
        return min(k, n)
    uniq, counts = np.unique(kl, return_counts=True)
    present = np.isin(uniq, ql)
    return min(k, int(counts[present].max()) if present.any() else 0)


def _topk_cpu(queries, keys, k, metric, ql, kl, nt, block_rows, progress):
    cpu = backend.cpu()
    code = cpu.Metric.__members__[metric]
    pf = prefilter_mode()  # read (and checked) once, before any work
    nq = queries.shape[0]
    qf = prepare_rows("queries", queries, 0, metric)
    qsq = np.einsum("ij,ij->i", qf, qf) if metric == "l2" else None
    groups = ClassGroups(ql) if ql is not None else None
    if groups is not None:
        qf = qf[groups.order]
    chunk = max(1, _ACC_BYTES // (16 * k))
    # Outputs are written in place, each accumulator row straight to its query's row.
    out_s = np.empty((nq, k), np.float32)
    out_i = np.empty((nq, k), np.int64)
    rows = groups.order if groups is not None else np.arange(nq)
    for c0 in range(0, nq, chunk):
        c1 = min(nq, c0 + chunk)
        acc = cpu.TopkAccumulator(c1 - c0, k)
        for s, kb in key_blocks("keys", keys, metric, block_rows, progress, "topk"):
            sq = np.einsum("ij,ij->i", kb, kb) if metric == "l2" else None
            if groups is None:
                ids = np.arange(s, s + kb.shape[0], dtype=np.int64)
                cpu.topk(acc, qf[c0:c1], kb, ids, sq, code, 0, nt, pf)
            else:
                _push_by_class(cpu, acc, qf, c0, c1, kb, sq, kl[s : s + kb.shape[0]], s, groups, code, nt, pf)
        acc.finalize_into(out_s, out_i, np.ascontiguousarray(rows[c0:c1], dtype=np.int64), nt)
    if metric == "l2":
        out_s = np.maximum(qsq[:, None] - out_s, 0.0, where=out_i >= 0, out=out_s)
    return out_s, out_i


def _push_by_class(cpu, acc, qf, c0, c1, kb, sq, labels, s, groups, code, nt, pf):
    """Offers one key block to the queries of the chunk [c0, c1) (class-sorted order), each
    class's queries against the same-class keys of the block only."""
    ko = np.argsort(labels, kind="stable")
    kb_sorted = np.ascontiguousarray(kb[ko])
    sq_sorted = None if sq is None else np.ascontiguousarray(sq[ko])
    ids = (s + ko).astype(np.int64)
    cls, starts, counts = np.unique(labels[ko], return_index=True, return_counts=True)
    for c, ks, kn in zip(cls, starts, counts):
        rng = groups.ranges.get(int(c))
        if rng is None:
            continue
        q0, q1 = max(rng[0], c0), min(rng[1], c1)
        if q0 >= q1:
            continue
        sl = slice(ks, ks + kn)
        sq_c = None if sq is None else sq_sorted[sl]
        cpu.topk(acc, qf[q0:q1], kb_sorted[sl], ids[sl], sq_c, code, q0 - c0, nt, pf)
