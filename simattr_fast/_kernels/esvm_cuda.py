"""CUDA path of simattr_fast.esvm_topk: one warp per exemplar SVM, the SVMs of every class of a
batch in one launch per solver form, class keys gathered on the device by row index (inputs
already on the GPU are not copied).

Each class is solved in primal form (the weights in shared memory; a visit reads a key row) or,
when its pool is small against d, in Gram form (the class's key Gram matrix computed once and
shared by its queries; a visit reads one margin). ``SIMATTR_CUDA_ESVM=auto|primal|gram``
overrides the choice (default auto), for tests and benchmarks.
"""

from __future__ import annotations

import os

import numpy as np

from . import backend
from .device import Uploaded, check_cuda_inputs, inputs_device, upload_labels

_DEVICE_BYTES = 8 << 30  # solver state of one batch on the device


def esvm_topk_cuda(Q, K, k, ql, kl, params):
    cu = backend.cuda()
    with inputs_device(cu, Q, K):
        return _esvm_topk_cuda(cu, Q, K, k, ql, kl, params)


_FORMS = {"auto": 0, "primal": 1, "gram": 2}


def esvm_form() -> int:
    """The solver form asked for by ``SIMATTR_CUDA_ESVM`` (auto, primal or gram), as the core's code."""
    value = os.environ.get("SIMATTR_CUDA_ESVM", "auto").strip().lower()
    if value not in _FORMS:
        raise ValueError(f"SIMATTR_CUDA_ESVM: expected one of {', '.join(_FORMS)}; got {value!r}")
    return _FORMS[value]


def _batches(classes, k, uses_gram=lambda n: False):
    """Cuts the queries (grouped by class) into batches whose device state fits _DEVICE_BYTES:
    yields lists of (class index, query rows) pieces. uses_gram(n): whether a class of n keys
    is solved in Gram form (its [n, n] Gram matrix, 8 n^2 bytes, is held once per batch)."""
    batch, used = [], 0
    for c, (qrows, n) in enumerate(classes):
        gram = uses_gram(n)
        # alpha (8 B) + index (4 B) + decision values (4 B) + top-k state (16 B per slot),
        # + the query's dots with the keys (8 B per key) in Gram form.
        per_query = 16 * (n + 1) + 16 * (min(k, n) + n) + (8 * n if gram else 0)
        per_class = 8 * n * n if gram else 0
        step = max(1, min(len(qrows), (_DEVICE_BYTES - per_class) // per_query))
        for c0 in range(0, len(qrows), step):
            piece = qrows[c0 : c0 + step]
            cost = per_query * len(piece) + per_class
            if batch and used + cost > _DEVICE_BYTES:
                yield batch
                batch, used = [], 0
            batch.append((c, piece))
            used += cost
    if batch:
        yield batch


def _esvm_topk_cuda(cu, Q, K, k, ql, kl, params):
    from .esvm import class_keys, solver_args  # esvm imports this module lazily

    check_cuda_inputs(Q, K, "ip")
    q, kk = Uploaded(cu, Q), Uploaded(cu, K)
    out_s = np.full((Q.rows, k), np.nan, np.float32)
    out_i = np.full((Q.rows, k), -1, np.int64)
    n_iter = np.zeros(Q.rows, np.int64)
    conv = np.ones(Q.rows, bool)
    # Queries of a class without keys keep the empty answer; the rest are solved batch by batch.
    groups = [(qr, kr) for qr, kr in class_keys(Q.rows, K.rows, ql, kl) if kr.size and qr.size]
    if not groups:
        return out_s, out_i, n_iter, conv
    offsets = np.cumsum([0] + [kr.size for _, kr in groups]).astype(np.int64)
    d_key_rows = upload_labels(cu, np.concatenate([kr for _, kr in groups]))
    sizes = [kr.size for _, kr in groups]
    form = esvm_form()
    for batch in _batches([(qr, kr.size) for qr, kr in groups], k, lambda n: cu.esvm_uses_gram(n, K.dim, form)):
        rows = np.concatenate([piece for _, piece in batch]).astype(np.int64)
        cls = np.concatenate([np.full(len(piece), c, np.int32) for c, piece in batch])
        n_max = max(sizes[c] for c, _ in batch)
        acc = cu.TopkAccumulator(len(rows), min(k, n_max), n_max)
        it, cv = cu.esvm_topk(
            acc,
            q.ptr,
            q.dtype,
            upload_labels(cu, rows).ptr,
            cu.DeviceArray(cls).ptr,
            cls,
            kk.ptr,
            kk.dtype,
            d_key_rows.ptr,
            offsets,
            K.dim,
            params["query_ids"][rows],
            *solver_args(params),
            form,
        )
        s, i = acc.finalize()
        j0 = 0
        for c, piece in batch:  # a class smaller than k fills only its first n columns
            kc, j1 = min(k, sizes[c]), j0 + len(piece)
            out_s[piece, :kc], out_i[piece, :kc] = s[j0:j1, :kc], i[j0:j1, :kc]
            j0 = j1
        n_iter[rows], conv[rows] = it, cv.astype(bool)
    return out_s, out_i, n_iter, conv
