"""Linear datamodeling score (docs/architecture.md, section 4).

``S`` models are trained on random subsets holding a fraction ``alpha`` of the training set;
each model's correct-class margin on each test image is stored (criterion ``lds``, ``m`` = subset
number, method ``subsets``). For a test image and an attribution, the LDS is the Spearman
correlation over the subsets between those margins and the summed attribution scores of the
training images each subset holds (images outside the attribution's top-k count zero). The
subset models are shared by every method scored on the same store.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .._progress import progress_bar
from .support import model_seed, train_and_record


def subset_masks(n_train: int, n_subsets: int, alpha: float, seed: int = 0) -> np.ndarray:
    """bool ``[n_subsets, n_train]``: subset s holds ``round(alpha * n_train)`` images."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a fraction in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    size = int(round(alpha * n_train))
    masks = np.zeros((n_subsets, n_train), bool)
    for s in range(n_subsets):
        masks[s, rng.choice(n_train, size, replace=False)] = True
    return masks


def subset_seed(s: int, seed: int = 0) -> int:
    """The seed of subset s's model (shared by every engine, so a store can be resumed by any)."""
    return model_seed(-2, "subsets", "lds", s, seed)


def subset_margins(
    trainer, store, test_ids, n_subsets: int = 50, alpha: float = 0.5, seed: int = 0, progress=None
) -> np.ndarray:
    """Margins ``[n_subsets, len(test_ids)]`` of one model per subset (trained only where the
    store lacks them; each model's margins are stored as soon as it is evaluated)."""
    test_ids = np.asarray(test_ids, np.int64)
    masks = subset_masks(len(trainer.y_train), n_subsets, alpha, seed)
    out = np.full((n_subsets, len(test_ids)), np.nan)
    for s in progress_bar(range(n_subsets), desc="lds subsets", unit="subset", progress=progress):
        mseed = subset_seed(s, seed)
        have = [store.get(int(t), "subsets", "lds", s).get(mseed) for t in test_ids]
        if any(v is None for v in have):
            _, mg, _ = train_and_record(
                trainer, store, np.flatnonzero(masks[s]), trainer.y_train, [mseed], test_ids, "subsets", "lds", s
            )
            out[s] = mg[0]
        else:
            out[s] = [g for _, g in have]
    return out


def lds(attribution, masks: np.ndarray, subset_margins_: np.ndarray, test_rows=None) -> dict:
    """LDS per test image and its mean with a 95% t-interval. ``masks`` ``[S, n_train]``,
    ``subset_margins_`` ``[S, n]`` for the attribution rows ``test_rows`` (default: all)."""
    rows = np.arange(len(attribution)) if test_rows is None else np.asarray(test_rows)
    if subset_margins_.shape != (masks.shape[0], len(rows)):
        raise ValueError(f"subset_margins: expected shape {(masks.shape[0], len(rows))}, got {subset_margins_.shape}")
    per = []
    for j, r in enumerate(rows):
        idx, sc = attribution.indices[r], attribution.scores[r]
        keep = idx >= 0
        idx, sc = idx[keep], sc[keep]
        if np.isnan(sc).any():  # a bare ranking (imported top-k matrix): score by rank, best = k
            sc = np.arange(len(idx), 0, -1, dtype=np.float64)
        if not attribution.params.get("higher_is_better", True):
            sc = -sc
        predicted = masks[:, idx].astype(np.float64) @ sc
        rho = stats.spearmanr(predicted, subset_margins_[:, j]).statistic
        per.append(float(rho) if np.isfinite(rho) else 0.0)
    per = np.array(per)
    mean = float(per.mean())
    half = float(stats.t.ppf(0.975, len(per) - 1) * per.std(ddof=1) / np.sqrt(len(per))) if len(per) > 1 else np.nan
    return {"lds": mean, "ci95": [mean - half, mean + half], "per_test": per.tolist(), "n_subsets": int(masks.shape[0])}
