"""Stubs of the compiled CPU module (csrc/python/bind_cpu.cpp). Arrays are C-contiguous;
shapes are given as [rows, cols]. Validation lives in Python; these calls only guard memory."""

import enum

import numpy as np
import numpy.typing as npt

__version__: str

class Metric(enum.IntEnum):
    cosine = 0
    ip = 1
    l2 = 2

class DType(enum.IntEnum):
    float32 = 0
    float16 = 1

PREFILTER_AUTO_DENSITY: float

def set_blas(dgemm: object, dtrsm: object, dsyrk: object, dpotrf: object) -> None: ...
def clear_blas() -> None: ...
def has_blas() -> bool: ...

class TopkAccumulator:
    """Running top-k of `nq` rows (memory nq * 2k * 8 bytes)."""

    def __init__(self, nq: int, k: int) -> None: ...
    @property
    def rows(self) -> int: ...
    @property
    def k(self) -> int: ...
    def finalize(self, n_threads: int = 0) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
    def finalize_into(
        self,
        scores: npt.NDArray[np.float32],
        ids: npt.NDArray[np.int64],
        row_map: npt.NDArray[np.int64],
        n_threads: int = 0,
    ) -> None: ...

def topk(
    acc: TopkAccumulator,
    queries: npt.NDArray[np.float32],  # [nq, d]
    keys: npt.NDArray[np.float32],  # [nb, d]
    ids: npt.NDArray[np.int64],  # [nb]
    key_sq_norms: npt.NDArray[np.float32] | None,  # [nb], l2 only
    metric: Metric,
    row0: int,
    n_threads: int = 0,
    prefilter: int = 0,  # the bfloat16 first pass (same result): 0 off, 1 on, 2 auto
) -> None: ...
def prepare_rows(src: np.ndarray, dst: np.ndarray, normalize: bool, n_threads: int = 0) -> int: ...
def row_sq_norms(
    src: npt.NDArray[np.float32],  # [n, d], C-contiguous
    sq: npt.NDArray[np.float64],  # [n], receives each row's sum of squares
    n_threads: int = 0,
) -> int: ...  # the first row holding NaN or Inf, or -1
def bf16_prefilter_available() -> bool: ...
def prefilter_kernel() -> str: ...  # "amx", "avx512bf16", or "avx512bf16 (why AMX is not used)"
def set_esvm_start(name: str) -> None: ...  # tests, benchmarks: "auto", "nearest" or "lda"
def set_gram_kernel(name: str) -> None: ...  # tests: "auto" or "dgemm" (the fallback without AVX-512)
def set_prefilter_kernel(name: str) -> None: ...  # tests: "auto", "avx512bf16" or "amx-emulated"
def prefilter_stats() -> tuple[int, int]: ...  # (pairs scored in bfloat16, candidates re-scored)
def reset_prefilter_stats() -> None: ...
def esvm_topk(
    acc: TopkAccumulator,
    queries: npt.NDArray[np.float32],  # [m, d]
    keys: npt.NDArray[np.float32],  # [n, d]
    key_ids: npt.NDArray[np.int64],  # [n]
    query_ids: npt.NDArray[np.int64],  # [m]
    C: float,
    squared_hinge: bool,
    intercept_scaling: float,
    tol: float,
    max_iter: int,
    seed: int,
    row0: int,
    n_threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]: ...
