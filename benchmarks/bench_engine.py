"""The evaluation scheduler and its engines, measured.

    python benchmarks/bench_engine.py                # both parts (about 20 min on 2 cores)
    python benchmarks/bench_engine.py --quick        # a smoke run
    python benchmarks/bench_engine.py --part scale   # only the scale simulation

1. **Workload**: removal support on Fashion-MNIST (the first --n-train training images, the
   evaluation's small CNN, cosine rankings of raw pixels, --n-test test images, k, M=5,
   budget) run three ways on this machine: the full rule on the local engine with 2 workers
   (what the previous runner trained: every model of every step), the scheduler with exact
   early decisions on the local engine (2 workers), and on Ray (a local cluster of 2 CPUs).
   Wall time, models trained, models per minute, models saved; the supports must be equal.
2. **Scale simulation**: the scheduler on Ray with a fake trainer of known per-model time
   (it sleeps) and N logical workers (N = 2, 8, 32): speed-up against one worker's time for
   the same models; the driver is the bottleneck when it falls short of N.
Writes benchmarks/results/engine.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import tempfile
import time

import numpy as np

from _common import machine, write_json

HERE = os.path.dirname(os.path.abspath(__file__))


class SleepTrainer:
    """Every model takes `seconds`; test image t flips once `need` of its ranked images are gone."""

    def __init__(self, seconds=0.05, n_train=400, n_test=64, need=37):
        self.seconds, self.need = seconds, need
        rng = np.random.default_rng(0)
        self.y_train = rng.integers(0, 2, n_train)
        self.y_test = np.zeros(n_test, np.int64)

    def train(self, indices, labels, seeds):
        time.sleep(self.seconds * len(seeds))
        present = np.zeros(len(self.y_train), bool)
        present[np.asarray(indices)] = True
        return present, list(seeds)

    def logits(self, handle, test_ids):
        present, seeds = handle
        lost = int((~present[: self.need * 2]).sum())
        out = np.zeros((len(seeds), len(test_ids), 2), np.float32)
        out[:, :, 1 if lost >= self.need else 0] = 1.0
        return out


def workload(a, out):
    from simattr_fast import Attributor
    from simattr_fast.datasets import open_dataset
    from simattr_fast.evaluation import run_searches, trainer_from_spec

    spec = {"kind": "small_cnn", "dataset": "fashion-mnist", "n_train": a.n_train, "epochs": 3}
    train, test = open_dataset("fashion-mnist", "train"), open_dataset("fashion-mnist", "test")
    xtr = train.images[: a.n_train].reshape(a.n_train, -1).astype(np.float32) / 255
    ids = list(range(a.n_test))
    xte = test.images[ids].reshape(len(ids), -1).astype(np.float32) / 255
    att = Attributor("cosine", k=a.k, progress=False).fit(xtr, train.targets[: a.n_train])
    att = att.attribute(xte, test.targets[ids], test_ids=ids)
    jobs = [("cosine", t, att.ranking(t)) for t in ids]
    factory = functools.partial(trainer_from_spec, spec)
    work = tempfile.mkdtemp()
    runs = {}
    for name, engine, early in (
        ("full rule, local x2", "local", False),
        ("early, local x2", "local", True),
        ("early, ray x2", "ray", True),
    ):
        store = os.path.join(work, name.replace(" ", "_").replace(",", "") + ".sqlite")
        t0 = time.perf_counter()
        sup = run_searches(
            factory,
            store,
            jobs,
            "removal",
            k=a.k,
            n_models=5,
            budget=a.budget,
            n_workers=2,
            engine=engine,
            early_decision=early,
            progress=True,
        )
        wall = time.perf_counter() - t0
        from simattr_fast.evaluation import ResultsStore

        with ResultsStore(store) as st:
            models = len({(r[0], r[2], r[3], r[4]) for r in st.rows()})
        runs[name] = {
            "seconds": wall,
            "models": models,
            "models_per_minute": 60 * models / wall,
            "supports": {str(t): s for t, s in sup["cosine"].items()},
        }
        print(name, json.dumps({k: v for k, v in runs[name].items() if k != "supports"}), flush=True)
        out["workload"] = {"settings": {**spec, "n_test": a.n_test, "k": a.k, "M": 5, "budget": a.budget}, "runs": runs}
        write_json(a.out, out)
    shutil.rmtree(work, ignore_errors=True)
    full, early, ray_ = (runs[n] for n in ("full rule, local x2", "early, local x2", "early, ray x2"))
    out["workload"]["same_supports"] = full["supports"] == early["supports"] == ray_["supports"]
    out["workload"]["models_saved_by_early_decision"] = 1 - early["models"] / full["models"]
    out["workload"]["fewer_models_factor"] = full["models"] / early["models"]
    out["workload"]["ray_vs_local_seconds"] = ray_["seconds"] / early["seconds"]


def scale(a, out):
    import ray

    from simattr_fast.evaluation import ResultsStore, SupportSearch
    from simattr_fast.evaluation.ray_engine import RayEngine
    from simattr_fast.evaluation.scheduler import run_schedule

    sims = {}
    if ray.is_initialized():
        ray.shutdown()  # the workload's local cluster; each size gets its own
    for n in a.workers:
        ray.init(num_cpus=n, include_dashboard=False, logging_level="ERROR")
        tr = SleepTrainer(a.model_seconds, n_test=a.searches)
        ranking = np.arange(200)
        jobs = [("sim", t, ranking) for t in range(a.searches)]
        work = tempfile.mkdtemp()
        factory = functools.partial(SleepTrainer, a.model_seconds, 400, a.searches)
        # The actors start before the clock does: process start-up is Ray's cost, not the scheduler's.
        engine = RayEngine(factory, n_workers=n)
        searches = [SupportSearch(m, t, r, "removal", 200, 5, 6) for m, t, r in jobs]
        t0 = time.perf_counter()
        with ResultsStore(os.path.join(work, "s.sqlite")) as st:
            run_schedule(engine, st, searches, progress=False)
        wall = time.perf_counter() - t0
        with ResultsStore(os.path.join(work, "s.sqlite")) as st:
            models = len({(r[0], r[2], r[3], r[4]) for r in st.rows()})
        ideal = models * a.model_seconds
        sims[str(n)] = {
            "workers": n,
            "models": models,
            "seconds": wall,
            "one_worker_seconds": ideal,
            "speedup": ideal / wall,
            "efficiency": ideal / wall / n,
        }
        print("scale", json.dumps(sims[str(n)]), flush=True)
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        del tr
        out["scale"] = {"model_seconds": a.model_seconds, "searches": a.searches, "runs": sims}
        write_json(a.out, out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("all", "workload", "scale"), default="all")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-test", type=int, default=10)
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--budget", type=int, default=5)
    p.add_argument("--workers", type=int, nargs="+", default=[2, 8, 32])
    p.add_argument("--model-seconds", type=float, default=0.2)
    p.add_argument("--searches", type=int, default=64)
    p.add_argument("--out", default=os.path.join(HERE, "results", "engine.json"))
    a = p.parse_args()
    if a.quick:
        a.n_train, a.n_test, a.k, a.budget, a.workers, a.searches, a.model_seconds = 1000, 2, 40, 2, [2, 4], 8, 0.05
    out = {"machine": machine()}
    if os.path.exists(a.out):
        with open(a.out) as f:
            out.update(json.load(f))
    if a.part in ("all", "workload"):
        workload(a, out)
    if a.part in ("all", "scale"):
        scale(a, out)
    write_json(a.out, out)


if __name__ == "__main__":
    main()
