"""CUDA path of simattr_fast.esvm_topk: one warp per exemplar SVM, the SVMs of every class of a
batch in one launch, class keys gathered on the device by row index (inputs already on the GPU
are not copied)."""

from __future__ import annotations

import numpy as np

from . import backend
from .device import Uploaded, check_cuda_inputs, inputs_device, upload_labels

_DEVICE_BYTES = 8 << 30  # solver state of one batch on the device


def esvm_topk_cuda(Q, K, k, ql, kl, params):
    cu = backend.cuda()
    with inputs_device(cu, Q, K):
        return _esvm_topk_cuda(cu, Q, K, k, ql, kl, params)


def _batches(classes, k):
    """Cuts the queries (grouped by class) into batches whose device state fits _DEVICE_BYTES:
    yields lists of (class index, query rows) pieces."""
    batch, used = [], 0
    for c, (qrows, n) in enumerate(classes):
        # alpha (8 B) + index (4 B) + decision values (4 B) + top-k state (16 B per slot).
        per_query = 16 * (n + 1) + 16 * (min(k, n) + n)
        step = max(1, min(len(qrows), _DEVICE_BYTES // per_query))
        for c0 in range(0, len(qrows), step):
            piece = qrows[c0 : c0 + step]
            if batch and used + per_query * len(piece) > _DEVICE_BYTES:
                yield batch
                batch, used = [], 0
            batch.append((c, piece))
            used += per_query * len(piece)
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
    for batch in _batches([(qr, kr.size) for qr, kr in groups], k):
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
        )
        s, i = acc.finalize()
        j0 = 0
        for c, piece in batch:  # a class smaller than k fills only its first n columns
            kc, j1 = min(k, sizes[c]), j0 + len(piece)
            out_s[piece, :kc], out_i[piece, :kc] = s[j0:j1, :kc], i[j0:j1, :kc]
            j0 = j1
        n_iter[rows], conv[rows] = it, cv.astype(bool)
    return out_s, out_i, n_iter, conv
