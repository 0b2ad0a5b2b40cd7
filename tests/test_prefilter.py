"""The bfloat16 first pass of CPU topk (SIMATTR_PREFILTER=on) must give *identical* results to
the float32 path: scores bit for bit, indices, tie order. Inputs are chosen to stress the
rounding bound: near-ties, duplicated keys, huge and tiny norms, float16, memmaps, classes."""

from __future__ import annotations

import numpy as np
import pytest

import simattr_fast as sa
from simattr_fast._kernels import backend

cpu = backend.cpu()
needs_bf16 = pytest.mark.skipif(not cpu.bf16_prefilter_available(), reason="the CPU has no AVX512-BF16")


def both(monkeypatch, *args, **kw):
    out = []
    for flag in ("on", "off"):
        monkeypatch.setenv("SIMATTR_PREFILTER", flag)
        cpu.reset_prefilter_stats()
        out.append(sa.topk(*args, **kw))
        if flag == "on":
            stats = cpu.prefilter_stats()
    return out[0], out[1], stats


def assert_identical(a, b):
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0].view(np.uint32), b[0].view(np.uint32))  # NaN padding and -0 too


@pytest.fixture(params=["auto", "amx-emulated"])
def kernel(request):
    """The first pass's kernel: the machine's own (AMX where present, else AVX512-BF16), and the
    AMX driver on emulated tiles, so that its data layout (rows padded to 32, pairs to 16) is
    exercised on any CPU with AVX512-BF16."""
    cpu.set_prefilter_kernel(request.param)
    yield request.param
    cpu.set_prefilter_kernel("auto")


@needs_bf16
def test_the_kernel_in_use_passed_its_checks():
    name = cpu.prefilter_kernel()
    assert name == "amx" or name.startswith("avx512bf16"), name
    assert "self-check failed" not in name  # AMX present but disagreeing with AVX512-BF16
    with pytest.raises(ValueError, match="expected one of auto, avx512bf16, amx-emulated"):
        cpu.set_prefilter_kernel("avx2")


@needs_bf16
@pytest.mark.parametrize("n_threads", [1, 2])
def test_identical_with_large_query_tiles(monkeypatch, rng, kernel, n_threads):
    """Tiles grow with the queries (up to 512 for one thread, 256 for two here, and a short
    last one), and the sub-blocks of keys shrink with them: the same results."""
    q = rng.standard_normal((1100, 7)).astype(np.float32)
    x = rng.standard_normal((2100, 7)).astype(np.float32)
    x[1500:1520] = x[:20]
    on, off, stats = both(monkeypatch, q, x, 20, metric="cosine", n_threads=n_threads)
    assert_identical(on, off)
    assert 0 < stats[1] < 1100 * 2100  # the pass ran and filtered


@needs_bf16
@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
@pytest.mark.parametrize("nq,nb,d,k", [(1, 1025, 3, 1), (97, 3001, 97, 10), (300, 9000, 64, 1000), (129, 2048, 1, 5)])
def test_identical_to_the_float32_path(monkeypatch, rng, kernel, metric, nq, nb, d, k):
    q = rng.standard_normal((nq, d)).astype(np.float32)
    x = rng.standard_normal((nb, d)).astype(np.float32)
    x[nb // 2 : nb // 2 + 50] = x[:50]  # exact duplicates, far apart (different key tiles)
    on, off, stats = both(monkeypatch, q, x, k, metric=metric)
    assert_identical(on, off)
    assert stats[0] == nq * nb  # the first pass ran, and scored every pair
    assert nq * k <= stats[1] < nq * nb  # and it re-scored at least the k best, not everything


@needs_bf16
def test_near_ties_and_bfloat16_collisions(monkeypatch, rng):
    """Keys that differ only below bfloat16's precision score identically in the first pass;
    only the float32 re-scoring can order them, and its order must be the exact path's."""
    d, nb = 16, 4096
    base = rng.standard_normal(d).astype(np.float32)
    x = np.repeat(base[None], nb, 0)
    x += (rng.integers(-3, 4, (nb, d)) * np.spacing(np.abs(base))).astype(np.float32)  # a few ulps apart
    q = np.vstack([base, -base, rng.standard_normal((30, d)).astype(np.float32)])
    for metric in ("ip", "cosine", "l2"):
        on, off, stats = both(monkeypatch, q, x, 7, metric=metric)
        assert_identical(on, off)
        assert stats[1] > 32 * 7  # near-ties: many candidates survive the bound


@needs_bf16
def test_huge_and_tiny_norms_float16_and_memmaps(monkeypatch, rng, tmp_path):
    d, nb = 24, 3000
    x = rng.standard_normal((nb, d)).astype(np.float32)
    x[::7] *= 1e18  # huge (their products stay finite in float32)
    x[1::7] *= 1e-30  # tiny: bfloat16 denormals are flushed; the bound's absolute part covers it
    x[2::7] = 0.0
    q = rng.standard_normal((200, d)).astype(np.float32)
    q[::3] *= 1e-20
    for metric in ("ip", "cosine"):
        on, off, _ = both(monkeypatch, q, x, 50, metric=metric)
        assert_identical(on, off)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float16, shape=(nb, d))
    mm[:] = rng.standard_normal((nb, d)).astype(np.float16)
    for metric in ("ip", "cosine", "l2"):
        on, off, _ = both(monkeypatch, q.astype(np.float16), mm, 20, metric=metric, block_rows=1100)
        assert_identical(on, off)


