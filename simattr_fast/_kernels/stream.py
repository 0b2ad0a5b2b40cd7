"""Host-side streaming helpers shared by topk and esvm_topk: query preparation, key blocks
with bounded memory, class grouping and result padding."""

from __future__ import annotations

import numpy as np

from .._progress import progress_bar
from . import backend
from .arrays import release_pages


def first_bad_row(block: np.ndarray) -> int:
    """Index of the first row holding NaN/Inf, or -1. A float64 row sum of float16/32 values
    cannot overflow, so it is non-finite exactly when the row holds NaN or Inf."""
    sums = np.add.reduce(block, axis=1, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(sums))
    return int(bad[0]) if bad.size else -1


def check_finite(name: str, block: np.ndarray, row_offset: int, row_ids=None) -> None:
    """Raises naming the first bad row: row_offset + position, or row_ids[position]."""
    bad = first_bad_row(block)
    if bad >= 0:
        raise_nonfinite(name, bad, row_offset, row_ids)


def raise_nonfinite(name: str, bad: int, row_offset: int, row_ids=None):
    row = int(row_ids[bad]) if row_ids is not None else row_offset + bad
    raise ValueError(f"{name}: row {row} contains NaN or Inf; clean or drop it before ranking")


# Row norms above this make float32 scores overflow: |q.x| <= |q||x| and |x|^2 stay below
# FLT_MAX / 4 under it, so 2 q.x - |x|^2 (l2) and q.x (ip, exemplar SVMs) are finite.
MAX_ROW_NORM = float(np.sqrt(np.finfo(np.float32).max / 4))


def check_magnitude(name: str, x: np.ndarray, row_offset: int, row_ids=None) -> None:
    """Refuses rows whose norm would overflow float32 scores (computed in float64), naming
    the first such row. Cosine needs no check: its rows are normalised in float64."""
    check_sq_norms(name, np.einsum("ij,ij->i", x, x, dtype=np.float64), row_offset, row_ids)


def check_rows(name: str, x: np.ndarray, row_offset: int, row_ids=None) -> None:
    """check_finite and check_magnitude of float32 C-contiguous rows used as they are, in one
    threaded compiled pass (csrc/cpu/rows.h) instead of two single-threaded float64 NumPy
    passes (10% of an exemplar-SVM call in ImageNet's shape)."""
    sq = np.empty(x.shape[0], np.float64)
    bad = backend.cpu().row_sq_norms(np.ascontiguousarray(x, dtype=np.float32), sq)
    if bad >= 0:
        raise_nonfinite(name, bad, row_offset, row_ids)
    check_sq_norms(name, sq, row_offset, row_ids)


def check_sq_norms(name: str, sq: np.ndarray, row_offset: int = 0, row_ids=None) -> None:
    """check_magnitude on squared row norms already computed (float64)."""
    big = np.flatnonzero(sq > MAX_ROW_NORM**2)
    if big.size:
        row = int(row_ids[big[0]]) if row_ids is not None else row_offset + int(big[0])
        raise ValueError(
            f"{name}: row {row} has norm {np.sqrt(sq[big[0]]):.3g}, beyond the {MAX_ROW_NORM:.3g} that float32 "
            "scores can hold; rescale the embeddings (the ranking does not change) or use metric='cosine'"
        )


def normalize_rows(
    x: np.ndarray, out: np.ndarray | None = None, name: str = "normalize_rows", row_offset: int = 0, row_ids=None
) -> np.ndarray:
    """Unit-norm rows (float32), into `out` when given (may be x itself); all-zero rows stay
    zero, so their cosine is 0, not NaN. The compiled kernel (csrc/cpu/rows.h) does it, the one
    normalisation every CPU path shares, so a row gets the same values in RAM or streamed.
    A row holding NaN or Inf raises, named as in check_finite (`name`, `row_offset`, `row_ids`)."""
    xf = np.ascontiguousarray(x, dtype=np.float32 if x.dtype != np.float16 else np.float16)
    if out is None:
        out = np.empty(xf.shape, np.float32)
    bad = backend.cpu().prepare_rows(xf, out, True)
    if bad >= 0:
        raise_nonfinite(name, bad, row_offset, row_ids)
    return out


def prepare_rows(name: str, x: np.ndarray, row_offset: int, metric: str, row_ids=None) -> np.ndarray:
    """float32 C-contiguous copy or view of x, checked, normalised for cosine.
    Error messages count rows from row_offset, or name row_ids[i] when given."""
    xf = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        return normalize_rows(xf, name=name, row_offset=row_offset, row_ids=row_ids)
    check_rows(name, xf, row_offset, row_ids)
    return xf


def block_rows_for(dim: int, block_bytes: int) -> int:
    return max(1, block_bytes // (4 * dim))


def key_blocks(name: str, keys: np.ndarray, metric: str, block_rows: int, progress, desc: str):
    """Yields (start, float32 block) over keys, releasing memmap pages behind it.

    Memory held: one reused float32 buffer of block_rows x d (4 bytes each) when the keys
    need converting or normalising; float32 keys used as they are are not copied. The
    buffer is reused: a yielded block is only valid until the next one is requested.
    """
    n, d = keys.shape
    starts = range(0, n, block_rows)
    copy = metric == "cosine" or keys.dtype != np.float32
    buf = np.empty((min(block_rows, n), d), np.float32) if copy else None
    for s in progress_bar(starts, desc=desc, unit="block", progress=progress, min_items=2):
        raw = keys[s : s + block_rows]
        if copy:
            # One threaded pass converts, checks and normalises (csrc/cpu/rows.h); other
            # dtypes are first cast into the buffer and prepared there in place.
            kb = buf[: raw.shape[0]]
            src = raw if raw.dtype in (np.float16, np.float32) and raw.flags.c_contiguous else kb
            if src is kb:
                np.copyto(kb, raw)
            bad = backend.cpu().prepare_rows(src, kb, metric == "cosine")
            if bad >= 0:
                raise_nonfinite(name, bad, s)
        else:
            kb = raw
        if metric != "cosine":
            check_rows(name, kb, s)
        yield s, kb
        release_pages(raw)


class ClassGroups:
    """Queries grouped by label: `order` permutes queries so each class is one row range."""

    def __init__(self, labels: np.ndarray):
        self.order = np.argsort(labels, kind="stable")
        sorted_labels = labels[self.order]
        self.classes, starts, counts = np.unique(sorted_labels, return_index=True, return_counts=True)
        self.ranges = {int(c): (int(s), int(s + n)) for c, s, n in zip(self.classes, starts, counts)}


def padded(nq: int, k: int, scores: np.ndarray, ids: np.ndarray):
    """[nq, k] outputs (score NaN, id -1 where empty) holding `scores`/`ids` in their first
    columns."""
    kk = scores.shape[1]
    if kk == k:
        return scores, ids  # already full width: no copy
    out_s = np.full((nq, k), np.nan, dtype=np.float32)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    out_s[:, :kk] = scores
    out_i[:, :kk] = ids
    return out_s, out_i
