"""The driver-side scheduler: every support search is a small state machine (m = k first, then
bisection, its steps in order), and the scheduler keeps the engine's slots full with units from
all searches at once. The driver is the only writer of the results store: a unit's rows are
committed the moment it returns, so a driver killed at any point and started again replays
every search from the store and trains no model whose row was committed.

**Exact early decision.** A step of ``M`` models flips when at most half of them stay correct.
Its models are trained in seed order, a few at a time, and the step is decided as soon as the
outcome is certain (for M = 5: three right, or three wrong); the remaining models are never
trained. The support is the one the full rule gives, since the seeds and the rule are the same.
"""

from __future__ import annotations

import numpy as np

from .._progress import progress_bar
from .store import ResultsStore
from .support import CENSORED, model_seed
from .units import TrainingUnit, store_rows


class SupportSearch:
    """One search (``method``, ``test_id``) of removal or mislabel support over ``ranking``."""

    def __init__(self, method, test_id, ranking, criterion, k, n_models, budget, flip_class=None, early=True):
        ranking = np.asarray(ranking, np.int64)
        self.ranking = ranking[ranking >= 0][:k]
        self.method, self.test_id, self.criterion = method, int(test_id), criterion
        self.k, self.n_models, self.budget, self.flip_class, self.early = (
            min(k, len(self.ranking)),
            n_models,
            budget,
            flip_class,
            early,
        )
        self.k_requested = k
        self.known: dict = {}  # m -> {seed: correct}
        self.inflight: dict = {}  # m -> set of seeds being trained
        self.loaded: set = set()  # steps whose stored outcomes were read
        self.phase, self.m, self.lo, self.hi, self.steps = "first", self.k, 0, self.k, 0
        self.support = CENSORED if self.k == 0 else None
        if self.k == 0:
            self.phase = "done"

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def seeds(self, m: int) -> list[int]:
        return [model_seed(self.test_id, self.method, self.criterion, m, j) for j in range(self.n_models)]

    def _missing(self, m: int) -> tuple[int, int]:
        """(more right answers that decide "not flipped", more wrong ones that decide
        "flipped") for step m: right > M/2 keeps the prediction, right <= M/2 flips it."""
        known = self.known.get(m, {})
        right = sum(known.values())
        wrong = len(known) - right
        return self.n_models // 2 + 1 - right, self.n_models - self.n_models // 2 - wrong

    def decision(self, m: int):
        """True (flipped) / False (not flipped) once certain, else None."""
        to_keep, to_flip = self._missing(m)
        if len(self.known.get(m, {})) == self.n_models or self.early:
            if to_flip <= 0:
                return True
            if to_keep <= 0:
                return False
        return None

    def load(self, store: ResultsStore) -> None:
        """Reads the current step's outcomes already in the store (resume)."""
        while not self.done and self.m not in self.loaded:
            self.loaded.add(self.m)
            have = store.get(self.test_id, self.method, self.criterion, self.m)
            seeds = set(self.seeds(self.m))
            self.known.setdefault(self.m, {}).update({s: c for s, (c, _) in have.items() if s in seeds})
            self._advance()

    def next_unit(self) -> TrainingUnit | None:
        """The models of the current step worth training now (none while enough are in flight)."""
        if self.done:
            return None
        known, flying = self.known.setdefault(self.m, {}), self.inflight.setdefault(self.m, set())
        todo = [s for s in self.seeds(self.m) if s not in known and s not in flying]
        if not self.early:
            want = todo
        else:
            # The fewest more models that could decide the step, less those already training.
            want = todo[: max(min(self._missing(self.m)) - len(flying), 0)]
        if not want:
            return None
        flying.update(want)
        top = self.ranking[: self.m]
        relabel = self.criterion == "mislabel"
        return TrainingUnit(
            tag=(self.method, self.criterion, self.m),
            seeds=tuple(want),
            test_ids=(self.test_id,),
            exclude_ids=np.zeros(0, np.int64) if relabel else top,
            relabel_ids=top if relabel else np.zeros(0, np.int64),
            relabel_to=int(self.flip_class) if relabel else -1,
        )

    def record(self, unit: TrainingUnit, rows) -> None:
        m = unit.tag[2]
        for _t, s, correct, _g, _w in rows:
            self.known.setdefault(m, {})[s] = bool(correct)
            self.inflight.get(m, set()).discard(s)
        self._advance()

    def _advance(self) -> None:
        """Moves through decided steps: m = k, then bisection for ``budget`` steps."""
        while not self.done:
            flipped = self.decision(self.m)
            if flipped is None:
                return
            if self.phase == "first":
                if not flipped:
                    self.phase, self.support = "done", CENSORED
                    return
                self.phase, self.lo, self.hi = "bisect", 0, self.k
            elif flipped:
                self.hi = self.m
            else:
                self.lo = self.m
            if self.phase == "bisect" and self.m != self.k:
                self.steps += 1
            if self.steps >= self.budget or self.hi - self.lo <= 1:
                self.phase, self.support = "done", self.hi
                return
            self.m = (self.lo + self.hi) // 2


def run_schedule(engine, store: ResultsStore, searches: list, extra_units=(), progress=None, desc="units"):
    """Runs every search to its answer and every extra unit, keeping ``engine.slots`` units in
    flight. Each unit's rows are committed as it returns; each finished search's support is
    stored. Returns the results of the extra units in their order (rows and logits)."""
    bar = progress_bar(total=len(searches) + len(extra_units), desc=desc, unit="search", progress=progress)
    owner: dict = {}  # ticket -> (search or index of an extra unit, unit)
    extra = list(enumerate(extra_units))
    extra_out: list = [None] * len(extra)
    pending = [s for s in searches if not s.done]
    for s in searches:
        if s.done:
            _finish(store, s)
            bar.update()
    try:
        while pending or extra or owner:
            _fill(engine, store, pending, extra, owner)
            if not owner:
                if pending:  # cannot happen: a live search always has a model to train
                    raise RuntimeError(f"scheduler: {len(pending)} searches stalled with nothing to train")
                break
            for ticket, result in engine.wait(timeout=1.0):
                who, unit = owner.pop(ticket)
                store.add_many(store_rows(unit, result))  # the driver is the one writer
                if isinstance(who, SupportSearch):
                    who.record(unit, result.rows)
                    if who.done:
                        _finish(store, who)
                        pending.remove(who)
                        bar.update()
                else:
                    extra_out[who] = result
                    bar.update()
    finally:
        engine.close()
        bar.close()
    return extra_out


def _fill(engine, store, pending, extra, owner) -> None:
    """Submits units until the slots are full: extra units first, then searches round-robin."""
    while extra and len(owner) < engine.slots:
        i, unit = extra.pop(0)
        owner[engine.submit(unit)] = (i, unit)
    progress = True
    while progress and len(owner) < engine.slots:
        progress = False
        for s in list(pending):
            if len(owner) >= engine.slots:
                break
            s.load(store)
            if s.done:
                _finish(store, s)
                pending.remove(s)
                continue
            unit = s.next_unit()
            if unit is not None:
                owner[engine.submit(unit)] = (s, unit)
                progress = True


def _finish(store, s: SupportSearch) -> None:
    store.add_support(s.test_id, s.method, s.criterion, s.support, s.k_requested)
