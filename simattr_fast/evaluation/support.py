"""Data removal support and data mislabel support (docs/architecture.md, section 4).

For a test image and a ranking ``L`` of its training images: the smallest ``m`` such that models
trained without ``L[:m]`` (removal) or with ``L[:m]`` relabelled to the flip class (mislabel)
misclassify it. "Misclassify" is decided by ``M`` models with fresh seeds: flipped when the
fraction that still predict the true label is ``<= 0.5``. Search: try ``m = k`` first; if that
does not flip, the support is censored (stored as -1, read ">k"); otherwise bisect on
``[0, k]`` for ``budget`` steps, keeping the smallest ``m`` that flipped.

Every model's outcome goes to the :class:`ResultsStore` the moment it is known and is read
back instead of retrained, so a search resumes after a kill without redoing anything.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from .units import outcomes

CENSORED = -1


def model_seed(test_id: int, method: str, criterion: str, m: int, j: int) -> int:
    """A fresh, reproducible seed per model: the j-th model of step m of one search."""
    h = hashlib.sha256(f"{test_id}/{method}/{criterion}/{m}/{j}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def train_and_record(trainer, store, train_set, labels, seeds, test_ids, method, criterion, m):
    """Trains one model per seed on ``train_set`` (all at once), evaluates them on
    ``test_ids`` and stores every (model, test image) outcome. Returns logits ``[M, n, C]``,
    margins and correctness ``[M, n]``."""
    test_ids = [int(t) for t in test_ids]
    t0 = time.perf_counter()
    lg = trainer.logits(trainer.train(train_set, labels, seeds), test_ids)
    wall = (time.perf_counter() - t0) / len(seeds)
    mg, correct, rows = outcomes(trainer, lg, seeds, test_ids, wall)
    store.add_many([(t, method, criterion, m, s, c, g, w) for t, s, c, g, w in rows])
    return lg, mg, correct


def evaluate_step(trainer, store, test_id, method, criterion, m, n_models, train_set, labels):
    """Trains the step's missing models (all at once), stores each outcome; returns the
    fraction of the ``n_models`` models that classify the test image correctly."""
    have = store.get(test_id, method, criterion, m)
    seeds = [model_seed(test_id, method, criterion, m, j) for j in range(n_models)]
    todo = [s for s in seeds if s not in have]
    if todo:
        _, mg, correct = train_and_record(trainer, store, train_set, labels, todo, [test_id], method, criterion, m)
        have.update({s: (bool(c), g) for s, c, g in zip(todo, correct[:, 0], mg[:, 0])})
    return float(np.mean([have[s][0] for s in seeds]))


def check_ranking_range(ranking, n_train: int, what: str) -> None:
    """Refuses training indices the trainer does not have: removing them would remove nothing
    (and still report a support), relabelling them would fail mid-run."""
    ranking = np.asarray(ranking)
    if ranking.size and int(ranking.max()) >= n_train:
        raise ValueError(
            f"{what}: ranks training index {int(ranking.max())}, but the trainer has {n_train} training images; "
            "evaluate with the training set the attribution was made on (check --n-train)"
        )


def support(
    trainer,
    store,
    test_id: int,
    ranking,
    method: str,
    criterion: str = "removal",
    k: int = 1280,
    n_models: int = 5,
    budget: int = 7,
    flip_class: int | None = None,
    train_ids=None,
) -> int:
    """Removal (``criterion="removal"``) or mislabel (``"mislabel"``, needs ``flip_class``)
    support of test image ``test_id`` for ``ranking`` (training indices, best first; -1
    padding ignored). Returns the smallest flipping ``m`` found, or ``CENSORED`` (-1)."""
    if criterion not in ("removal", "mislabel"):
        raise ValueError(f"criterion: expected 'removal' or 'mislabel', got {criterion!r}")
    if criterion == "mislabel" and flip_class is None:
        raise ValueError("flip_class: mislabel support needs the class to relabel to (see flip_classes)")
    for name, v in (("k", k), ("n_models", n_models), ("budget", budget)):
        if int(v) <= 0:
            raise ValueError(f"{name}: expected a positive integer, got {v}")
    ranking = np.asarray(ranking, np.int64)
    ranking = ranking[ranking >= 0][:k]
    check_ranking_range(ranking, len(trainer.y_train), f"ranking of test image {test_id} ({method})")
    all_ids = np.arange(len(trainer.y_train)) if train_ids is None else np.asarray(train_ids, np.int64)
    k = min(k, len(ranking))
    if k == 0:
        return CENSORED

    def flipped(m: int) -> bool:
        top = ranking[:m]
        labels = trainer.y_train
        if criterion == "removal":
            train_set = np.setdiff1d(all_ids, top, assume_unique=True)
        else:
            train_set, labels = all_ids, labels.copy()
            labels[top] = flip_class
        frac = evaluate_step(trainer, store, test_id, method, criterion, m, n_models, train_set, labels)
        return frac <= 0.5

    if not flipped(k):
        return CENSORED
    lo, hi = 0, k  # invariant: hi flips; lo is taken not to (the unmodified model is right)
    for _ in range(budget):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        if flipped(mid):
            hi = mid
        else:
            lo = mid
    return hi


def flip_classes(trainer, store, test_ids, n_models: int = 5) -> dict:
    """The flip class of each test image: the highest-ranked wrong class in the averaged
    softmax of ``n_models`` models trained on the full data (stored as criterion ``flipclass``)."""
    test_ids = [int(t) for t in test_ids]
    lg, _, _ = train_and_record(
        trainer,
        store,
        np.arange(len(trainer.y_train)),
        trainer.y_train,
        ensemble_seeds(n_models),
        test_ids,
        "full",
        "flipclass",
        0,
    )
    return flip_classes_from_logits(lg, trainer.y_test, test_ids)


def ensemble_seeds(n_models: int) -> list[int]:
    """The seeds of the full-data ensemble that picks the flip classes."""
    return [model_seed(-1, "full", "flipclass", 0, j) for j in range(n_models)]


def flip_classes_from_logits(logits, y_test, test_ids) -> dict:
    """``{test_id: flip class}`` from the ensemble's logits ``[M, n, C]``: the competing class
    of the averaged softmax (the highest-ranked wrong class)."""
    from ..attributor import competing_labels

    lg = np.asarray(logits, dtype=np.float64)
    p = np.exp(lg - lg.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    comp = competing_labels(p.mean(0), np.asarray(y_test)[test_ids])
    return {t: int(c) for t, c in zip(test_ids, comp)}


def random_attribution(train_labels, test_labels, test_ids, k: int, seed: int = 0):
    """The baseline ranking: ``k`` training images of the test image's class in random order."""
    from ..attribution import Attribution

    rng = np.random.default_rng(seed)
    train_labels = np.asarray(train_labels)
    idx = np.full((len(test_ids), k), -1, np.int64)
    for r, y in enumerate(np.asarray(test_labels)):
        pool = rng.permutation(np.flatnonzero(train_labels == y))[:k]
        idx[r, : len(pool)] = pool
    scores = np.where(idx >= 0, -np.arange(k, dtype=np.float32)[None, :], np.nan)
    return Attribution(
        idx,
        scores,
        test_ids,
        test_labels=test_labels,
        params={"method": "random", "k": int(k), "condition": "true", "higher_is_better": True, "seed": seed},
    )
