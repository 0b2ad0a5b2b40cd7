"""Stubs of the compiled CUDA module (csrc/python/bind_cuda.cpp). Device arrays travel as raw
pointers (ints) taken from __cuda_array_interface__; host arrays are uploaded into DeviceArray."""

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

def device_count() -> int: ...
def last_error() -> str: ...
def pointer_device(ptr: int) -> int: ...
def wait_stream(stream: int) -> None: ...

class DeviceGuard:
    """`with DeviceGuard(d):` makes device d current and restores the previous one after."""

    def __init__(self, device: int) -> None: ...
    def __enter__(self) -> DeviceGuard: ...
    def __exit__(self, *args: object) -> None: ...

class DeviceArray:
    """An owning device copy of a C-contiguous host array."""

    def __init__(self, host: npt.NDArray[np.generic]) -> None: ...
    @property
    def ptr(self) -> int: ...
    @property
    def nbytes(self) -> int: ...

class TopkAccumulator:
    def __init__(self, nq: int, k: int, max_cols: int) -> None: ...
    @property
    def rows(self) -> int: ...
    @property
    def k(self) -> int: ...
    def finalize(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...

def topk(
    acc: TopkAccumulator,
    queries: int,
    qtype: DType,
    keys: int,
    ktype: DType,
    nb: int,
    d: int,
    id0: int,
    metric: Metric,
    query_labels: int,
    key_labels: int,
) -> None: ...
def esvm_topk(
    acc: TopkAccumulator,
    queries: int,
    qtype: DType,
    query_rows: int,
    query_class: int,
    host_query_class: npt.NDArray[np.int32],
    keys: int,
    ktype: DType,
    key_rows: int,
    key_offsets: npt.NDArray[np.int64],
    d: int,
    query_ids: npt.NDArray[np.int64],
    C: float,
    squared_hinge: bool,
    intercept_scaling: float,
    tol: float,
    max_iter: int,
    seed: int,
    form: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]: ...
def esvm_uses_gram(n: int, d: int, form: int) -> bool: ...
