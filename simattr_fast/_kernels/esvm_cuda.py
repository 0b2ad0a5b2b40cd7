"""CUDA path of simattr_fast.esvm_topk: one warp per exemplar SVM, class keys gathered on the
device by row index (inputs already on the GPU are not copied)."""

from __future__ import annotations

import numpy as np

from . import backend
from .device import Uploaded, check_cuda_inputs, inputs_device, upload_labels

_DEVICE_BYTES = 8 << 30  # per-class solver state on the device


def esvm_topk_cuda(Q, K, k, ql, kl, params):
    cu = backend.cuda()
    with inputs_device(cu, Q, K):
        return _esvm_topk_cuda(cu, Q, K, k, ql, kl, params)


def _esvm_topk_cuda(cu, Q, K, k, ql, kl, params):
    from .esvm import class_keys, solver_args  # esvm imports this module lazily

    check_cuda_inputs(Q, K, "ip")
    q, kk = Uploaded(cu, Q), Uploaded(cu, K)
    out_s = np.full((Q.rows, k), np.nan, np.float32)
    out_i = np.full((Q.rows, k), -1, np.int64)
    n_iter = np.zeros(Q.rows, np.int64)
    conv = np.ones(Q.rows, bool)
    for qrows, key_rows in class_keys(Q.rows, K.rows, ql, kl):
        n = key_rows.size
        if n == 0:
            continue
        kc = min(k, n)
        d_key_rows = upload_labels(cu, key_rows)
        # alpha (8 B) + index (4 B) + decision values (4 B) + top-k state (16 B per slot).
        per_query = 16 * (n + 1) + 16 * (kc + n)
        chunk = max(1, min(len(qrows), _DEVICE_BYTES // per_query, (2**31 - 1) // (kc + n)))
        for c0 in range(0, len(qrows), chunk):
            rows = qrows[c0 : c0 + chunk].astype(np.int64)
            d_qrows = upload_labels(cu, rows)
            acc = cu.TopkAccumulator(len(rows), kc, n)
            it, cv = cu.esvm_topk(
                acc,
                q.ptr,
                q.dtype,
                d_qrows.ptr,
                len(rows),
                kk.ptr,
                kk.dtype,
                d_key_rows.ptr,
                n,
                K.dim,
                params["query_ids"][rows],
                *solver_args(params),
                0,
            )
            s, i = acc.finalize()
            out_s[rows, :kc], out_i[rows, :kc] = s, i
            n_iter[rows], conv[rows] = it, cv.astype(bool)
    return out_s, out_i, n_iter, conv
