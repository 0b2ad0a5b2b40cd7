"""CPU/GPU parity. Marked `gpu`: skipped where no CUDA device is usable."""

import numpy as np
import pytest

import simattr_fast as sa

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("nq,n", [(1, 1), (3, 97), (97, 1025), (1025, 97)])
def test_topk_parity(rng, metric, dtype, nq, n):
    q = rng.standard_normal((nq, 33)).astype(dtype)
    k = rng.standard_normal((n, 33)).astype(dtype)
    for kk in sorted({1, min(n, 17), n, n + 2}):
        sc, ic = sa.topk(q, k, kk, metric=metric, device="cpu")
        sg, ig = sa.topk(q, k, kk, metric=metric, device="cuda", block_rows=300)
        assert np.array_equal(ic == -1, ig == -1)
        assert np.mean(ic == ig) > 0.99
        assert np.allclose(sc, sg, rtol=1e-4, atol=1e-4, equal_nan=True)


def test_topk_large_k_no_cap(rng):
    q = rng.standard_normal((8, 64)).astype(np.float32)
    k = rng.standard_normal((20000, 64)).astype(np.float32)
    sc, ic = sa.topk(q, k, 4096, metric="ip", device="cpu")
    sg, ig = sa.topk(q, k, 4096, metric="ip", device="cuda")
    assert np.mean(ic == ig) > 0.99 and np.allclose(sc, sg, rtol=1e-4, atol=1e-4)


def test_topk_conditioned_parity(rng):
    q = rng.standard_normal((97, 20)).astype(np.float32)
    k = rng.standard_normal((1025, 20)).astype(np.float32)
    ql, kl = rng.integers(0, 6, 97), rng.integers(0, 5, 1025)
    sc, ic = sa.topk(q, k, 300, metric="cosine", query_labels=ql, key_labels=kl, device="cpu")
    sg, ig = sa.topk(q, k, 300, metric="cosine", query_labels=ql, key_labels=kl, device="cuda")
    assert np.array_equal(ic == -1, ig == -1) and np.mean(ic == ig) > 0.99


def test_topk_torch_device_tensors(rng):
    torch = pytest.importorskip("torch")
    q = rng.standard_normal((10, 16)).astype(np.float32)
    k = rng.standard_normal((500, 16)).astype(np.float32)
    sg, ig = sa.topk(torch.from_numpy(q).cuda(), torch.from_numpy(k).cuda().half(), 20, metric="ip")
    sc, ic = sa.topk(q, k.astype(np.float16), 20, metric="ip", device="cpu")
    assert np.mean(ic == ig) > 0.99


@pytest.mark.parametrize("C", [0.01, 0.1, 1.0])
def test_esvm_parity(rng, C):
    q = rng.standard_normal((20, 32)).astype(np.float32)
    k = rng.standard_normal((801, 32)).astype(np.float32)
    ql, kl = rng.integers(0, 3, 20), rng.integers(0, 3, 801)
    sc, ic = sa.esvm_topk(q, k, 100, query_labels=ql, key_labels=kl, C=C, device="cpu")
    sg, ig = sa.esvm_topk(q, k, 100, query_labels=ql, key_labels=kl, C=C, device="cuda")
    assert np.allclose(sc, sg, atol=1e-3)
    for r in range(len(q)):
        assert len(set(ic[r]) & set(ig[r])) >= 99


def test_esvm_hinge_and_float16_parity(rng):
    q = rng.standard_normal((5, 16)).astype(np.float16)
    k = rng.standard_normal((300, 16)).astype(np.float16)
    for loss in ("hinge", "squared_hinge"):
        sc, _ = sa.esvm_topk(q, k, 300, loss=loss, device="cpu")
        sg, _ = sa.esvm_topk(q, k, 300, loss=loss, device="cuda")
        assert np.allclose(sc, sg, atol=1e-3)


def test_cuda_nan_rejected():
    q = np.ones((2, 3), np.float32)
    k = np.ones((5, 3), np.float32)
    k[3, 0] = np.nan
    with pytest.raises(ValueError, match="keys: row 3"):
        sa.topk(q, k, 2, device="cuda")
