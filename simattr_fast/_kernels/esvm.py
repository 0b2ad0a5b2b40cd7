"""simattr_fast.esvm_topk: batched exemplar SVMs ranked by decision value."""

from __future__ import annotations

import warnings

import numpy as np

from .._progress import progress_bar
from . import backend
from .inputs import prepare_inputs
from .stream import ClassGroups, prepare_rows
from .validate import check_positive

LOSSES = ("squared_hinge", "hinge")
INT64_MAX, UINT64_MAX = 2**63 - 1, 2**64 - 1  # the C++ core takes int64 max_iter, uint64 seed


class ConvergenceWarning(UserWarning):
    """Some exemplar SVMs reached ``max_iter`` sweeps before ``tol`` (their rankings are
    approximate). Our own class, so the kernels need no scikit-learn at run time; it plays the
    role of ``sklearn.exceptions.ConvergenceWarning``."""


def esvm_topk(
    queries,
    keys,
    k: int,
    *,
    query_labels=None,
    key_labels=None,
    C: float = 0.1,
    loss: str = "squared_hinge",
    intercept_scaling: float = 1.0,
    tol: float = 1e-6,
    max_iter: int = 10000,
    device: str = "auto",
    seed: int = 0,
    n_threads: int | None = None,
    progress: bool | None = None,
    query_ids=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k keys per query by the decision value of an exemplar SVM.

    For each query q, one linear SVM is fitted with q as the only positive and its candidate
    keys (those of its own label when both label arrays are given, else all keys) as negatives,
    with scikit-learn ``LinearSVC(C=C, loss=loss, class_weight='balanced', tol=tol,
    max_iter=max_iter, intercept_scaling=intercept_scaling)`` semantics: L2 penalty, the bias a
    regularised weight on a constant feature. The keys are ranked by ``w.x + b``, highest first.
    The solver is liblinear's dual coordinate descent (random permutations from ``seed`` and the
    query index, shrinking), run over a working set of margin violators whose gradients are
    refreshed for many queries at once with one GEMM.

    Parameters
    ----------
    queries : array [nq, d], float32 or float16
    keys : array [n, d], float32 or float16
        Each class's keys are held twice as float32 (rows x d x 4 bytes each: as given, and
        packed for the scoring kernel) with a decision-value tile of at most 64 MiB;
        unconditioned, that is all keys.
    k : int
        Keys kept per query (>= 1).
    query_labels, key_labels : int arrays [nq] and [n], or None (default)
        Both given: each query's negatives are the keys of its own label.
    C : float, default 0.1
    loss : {"squared_hinge", "hinge"}, default "squared_hinge"
    intercept_scaling : float, default 1.0
    tol : float, default 1e-6
    max_iter : int, default 10000
    device : {"auto", "cpu", "cuda"}, default "auto"
        On CUDA, one warp per SVM; a class whose pool is small against d (n + 1 <= 2d, under
        8,192 keys) is solved in Gram form, its keys' Gram matrix computed once for all its
        queries (``SIMATTR_CUDA_ESVM=primal|gram`` forces one form).
    seed : int, default 0
        Seeds the coordinate permutations (results do not depend on batching).
    n_threads : int or None, default None
    progress : bool or None, default None
        Progress bar over classes (None: only on a terminal).
    query_ids : int array [nq] or None, default None
        Ids that seed each query's coordinate permutation (default: the row). A shard of a
        larger run passes the original rows to reproduce that run exactly.

    Returns
    -------
    scores : ndarray float32 [nq, k]
        Decision values, best first.
    indices : ndarray int64 [nq, k]
        Rows of ``keys``; NaN / -1 pad rows with fewer than k candidates (a query whose class
        has no key gets an all-padded row).

    Raises
    ------
    ValueError, TypeError
        As :func:`topk`, plus bad solver settings.

    Warns
    -----
    ConvergenceWarning
        When some SVMs reach ``max_iter`` sweeps before ``tol``.

    Examples
    --------
    >>> import numpy as np, simattr_fast as sa
    >>> keys = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    >>> sa.esvm_topk(np.array([[1, 0]], np.float32), keys, 2)[1]
    array([[0, 1]])
    """
    inp = prepare_inputs(queries, keys, k, query_labels, key_labels, device, n_threads)
    Q, K, k, ql, kl = inp.queries, inp.keys, inp.k, inp.query_labels, inp.key_labels
    C = check_positive("C", C)
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    intercept_scaling = check_positive("intercept_scaling", intercept_scaling)
    tol = check_positive("tol", tol)
    max_iter = check_positive("max_iter", max_iter, integer=True)
    if max_iter > INT64_MAX:
        raise ValueError(f"max_iter: expected at most 2**63 - 1 sweeps, got {max_iter}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= UINT64_MAX:
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed!r}")
    ids = _query_ids(query_ids, Q.rows)
    params = dict(
        C=C,
        squared_hinge=(loss == "squared_hinge"),
        intercept_scaling=intercept_scaling,
        tol=tol,
        max_iter=max_iter,
        seed=int(seed),
        query_ids=ids,
    )
    if inp.device == "cuda":
        from .esvm_cuda import esvm_topk_cuda

        s, i, n_iter, conv = esvm_topk_cuda(Q, K, k, ql, kl, params)
    else:
        with backend.kernel_threads():
            s, i, n_iter, conv = _esvm_cpu(Q.host, K.host, k, ql, kl, params, inp.n_threads, progress)
    bad = int((~conv).sum())
    if bad:
        warnings.warn(
            f"{bad} of {len(conv)} exemplar SVMs stopped at max_iter={max_iter} sweeps before "
            f"reaching tol={tol:g}; their rankings are approximate. Raise max_iter or tol.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return s, i


def class_keys(nq: int, nk: int, ql, kl):
    """Yields (query rows, key rows) per class, or once for everything when unconditioned.
    Queries whose class has no key appear with no key rows."""
    if ql is None:
        yield np.arange(nq), np.arange(nk)
        return
    groups = ClassGroups(ql)
    key_groups = ClassGroups(kl)
    for c, (q0, q1) in groups.ranges.items():
        kr = key_groups.ranges.get(c)
        rows = key_groups.order[kr[0] : kr[1]] if kr else np.zeros(0, np.int64)
        yield groups.order[q0:q1], np.sort(rows)


def solver_args(params: dict) -> tuple:
    """The solver settings in the order both compiled ``esvm_topk`` take them."""
    return tuple(params[n] for n in ("C", "squared_hinge", "intercept_scaling", "tol", "max_iter", "seed"))


def _query_ids(query_ids, nq: int) -> np.ndarray:
    """The ids that seed each query's permutation: its row (default), or the caller's ids (a
    shard of a larger run passes the rows it holds, and gets that run's results)."""
    if query_ids is None:
        return np.arange(nq, dtype=np.int64)
    ids = np.asarray(query_ids)
    if ids.shape != (nq,) or not np.issubdtype(ids.dtype, np.integer) or (nq and ids.min() < 0):
        raise ValueError(f"query_ids: expected {nq} non-negative integers (one per query), got shape {ids.shape}")
    return ids.astype(np.int64)


def _esvm_cpu(queries, keys, k, ql, kl, params, nt, progress):
    cpu = backend.cpu()
    nq = queries.shape[0]
    # Every row is written once, by its class's accumulator (which pads a class with fewer
    # than k keys with NaN and -1) straight into place, on all threads: a fresh [nq, k] output
    # costs its first touch of memory (0.3 s for the main job's 154 MB on one thread here), so
    # it is not filled first and copied into after.
    out_s = np.empty((nq, k), np.float32)
    out_i = np.empty((nq, k), np.int64)
    n_iter = np.zeros(nq, np.int64)
    conv = np.ones(nq, bool)
    groups = list(class_keys(nq, keys.shape[0], ql, kl))
    bar = progress_bar(groups, desc="esvm", unit="class", progress=progress, min_items=2)
    for qrows, key_rows in bar:
        qf = prepare_rows("queries", queries[qrows], 0, "ip", row_ids=qrows)  # checked even with no keys
        if key_rows.size == 0:
            out_s[qrows], out_i[qrows] = np.nan, -1
            continue
        kf = prepare_rows("keys", keys[key_rows], 0, "ip", row_ids=key_rows)
        acc = cpu.TopkAccumulator(len(qrows), k)
        it, cv = cpu.esvm_topk(
            acc,
            qf,
            kf,
            key_rows.astype(np.int64),
            params["query_ids"][qrows],
            *solver_args(params),
            0,
            nt,
        )
        acc.finalize_into(out_s, out_i, np.ascontiguousarray(qrows, dtype=np.int64), nt)
        n_iter[qrows], conv[qrows] = it, cv.astype(bool)
    return out_s, out_i, n_iter, conv