@needs_bf16
def test_class_conditioned(monkeypatch, rng):
    x = rng.standard_normal((6000, 32)).astype(np.float32)
    yx = rng.integers(0, 3, 6000)
    q = rng.standard_normal((260, 32)).astype(np.float32)
    yq = rng.integers(0, 3, 260)
    for metric in ("cosine", "l2"):
        on, off, stats = both(monkeypatch, q, x, 40, metric=metric, query_labels=yq, key_labels=yx)
        assert_identical(on, off)
        assert stats[0] > 0


def test_setting_is_checked_and_off_never_runs_the_first_pass(monkeypatch, rng):
    q = rng.standard_normal((20, 8)).astype(np.float32)
    x = rng.standard_normal((3000, 8)).astype(np.float32)
    for flag in ("off", "OFF "):
        monkeypatch.setenv("SIMATTR_PREFILTER", flag)
        cpu.reset_prefilter_stats()
        sa.topk(q, x, 5)
        assert cpu.prefilter_stats() == (0, 0)
    monkeypatch.setenv("SIMATTR_PREFILTER", "sometimes")
    with pytest.raises(ValueError, match="SIMATTR_PREFILTER: expected one of auto, on, off"):
        sa.topk(q, x, 5)


@needs_bf16
def test_auto_keeps_the_first_pass_only_where_candidates_are_few(monkeypatch, rng):
    """auto (the default) runs the first query tiles with the first pass and the rest with it
    only if they left few candidates; either way the result is the float32 path's."""
    monkeypatch.delenv("SIMATTR_PREFILTER", raising=False)
    nq, nb = 1100, 4096  # more queries than the probe (128 per thread, at most 2 threads here)
    q = rng.standard_normal((nq, 64)).astype(np.float32)
    x = rng.standard_normal((nb, 64)).astype(np.float32)
    probe, seen, density = 2 * 128, set(), cpu.PREFILTER_AUTO_DENSITY
    assert 0 < density < 0.1
    # Keys a hair apart score alike to bfloat16's precision: every pair is a candidate.
    close = (x[0] + 1e-3 * x).astype(np.float32)
    for k, keys in ((3, x), (40, close), (int(density * nb) + 1, x)):  # the last: not even probed
        cpu.reset_prefilter_stats()
        got = sa.topk(q, keys, k, n_threads=2)
        pairs, candidates = cpu.prefilter_stats()
        monkeypatch.setenv("SIMATTR_PREFILTER", "off")
        assert_identical(got, sa.topk(q, keys, k, n_threads=2))
        monkeypatch.delenv("SIMATTR_PREFILTER")
        if k > density * nb:
            assert pairs == 0
            seen.add("none")
        elif candidates > density * probe * nb:  # the probe left too many: the rest ran in float32
            assert pairs == probe * nb
            seen.add("probe")
        else:
            assert pairs == nq * nb and candidates <= density * pairs
            seen.add("all")
    assert seen == {"none", "probe", "all"}
