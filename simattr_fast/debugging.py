"""Fixing data with the embedding: near-duplicates and train-test leakage, and training images
whose label is probably wrong. Both come from exact cosine top-k over all classes, with the
package's own kernel, on the embeddings already made for attribution.

    dup = find_duplicates(train_embeddings, test_embeddings)   # groups, leaks, pairs
    scores = label_error_scores(train_embeddings, train_labels)  # higher: more suspicious
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

import numpy as np

from ._io import FileFormatError, write_json, write_text
from .label_errors import label_error_scores

__all__ = ["Duplicates", "default_threshold", "find_duplicates", "label_error_scores"]


@dataclass
class Duplicates:
    """Near-duplicate pairs at cosine similarity >= ``threshold``.

    ``train_pairs`` [p, 2] int64 (i < j, training indices) with ``train_similarity`` [p];
    ``leaks`` [q, 2] int64 (test index, training index) with ``leak_similarity`` [q];
    ``groups``: connected groups of training images (each sorted, largest first).
    """

    threshold: float
    train_pairs: np.ndarray
    train_similarity: np.ndarray
    leaks: np.ndarray
    leak_similarity: np.ndarray
    groups: list = field(default_factory=list)

    def to_json(self, path: str) -> str:
        """All of it as one JSON file, written atomically."""
        write_json(
            path,
            {
                "threshold": self.threshold,
                "groups": [list(map(int, g)) for g in self.groups],
                "train_pairs": [
                    [int(a), int(b), float(s)] for (a, b), s in zip(self.train_pairs, self.train_similarity)
                ],
                "leaks": [[int(t), int(j), float(s)] for (t, j), s in zip(self.leaks, self.leak_similarity)],
            },
        )
        return path

    @classmethod
    def from_json(cls, path: str) -> Duplicates:
        """Reads a file written by :meth:`to_json`; a damaged one is a FileFormatError."""
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
            groups = [[int(j) for j in g] for g in d["groups"]]
            pairs = np.array([p[:2] for p in d["train_pairs"]], np.int64).reshape(-1, 2)
            psim = np.array([p[2] for p in d["train_pairs"]], np.float32)
            leaks = np.array([p[:2] for p in d["leaks"]], np.int64).reshape(-1, 2)
            lsim = np.array([p[2] for p in d["leaks"]], np.float32)
            return cls(float(d["threshold"]), pairs, psim, leaks, lsim, groups)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise FileFormatError(f"duplicates: {path!r} is not a simattr duplicates file ({exc})") from None

    def to_csv(self, path: str) -> str:
        """One row per pair: kind (train or leak), a, b, similarity; written atomically."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["kind", "a", "b", "similarity"])
        for (a, b), s in zip(self.train_pairs, self.train_similarity):
            w.writerow(["train", int(a), int(b), f"{s:.6f}"])
        for (t, j), s in zip(self.leaks, self.leak_similarity):
            w.writerow(["leak", int(t), int(j), f"{s:.6f}"])
        write_text(path, buf.getvalue())
        return path


def default_threshold(nn_similarity: np.ndarray) -> float:
    """The default duplicate threshold: pairs at least ten times closer (in cosine distance)
    than the typical nearest neighbour, and never looser than cosine 0.95. Scale-free: it
    adapts to how spread out a data set's embeddings are."""
    dist = 1.0 - np.asarray(nn_similarity, np.float64)
    typical = float(np.median(dist)) if dist.size else 0.0
    return float(max(0.95, 1.0 - 0.1 * typical))


def find_duplicates(
    train, test=None, *, threshold: float | None = None, k: int = 10, n_threads=None, progress=None
) -> Duplicates:
    """Near-duplicate training images, and test images that leak from the training set.

    Parameters
    ----------
    train : array [n, d]
        Training embeddings (float32/float16; memmaps are streamed).
    test : array [m, d] or None, default None
        Test embeddings, checked for near-copies in the training set.
    threshold : float or None, default None
        Cosine similarity at or above which two images count as duplicates (None:
        :func:`default_threshold` of the training set's nearest-neighbour similarities).
    k : int, default 10
        Neighbours examined per image: a group larger than k + 1 is still found through
        its chains, but a pair beyond the k-th neighbour of both images is not.
    n_threads : int or None, default None
    progress : bool or None, default None

    Returns
    -------
    Duplicates

    Raises
    ------
    ValueError
        Bad shapes, thresholds outside (0, 1], k < 1.
    """
    from . import topk

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    if threshold is not None and not 0 < threshold <= 1:
        raise ValueError(f"threshold: expected a cosine similarity in (0, 1], got {threshold!r}")
    n = len(train)
    kk = min(k + 1, n)
    s, i = topk(train, train, kk, metric="cosine", n_threads=n_threads, progress=progress)
    # Drop each image itself (its own best match, or a tie with an exact copy of lower index).
    self_hit = i == np.arange(n)[:, None]
    s = np.where(self_hit, -np.inf, s)
    nn = np.max(s, axis=1) if kk > 1 else np.zeros(n)
    thr = default_threshold(nn[np.isfinite(nn)]) if threshold is None else float(threshold)
    rows, cols = np.nonzero(s >= thr)
    a, b = rows, i[rows, cols]
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], 1), axis=0) if len(a) else np.zeros((0, 2), int)
    sim = _cosine_pairs(train, train, pairs)
    leaks, leak_sim = np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    if test is not None and len(test):
        ts, ti = topk(test, train, min(k, n), metric="cosine", n_threads=n_threads, progress=progress)
        r, c = np.nonzero(ts >= thr)
        leaks = np.stack([r, ti[r, c]], 1).astype(np.int64)
        leak_sim = ts[r, c]
    return Duplicates(thr, pairs.astype(np.int64), sim, leaks, leak_sim, _groups(pairs))


def _cosine_pairs(x, y, pairs) -> np.ndarray:
    if not len(pairs):
        return np.zeros(0, np.float32)
    a = np.asarray(x[pairs[:, 0]], np.float64)
    b = np.asarray(y[pairs[:, 1]], np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (np.einsum("ij,ij->i", a, b) / np.where(den > 0, den, 1)).astype(np.float32)


def _groups(pairs: np.ndarray) -> list:
    """Connected components of the pair graph (union-find), largest first."""
    parent: dict = {}

    def find(u):
        while parent.setdefault(u, u) != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    for a, b in pairs.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    comps: dict = {}
    for u in list(parent):
        comps.setdefault(find(u), []).append(u)
    return sorted((sorted(g) for g in comps.values()), key=lambda g: (-len(g), g[0]))
