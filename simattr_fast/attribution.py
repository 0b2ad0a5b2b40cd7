"""Attribution results: rankings of training images per test image, with their provenance.

File format (``Attribution.save``; version 1): an uncompressed NumPy ``.npz`` holding

============== ===================== ==================================================
``indices``    int64 ``[n_test, k]``  global training indices, best first; -1 pads rows
                                      whose pool has fewer than k images
``scores``     float32 ``[n_test, k]`` the method's scores (NaN where unknown or padded)
``test_ids``   int64 ``[n_test]``     row i is about test image ``test_ids[i]``
``test_labels`` / ``predicted_labels`` int64 ``[n_test]``, when known; ``opponent_indices`` /
``opponent_scores`` ``[n_test, k]`` and ``opponent_labels`` ``[n_test]``, when opponents were
ranked
``meta``       0-d string             JSON: ``format`` ("simattr-attribution"),
                                      ``version``, ``params`` (method, k, condition,
                                      ``higher_is_better``, solver settings),
                                      ``provenance`` (embedding metadata, versions),
                                      ``checksums`` (SHA-256 of every array)
============== ===================== ==================================================

It is written to a temporary name and renamed, so a crash never leaves half a file under the
real name; on load the format, version, shapes and checksums are verified and a file that fails
any of them is refused. Interop: :meth:`Attribution.to_topk_matrix` / :meth:`from_topk_matrix`
(the reference work's ``[n_test, k]`` int64 ``.npy``) and :meth:`from_scores` (dense score
matrices, TRAK's ``[n_train, n_test]`` or ``[n_test, n_train]``).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ._io import atomic_write, write_npy

FORMAT = "simattr-attribution"
VERSION = 1
_OPTIONAL = ("test_labels", "predicted_labels", "opponent_labels")
_OPPONENTS = ("opponent_indices", "opponent_scores")


def _checksum(a: np.ndarray) -> str:
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@dataclass
class Attribution:
    """The top-k training images of each test image, with how and from what they were made.

    Parameters
    ----------
    indices : int array [n_test, k]
        Global training indices, best first; -1 pads short rows.
    scores : float array [n_test, k]
        The ranking's scores (NaN where unknown or padded).
    test_ids : int array [n_test]
        Which test image each row is.
    params : dict
        How the ranking was made (method, k, condition, ``higher_is_better``, solver settings).
    provenance : dict
        From what: the embedding metadata of both sides, versions, time.
    test_labels, predicted_labels : int arrays [n_test] or None
    opponent_indices, opponent_scores : arrays [n_test, k] or None
        The opponents: the top training images of each test image's competing class
        (``opponent_labels``: the predicted class when the model is wrong, else its runner-up),
        ranked the same way as the supporters.
    opponent_labels : int array [n_test] or None

    Notes
    -----
    :meth:`save` / :meth:`load` use one checksummed ``.npz`` (format ``simattr-attribution``
    version 1); :meth:`to_topk_matrix` / :meth:`from_topk_matrix` the reference ``[n_test, k]``
    int64 ``.npy``; :meth:`from_scores` imports dense score matrices such as TRAK's.

    Examples
    --------
    >>> import numpy as np
    >>> from simattr_fast import Attribution
    >>> a = Attribution(np.array([[3, 1, -1]]), np.array([[0.9, 0.5, np.nan]]), test_ids=np.array([7]))
    >>> a.ranking(7)
    array([3, 1])
    """

    indices: np.ndarray
    scores: np.ndarray
    test_ids: np.ndarray
    params: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    test_labels: np.ndarray | None = None
    predicted_labels: np.ndarray | None = None
    opponent_indices: np.ndarray | None = None
    opponent_scores: np.ndarray | None = None
    opponent_labels: np.ndarray | None = None

    def __post_init__(self):
        self.indices = np.asarray(self.indices)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.test_ids = np.asarray(self.test_ids)
        if self.indices.ndim != 2 or not np.issubdtype(self.indices.dtype, np.integer):
            raise ValueError(
                f"indices: expected a 2-D integer array [n_test, k], got {self.indices.ndim}-D {self.indices.dtype}"
            )
        self.indices = self.indices.astype(np.int64, copy=False)
        if self.scores.shape != self.indices.shape:
            raise ValueError(f"scores: expected shape {self.indices.shape} like indices, got {self.scores.shape}")
        if self.test_ids.shape != (len(self.indices),):
            raise ValueError(f"test_ids: expected shape ({len(self.indices)},), got {self.test_ids.shape}")
        self.test_ids = self.test_ids.astype(np.int64, copy=False)
        if self.indices.size and self.indices.min() < -1:
            raise ValueError(f"indices: expected training indices >= 0 (or -1 for padding), got {self.indices.min()}")
        for name in _OPTIONAL:
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v).astype(np.int64)
                if v.shape != self.test_ids.shape:
                    raise ValueError(f"{name}: expected shape {self.test_ids.shape}, got {v.shape}")
                setattr(self, name, v)
        given = [n for n in (*_OPPONENTS, "opponent_labels") if getattr(self, n) is not None]
        if given and len(given) != 3:
            raise ValueError("opponent_indices, opponent_scores, opponent_labels: expected all three or none")
        if given:
            self.opponent_indices = np.asarray(self.opponent_indices).astype(np.int64)
            self.opponent_scores = np.asarray(self.opponent_scores, dtype=np.float32)
            if self.opponent_indices.ndim != 2 or len(self.opponent_indices) != len(self.test_ids):
                raise ValueError(f"opponent_indices: expected [n_test, k'], got {self.opponent_indices.shape}")
            if self.opponent_scores.shape != self.opponent_indices.shape:
                raise ValueError(
                    f"opponent_scores: expected shape {self.opponent_indices.shape}, got {self.opponent_scores.shape}"
                )

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def __len__(self):
        return len(self.test_ids)

    def __repr__(self):
        p = self.params
        return (
            f"Attribution(n_test={len(self)}, k={self.k}, method={p.get('method')!r}, condition={p.get('condition')!r})"
        )

    def ranking(self, test_id: int) -> np.ndarray:
        """The ranked training indices of one test image (padding removed)."""
        row = np.flatnonzero(self.test_ids == test_id)
        if len(row) == 0:
            raise LookupError(f"test_id: {test_id} is not among this attribution's test images")
        r = self.indices[row[0]]
        return r[r >= 0]

    # ---- native format -------------------------------------------------------------------
    def save(self, path: str) -> str:
        """Writes the versioned, checksummed ``.npz`` described in the module docstring."""
        arrays = {"indices": self.indices, "scores": self.scores, "test_ids": self.test_ids}
        arrays.update({n: getattr(self, n) for n in (*_OPTIONAL, *_OPPONENTS) if getattr(self, n) is not None})
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "params": self.params,
            "provenance": self.provenance,
            "checksums": {n: _checksum(a) for n, a in arrays.items()},
        }
        with atomic_write(path, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: str) -> Attribution:
        """Reads a file written by :meth:`save`; refuses a corrupt, truncated or foreign one."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"attribution: no file at {path!r}")
        bad = f"attribution: {path!r} is corrupt or truncated"
        try:
            # The file is opened here, not by np.load, so that it is closed on every error.
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                if "meta" not in z.files:
                    raise ValueError(f"attribution: {path!r} is not a simattr attribution file (no 'meta' entry)")
                meta = json.loads(str(z["meta"]))
                arrays = {n: z[n] for n in z.files if n != "meta"}
        except (zipfile.BadZipFile, EOFError, OSError, json.JSONDecodeError, KeyError) as exc:
            raise ValueError(f"{bad} ({type(exc).__name__}: {exc}); refusing to use it") from None
        except ValueError as exc:
            if str(exc).startswith("attribution:"):
                raise
            raise ValueError(f"{bad} ({exc}); refusing to use it") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"attribution: {path!r} is not a simattr attribution file")
        if meta.get("version") != VERSION:
            raise ValueError(
                f"attribution: {path!r} has format version {meta.get('version')}, this "
                f"simattr_fast reads version {VERSION}"
            )
        # The checksums cover the arrays, not the metadata: its types are checked here, and its
        # values are treated as untrusted text wherever they are shown.
        for key in ("params", "provenance", "checksums"):
            if not isinstance(meta.get(key), dict):
                raise ValueError(
                    f"{bad}: metadata entry {key!r} must be a JSON object, got {type(meta.get(key)).__name__}"
                )
        sums = meta["checksums"]
        if set(sums) != set(arrays):
            raise ValueError(f"{bad}: arrays {sorted(arrays)} do not match the recorded {sorted(sums)}")
        for n, a in arrays.items():
            if _checksum(a) != sums[n]:
                raise ValueError(f"{bad}: checksum of {n!r} does not match; refusing to use it")
        return cls(params=meta["params"], provenance=meta["provenance"], **arrays)

    # ---- interop ---------------------------------------------------------------------------
    def to_topk_matrix(self, path: str) -> str:
        """The reference work's format: ``[n_test, k]`` int64 ``.npy``, row i = test image
        ``test_ids[i]`` (keep the ids: the file stores only the matrix), -1 padding. Writes
        exactly ``path`` (no ``.npy`` is appended), atomically."""
        write_npy(path, self.indices)
        return path

    @classmethod
    def from_topk_matrix(cls, path_or_array, test_ids=None, method: str = "imported") -> Attribution:
        """A ranking from a ``[n_test, k]`` integer matrix (a ``.npy`` path or an array); scores
        are unknown (NaN); ``test_ids`` default to 0..n_test-1."""
        m = (
            np.load(path_or_array, allow_pickle=False)
            if isinstance(path_or_array, (str, os.PathLike))
            else np.asarray(path_or_array)
        )
        if m.ndim != 2 or not np.issubdtype(m.dtype, np.integer):
            raise ValueError(f"topk matrix: expected a 2-D integer array [n_test, k], got {m.ndim}-D {m.dtype}")
        ids = np.arange(len(m)) if test_ids is None else test_ids
        return cls(
            m,
            np.full(m.shape, np.nan, np.float32),
            ids,
            params={"method": method, "k": int(m.shape[1]), "higher_is_better": True, "source": "topk matrix"},
        )

    @classmethod
    def from_scores(
        cls,
        scores,
        layout: str,
        k: int | None = None,
        train_labels=None,
        test_labels=None,
        test_ids=None,
        method: str = "imported",
        block: int = 256,
    ) -> Attribution:
        """Rankings from a dense score matrix (higher = more important): ``layout="train_test"``
        for ``[n_train, n_test]`` (TRAK's), ``"test_train"`` for ``[n_test, n_train]``. With
        ``train_labels`` and ``test_labels`` each test image ranks only its class. Ties go to the
        lower training index. ``k`` defaults to the full ranking. Read in blocks of test images,
        so a memmapped matrix is never loaded whole."""
        from ._kernels.validate import check_k

        s = np.load(scores, mmap_mode="r") if isinstance(scores, (str, os.PathLike)) else scores
        if layout not in ("train_test", "test_train"):
            raise ValueError(f"layout: expected 'train_test' ([n_train, n_test], TRAK) or 'test_train', got {layout!r}")
        if getattr(s, "ndim", 0) != 2:
            raise ValueError(f"scores: expected a 2-D matrix, got shape {getattr(s, 'shape', None)}")
        n_train, n_test = s.shape if layout == "train_test" else s.shape[::-1]
        k = n_train if k is None else min(check_k(k), n_train)
        conditioned = train_labels is not None and test_labels is not None
        if conditioned:
            train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
            if train_labels.shape != (n_train,) or test_labels.shape != (n_test,):
                raise ValueError(
                    f"train_labels/test_labels: expected shapes ({n_train},) and ({n_test},), "
                    f"got {train_labels.shape} and {test_labels.shape}"
                )
        idx = np.full((n_test, k), -1, np.int64)
        val = np.full((n_test, k), np.nan, np.float32)
        for j0 in range(0, n_test, block):
            j1 = min(n_test, j0 + block)
            b = np.asarray(s[:, j0:j1]).T if layout == "train_test" else np.asarray(s[j0:j1])
            b = b.astype(np.float64)
            if np.isnan(b).any():
                raise ValueError(f"scores: NaN for test image {j0 + int(np.isnan(b).any(1).argmax())}")
            if conditioned:
                b[train_labels[None, :] != test_labels[j0:j1, None]] = -np.inf
            order = np.argsort(-b, axis=1, kind="stable")[:, :k]
            top = np.take_along_axis(b, order, axis=1)
            keep = top > -np.inf  # -inf marks other classes' images
            idx[j0:j1] = np.where(keep, order, -1)
            val[j0:j1] = np.where(keep, top, np.nan)
        ids = np.arange(n_test) if test_ids is None else test_ids
        return cls(
            idx,
            val,
            ids,
            test_labels=test_labels if conditioned else None,
            params={
                "method": method,
                "k": int(k),
                "higher_is_better": True,
                "source": f"scores ({layout})",
                "condition": "true" if conditioned else "none",
            },
        )
