"""Bad input raises ValueError / TypeError naming the argument, the expectation and what was given."""

import numpy as np
import pytest

import simattr_fast as sa

Q = np.ones((4, 3), np.float32)
K = np.ones((10, 3), np.float32)
FUNCS = [
    pytest.param(lambda *a, **kw: sa.topk(*a, device="cpu", **kw), id="topk"),
    pytest.param(lambda *a, **kw: sa.esvm_topk(*a, device="cpu", **kw), id="esvm_topk"),
]


@pytest.mark.parametrize("f", FUNCS)
@pytest.mark.parametrize(
    "k,exc,msg",
    [
        (0, ValueError, "k: expected a positive integer"),
        (-3, ValueError, "got -3"),
        (2.5, TypeError, "k: expected a positive integer, got float"),
        (True, TypeError, "got bool"),
    ],
)
def test_bad_k(f, k, exc, msg):
    with pytest.raises(exc, match=msg):
        f(Q, K, k)


@pytest.mark.parametrize("f", FUNCS)
def test_nan_names_first_bad_row(f):
    k = K.copy()
    k[7, 1] = np.nan
    k[9, 0] = np.inf
    with pytest.raises(ValueError, match=r"keys: row 7 contains NaN or Inf"):
        f(Q, k, 2)
    q = Q.copy()
    q[2, 2] = np.inf
    with pytest.raises(ValueError, match=r"queries: row 2 contains NaN or Inf"):
        f(q, K, 2)


def test_nan_in_a_later_block_is_named_with_its_global_row():
    k = np.ones((1000, 3), np.float32)
    k[777] = np.nan
    with pytest.raises(ValueError, match="keys: row 777"):
        sa.topk(Q, k, 2, device="cpu", block_rows=100)


def test_nan_in_conditioned_esvm_pool_named_with_global_row():
    k = np.ones((10, 3), np.float32)
    k[8] = np.nan
    kl = np.array([0, 1] * 5)
    with pytest.raises(ValueError, match="keys: row 8"):
        sa.esvm_topk(Q, k, 2, query_labels=np.zeros(4, int), key_labels=kl, device="cpu")


@pytest.mark.parametrize("f", FUNCS)
def test_nan_in_a_query_whose_class_has_no_keys(f):
    q = np.ones((3, 3), np.float32)
    q[1, 0] = np.nan
    with pytest.raises(ValueError, match="queries: row 1"):
        f(q, np.ones((4, 3), np.float32), 2, query_labels=np.array([0, 5, 0]), key_labels=np.zeros(4, int))


@pytest.mark.parametrize("f", FUNCS)
def test_wrong_ndim(f):
    with pytest.raises(ValueError, match=r"queries: expected a 2-D array \[n, d\], got 1-D"):
        f(np.ones(3, np.float32), K, 1)
    with pytest.raises(ValueError, match="keys: expected a 2-D array"):
        f(Q, np.ones((2, 5, 3), np.float32), 1)


@pytest.mark.parametrize("f", FUNCS)
@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.uint8, bool])
def test_wrong_dtype(f, dtype):
    with pytest.raises(TypeError, match=f"keys: expected dtype float32 or float16, got {np.dtype(dtype)}"):
        f(Q, K.astype(dtype), 1)


@pytest.mark.parametrize("f", FUNCS)
def test_non_float_object(f):
    with pytest.raises(TypeError, match="queries: expected a NumPy array"):
        f("not an array", K, 1)


@pytest.mark.parametrize("f", FUNCS)
def test_dimension_mismatch(f):
    with pytest.raises(ValueError, match="keys: expected 3 columns to match queries, got 5"):
        f(Q, np.ones((10, 5), np.float32), 1)


@pytest.mark.parametrize("f", FUNCS)
def test_non_contiguous(f):
    big = np.ones((10, 6), np.float32)
    with pytest.raises(ValueError, match=r"keys: expected a C-contiguous.*np.ascontiguousarray\(keys\)"):
        f(Q, big[:, ::2], 1)


@pytest.mark.parametrize("f", FUNCS)
def test_label_lengths(f):
    with pytest.raises(ValueError, match=r"query_labels: expected one label per row of queries \(4\), got 3"):
        f(Q, K, 1, query_labels=np.zeros(3, int), key_labels=np.zeros(10, int))
    with pytest.raises(ValueError, match=r"key_labels: expected one label per row of keys \(10\), got 11"):
        f(Q, K, 1, query_labels=np.zeros(4, int), key_labels=np.zeros(11, int))
    with pytest.raises(ValueError, match="key_labels: expected an array because query_labels was given"):
        f(Q, K, 1, query_labels=np.zeros(4, int))
    with pytest.raises(TypeError, match="query_labels: expected an integer dtype, got float64"):
        f(Q, K, 1, query_labels=np.zeros(4), key_labels=np.zeros(10, int))


def test_bad_metric_and_device():
    with pytest.raises(ValueError, match=r"metric: expected one of \('cosine', 'ip', 'l2'\), got 'dot'"):
        sa.topk(Q, K, 1, metric="dot")
    with pytest.raises(ValueError, match="metric: expected one of"):
        sa.topk(Q, K, 1, metric=np.zeros(4, int))  # labels passed where the metric goes
    with pytest.raises(ValueError, match="device: expected one of"):
        sa.topk(Q, K, 1, device="gpu")
    with pytest.raises(ValueError, match="n_threads: expected a positive integer"):
        sa.topk(Q, K, 1, device="cpu", n_threads=0)
    with pytest.raises(ValueError, match="block_rows: expected a positive integer"):
        sa.topk(Q, K, 1, device="cpu", block_rows=0)


@pytest.mark.parametrize(
    "kw,exc,msg",
    [
        ({"C": 0}, ValueError, "C: expected a positive"),
        ({"C": float("nan")}, ValueError, "C: expected a positive"),
        ({"loss": "log"}, ValueError, "loss: expected one of"),
        ({"tol": -1}, ValueError, "tol: expected a positive"),
        ({"max_iter": 1.5}, TypeError, "max_iter: expected a positive integer"),
        ({"intercept_scaling": 0}, ValueError, "intercept_scaling"),
        ({"seed": -1}, ValueError, "seed: expected an integer in"),
    ],
)
def test_esvm_parameters(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        sa.esvm_topk(Q, K, 1, device="cpu", **kw)


def test_empty_class_gives_padded_row_not_crash():
    s, i = sa.topk(
        Q, K, 3, metric="ip", query_labels=np.array([0, 1, 2, 0]), key_labels=np.zeros(10, int), device="cpu"
    )
    assert np.all(i[1:3] == -1) and np.all(np.isnan(s[1:3])) and np.all(i[[0, 3]] >= 0)


@pytest.mark.parametrize("f", FUNCS)
def test_too_many_keys(f, tmp_path):
    # A sparse file: 2^32 rows x 1 float16 column, never read (the check comes first).
    big = np.memmap(tmp_path / "big.f16", dtype=np.float16, mode="w+", shape=(2**32, 1))
    with pytest.raises(ValueError, match=r"keys: expected at most 4294967295 rows .* got 4294967296"):
        f(np.ones((2, 1), np.float32), big, 1)
