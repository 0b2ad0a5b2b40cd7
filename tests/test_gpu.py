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


# ---- what the review of the CUDA path found (issue: the CUDA path, ready for its first GPU) --


def _torch():
    return pytest.importorskip("torch")


def test_topk_grid_limit_many_query_tiles(rng):
    """ceil(4.3M / 64) query tiles exceed gridDim.y = 65,535: the kernel strides over them."""
    q = rng.standard_normal((4_300_000, 2)).astype(np.float32)
    k = rng.standard_normal((8, 2)).astype(np.float32)
    sg, ig = sa.topk(q, k, 1, metric="ip", device="cuda")
    sc, ic = sa.topk(q, k, 1, metric="ip", device="cpu")
    assert np.array_equal(ig, ic) and np.allclose(sg, sc, rtol=1e-6, atol=1e-6)


def test_esvm_grid_limit_many_queries_one_class(rng):
    """70k queries against 16 keys: the top-k push uses one y-block per row before the fix."""
    q = rng.standard_normal((70_000, 4)).astype(np.float32)
    k = rng.standard_normal((16, 4)).astype(np.float32)
    sg, ig = sa.esvm_topk(q, k, 3, device="cuda")
    sc, ic = sa.esvm_topk(q[:2000], k, 3, device="cpu")
    assert np.mean(ig[:2000] == ic) > 0.99 and np.allclose(sg[:2000], sc, atol=1e-3)


@pytest.mark.parametrize("form", ["auto", "primal"])
@pytest.mark.parametrize("d", [1536, 2048])
def test_esvm_large_dimension(rng, d, form, monkeypatch):
    """d >= 1536 needs the opt-in shared-memory size (set once per device and kernel) in primal
    form; 200 keys against d >= 1536 take the Gram form under auto."""
    monkeypatch.setenv("SIMATTR_CUDA_ESVM", form)
    q = rng.standard_normal((6, d)).astype(np.float32)
    k = rng.standard_normal((200, d)).astype(np.float32)
    sc, ic = sa.esvm_topk(q, k, 50, device="cpu")
    sg, ig = sa.esvm_topk(q, k, 50, device="cuda")
    assert np.allclose(sc, sg, atol=1e-3) and np.mean(ic == ig) > 0.98


def test_esvm_dimension_beyond_the_block_limit_is_a_clear_error(rng, monkeypatch):
    """The primal form keeps w (d + 1 doubles) in shared memory; the Gram form needs none."""
    q = rng.standard_normal((2, 40_000)).astype(np.float32)
    monkeypatch.setenv("SIMATTR_CUDA_ESVM", "primal")
    with pytest.raises(ValueError, match="d too large"):
        sa.esvm_topk(q, q, 1, device="cuda")
    monkeypatch.setenv("SIMATTR_CUDA_ESVM", "auto")  # 2 keys against d = 40,000: Gram form
    sg, ig = sa.esvm_topk(q, q, 2, device="cuda")
    sc, ic = sa.esvm_topk(q, q, 2, device="cpu")
    assert np.array_equal(ig, ic) and np.allclose(sg, sc, rtol=1e-5, atol=1e-5)


# ---- the Gram form (classes whose pool is small against d) -----------------------------------


