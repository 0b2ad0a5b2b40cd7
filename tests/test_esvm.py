import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

import simattr_fast as sa
from simattr_fast import ConvergenceWarning
from simattr_fast.datasets import load_digits

from helpers.arrays import as_memmap
from helpers.reference import esvm_ref


def agreement(q, pool, C, loss="squared_hinge", k=None, **kw):
    """Per query: (Spearman of all decision values, top-k set overlap, max abs difference)
    between esvm_topk and one sklearn LinearSVC per query. The overlap counts a returned
    index as agreeing when the reference ranks it in its top k up to ties within 1e-6
    (hinge loss puts many rows exactly on the margin, f = -1, where any order is right)."""
    n = len(pool)
    k = k or max(1, n // 10)
    s, i = sa.esvm_topk(q, pool, n, C=C, loss=loss, device="cpu", **kw)
    out = []
    for r in range(len(q)):
        ref = esvm_ref(q[r], pool, C, loss)
        ours = np.empty(n)
        ours[i[r]] = s[r]
        kth = np.sort(ref)[::-1][k - 1]
        overlap = np.mean(ref[i[r, :k]] >= kth - 1e-6)
        out.append((spearmanr(ours, ref).statistic, overlap, np.abs(ours - ref).max()))
    return np.array(out)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits()
    return x.reshape(len(x), -1), y


@pytest.mark.parametrize("C", [0.01, 0.1, 1.0])
def test_matches_sklearn_on_digits(digits, C):
    x, y = digits
    q = x[y == 3][:4]
    pool = x[y != 3][:400]
    a = agreement(q, pool, C)
    assert a[:, 0].min() >= 0.999
    assert a[:, 1].min() >= 0.99
    assert a[:, 2].max() < 1e-3


@pytest.mark.parametrize("C", [0.01, 0.1, 1.0])
def test_matches_sklearn_on_random(rng, C):
    q = rng.standard_normal((3, 24)).astype(np.float32)
    pool = rng.standard_normal((300, 24)).astype(np.float32)
    a = agreement(q, pool, C)
    assert a[:, 0].min() >= 0.999
    assert a[:, 1].min() >= 0.99


@pytest.mark.parametrize("C", [0.01, 0.1, 1.0])
def test_matches_sklearn_on_fashion_mnist(fashion_features, C):
    x, y = fashion_features
    q = x[y == 7][:3]
    pool = x[y == 5][:500]  # same-size pool as a class-conditioned query would see
    a = agreement(q, pool, C)
    assert a[:, 0].min() >= 0.999
    assert a[:, 1].min() >= 0.99


def test_gram_rows_fallback_gives_the_same_svms(digits):
    """The Gram rows come from our AVX-512 kernel where the CPU has it and from BLAS dgemm
    elsewhere; forcing the fallback here must give the same SVMs, and still sklearn's."""
    from simattr_fast._kernels import backend

    cpu = backend.cpu()
    x, y = digits
    x = (x / 3).astype(np.float32)  # not integers, so the Gram sums are not all exact
    q, pool = x[y == 3][:4], x[y != 3][:400]
    s_auto, i_auto = sa.esvm_topk(q, pool, len(pool), C=0.1, device="cpu")
    cpu.set_gram_kernel("dgemm")
    try:
        s_blas, i_blas = sa.esvm_topk(q, pool, len(pool), C=0.1, device="cpu")
        a = agreement(q, pool, 0.1)
    finally:
        cpu.set_gram_kernel("auto")
    for r in range(len(q)):  # the same decision values (w is rounded to float32 for them)
        ours, theirs = np.empty(len(pool)), np.empty(len(pool))
        ours[i_auto[r]], theirs[i_blas[r]] = s_auto[r], s_blas[r]
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    assert a[:, 0].min() >= 0.999 and a[:, 1].min() >= 0.99 and a[:, 2].max() < 1e-3
    with pytest.raises(ValueError, match="expected one of auto, dgemm"):
        cpu.set_gram_kernel("avx2")


@pytest.mark.parametrize("start", ["nearest", "lda", "auto"])
def test_every_start_gives_sklearns_svms(digits, rng, start):
    """Where each working set starts (the rows nearest the query, or those an LDA direction
    ranks highest; auto: a pilot decides per pool) changes only how fast the SVMs get there:
    the same optimum, scikit-learn's, and a query's result does not depend on the others in
    its call (the pilot reads the keys alone), so split runs equal one run."""
    from simattr_fast._kernels import backend

    cpu = backend.cpu()
    x, y = digits
    x = (x / 3).astype(np.float32)
    # digits (d = 64, 1,200 keys: at least 16 d, so auto runs the pilot), and Gaussian data in
    # 8 dimensions, whose SVMs have many support vectors near the query
    cases = [(x[y == 3][:4], x[y != 3][:1200]), (rng.standard_normal((4, 8)), rng.standard_normal((600, 8)))]
    cpu.set_esvm_start(start)
    try:
        for q, pool in cases:
            q, pool = q.astype(np.float32), pool.astype(np.float32)
            a = agreement(q, pool, 0.1)
            assert a[:, 0].min() >= 0.999 and a[:, 1].min() >= 0.99 and a[:, 2].max() < 1e-3
            s, i = sa.esvm_topk(q, pool, 50, C=0.1, device="cpu")
            for rows in (slice(0, 1), slice(1, 4)):
                s_part, i_part = sa.esvm_topk(q[rows], pool, 50, C=0.1, device="cpu", query_ids=np.arange(4)[rows])
                np.testing.assert_array_equal(s_part, s[rows])
                np.testing.assert_array_equal(i_part, i[rows])
    finally:
        cpu.set_esvm_start("auto")
    with pytest.raises(ValueError, match="expected one of auto, nearest, lda"):
        cpu.set_esvm_start("cosine")


@pytest.mark.parametrize("with_blas", [True, False])
def test_newton_steps_land(digits, with_blas):
    """Squared-hinge SVMs in Gram form end each round with a Newton step on their active set,
    whose factor grows by blocks between rounds (SciPy's dtrsm/dsyrk/dpotrf, or the core's
    loops without them). A step that lands leaves one confirming sweep a round (about 4 in
    all here); a wrong factor is caught only by those sweeps, which then take hundreds."""
    from simattr_fast._kernels import backend
    from simattr_fast._kernels.esvm import _esvm_cpu

    x, y = digits
    q, pool = x[y == 3][:20], x[y != 3][:1200]
    params = dict(C=0.1, squared_hinge=True, intercept_scaling=1.0, tol=1e-6, max_iter=10000, seed=0)
    params["query_ids"] = np.arange(len(q))
    cpu = backend.cpu()
    if not with_blas:
        cpu.clear_blas()
    try:
        with backend.kernel_threads():
            _, _, n_iter, conv = _esvm_cpu(q, pool, 10, None, None, params, 0, False)
    finally:
        backend.cpu.cache_clear()
        assert backend.cpu().has_blas()
    assert conv.all() and n_iter.max() <= 12, n_iter


def test_hinge_loss(digits):
    x, y = digits
    a = agreement(x[y == 1][:3], x[y != 1][:300], 0.1, loss="hinge")
    assert a[:, 0].min() >= 0.999
    assert a[:, 1].min() >= 0.99


def test_intercept_scaling(digits):
    x, y = digits
    q, pool = x[y == 2][:2], x[y != 2][:200]
    s, i = sa.esvm_topk(q, pool, 200, C=0.1, intercept_scaling=3.0, device="cpu")
    ref = esvm_ref(q[0], pool, 0.1, intercept_scaling=3.0)
    ours = np.empty(200)
    ours[i[0]] = s[0]
    assert np.abs(ours - ref).max() < 1e-3


def test_class_conditioned_pools(rng):
    q = rng.standard_normal((20, 10)).astype(np.float32)
    k = rng.standard_normal((301, 10)).astype(np.float32)
    ql = rng.integers(0, 4, 20)
    ql[0] = 9  # no key has label 9
    kl = rng.integers(0, 4, 301)
    s, i = sa.esvm_topk(q, k, 50, query_labels=ql, key_labels=kl, device="cpu")
    assert np.all(i[0] == -1) and np.all(np.isnan(s[0]))
    for r in range(1, 20):
        pool = np.flatnonzero(kl == ql[r])
        assert set(i[r][i[r] >= 0]) <= set(pool)
        ref = esvm_ref(q[r], k[pool], 0.1)
        want = pool[np.argsort(-ref, kind="stable")[:50]]
        assert len(set(want) & set(i[r])) >= 49


@pytest.mark.parametrize("n", [1, 3, 97])
def test_small_pools_and_k_edges(rng, n):
    q = rng.standard_normal((3, 5)).astype(np.float32)
    k = rng.standard_normal((n, 5)).astype(np.float32)
    for kk in (1, n, n + 2):
        s, i = sa.esvm_topk(q, k, kk, device="cpu")
        assert s.shape == (3, kk)
        got = min(kk, n)
        assert np.all(i[:, :got] >= 0) and np.all(i[:, got:] == -1)
        assert np.all(np.diff(s[:, :got], axis=1) <= 0)
        for r in range(3):
            ref = esvm_ref(q[r], k, 0.1)
            assert np.allclose(s[r, :got], np.sort(ref)[::-1][:got], atol=1e-4)


def test_float16_and_memmap(rng, tmp_path):
    q = rng.standard_normal((4, 16)).astype(np.float16)
    k = rng.standard_normal((200, 16)).astype(np.float16)
    mm = as_memmap(tmp_path, k)
    s1, i1 = sa.esvm_topk(q, mm, 30, device="cpu")
    s2, i2 = sa.esvm_topk(q.astype(np.float32), k.astype(np.float32), 30, device="cpu")
    assert np.array_equal(i1, i2) and np.allclose(s1, s2)


def test_deterministic_and_batch_independent(rng):
    q = rng.standard_normal((12, 8)).astype(np.float32)
    k = rng.standard_normal((250, 8)).astype(np.float32)
    a = sa.esvm_topk(q, k, 40, device="cpu")
    b = sa.esvm_topk(q, k, 40, device="cpu", n_threads=1)
    c = sa.esvm_topk(q[5:6], k, 40, device="cpu")
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert np.array_equal(a[1][5], c[1][0])


def test_convergence_warning(rng):
    q = rng.standard_normal((2, 8)).astype(np.float32)
    k = rng.standard_normal((300, 8)).astype(np.float32)
    # The hinge: no Newton step, so one sweep cannot reach tol (with the squared hinge a
    # Newton step can land on the optimum and the one sweep only confirms it).
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        sa.esvm_topk(q, k, 5, max_iter=1, loss="hinge", device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sa.esvm_topk(q, k, 5, device="cpu")


def test_cuda_batches_cover_every_query_once_within_the_budget(monkeypatch):
    """The CUDA path's batching is plain Python: check it here, where no GPU is needed."""
    from simattr_fast._kernels import esvm_cuda

    monkeypatch.setattr(esvm_cuda, "_DEVICE_BYTES", 10_000)
    classes = [(np.arange(0, 7), 1), (np.arange(7, 40), 30), (np.arange(40, 41), 200)]
    batches = list(esvm_cuda._batches(classes, 50))
    seen = np.concatenate([p for b in batches for _, p in b])
    assert np.array_equal(seen, np.arange(41))  # every query once, class after class
    for b in batches:
        used = sum(len(p) * (16 * (n + 1) + 16 * (min(50, n) + n)) for c, p in b for n in [classes[c][1]])
        assert used <= 10_000 or len(b) == 1 and len(b[0][1]) == 1  # one query may exceed: it must run
    assert len(batches) > 1


def test_cuda_batches_hold_each_gram_matrix_once(monkeypatch):
    """Gram-form classes also hold an [n, n] matrix per batch and n dots per query."""
    from simattr_fast._kernels import esvm_cuda

    monkeypatch.setattr(esvm_cuda, "_DEVICE_BYTES", 200_000)
    classes = [(np.arange(0, 50), 40), (np.arange(50, 60), 100), (np.arange(60, 70), 3)]
    gram = lambda n: n <= 40  # noqa: E731
    batches = list(esvm_cuda._batches(classes, 20, gram))
    assert np.array_equal(np.concatenate([p for b in batches for _, p in b]), np.arange(70))
    for b in batches:
        used = 0
        for c in {c for c, _ in b}:
            n = classes[c][1]
            per_query = 16 * (n + 1) + 16 * (min(20, n) + n) + (8 * n if gram(n) else 0)
            used += per_query * sum(len(p) for cc, p in b if cc == c) + (8 * n * n if gram(n) else 0)
        assert used <= 200_000
    # Without the Gram matrices the same classes fit in fewer batches.
    assert len(list(esvm_cuda._batches(classes, 20))) <= len(batches)


def test_cuda_esvm_form_from_the_environment(monkeypatch):
    from simattr_fast._kernels import esvm_cuda

    monkeypatch.delenv("SIMATTR_CUDA_ESVM", raising=False)
    assert esvm_cuda.esvm_form() == 0
    for name, code in (("primal", 1), (" Gram ", 2), ("auto", 0)):
        monkeypatch.setenv("SIMATTR_CUDA_ESVM", name)
        assert esvm_cuda.esvm_form() == code
    monkeypatch.setenv("SIMATTR_CUDA_ESVM", "dual")
    with pytest.raises(ValueError, match="SIMATTR_CUDA_ESVM: expected one of auto, primal, gram"):
        esvm_cuda.esvm_form()
