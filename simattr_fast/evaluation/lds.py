"""Linear datamodeling score (docs/architecture.md, section 4).

``S`` random subsets hold a fraction ``alpha`` of the training set each; ``R`` models
(``models_per_subset``) are trained on every subset and their correct-class margins on each test
image are averaged, the convention of Kronfluence and dattri, which removes most of the seed noise
that otherwise swamps the correlation. Every model's margin is stored (criterion ``lds``, ``m`` =
subset number, method ``subsets``). For a test image and an attribution, the LDS is the Spearman
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


def subset_seeds(s: int, models_per_subset: int = 1, seed: int = 0) -> list[int]:
    """The seeds of subset s's models (shared by every engine, so a store can be resumed by any;
    the first is the same for every ``models_per_subset``, so a store can grow)."""
    if models_per_subset < 1:
        raise ValueError(f"models_per_subset: expected at least 1, got {models_per_subset}")
    return [model_seed(-2, "subsets", "lds", s, seed + 7919 * r) for r in range(models_per_subset)]


def missing_seeds(store, test_ids, s: int, seeds) -> list[int]:
    """The seeds of subset s with a margin missing for any of ``test_ids``."""
    have = [store.get(int(t), "subsets", "lds", s) for t in test_ids]
    return [q for q in seeds if any(h.get(q) is None for h in have)]


def stored_subset_margins(store, test_ids, n_subsets, models_per_subset, seed) -> np.ndarray:
    """Margins ``[n_subsets, len(test_ids)]``, each the mean over the subset's models."""
    out = np.empty((n_subsets, len(test_ids)))
    for s in range(n_subsets):
        seeds = subset_seeds(s, models_per_subset, seed)
        for j, t in enumerate(test_ids):
            got = store.get(int(t), "subsets", "lds", s)
            out[s, j] = np.mean([got[q][1] for q in seeds])
    return out


def subset_margins(
    trainer,
    store,
    test_ids,
    n_subsets: int = 50,
    alpha: float = 0.5,
    seed: int = 0,
    progress=None,
    models_per_subset: int = 1,
) -> np.ndarray:
    """Margins ``[n_subsets, len(test_ids)]``, averaged over ``models_per_subset`` models per
    subset (trained only where the store lacks them, together; each model's margins are stored
    as soon as it is evaluated)."""
    test_ids = np.asarray(test_ids, np.int64)
    masks = subset_masks(len(trainer.y_train), n_subsets, alpha, seed)
    for s in progress_bar(range(n_subsets), desc="lds subsets", unit="subset", progress=progress):
        todo = missing_seeds(store, test_ids, s, subset_seeds(s, models_per_subset, seed))
        if todo:
            train_and_record(
                trainer, store, np.flatnonzero(masks[s]), trainer.y_train, todo, test_ids, "subsets", "lds", s
            )
    return stored_subset_margins(store, test_ids, n_subsets, models_per_subset, seed)


def lds(
    attribution, masks: np.ndarray, subset_margins_: np.ndarray, test_rows=None, n_boot: int = 2000, centre=False
) -> dict:
    """LDS per test image and its mean with a 95% bootstrap interval over test images
    (percentile, ``n_boot`` resamples, seed 0). ``masks`` ``[S, n_train]``, ``subset_margins_``
    ``[S, n]`` for the attribution rows ``test_rows`` (default: all).

    ``centre=True`` subtracts each row's mean score first. A ranking over part of the training
    set (top-k, or one class) has an arbitrary offset that LDS would otherwise read as the
    effect of *how many* ranked images a subset holds: an exemplar SVM's decision values are
    mostly negative, so raw sums fall as more same-class images are present. A ranking over
    the whole training set is unchanged by centring (every subset holds the same number)."""
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
        if centre and len(sc):
            sc = sc - sc.mean()
        predicted = masks[:, idx].astype(np.float64) @ sc
        rho = stats.spearmanr(predicted, subset_margins_[:, j]).statistic
        per.append(float(rho) if np.isfinite(rho) else 0.0)
    per = np.array(per)
    return {
        "lds": float(per.mean()),
        "ci95": bootstrap_ci(per, n_boot),
        "per_test": per.tolist(),
        "n_subsets": int(masks.shape[0]),
    }


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of the mean of ``values`` (NaN when fewer than two)."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]
