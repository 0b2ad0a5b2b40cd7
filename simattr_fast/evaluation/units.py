"""The unit of counterfactual work: which images to train on (and which to relabel), which
seeds, which test images to evaluate. Plain, picklable data: any engine can ship it to a worker
on another machine; the worker needs only its trainer, never the results store.

Support-search steps, the flip-class ensemble and the LDS subset models are all units.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .trainers import margins


@dataclass(frozen=True)
class TrainingUnit:
    """``len(seeds)`` models trained on ``train_ids`` (None: the whole training set) minus
    ``exclude_ids``, with the labels of ``relabel_ids`` changed to ``relabel_to``; each is
    evaluated on ``test_ids``. ``tag`` = (method, criterion, m) is recorded with every outcome.
    ``want_logits`` returns the logits too (the flip-class ensemble needs them)."""

    tag: tuple[str, str, int]
    seeds: tuple[int, ...]
    test_ids: tuple[int, ...]
    train_ids: np.ndarray | None = None
    exclude_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    relabel_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    relabel_to: int = -1
    want_logits: bool = False


@dataclass
class UnitResult:
    """What a worker sends back: one row ``(test_id, seed, correct, margin, wall_s)`` per
    (model, test image), and the logits ``[M, n, C]`` when asked for."""

    rows: list
    logits: np.ndarray | None = None


def outcomes(trainer, logits, seeds, test_ids, wall: float):
    """Margins and correctness ``[M, n]`` of models' logits ``[M, n, C]`` on ``test_ids``, and
    one row ``(test_id, seed, correct, margin, wall_s)`` per (model, test image)."""
    y = trainer.y_test[test_ids]
    mg, correct = margins(logits, y), np.asarray(logits).argmax(-1) == y
    rows = [
        (t, int(s), bool(correct[j, i]), float(mg[j, i]), wall)
        for j, s in enumerate(seeds)
        for i, t in enumerate(test_ids)
    ]
    return mg, correct, rows


def run_unit(trainer, unit: TrainingUnit) -> UnitResult:
    """Trains and evaluates one unit (on the worker)."""
    n = len(trainer.y_train)
    ids = np.arange(n) if unit.train_ids is None else np.asarray(unit.train_ids, np.int64)
    if len(unit.exclude_ids):
        ids = np.setdiff1d(ids, unit.exclude_ids, assume_unique=True)
    labels = trainer.y_train
    if len(unit.relabel_ids):
        labels = labels.copy()
        labels[np.asarray(unit.relabel_ids, np.int64)] = unit.relabel_to
    test_ids = [int(t) for t in unit.test_ids]
    t0 = time.perf_counter()
    lg = trainer.logits(trainer.train(ids, labels, list(unit.seeds)), test_ids)
    wall = (time.perf_counter() - t0) / len(unit.seeds)
    _, _, rows = outcomes(trainer, lg, unit.seeds, test_ids, wall)
    return UnitResult(rows, np.asarray(lg) if unit.want_logits else None)


def store_rows(unit: TrainingUnit, result: UnitResult) -> list:
    """The results-store rows of a finished unit (the driver writes them)."""
    method, criterion, m = unit.tag
    return [(t, method, criterion, m, s, c, g, w) for t, s, c, g, w in result.rows]
