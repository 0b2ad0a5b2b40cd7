import numpy as np
import pytest

import simattr_fast as sa

from helpers.arrays import as_memmap
from helpers.reference import scores_ref, topk_ref

SIZES = [(1, 1), (3, 97), (97, 3), (97, 1025), (1025, 97)]


def check_against_ref(q, k, kk, metric, s, i, ql=None, kl=None, rtol=1e-4):
    """Same indices as the reference wherever the reference's scores are not near-ties, and
    scores equal to the reference's within float32 precision."""
    ref_i, ref_s = topk_ref(q, k, kk, metric, ql, kl)
    assert i.shape == s.shape == (q.shape[0], kk)
    assert s.dtype == np.float32 and i.dtype == np.int64
    assert np.array_equal(i == -1, ref_i == -1)
    assert np.all(np.isnan(s[i == -1]))
    for r in range(q.shape[0]):
        valid = ref_i[r] >= 0
        got = s[r, valid].astype(np.float64)
        want = ref_s[r, ref_i[r, valid]]
        if metric == "l2":
            want = -want  # reported as distance
        assert np.allclose(got, want, rtol=rtol, atol=1e-4), r
        # Indices may differ only between scores closer than float32 resolution.
        diff = i[r, valid] != ref_i[r, valid]
        if diff.any():
            gap = np.abs(ref_s[r, i[r, valid][diff]] - ref_s[r, ref_i[r, valid][diff]])
            assert np.all(gap <= 1e-4 * np.maximum(1, np.abs(want[diff]))), r


@pytest.mark.parametrize("nq,n", SIZES)
@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_matches_reference(rng, nq, n, metric):
    q = rng.standard_normal((nq, 17)).astype(np.float32)
    k = rng.standard_normal((n, 17)).astype(np.float32)
    for kk in sorted({1, min(5, n), n, n + 3}):
        s, i = sa.topk(q, k, kk, metric=metric, device="cpu")
        check_against_ref(q, k, kk, metric, s, i)


def test_order_best_first(rng):
    q = rng.standard_normal((11, 8)).astype(np.float32)
    k = rng.standard_normal((300, 8)).astype(np.float32)
    s, _ = sa.topk(q, k, 50, metric="ip", device="cpu")
    assert np.all(np.diff(s, axis=1) <= 0)
    s, _ = sa.topk(q, k, 50, metric="l2", device="cpu")
    assert np.all(np.diff(s, axis=1) >= 0)


def test_ties_go_to_lower_index(rng):
    k = np.repeat(rng.standard_normal((5, 4)).astype(np.float32), 40, axis=0)  # each row 40 times
    perm = rng.permutation(len(k))
    k = k[perm]
    q = rng.standard_normal((7, 4)).astype(np.float32)
    for bs in (None, 13):
        s, i = sa.topk(q, k, 100, metric="ip", device="cpu", block_rows=bs)
        for r in range(len(q)):
            for v in np.unique(s[r]):
                same = i[r][s[r] == v]
                assert np.all(np.diff(same) > 0)
            exact = q[r].astype(np.float64) @ k.T.astype(np.float64)
            cutoff = s[r, -1]
            # every key strictly better than the last kept score is kept
            assert set(np.flatnonzero(exact > cutoff + 1e-5)) <= set(i[r])


def test_streaming_blocks_do_not_change_result(rng):
    q = rng.standard_normal((31, 9)).astype(np.float32)
    k = rng.standard_normal((1025, 9)).astype(np.float32)
    base = sa.topk(q, k, 64, metric="cosine", device="cpu")
    for bs in (1, 7, 256, 5000):
        s, i = sa.topk(q, k, 64, metric="cosine", device="cpu", block_rows=bs)
        assert np.array_equal(i, base[1])
        assert np.allclose(s, base[0], rtol=1e-6, atol=1e-7)


