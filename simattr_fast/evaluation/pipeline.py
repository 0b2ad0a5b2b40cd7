"""One call from attributions to evaluated summaries: the function behind `simattr evaluate`."""

from __future__ import annotations

import functools
import hashlib
import json
import os

import numpy as np

from .._io import write_json
from .lds import lds, subset_masks
from .runner import flip_classes_on, run_searches, subset_margins_on
from .store import CRITERIA, ResultsStore
from .summary import head_to_head, plot_cdf, summarize
from .support import check_ranking_range
from .trainers import spec_labels, trainer_from_spec


def _ranking_sha(a, test_ids) -> str:
    h = hashlib.sha256()
    for t in test_ids:
        h.update(a.ranking(t).tobytes())
    return h.hexdigest()


def evaluate(
    attributions: dict,
    trainer_spec: dict,
    store_path: str,
    criterion: str,
    test_ids,
    out_dir: str,
    k: int = 1280,
    n_models: int = 5,
    budget: int = 7,
    n_workers=None,
    n_subsets: int = 50,
    alpha: float = 0.5,
    models_per_subset: int = 1,
    progress=None,
    engine: str = "local",
    ray_address: str | None = None,
    gpus_per_model: float = 0.0,
    early_decision: bool = True,
    cpus_per_worker: float = 1.0,
) -> dict:
    """Counterfactual evaluation of rankings: removal support, mislabel support or LDS.

    Parameters
    ----------
    attributions : dict of {str: Attribution}
        The rankings to evaluate, by name.
    trainer_spec : dict
        Plain data describing the trainer (see :func:`trainer_from_spec`), so that every worker
        can build its own.
    store_path : str
        The SQLite results store; every trained model is one row, committed as it is known.
    criterion : {"removal", "mislabel", "lds"}
    test_ids : list of int
        Test images to evaluate; every attribution must rank them.
    out_dir : str
        Receives ``summary_<criterion>.json`` and, for supports, ``cdf_<criterion>.png``.
    k : int, default 1280
        Search range of the supports.
    n_models : int, default 5
        Models per step (M); a step flips when at most half of them stay correct.
    budget : int, default 7
        Bisection steps after the first try at ``m = k``.
    n_workers : int or None, default None
        Engine slots: worker processes or Ray actors (None: one per core or cluster CPU).
    n_subsets, alpha : int, float, default 50, 0.5
        LDS subsets and the fraction of the training set each holds.
    models_per_subset : int, default 1
        LDS models trained per subset; their margins are averaged (3 or more for a ground truth
        that is not mostly seed noise).
    progress : bool or None, default None
    engine : {"local", "ray"}, default "local"
        Where the models train: this machine (in process, or a process pool), or a Ray
        cluster. Only this process writes to the store either way.
    ray_address : str or None, default None
        A running Ray cluster to join ("auto", "ray://host:10001"); None starts a local one.
    gpus_per_model : float, default 0.0
        GPUs each Ray worker asks for (a fraction lets several small models share one).
    early_decision : bool, default True
        Stop training a step's models once its verdict is certain (identical supports).
    cpus_per_worker : float, default 1.0
        CPUs each Ray worker asks for.

    Returns
    -------
    dict
        The summary written to ``summary_<criterion>.json`` (per method: supports, fraction
        flipped, CDF area, median; or LDS with its confidence interval).

    Raises
    ------
    ValueError
        Unknown criterion, test ids an attribution does not rank, a store filled with other
        settings.

    Examples
    --------
    >>> from simattr_fast.evaluation import evaluate   # doctest: +SKIP
    >>> evaluate({"esvm": a}, {"kind": "small_cnn", "dataset": "digits"}, "r.sqlite",
    ...          "removal", [0, 1], "out", k=50, n_models=3, budget=3)   # doctest: +SKIP
    """
    y_train, y_test = spec_labels(trainer_spec)  # labels only: the images load on the workers
    test_ids = _check_inputs(attributions, len(y_train), criterion, test_ids, k)
    os.makedirs(out_dir, exist_ok=True)
    factory = functools.partial(trainer_from_spec, trainer_spec)
    settings = {"trainer": trainer_spec, "k": k, "n_models": n_models, "budget": budget}
    settings.update(n_subsets=n_subsets, alpha=alpha)
    if models_per_subset != 1:  # only then: stores filled before the option existed stay valid
        settings["models_per_subset"] = models_per_subset
    with ResultsStore(store_path) as st:
        st.set_info(f"settings/{criterion}", json.dumps(settings, sort_keys=True))
        for name, a in attributions.items():
            st.set_info(f"ranking/{criterion}/{name}", _ranking_sha(a, test_ids))
        run = {"engine": engine, "n_workers": n_workers}
        if engine == "ray":
            run.update(ray_address=ray_address, gpus_per_model=gpus_per_model, cpus_per_worker=cpus_per_worker)
        elif gpus_per_model:
            raise ValueError("gpus_per_model: fractional GPUs need engine='ray'")
        if criterion == "lds":
            lds_args = (n_subsets, alpha, models_per_subset)
            summary = _evaluate_lds(attributions, factory, len(y_train), st, test_ids, lds_args, progress, run)
        else:
            flip = _flip_classes(factory, y_test, st, test_ids, n_models, run) if criterion == "mislabel" else None
            jobs = [(name, t, a.ranking(t)) for name, a in attributions.items() for t in test_ids]
            res = run_searches(
                factory,
                store_path,
                jobs,
                criterion,
                k=k,
                n_models=n_models,
                budget=budget,
                flip=flip,
                progress=progress,
                early_decision=early_decision,
                **run,
            )
            per = {name: {t: res[name][t] for t in test_ids} for name in attributions}
            summary = _support_summary(per, criterion, k, n_models, budget, test_ids)
            summary["plot"] = plot_cdf(
                per, k, os.path.join(out_dir, f"cdf_{criterion}.png"), title=f"{criterion} support"
            )
        summary["rows_in_store"] = st.count()
    path = os.path.join(out_dir, f"summary_{criterion}.json")
    write_json(path, summary)
    summary["summary_file"] = path
    return summary


