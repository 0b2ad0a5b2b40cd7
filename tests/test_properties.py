"""Property-based tests (hypothesis): the file readers and the kernels' input validation never
fail in any way but the documented one, whatever they are given."""

import gzip
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import simattr_fast as sa
from simattr_fast._io import FileFormatError, InputTypeError
from simattr_fast.datasets import open_dataset, read_idx

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.binary(max_size=200), gz=st.booleans())
def test_read_idx_on_arbitrary_bytes(data, gz):
    """Any bytes: an array whose size matches its header, or FileFormatError; nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x-idx" + (".gz" if gz else ""))
        with (gzip.open if gz else open)(path, "wb") as f:
            f.write(data)
        try:
            a = read_idx(path)
        except FileFormatError:
            return
        assert a.size * a.dtype.itemsize == len(data) - 4 - 4 * a.ndim


@SETTINGS
@given(
    header=st.tuples(st.integers(0, 255), st.integers(1, 4)),
    dims=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4),
    tail=st.binary(max_size=64),
)
def test_read_idx_on_crafted_headers(header, dims, tail):
    """Headers that promise huge arrays never allocate them: FileFormatError, quickly."""
    code, ndim = header
    raw = bytes([0, 0, code, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims[:ndim]) + tail
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x")
        with open(path, "wb") as f:
            f.write(raw)
        try:
            read_idx(path)
        except FileFormatError:
            pass


@SETTINGS
@given(payload=st.binary(max_size=300))
def test_npz_dataset_on_arbitrary_bytes(payload):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "d.npz")
        with open(path, "wb") as f:
            f.write(payload)
        with pytest.raises(FileFormatError, match="d.npz"):
            open_dataset(path)


@SETTINGS
@given(
    arr=st.sampled_from([np.float32, np.float16, np.float64, np.int32]).flatmap(
        lambda dt: hnp.arrays(
            dtype=dt,
            shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
            elements=st.integers(-100, 100)
            if dt == np.int32
            else (st.floats(-1e3, 1e3, width=16) | st.just(float("nan"))),
        )
    ),
    k=st.integers(-2, 8),
    metric=st.sampled_from(["cosine", "ip", "l2", "dot"]),
)
def test_topk_validation_on_arbitrary_arrays(arr, k, metric):
    """Bad input raises ValueError or TypeError naming an argument; good input gives [nq, k]
    outputs whose real entries are valid indices, best first."""
    try:
        s, i = sa.topk(arr, arr, k, metric=metric, device="cpu")
    except (ValueError, InputTypeError) as exc:
        assert str(exc).split(":")[0] in ("queries", "keys", "k", "metric")
        return
    assert s.shape == i.shape == (arr.shape[0], k)
    n = arr.shape[0]
    assert ((i >= -1) & (i < n)).all()
    real = i >= 0
    assert np.isnan(s[~real]).all()
    order = -s if metric != "l2" else s
    for row, ok in zip(order, real):
        v = row[ok]
        assert (np.diff(v) >= 0).all()


@SETTINGS
@given(
    labels=st.sampled_from([np.int64, np.int8, np.float32]).flatmap(
        lambda dt: hnp.arrays(dtype=dt, shape=st.integers(0, 7), elements=st.integers(-3, 3))
    )
)
def test_label_validation(labels):
    x = np.ones((5, 2), np.float32)
    try:
        sa.topk(x, x, 2, query_labels=labels, key_labels=np.zeros(5, int), device="cpu")
    except (ValueError, InputTypeError) as exc:
        assert str(exc).startswith("query_labels")
        return
    assert len(labels) == 5 and labels.dtype.kind in "biu"