def test_float16_inputs(rng):
    q = rng.standard_normal((97, 16)).astype(np.float16)
    k = rng.standard_normal((1025, 16)).astype(np.float16)
    for metric in ("cosine", "ip", "l2"):
        s, i = sa.topk(q, k, 10, metric=metric, device="cpu")
        check_against_ref(q.astype(np.float32), k.astype(np.float32), 10, metric, s, i)


def test_memmap_keys(rng, tmp_path):
    q = rng.standard_normal((13, 32)).astype(np.float32)
    k = rng.standard_normal((1025, 32)).astype(np.float16)
    mm = as_memmap(tmp_path, k)
    s, i = sa.topk(q, mm, 20, metric="cosine", device="cpu", block_rows=100)
    s2, i2 = sa.topk(q, np.asarray(k), 20, metric="cosine", device="cpu")
    # GEMM tiling follows the block size, so scores may differ in the last bit
    assert np.array_equal(i, i2) and np.allclose(s, s2, rtol=1e-6, atol=1e-7)
    # the memmap is still readable after its pages were released
    assert np.array_equal(np.asarray(mm), k)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_class_conditioned(rng, metric):
    q = rng.standard_normal((97, 12)).astype(np.float32)
    k = rng.standard_normal((1025, 12)).astype(np.float32)
    ql = rng.integers(0, 6, 97)  # class 5 has no keys
    kl = rng.integers(0, 5, 1025)
    for kk in (1, 50, 400):
        s, i = sa.topk(q, k, kk, metric=metric, query_labels=ql, key_labels=kl, device="cpu", block_rows=128)
        check_against_ref(q, k, kk, metric, s, i, ql, kl)
        assert np.all(i[ql == 5] == -1)
        ok = i >= 0
        assert np.all(kl[i[ok]] == np.broadcast_to(ql[:, None], i.shape)[ok])


def test_zero_vectors_cosine_is_zero():
    q = np.zeros((2, 4), np.float32)
    k = np.eye(4, dtype=np.float32)
    s, i = sa.topk(q, k, 4, metric="cosine", device="cpu")
    assert np.all(s == 0) and np.array_equal(i, np.tile(np.arange(4), (2, 1)))


def test_threads_do_not_change_result(rng):
    q = rng.standard_normal((50, 20)).astype(np.float32)
    k = rng.standard_normal((3000, 20)).astype(np.float32)
    a = sa.topk(q, k, 100, metric="ip", device="cpu", n_threads=1)
    b = sa.topk(q, k, 100, metric="ip", device="cpu", n_threads=2)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])


def test_torch_cpu_tensors(rng):
    torch = pytest.importorskip("torch")
    q = rng.standard_normal((5, 8)).astype(np.float32)
    k = rng.standard_normal((40, 8)).astype(np.float32)
    a = sa.topk(torch.from_numpy(q), torch.from_numpy(k), 7, metric="ip", device="cpu")
    b = sa.topk(q, k, 7, metric="ip", device="cpu")
    assert np.array_equal(a[1], b[1])


def test_empty_queries():
    s, i = sa.topk(np.zeros((0, 3), np.float32), np.ones((5, 3), np.float32), 2, device="cpu")
    assert s.shape == (0, 2) and i.shape == (0, 2)


def test_scores_ref_sanity(rng):
    # the reference itself: l2 scores are negated distances
    q = np.array([[0.0, 0.0]], np.float32)
    k = np.array([[3.0, 4.0]], np.float32)
    assert scores_ref(q, k, "l2")[0, 0] == -25.0


def test_copy_on_write_memmap_keeps_callers_edits(rng, tmp_path):
    k = rng.standard_normal((20000, 8)).astype(np.float32)  # blocks of 40 pages each
    np.save(tmp_path / "k.npy", k)
    mm = np.load(tmp_path / "k.npy", mmap_mode="c")
    mm[:] = 1.0  # private edits, not in the file
    q = np.ones((2, 8), np.float32)
    sa.topk(q, mm, 5, metric="ip", device="cpu", block_rows=5000)
    assert np.all(np.asarray(mm) == 1.0)