def _rows(attribution, test_ids) -> list[int]:
    """The attribution's rows of ``test_ids``."""
    return [int(np.flatnonzero(attribution.test_ids == t)[0]) for t in test_ids]


def _check_inputs(attributions, n_train, criterion, test_ids, k) -> list[int]:
    """Everything that can be refused before the first model is trained."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion: expected one of {CRITERIA}, got {criterion!r}")
    test_ids = [int(t) for t in test_ids]
    if not test_ids:
        raise ValueError("test_ids: expected at least one test image")
    for name, a in attributions.items():
        missing = sorted(set(test_ids) - set(a.test_ids.tolist()))
        if missing:
            raise ValueError(f"test_ids: attribution {name!r} has no ranking for test images {missing[:5]}")
    for name, a in attributions.items():
        rows = _rows(a, test_ids)
        top = a.indices[rows] if criterion == "lds" else a.indices[rows, :k]
        check_ranking_range(top, n_train, f"attribution {name!r}")
    return test_ids


def _flip_classes(factory, y_test, st, test_ids, n_models, run) -> dict:
    """The flip class of every test image, from the store's cache or a full-data ensemble."""
    flip = {int(t): c for t, c in json.loads(st.info("flipclasses") or "{}").items()}
    if not set(test_ids) <= set(flip):
        missing = [t for t in test_ids if t not in flip]
        flip.update(flip_classes_on(factory, st.path, missing, y_test, n_models, **run))
        st.replace_info("flipclasses", json.dumps(flip))
    return flip


def _evaluate_lds(attributions, factory, n_train, st, test_ids, lds_args, progress, run) -> dict:
    n_subsets, alpha, per_subset = lds_args
    masks = subset_masks(n_train, n_subsets, alpha)
    mg = subset_margins_on(
        factory, st.path, n_train, test_ids, n_subsets, alpha, progress=progress, models_per_subset=per_subset, **run
    )
    per = {}
    for name, a in attributions.items():
        per[name] = lds(a, masks, mg, _rows(a, test_ids))
    return {
        "criterion": "lds",
        "alpha": alpha,
        "n_subsets": n_subsets,
        "models_per_subset": per_subset,
        "test_ids": test_ids,
        "methods": per,
    }


def _support_summary(per, criterion, k, n_models, budget, test_ids) -> dict:
    names = sorted(per)
    return {
        "criterion": criterion,
        "k": k,
        "n_models": n_models,
        "budget": budget,
        "test_ids": test_ids,
        "supports": {n: {str(t): s for t, s in per[n].items()} for n in names},
        "methods": {n: summarize(per[n], k) for n in names},
        "head_to_head": {
            f"{a} vs {b}": head_to_head(per[a], per[b]) for i, a in enumerate(names) for b in names[i + 1 :]
        },
    }
