"""pytest-benchmark microbenchmarks: each group times simattr_fast beside its peer on the
same data, so the group table shows the ratio.

    pytest benchmarks/test_micro.py --benchmark-enable --benchmark-group-by=group

Small sizes (seconds in all); the figures in README.md come from the bench_*.py scripts.
"""

import numpy as np
import pytest

import simattr_fast as sa

from _common import embedding_like

K, KL = embedding_like(2000, 5, 256, seed=0)
Q, QL = embedding_like(100, 5, 256, seed=1)


def _normalise(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.benchmark(group="topk cosine 500x10000 d256 k1280")
def test_topk_ours(benchmark):
    benchmark(sa.topk, Q, K, 1280, "cosine", device="cpu")


@pytest.mark.benchmark(group="topk cosine 500x10000 d256 k1280")
def test_topk_faiss(benchmark):
    faiss = pytest.importorskip("faiss")
    index = faiss.IndexFlatIP(K.shape[1])
    index.add(_normalise(K))
    qn = _normalise(Q)
    benchmark(index.search, qn, 1280)


@pytest.mark.benchmark(group="topk cosine 500x10000 d256 k1280")
def test_topk_numpy(benchmark):
    kn, qn = _normalise(K), _normalise(Q)

    def run():
        s = qn @ kn.T
        i = np.argpartition(-s, 1280, axis=1)[:, :1280]
        return np.take_along_axis(s, i, 1)

    benchmark(run)


@pytest.mark.benchmark(group="esvm 10 queries x 2000 pool d256")
def test_esvm_ours(benchmark):
    q, ql = Q[QL == 0][:10], QL[QL == 0][:10]
    benchmark(sa.esvm_topk, q, K, 100, ql, KL, device="cpu")


@pytest.mark.benchmark(group="esvm 10 queries x 2000 pool d256")
def test_esvm_sklearn_loop(benchmark):
    from sklearn.svm import LinearSVC

    q = Q[QL == 0][:10]
    pool = K[KL == 0]
    y = np.r_[1, -np.ones(len(pool))]

    def run():
        for r in q:
            LinearSVC(C=0.1, class_weight="balanced", tol=1e-6, max_iter=10000).fit(
                np.vstack([r[None], pool]), y
            ).decision_function(pool)

    benchmark.pedantic(run, rounds=1, iterations=1)
