"""Running evaluations on an engine: support searches through the scheduler, and the
flip-class ensemble and LDS subset models as plain units.

``factory`` is a picklable zero-argument callable that builds the trainer on a worker
(:func:`~simattr_fast.evaluation.trainers.trainer_from_spec` bound to a spec, or a class).
"""

from __future__ import annotations

import numpy as np

from .engines import default_workers, make_engine
from .lds import missing_seeds, stored_subset_margins, subset_masks, subset_seeds
from .scheduler import SupportSearch, run_schedule
from .store import ResultsStore
from .support import ensemble_seeds, flip_classes_from_logits
from .units import TrainingUnit

__all__ = ["default_workers", "run_searches", "flip_classes_on", "subset_margins_on"]


def run_searches(
    factory,
    store_path: str,
    jobs,
    criterion: str = "removal",
    k: int = 1280,
    n_models: int = 5,
    budget: int = 7,
    flip=None,
    n_workers: int | None = None,
    progress=None,
    engine: str = "local",
    early_decision: bool = True,
    **engine_options,
) -> dict:
    """Runs every ``(method, test_id, ranking)`` search not yet answered in the store.

    Parameters
    ----------
    factory : callable
        Builds the trainer (once per worker).
    store_path : str
        The results store; only this process writes to it.
    jobs : list of (str, int, array)
    criterion : {"removal", "mislabel"}
    k, n_models, budget : int
        The search (see :func:`~simattr_fast.evaluation.support`).
    flip : dict or None
        ``{test_id: flip class}``, for mislabel support.
    n_workers : int or None
        Slots of the engine (None: one per core, or per CPU of the Ray cluster).
    progress : bool or None
    engine : {"local", "ray"}
    early_decision : bool, default True
        Decide a step as soon as its outcome is certain (same supports, fewer models).
    **engine_options
        ``ray_address``, ``cpus_per_worker``, ``gpus_per_model``.

    Returns
    -------
    dict
        ``{method: {test_id: support}}`` of every search in the store.
    """
    with ResultsStore(store_path) as store:
        done = store.supports(criterion)
        searches = [
            SupportSearch(
                method,
                t,
                ranking,
                criterion,
                k,
                n_models,
                budget,
                None if flip is None else flip[t],
                early=early_decision,
            )
            for method, t, ranking in jobs
            if t not in done.get(method, {})
        ]
        if searches:
            eng = make_engine(engine, factory, n_workers, **engine_options)
            run_schedule(eng, store, searches, progress=progress, desc=f"{criterion} support")
        return store.supports(criterion)


def flip_classes_on(
    factory,
    store_path: str,
    test_ids,
    y_test,
    n_models: int = 5,
    engine: str = "local",
    n_workers=None,
    **engine_options,
) -> dict:
    """The flip class of each test image (see :func:`~simattr_fast.evaluation.flip_classes`),
    the ensemble's models trained as one unit per model on the engine."""
    test_ids = [int(t) for t in test_ids]
    units = [
        TrainingUnit(tag=("full", "flipclass", 0), seeds=(s,), test_ids=tuple(test_ids), want_logits=True)
        for s in ensemble_seeds(n_models)
    ]
    with ResultsStore(store_path) as store:
        eng = make_engine(engine, factory, n_workers, **engine_options)
        results = run_schedule(eng, store, [], units, desc="flip-class ensemble")
    return flip_classes_from_logits(np.concatenate([r.logits for r in results]), y_test, test_ids)


def subset_margins_on(
    factory,
    store_path: str,
    n_train: int,
    test_ids,
    n_subsets: int = 50,
    alpha: float = 0.5,
    seed: int = 0,
    engine: str = "local",
    n_workers=None,
    progress=None,
    models_per_subset: int = 1,
    **engine_options,
) -> np.ndarray:
    """LDS margins ``[n_subsets, len(test_ids)]`` (see :func:`~simattr_fast.evaluation.subset_margins`),
    one unit per subset holding the subset's models still missing from the store."""
    test_ids = [int(t) for t in test_ids]
    masks = subset_masks(n_train, n_subsets, alpha, seed)
    with ResultsStore(store_path) as store:
        units = []
        for s in range(n_subsets):
            todo = missing_seeds(store, test_ids, s, subset_seeds(s, models_per_subset, seed))
            if todo:
                units.append(
                    TrainingUnit(
                        tag=("subsets", "lds", s),
                        seeds=tuple(todo),
                        test_ids=tuple(test_ids),
                        train_ids=np.flatnonzero(masks[s]),
                    )
                )
        if units:
            eng = make_engine(engine, factory, n_workers, **engine_options)
            run_schedule(eng, store, [], units, progress=progress, desc="lds subsets")
        return stored_subset_margins(store, test_ids, n_subsets, models_per_subset, seed)
