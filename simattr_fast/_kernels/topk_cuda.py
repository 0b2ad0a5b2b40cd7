"""CUDA path of simattr_fast.topk: streams key blocks through the fused scoring kernel."""

from __future__ import annotations

import numpy as np

from . import backend
from .device import Uploaded, check_cuda_inputs, inputs_device, sq_norms, upload_labels

_DEVICE_BYTES = 4 << 30  # running top-k state on the device, per query chunk


def topk_cuda(Q, K, k, metric, ql, kl, block_rows):
    cu = backend.cuda()
    with inputs_device(cu, Q, K):
        return _topk_cuda(cu, Q, K, k, metric, ql, kl, block_rows)


def _topk_cuda(cu, Q, K, k, metric, ql, kl, block_rows):
    check_cuda_inputs(Q, K, metric)
    block = min(block_rows, K.rows)
    chunk = max(1, min(Q.rows, (2**31 - 1) // (k + block), _DEVICE_BYTES // (16 * (k + block))))
    out_s = np.empty((Q.rows, k), np.float32)
    out_i = np.empty((Q.rows, k), np.int64)
    code = cu.Metric.__members__[metric]
    for c0 in range(0, Q.rows, chunk):
        c1 = min(Q.rows, c0 + chunk)
        q = Uploaded(cu, Q, slice(c0, c1), metric)
        qlab = upload_labels(cu, ql[c0:c1]) if ql is not None else None
        acc = cu.TopkAccumulator(c1 - c0, k, block)
        for s in range(0, K.rows, block):
            e = min(K.rows, s + block)
            kb = Uploaded(cu, K, slice(s, e), metric)
            klab = upload_labels(cu, kl[s:e]) if kl is not None else None
            cu.topk(
                acc,
                q.ptr,
                q.dtype,
                kb.ptr,
                kb.dtype,
                e - s,
                K.dim,
                s,
                code,
                qlab.ptr if qlab is not None else 0,
                klab.ptr if klab is not None else 0,
            )
        out_s[c0:c1], out_i[c0:c1] = acc.finalize()
    if metric == "l2":
        qsq = sq_norms(Q).astype(np.float32)
        out_s = np.maximum(qsq[:, None] - out_s, 0.0, where=out_i >= 0, out=out_s)
    return out_s, out_i
