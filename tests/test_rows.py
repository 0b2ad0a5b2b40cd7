"""The compiled row preparation (csrc/cpu/rows.h: float16/float32 to float32, the NaN/Inf
check, cosine normalisation in one threaded pass) against plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from simattr_fast._kernels import backend
from simattr_fast._kernels.stream import key_blocks, normalize_rows

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
