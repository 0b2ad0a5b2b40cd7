"""Backend selection: the compiled `_cpu` module (always built) and `_cuda` (built when nvcc
was found). Asking for a backend that cannot run raises, naming the reason; nothing falls
back silently.
"""

from __future__ import annotations

import contextlib
import os
from functools import cache

from . import _cpu

DEVICES = ("auto", "cpu", "cuda")
# More OpenMP threads than this only oversubscribes (and very large counts crash the runtime).
MAX_THREADS = 1024


@cache
def cpu():
    """The CPU module, wired to SciPy's BLAS and LAPACK (dpotrf, dtrsm and dsyrk for the
    Newton step's factors; dgemm for Gram rows where the CPU lacks AVX-512): the same tuned
    routines SciPy uses, with no BLAS dependency at build time."""
    from scipy.linalg import cython_blas, cython_lapack

    blas, lapack = cython_blas.__pyx_capi__, cython_lapack.__pyx_capi__
    _cpu.set_blas(blas["dgemm"], blas["dtrsm"], blas["dsyrk"], lapack["dpotrf"])
    return _cpu


@cache
def _cuda_status():
    """Returns (module or None, reason it cannot be used or '')."""
    try:
        from . import _cuda
    except ImportError as exc:
        return None, (
            "simattr_fast was built without its CUDA backend (no CUDA compiler at build time, "
            f"or SIMATTR_CUDA=OFF): {exc}"
        )
    n = _cuda.device_count()
    if n <= 0:
        why = _cuda.last_error() or "cudaGetDeviceCount found none"
        return None, f"no usable CUDA device on this machine (CUDA runtime says: {why})"
    return _cuda, ""


def cuda_available() -> bool:
    """Whether the CUDA backend can run here.

    Returns
    -------
    bool
        True when ``simattr_fast`` was built with its ``_cuda`` module and a CUDA device is
        usable; ``device="cuda"`` raises with the reason otherwise.

    Examples
    --------
    >>> import simattr_fast as sa
    >>> isinstance(sa.cuda_available(), bool)
    True
    """
    return _cuda_status()[0] is not None


def cuda():
    mod, reason = _cuda_status()
    if mod is None:
        raise RuntimeError(f"device='cuda' was requested but {reason}")
    return mod


def check_device(device) -> str:
    """The one check of a ``device`` argument, for the kernels and for the models alike."""
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {DEVICES}, got {device!r}")
    return device


def resolve_device(device, any_input_on_gpu: bool) -> str:
    """The kernel backend ("cpu" or "cuda") for a ``device`` argument and the inputs' place."""
    check_device(device)
    if device == "auto":
        return "cuda" if (any_input_on_gpu or cuda_available()) else "cpu"
    if device == "cuda":
        cuda()  # raises with the reason when the backend cannot run
    if device == "cpu" and any_input_on_gpu:
        raise ValueError(
            "device: 'cpu' was requested but an input lives on a CUDA device; move it with .cpu() or use device='cuda'"
        )
    return device


def resolve_threads(n_threads) -> int:
    """None -> 0 (all cores, the kernels' own default); else a positive int."""
    if n_threads is None:
        return 0
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads <= 0:
        raise ValueError(f"n_threads: expected a positive integer or None, got {n_threads!r}")
    if n_threads > MAX_THREADS:
        raise ValueError(
            f"n_threads: expected at most {MAX_THREADS} (this machine has {os.cpu_count()} cores), got {n_threads}"
        )
    return n_threads


@contextlib.contextmanager
def kernel_threads():
    """Keeps BLAS single-threaded while the CPU kernels run: the kernels split their GEMMs
    over their own OpenMP threads, and idle BLAS workers spinning beside them would steal
    cores (measured: up to 30% slower on 2 cores)."""
    from threadpoolctl import threadpool_limits

    # SciPy's BLAS must be loaded before the limit is set: threadpoolctl only limits the
    # libraries already loaded, and a multi-threaded first GEMM would split (and so round)
    # differently from every later one.
    cpu()
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def default_block_bytes(device: str = "cpu") -> int:
    """Bytes of float32 keys held in memory at once while streaming: SIMATTR_BLOCK_MB, else
    128 MiB on the CPU and 64 MiB on CUDA.

    On the CPU, 128 MiB holds 50,000 keys of d = 512 in one block: the bfloat16 first pass
    then sets each query's floor from all of them before re-scoring (1,800 candidates per
    query at k = 1280 on Gaussian data, against 2,560 in two blocks of 64 MiB: 10% faster),
    and a stream holds 64 MiB more RAM, far inside its budget. On CUDA the running top-k
    state grows with the block (topk_cuda.py), so it keeps 64 MiB.
    """
    default = "128" if device == "cpu" else "64"
    return int(float(os.environ.get("SIMATTR_BLOCK_MB", default)) * (1 << 20))
