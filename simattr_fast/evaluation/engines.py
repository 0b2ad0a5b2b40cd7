"""Engines run training units on workers: ``local`` (in this process, or a pool of processes;
no extra dependency) and ``ray`` (the optional extra ``simattr_fast[ray]``: a Ray cluster, from
a laptop to many machines, with CPU and fractional-GPU requests).

One interface: ``slots`` (units worth keeping in flight), ``submit(unit) -> ticket``,
``wait(timeout) -> [(ticket, UnitResult)]`` and ``close()``. A worker that dies has its units
retried on a fresh one; a trainer factory that fails, or a unit that raises, ends the run with
one clear :class:`EngineError` within seconds. Nothing waits forever.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import threading
import time
import traceback

from .units import TrainingUnit, run_unit

ENGINES = ("local", "ray")
MAX_RETRIES = 3  # a unit whose worker died this many times in a row ends the run


class EngineError(RuntimeError):
    """The evaluation cannot go on: the trainer cannot be built, a unit failed, or workers
    keep dying. The message is one line saying which and why."""


def default_workers(threads_per_worker: int = 1) -> int:
    """One worker per ``threads_per_worker`` cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, threads_per_worker))


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


class InProcessEngine:
    """Runs each unit in this process when results are asked for (one slot)."""

    slots = 1

    def __init__(self, factory):
        try:
            self._trainer = factory()
        except Exception as exc:
            raise EngineError(f"trainer: the factory failed: {_one_line(exc)}") from exc
        self._queue: list = []  # (ticket, unit)
        self._next = 0

    def submit(self, unit: TrainingUnit) -> int:
        self._queue.append((self._next, unit))
        self._next += 1
        return self._next - 1

    def wait(self, timeout=None):
        if not self._queue:
            return []
        ticket, unit = self._queue.pop(0)
        try:
            return [(ticket, run_unit(self._trainer, unit))]
        except Exception as exc:
            raise EngineError(f"unit {unit.tag}: {_one_line(exc)}") from exc

    def close(self):
        self._queue.clear()


_WORKER: dict = {}


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """A worker whose driver is gone (killed, say) would otherwise wait on its queue forever,
    holding its memory: it exits within ``every`` seconds of the driver."""

    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="simattr-orphan-watch").start()


def _init_worker(factory, threads, parent):
    _exit_with_parent(parent)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    try:
        _WORKER["trainer"] = factory()
    except Exception as exc:  # reported with the first unit, not by a silently broken pool
        _WORKER["error"] = _one_line(exc) + "\n" + traceback.format_exc(limit=3)


def _worker_run(unit):
    if "error" in _WORKER:
        raise EngineError("trainer: the factory failed in a worker process: " + _WORKER["error"].splitlines()[0])
    return run_unit(_WORKER["trainer"], unit)


class ProcessPoolEngine:
    """A pool of ``n_workers`` spawned processes, each building its own trainer once."""

    def __init__(self, factory, n_workers: int):
        self.slots = n_workers
        self._factory, self._threads = factory, max(1, default_workers() // n_workers)
        self._pool = self._new_pool()
        self._inflight: dict = {}  # future -> (ticket, unit, tries)
        self._next = 0

    def _new_pool(self):
        ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and locks
        return cf.ProcessPoolExecutor(
            self.slots, mp_context=ctx, initializer=_init_worker, initargs=(self._factory, self._threads, os.getpid())
        )

    def submit(self, unit: TrainingUnit, ticket=None, tries: int = 0) -> int:
        ticket = self._next if ticket is None else ticket
        self._next = max(self._next, ticket + 1)
        self._inflight[self._pool.submit(_worker_run, unit)] = (ticket, unit, tries)
        return ticket

    def wait(self, timeout=None):
        if not self._inflight:
            return []
        done, _ = cf.wait(list(self._inflight), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out, broken = [], []
        for fut in done:
            ticket, unit, tries = self._inflight.pop(fut)
            try:
                out.append((ticket, fut.result()))
            except cf.process.BrokenProcessPool:
                broken.append((ticket, unit, tries))
            except EngineError:
                self.close()
                raise
            except Exception as exc:
                self.close()
                raise EngineError(f"unit {unit.tag}: {_one_line(exc)}") from exc
        if broken:
            # A worker died (killed, out of memory): the pool is gone with every unit in it.
            # Start a new one and resubmit them all; a unit lost too often ends the run.
            broken += [(t, u, n) for t, u, n in self._inflight.values()]
            self._inflight.clear()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            for ticket, unit, tries in broken:
                if tries + 1 >= MAX_RETRIES:
                    self.close()
                    raise EngineError(f"unit {unit.tag}: its worker process died {tries + 1} times; giving up")
                self.submit(unit, ticket, tries + 1)
        return out

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._inflight.clear()


def make_engine(
    name: str,
    factory,
    n_workers: int | None = None,
    ray_address: str | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_model: float = 0.0,
):
    """An engine by name: ``local`` (``n_workers`` 1: in this process; more: a process pool)
    or ``ray`` (see :class:`~simattr_fast.evaluation.ray_engine.RayEngine`)."""
    if name not in ENGINES:
        raise ValueError(f"engine: expected one of {ENGINES}, got {name!r}")
    if name == "ray":
        from .ray_engine import RayEngine

        return RayEngine(
            factory,
            n_workers=n_workers,
            address=ray_address,
            cpus_per_worker=cpus_per_worker,
            gpus_per_model=gpus_per_model,
        )
    if gpus_per_model:
        raise ValueError("gpus_per_model: fractional GPUs need engine='ray'")
    n = default_workers() if n_workers is None else n_workers
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n_workers: expected a positive integer or None, got {n_workers!r}")
    return InProcessEngine(factory) if n == 1 else ProcessPoolEngine(factory, n)
