"""Running many support searches: local worker processes now, a cluster engine later.

A job is plain data, ``(method, test_id, ranking)``, and all state lives in the results store,
so any engine that can call :func:`run_job` with a trainer factory and a store path can run
them (each worker opens the store itself; SQLite in WAL mode takes concurrent writers).
Jobs whose answer is already in the store are skipped; a job killed half-way reuses every
model it had finished.
"""

from __future__ import annotations

import multiprocessing as mp
import os

from .._progress import progress_bar
from .store import ResultsStore
from .support import support

_WORKER: dict = {}


def default_workers(threads_per_worker: int = 1) -> int:
    """One worker per ``threads_per_worker`` cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, threads_per_worker))


def run_job(trainer, store, job, criterion, k, n_models, budget, flip):
    method, test_id, ranking = job
    s = support(
        trainer,
        store,
        test_id,
        ranking,
        method,
        criterion,
        k=k,
        n_models=n_models,
        budget=budget,
        flip_class=None if flip is None else flip[test_id],
    )
    store.add_support(test_id, method, criterion, s, k)
    return method, test_id, s


def _init(factory, store_path, threads):
    import torch

    torch.set_num_threads(threads)
    _WORKER["trainer"], _WORKER["store"] = factory(), ResultsStore(store_path)


def _run(args):
    return run_job(_WORKER["trainer"], _WORKER["store"], *args)


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
) -> dict:
    """Runs every ``(method, test_id, ranking)`` job not yet answered in the store, with
    ``n_workers`` processes (default: one per core; 1 runs in this process). ``factory`` is a
    picklable zero-argument callable returning the trainer. Returns {method: {test_id: support}}."""
    with ResultsStore(store_path) as store:
        done = store.supports(criterion)
        todo = [j for j in jobs if j[1] not in done.get(j[0], {})]
        n_workers = default_workers() if n_workers is None else n_workers
        bar = progress_bar(
            total=len(jobs),
            initial=len(jobs) - len(todo),
            desc=f"{criterion} support",
            unit="search",
            progress=progress,
        )
        if n_workers <= 1 or len(todo) <= 1:
            trainer = factory() if todo else None
            for job in todo:
                run_job(trainer, store, job, criterion, k, n_models, budget, flip)
                bar.update()
        else:
            threads = max(1, default_workers() // n_workers)
            ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and locks
            with ctx.Pool(n_workers, initializer=_init, initargs=(factory, store.path, threads)) as pool:
                for _ in pool.imap_unordered(_run, [(j, criterion, k, n_models, budget, flip) for j in todo]):
                    bar.update()
        bar.close()
        return store.supports(criterion)
