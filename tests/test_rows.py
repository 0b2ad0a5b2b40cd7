"""The compiled row preparation (csrc/cpu/rows.h: float16/float32 to float32, the NaN/Inf
check, cosine normalisation in one threaded pass) against plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from simattr_fast._kernels import backend
from simattr_fast._kernels.stream import check_rows, key_blocks, normalize_rows

cpu = backend.cpu()


def numpy_normalized(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64)).astype(np.float32)
    norms[norms == 0] = 1.0
    return x / norms[:, None]


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("n,d", [(1, 1), (3, 97), (97, 1025), (1025, 3)])
def test_matches_numpy(rng, dtype, n, d):
    x = (rng.standard_normal((n, d)) * rng.choice([1e-3, 1.0, 30.0], (n, 1))).astype(dtype)
    x[n // 2] = 0  # a zero row stays zero
    out = np.empty((n, d), np.float32)
    assert cpu.prepare_rows(x, out, False) == -1
    np.testing.assert_array_equal(out, x.astype(np.float32))  # float16 -> float32 is exact
    assert cpu.prepare_rows(x, out, True) == -1
    ref = numpy_normalized(x)
    assert ulps(out, ref).max() <= 1  # only the order of the double sum of squares differs
    assert (ulps(out, ref) == 0).mean() > 0.99
    assert not out[n // 2].any()


def test_float16_subnormals_and_extremes():
    bits = np.arange(0, 1 << 16, dtype=np.uint16)
    finite = ((bits >> 10) & 0x1F) != 0x1F
    x = bits[finite].view(np.float16).reshape(-1, 1)  # every finite float16, zeros and subnormals too
    out = np.empty(x.shape, np.float32)
    assert cpu.prepare_rows(x, out, False) == -1
    np.testing.assert_array_equal(out, x.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_first_nonfinite_row_is_named(rng, dtype):
    x = rng.standard_normal((300, 17)).astype(dtype)
    x[250, 3], x[120, 0], x[200, 16] = np.inf, np.nan, -np.inf
    out = np.empty(x.shape, np.float32)
    for normalize in (False, True):
        assert cpu.prepare_rows(x, out, normalize, n_threads=2) == 120


def test_in_place_memmap_and_threads(tmp_path, rng):
    x = rng.standard_normal((1025, 97)).astype(np.float16)
    path = tmp_path / "keys.npy"
    np.save(path, x)
    mm = np.load(path, mmap_mode="r")
    one, two = np.empty((1025, 97), np.float32), np.empty((1025, 97), np.float32)
    cpu.prepare_rows(mm, one, True, n_threads=1)
    cpu.prepare_rows(mm, two, True, n_threads=2)
    np.testing.assert_array_equal(one, two)
    y = x.astype(np.float32)
    cpu.prepare_rows(y, y, True)  # in place
    np.testing.assert_array_equal(y, one)
    # The streamed blocks are the same rows as normalising everything at once.
    blocks = np.vstack([kb.copy() for _, kb in key_blocks("keys", mm, "cosine", 100, False, "t")])
    np.testing.assert_array_equal(blocks, normalize_rows(x))


def test_bad_input_is_refused(rng):
    out = np.empty((4, 3), np.float32)
    with pytest.raises(ValueError, match="float16 or float32"):
        cpu.prepare_rows(np.zeros((4, 3)), out, True)
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu.prepare_rows(np.zeros((3, 4), np.float32).T, out, True)
    with pytest.raises(ValueError, match="shape mismatch"):
        cpu.prepare_rows(np.zeros((4, 2), np.float32), out, True)
    with pytest.raises(ValueError, match="keys: row 7 contains NaN or Inf"):
        x = rng.standard_normal((10, 3)).astype(np.float16)
        x[7, 1] = np.nan
        list(key_blocks("keys", x, "cosine", 4, False, "t"))


@pytest.mark.parametrize("n,d", [(1, 1), (3, 97), (97, 1025), (1025, 3)])
def test_row_sq_norms_match_numpy(rng, n, d):
    x = (rng.standard_normal((n, d)) * rng.choice([1e-20, 1.0, 1e18], (n, 1))).astype(np.float32)
    x[n // 2] = 0
    sq = np.full(n, -1.0)
    assert cpu.row_sq_norms(x, sq) == -1
    ref = np.einsum("ij,ij->i", x.astype(np.float64), x.astype(np.float64))
    np.testing.assert_allclose(sq, ref, rtol=1e-13, atol=0)  # only the order of the sum differs
    assert sq[n // 2] == 0.0


def test_row_sq_norms_name_the_first_nonfinite_row_on_any_thread_count(tmp_path, rng):
    x = rng.standard_normal((1025, 17)).astype(np.float32)
    x[900, 3], x[130, 0], x[600, 16] = np.inf, np.nan, -np.inf
    path = tmp_path / "rows.npy"
    np.save(path, x)
    for src in (x, np.load(path, mmap_mode="r")):
        for nt in (1, 2):
            assert cpu.row_sq_norms(src, np.empty(1025), n_threads=nt) == 130
    with pytest.raises(ValueError, match="one value per row"):
        cpu.row_sq_norms(x, np.empty(1024))
    with pytest.raises(TypeError):
        cpu.row_sq_norms(x.astype(np.float16), np.empty(1025))


def test_check_rows_refuses_nonfinite_and_huge_rows_by_their_ids(rng):
    x = rng.standard_normal((20, 5)).astype(np.float32)
    check_rows("keys", x, 0)  # fine rows pass
    x[4, 2] = np.nan
    with pytest.raises(ValueError, match="keys: row 104 contains NaN or Inf"):
        check_rows("keys", x, 100)
    x[4, 2] = 0
    x[9, 0] = 1e30  # finite, but its scores would overflow float32
    with pytest.raises(ValueError, match="keys: row 77 has norm 1e\\+30"):
        check_rows("keys", x, 0, row_ids=np.arange(68, 88))
    check_rows("keys", x[:, ::2][:9], 0)  # a strided view is checked too
