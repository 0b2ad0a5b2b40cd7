"""Helpers for inputs that already live on a CUDA device (torch or cupy arrays) and for
uploading host arrays. Only used on the CUDA path."""

from __future__ import annotations

import contextlib

import numpy as np

from .arrays import Matrix, release_pages
from .stream import check_finite, check_magnitude, check_sq_norms


def _as_torch(obj):
    import torch

    return obj if isinstance(obj, torch.Tensor) else torch.as_tensor(obj, device="cuda")


@contextlib.contextmanager
def inputs_device(cu, Q: Matrix, K: Matrix):
    """Runs the body on the device that holds the inputs (a device guard; host inputs use the
    current device), after the producers' streams have finished writing them. Queries and
    keys on two different devices are refused."""
    devices = {M.name: cu.pointer_device(M.device_ptr) for M in (Q, K) if M.on_device}
    if len(set(devices.values())) > 1:
        raise ValueError(
            f"keys: expected the same device as queries, got queries on cuda:{devices['queries']} and keys on "
            f"cuda:{devices['keys']}; move one of them (e.g. keys.to(queries.device))"
        )
    for M in (Q, K):
        if M.on_device and M.stream is not None:
            cu.wait_stream(M.stream)
    if not devices:
        yield
        return
    with cu.DeviceGuard(next(iter(devices.values()))):
        yield


def check_cuda_inputs(Q: Matrix, K: Matrix, metric: str) -> None:
    """The NaN/Inf and magnitude checks for arrays already on the device (host arrays are
    checked as they are uploaded)."""
    for M in (Q, K):
        if M.on_device:
            check_finite_device(M)
            if metric != "cosine":
                check_sq_norms(M.name, sq_norms(M))


def check_finite_device(M: Matrix) -> None:
    """NaN/Inf check on the device, naming the first bad row."""
    import torch

    bad = (~torch.isfinite(_as_torch(M.device_obj)).all(dim=1)).nonzero()
    if bad.numel():
        raise ValueError(f"{M.name}: row {int(bad[0])} contains NaN or Inf; clean or drop it before ranking")


def sq_norms(M: Matrix) -> np.ndarray:
    """Row squared norms as float64 on the host."""
    if not M.on_device:
        x = M.host.astype(np.float64)
        return np.einsum("ij,ij->i", x, x)
    t = _as_torch(M.device_obj).double()
    return (t * t).sum(dim=1).cpu().numpy()


class Uploaded:
    """Device pointer to a matrix: the caller's own device memory, or a checked upload of a
    host array (kept alive by this object)."""

    def __init__(self, cu, M: Matrix, rows: slice | None = None, metric: str = "ip"):
        self.dtype = cu.DType.__members__[M.dtype.name]
        itemsize = M.dtype.itemsize
        if M.on_device:
            start = rows.start if rows is not None else 0
            self.ptr = M.device_ptr + start * M.dim * itemsize
            self._keep = None
        else:
            raw = M.host if rows is None else M.host[rows]
            check_finite(M.name, raw, rows.start if rows is not None else 0)
            if metric != "cosine":
                check_magnitude(M.name, raw, rows.start if rows is not None else 0)
            self._keep = cu.DeviceArray(np.ascontiguousarray(raw))
            self.ptr = self._keep.ptr
            release_pages(raw)


def upload_labels(cu, labels: np.ndarray):
    return cu.DeviceArray(np.ascontiguousarray(labels, dtype=np.int64))