@pytest.mark.parametrize("loss", ["squared_hinge", "hinge"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_esvm_gram_and_primal_forms_agree_with_the_cpu(rng, monkeypatch, loss, dtype):
    q = rng.standard_normal((37, 64)).astype(dtype)
    k = rng.standard_normal((300, 64)).astype(dtype)
    ql, kl = np.arange(37) % 5, np.arange(300) % 5  # 60 keys per class: Gram form under auto
    sc, ic = sa.esvm_topk(q, k, 60, query_labels=ql, key_labels=kl, loss=loss, device="cpu")
    for form in ("auto", "gram", "primal"):
        monkeypatch.setenv("SIMATTR_CUDA_ESVM", form)
        sg, ig = sa.esvm_topk(q, k, 60, query_labels=ql, key_labels=kl, loss=loss, device="cuda")
        assert np.allclose(sc, sg, atol=1e-4), form
        assert np.mean(ic == ig) > 0.99, form


def test_esvm_forms_mixed_in_one_batch(rng):
    """Under auto, a class of 10 keys (Gram) and one of 400 (primal) with d = 48 in one batch;
    a class of one key, and one without keys."""
    q = rng.standard_normal((30, 48)).astype(np.float32)
    kl = np.repeat([0, 1, 2], [10, 400, 1])
    k = rng.standard_normal((len(kl), 48)).astype(np.float32)
    ql = np.arange(30) % 4
    sc, ic = sa.esvm_topk(q, k, 20, query_labels=ql, key_labels=kl, device="cpu")
    sg, ig = sa.esvm_topk(q, k, 20, query_labels=ql, key_labels=kl, device="cuda")
    assert np.array_equal(ic == -1, ig == -1) and np.allclose(sc, sg, atol=1e-4, equal_nan=True)
    assert np.mean(ic == ig) > 0.99


def test_esvm_gram_form_refuses_classes_beyond_its_shared_memory(rng, monkeypatch):
    monkeypatch.setenv("SIMATTR_CUDA_ESVM", "gram")
    q = rng.standard_normal((1, 4)).astype(np.float32)
    k = rng.standard_normal((8192, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="fewer than 8,192 keys"):
        sa.esvm_topk(q, k, 1, device="cuda")


def test_duplicated_keys_across_block_boundaries_exact_indices(rng):
    """Ties break to the lower index on the GPU exactly as on the CPU (not a 99% overlap)."""
    q = rng.integers(-3, 4, (50, 8)).astype(np.float32)
    base = rng.integers(-3, 4, (40, 8)).astype(np.float32)
    k = np.concatenate([base] * 30)  # every key repeated across the 300-row blocks
    for metric in ("ip", "l2"):
        sc, ic = sa.topk(q, k, 64, metric=metric, device="cpu")
        sg, ig = sa.topk(q, k, 64, metric=metric, device="cuda", block_rows=300)
        assert np.array_equal(ic, ig) and np.array_equal(sc, sg)


def test_k_4096_over_several_key_blocks(rng):
    q = rng.integers(-2, 3, (9, 16)).astype(np.float32)
    k = rng.integers(-2, 3, (20_000, 16)).astype(np.float32)
    sc, ic = sa.topk(q, k, 4096, metric="ip", device="cpu")
    sg, ig = sa.topk(q, k, 4096, metric="ip", device="cuda", block_rows=3000)
    assert np.array_equal(ic, ig) and np.array_equal(sc, sg)


@pytest.mark.parametrize("metric", ["ip", "l2", "cosine"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_conditioned_scores_match(rng, metric, dtype):
    q = rng.standard_normal((97, 24)).astype(dtype)
    k = rng.standard_normal((1025, 24)).astype(dtype)
    ql, kl = rng.integers(0, 6, 97), rng.integers(0, 5, 1025)  # class 5: no keys
    sc, ic = sa.topk(q, k, 300, metric=metric, query_labels=ql, key_labels=kl, device="cpu")
    sg, ig = sa.topk(q, k, 300, metric=metric, query_labels=ql, key_labels=kl, device="cuda")
    assert np.array_equal(ic == -1, ig == -1) and np.mean(ic == ig) > 0.99
    assert np.allclose(sc, sg, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_empty_class_and_a_pool_of_one(rng):
    q = rng.standard_normal((4, 6)).astype(np.float32)
    k = rng.standard_normal((3, 6)).astype(np.float32)
    ql, kl = np.array([0, 1, 2, 2]), np.array([1, 2, 2])
    for fn in (sa.topk, sa.esvm_topk):
        sc, ic = fn(q, k, 2, query_labels=ql, key_labels=kl, device="cpu")
        sg, ig = fn(q, k, 2, query_labels=ql, key_labels=kl, device="cuda")
        assert np.array_equal(ic, ig) and np.allclose(sc, sg, atol=1e-4, equal_nan=True)
        assert (ig[0] == -1).all() and ig[1, 0] == 0 and ig[1, 1] == -1


def test_device_tensors_float16_and_nan_rejection(rng):
    torch = _torch()
    q = torch.from_numpy(rng.standard_normal((10, 16)).astype(np.float16)).cuda()
    k = torch.from_numpy(rng.standard_normal((500, 16)).astype(np.float16)).cuda()
    sg, ig = sa.topk(q, k, 20, metric="ip")
    sc, ic = sa.topk(q.cpu().numpy(), k.cpu().numpy(), 20, metric="ip", device="cpu")
    assert np.mean(ic == ig) > 0.99
    k[7, 3] = float("nan")
    with pytest.raises(ValueError, match="keys: row 7"):
        sa.topk(q, k, 5)
    with pytest.raises(ValueError, match="keys: row 7"):
        sa.esvm_topk(q, k, 5)


def test_inputs_on_a_second_device(rng):
    torch = _torch()
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs: inputs on cuda:1 must run on cuda:1 under a device guard")
    q = torch.from_numpy(rng.standard_normal((10, 16)).astype(np.float32)).to("cuda:1")
    k = torch.from_numpy(rng.standard_normal((500, 16)).astype(np.float32)).to("cuda:1")
    sg, ig = sa.topk(q, k, 20, metric="ip")
    sc, ic = sa.topk(q.cpu().numpy(), k.cpu().numpy(), 20, metric="ip", device="cpu")
    assert np.array_equal(ic, ig) and torch.cuda.current_device() == 0
    with pytest.raises(ValueError, match="expected the same device as queries"):
        sa.topk(q.to("cuda:0"), k, 5)


def test_inputs_written_on_a_side_stream(rng):
    """The producer's stream (__cuda_array_interface__ v3) is waited for before reading."""
    torch = _torch()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        k = torch.zeros((200_000, 64), device="cuda")
        torch.cuda._sleep(50_000_000)  # keep the stream busy so a reader that does not wait sees zeros
        k += 1.0
        k[123] = 5.0
        sg, ig = sa.topk(k[:1], k, 1, metric="ip")
    assert ig[0, 0] == 123


def test_very_large_and_zero_norms(rng):
    k = rng.standard_normal((300, 8)).astype(np.float32)
    k[10] *= 1e30
    k[20] = 0
    q = rng.standard_normal((5, 8)).astype(np.float32)
    sc, ic = sa.topk(q, k, 300, metric="cosine", device="cpu")
    sg, ig = sa.topk(q, k, 300, metric="cosine", device="cuda")
    assert np.array_equal(ic, ig) and np.allclose(sc, sg, atol=1e-6)
    assert sg[ig == 20].tolist() == [0.0] * 5  # a zero row scores 0, as on the CPU
    with pytest.raises(ValueError, match="float32 scores"):
        sa.topk(q, k, 5, metric="ip", device="cuda")


@pytest.mark.parametrize("form", ["auto", "gram"])  # 150 keys against d = 16: primal under auto
def test_esvm_agrees_with_sklearn_at_tight_tolerance(rng, monkeypatch, form):
    from helpers.reference import esvm_ref

    monkeypatch.setenv("SIMATTR_CUDA_ESVM", form)
    q = rng.standard_normal((4, 16)).astype(np.float32)
    k = rng.standard_normal((150, 16)).astype(np.float32)
    sg, ig = sa.esvm_topk(q, k, 150, tol=1e-8, device="cuda")
    for r in range(len(q)):
        ref = esvm_ref(q[r], k, C=0.1, tol=1e-8, max_iter=100_000)
        assert np.allclose(sg[r], ref[ig[r]], atol=1e-5)


@pytest.mark.parametrize("budget", [None, 40_000])
def test_esvm_classes_of_every_size_in_one_launch(rng, monkeypatch, budget):
    """One launch solves every class: a class of one key, one smaller than k, one without keys,
    one large; with a small device budget the classes are split across several launches."""
    from simattr_fast._kernels import esvm_cuda

    if budget:
        monkeypatch.setattr(esvm_cuda, "_DEVICE_BYTES", budget)
    q = rng.standard_normal((40, 24)).astype(np.float32)
    kl = np.repeat([0, 1, 2], [1, 30, 400])
    k = rng.standard_normal((len(kl), 24)).astype(np.float32)
    ql = np.arange(40) % 4  # class 3 has no keys
    sc, ic = sa.esvm_topk(q, k, 50, query_labels=ql, key_labels=kl, device="cpu")
    sg, ig = sa.esvm_topk(q, k, 50, query_labels=ql, key_labels=kl, device="cuda")
    assert np.array_equal(ic == -1, ig == -1) and (ig[ql == 3] == -1).all()
    assert np.allclose(sc, sg, atol=1e-4, equal_nan=True)
    assert np.mean(ic == ig) > 0.99
