"""The Ray engine: long-lived actors, each building the trainer (and loading its data) once,
run training units anywhere in a Ray cluster. Only the driver touches the results store, so
the workers need no shared file system.

Each actor is one slot and asks Ray for ``cpus_per_worker`` CPUs and ``gpus_per_model`` GPUs
(a fraction lets several small models share one GPU). An actor that dies (its node lost, its
process killed) is replaced and its unit retried; a trainer that cannot be built, or a unit
that raises, ends the run with one clear error.
"""

from __future__ import annotations

from .engines import MAX_RETRIES, EngineError, _one_line
from .units import TrainingUnit, run_unit


def _ray():
    try:
        import ray
    except ImportError:
        raise EngineError("engine='ray' needs Ray: pip install 'simattr_fast[ray]'") from None
    return ray


class _Worker:
    """The actor: builds the trainer once, then runs units."""

    def __init__(self, factory, threads: int):
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass
        self.error = None
        try:
            self.trainer = factory()
        except Exception as exc:  # reported by ready(), so the driver can say it in one line
            self.error = _one_line(exc)

    def ready(self):
        return self.error

    def run(self, unit: TrainingUnit):
        return run_unit(self.trainer, unit)

    def pid(self):
        import os

        return os.getpid()


class RayEngine:
    def __init__(self, factory, n_workers=None, address=None, cpus_per_worker=1.0, gpus_per_model=0.0):
        ray = _ray()
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, logging_level="ERROR")
        if n_workers is None:
            cpus = ray.cluster_resources().get("CPU", 1)
            n_workers = max(1, int(cpus // max(cpus_per_worker, 1e-9)))
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers <= 0:
            raise ValueError(f"n_workers: expected a positive integer or None, got {n_workers!r}")
        self.slots = n_workers
        self._actor_cls = ray.remote(_Worker).options(num_cpus=cpus_per_worker, num_gpus=gpus_per_model)
        self._factory, self._threads = factory, max(1, int(cpus_per_worker))
        self._inflight: dict = {}  # object ref -> (ticket, unit, actor, tries)
        self._idle: list = []
        self._next = 0
        self._idle = self._new_actors(n_workers)

    def _new_actors(self, n: int) -> list:
        """Starts n actors at once (each builds its trainer, in parallel) and checks them."""
        actors = [self._actor_cls.remote(self._factory, self._threads) for _ in range(n)]
        try:
            errors = self._ray.get([a.ready.remote() for a in actors])
        except self._ray.exceptions.RayActorError as exc:  # e.g. the factory cannot be unpickled there
            self._idle += actors
            self.close()
            first = _one_line(exc).splitlines()[0][:300]
            raise EngineError(f"trainer: a Ray worker could not start: {first}") from None
        bad = [e for e in errors if e is not None]
        if bad:
            self._idle += actors
            self.close()
            raise EngineError(f"trainer: the factory failed on a Ray worker: {bad[0]}")
        return actors

    def _new_actor(self):
        return self._new_actors(1)[0]

    def submit(self, unit: TrainingUnit, ticket=None, tries: int = 0) -> int:
        ticket = self._next if ticket is None else ticket
        self._next = max(self._next, ticket + 1)
        actor = self._idle.pop() if self._idle else self._new_actor()
        self._inflight[actor.run.remote(unit)] = (ticket, unit, actor, tries)
        return ticket

    def wait(self, timeout=None):
        if not self._inflight:
            return []
        ray = self._ray
        done, _ = ray.wait(list(self._inflight), num_returns=1, timeout=timeout)
        out = []
        for ref in done:
            ticket, unit, actor, tries = self._inflight.pop(ref)
            try:
                out.append((ticket, ray.get(ref)))
                self._idle.append(actor)
            except (
                ray.exceptions.RayActorError,
                ray.exceptions.WorkerCrashedError,
                ray.exceptions.NodeDiedError,
            ) as exc:
                # The worker is gone with its unit: replace it and run the unit again.
                if tries + 1 >= MAX_RETRIES:
                    self.close()
                    raise EngineError(f"unit {unit.tag}: its Ray worker died {tries + 1} times; giving up") from exc
                self._idle.append(self._new_actor())
                self.submit(unit, ticket, tries + 1)
            except ray.exceptions.RayTaskError as exc:
                self.close()
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                raise EngineError(f"unit {unit.tag}: {_one_line(cause)}") from None
        return out

    def actor_pids(self) -> list[int]:
        """Process ids of the idle actors (for tests that kill one)."""
        return self._ray.get([a.pid.remote() for a in self._idle])

    def close(self):
        for _ticket, _unit, actor, _tries in list(self._inflight.values()):
            self._ray.kill(actor)
        for actor in self._idle:
            self._ray.kill(actor)
        self._inflight.clear()
        self._idle = []
