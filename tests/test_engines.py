"""The evaluation scheduler and its engines: exact early decisions, failures that end in a
retry or one clear error (never a hang), local and Ray engines giving the same store."""

import functools
import os
import signal
import tempfile
import threading
import time

import numpy as np
import pytest

from simattr_fast.evaluation import EngineError, ResultsStore, run_searches, support
from simattr_fast.evaluation.runner import flip_classes_on, subset_margins_on

from helpers.fakes import FailingFactory, FailingUnitTrainer, LinearTrainer, SlowCountingTrainer, ThresholdTrainer


def _jobs(tr, n_test=4):
    return [
        (m, t, tr.supporters[t][::-1] if m == "reversed" else tr.supporters[t])
        for m in ("oracle", "reversed")
        for t in range(n_test)
    ]


def _full_rule(trainer, path, jobs, criterion="removal", flip=None, **kw):
    with ResultsStore(path) as st:
        out = {}
        for m, t, r in jobs:
            f = None if flip is None else flip[t]
            out.setdefault(m, {})[t] = support(trainer, st, t, r, m, criterion, flip_class=f, **kw)
        return out, st.count()


@pytest.mark.parametrize("criterion", ["removal", "mislabel"])
def test_early_decision_gives_the_full_rules_supports_with_fewer_models(tmp_path, criterion):
    tr = ThresholdTrainer(noisy=0.3)  # a third of the models are wrong whatever: split steps happen
    flip = {t: (tr.y_test[t] + 1) % 3 for t in range(4)}
    kw = dict(k=20, n_models=5, budget=6)
    full, full_models = _full_rule(tr, str(tmp_path / "full.sqlite"), _jobs(tr), criterion, flip, **kw)
    factory = functools.partial(ThresholdTrainer, noisy=0.3)
    early = run_searches(
        factory, str(tmp_path / "early.sqlite"), _jobs(tr), criterion, flip=flip, n_workers=1, progress=False, **kw
    )
    assert early == full
    with ResultsStore(str(tmp_path / "early.sqlite")) as st:
        assert st.count() * 1.3 <= full_models  # at least 1.3x fewer models


def test_early_decision_on_a_real_trainer(tmp_path):
    from simattr_fast.datasets import digits_dataset
    from simattr_fast.evaluation import LinearProbe

    tr_d, te_d = digits_dataset("train"), digits_dataset("test")
    xtr = tr_d.images.reshape(len(tr_d), -1).astype(np.float32) / 255
    xte = te_d.images.reshape(len(te_d), -1).astype(np.float32) / 255
    factory = functools.partial(LinearProbe, xtr, tr_d.targets, xte, te_d.targets, epochs=5)
    trainer = factory()
    rng = np.random.default_rng(0)
    jobs = []
    for t in (0, 1, 2, 3):
        same = np.flatnonzero(tr_d.targets == te_d.targets[t])
        jobs.append(("random", t, rng.permutation(same)))
    kw = dict(k=60, n_models=5, budget=4)
    full, full_models = _full_rule(trainer, str(tmp_path / "full.sqlite"), jobs, **kw)
    early = run_searches(factory, str(tmp_path / "early.sqlite"), jobs, n_workers=1, progress=False, **kw)
    assert early == full
    with ResultsStore(str(tmp_path / "early.sqlite")) as st:
        assert st.count() < full_models


def _run_with_deadline(fn, seconds=60):
    """Runs fn in a thread; fails the test (instead of hanging CI) if it does not return."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), f"no answer within {seconds}s: the engine hangs"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _failing_run(tmp_path, factory, **engine):
    """A short search run that must end in an EngineError (within the deadline)."""
    jobs = _jobs(ThresholdTrainer())
    _run_with_deadline(
        lambda: run_searches(
            factory, str(tmp_path / "r.sqlite"), jobs, k=20, n_models=3, budget=3, progress=False, **engine
        )
    )


@pytest.mark.parametrize("n_workers", [1, 2])
def test_factory_that_raises_is_one_clear_error(tmp_path, n_workers):
    t0 = time.time()
    with pytest.raises(EngineError, match="factory failed.*dataset file missing"):
        _failing_run(tmp_path, FailingFactory(), n_workers=n_workers)
    assert time.time() - t0 < 60


@pytest.mark.parametrize("n_workers", [1, 2])
def test_unit_that_raises_is_one_clear_error(tmp_path, n_workers):
    with pytest.raises(EngineError, match="ValueError: out of labels"):
        _failing_run(tmp_path, FailingUnitTrainer, n_workers=n_workers)


def _kill_one_worker_when(log, pids_seen, min_lines):
    """Kills one worker process once the log shows min_lines finished units."""
    deadline = time.time() + 60
    while time.time() < deadline:
        if os.path.exists(log):
            with open(log) as f:
                lines = f.read().splitlines()
            if len(lines) >= min_lines:
                pid = int(lines[-1].split()[0])
                os.kill(pid, signal.SIGKILL)
                pids_seen.append(pid)
                return
        time.sleep(0.05)


def _killed_worker_run(tmp_path, engine, delay):
    """A run during which one worker is SIGKILLed: (supports, the uninterrupted run's, log)."""
    tr = ThresholdTrainer()
    kw = dict(k=20, n_models=3, budget=6, progress=False)
    whole = run_searches(ThresholdTrainer, str(tmp_path / "whole.sqlite"), _jobs(tr), n_workers=1, **kw)
    log, killed = str(tmp_path / "units.log"), []
    killer = threading.Thread(target=_kill_one_worker_when, args=(log, killed, 4))
    killer.start()
    factory = functools.partial(SlowCountingTrainer, log=log, delay=delay)
    got = _run_with_deadline(
        lambda: run_searches(factory, str(tmp_path / "r.sqlite"), _jobs(tr), engine=engine, n_workers=2, **kw), 180
    )
    killer.join()
    assert killed and got == whole
    with ResultsStore(str(tmp_path / "r.sqlite")) as a, ResultsStore(str(tmp_path / "whole.sqlite")) as b:
        assert [r[:7] for r in a.rows()] == [r[:7] for r in b.rows()]
    return log


def test_local_pool_retries_the_units_of_a_killed_worker(tmp_path):
    _killed_worker_run(tmp_path, "local", 0.2)


_DRIVER = """
import functools, sys
from helpers.fakes import SlowCountingTrainer, ThresholdTrainer
from simattr_fast.evaluation import run_searches
tr = ThresholdTrainer()
jobs = [("oracle", t, tr.supporters[t]) for t in range(4)]
factory = functools.partial(SlowCountingTrainer, log=sys.argv[1], delay=0.5)
run_searches(factory, sys.argv[2], jobs, k=20, n_models=3, budget=6, n_workers=2, progress=False)
"""


def test_workers_exit_when_their_driver_is_killed(tmp_path):
    """A driver killed mid-run must not leave its pool's workers waiting forever."""
    import subprocess
    import sys

    log = tmp_path / "units.log"
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}
    # From tmp_path: with `-c` the working directory leads sys.path, and the source tree's
    # simattr_fast (no compiled modules) would shadow the installed one.
    args = [sys.executable, "-c", _DRIVER, str(log), str(tmp_path / "r.sqlite")]
    drv = subprocess.Popen(args, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and (not log.exists() or len(set(log.read_text().split()[::2])) < 2):
            assert drv.poll() is None, f"the driver died: {drv.stderr.read()[-2000:]}"
            time.sleep(0.05)
        workers = {int(p) for p in log.read_text().split()[::2]}
        assert len(workers) == 2
    finally:
        drv.kill()
        drv.wait()
        drv.stderr.close()

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.time() + 15
    while time.time() < deadline and any(alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(alive(p) for p in workers)


# ---- Ray: one two-node cluster for the whole session ------------------------------------


def _blas_env():
    """The machine's BLAS settings (OPENBLAS_CORETYPE picks the kernel, and so the rounding of
    the SVM solver's GEMMs), given to the workers as a real cluster's nodes would have them."""
    return {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    # Start Ray away from the repository: its workers put the driver's working directory on
    # their sys.path, and the source tree there (without compiled modules) would shadow the
    # installed package.
    here = os.getcwd()
    os.chdir(tempfile.mkdtemp())
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    # The workers share no working directory with the tests: the fake trainers travel to
    # them as a package through Ray's runtime environment.
    helpers = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")
    ray.init(
        address=cluster.address,
        include_dashboard=False,
        logging_level="ERROR",
        runtime_env={"py_modules": [helpers], "env_vars": _blas_env()},
    )
    os.chdir(here)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_ray_and_local_engines_fill_identical_stores(tmp_path, ray_cluster):
    tr = ThresholdTrainer(noisy=0.2)
    flip = {t: (tr.y_test[t] + 1) % 3 for t in range(4)}
    factory = functools.partial(ThresholdTrainer, noisy=0.2)
    for criterion in ("removal", "mislabel"):
        kw = dict(k=20, n_models=5, budget=5, flip=flip if criterion == "mislabel" else None, progress=False)
        loc = run_searches(factory, str(tmp_path / "loc.sqlite"), _jobs(tr), criterion, n_workers=1, **kw)
        ray_ = run_searches(
            factory, str(tmp_path / "ray.sqlite"), _jobs(tr), criterion, engine="ray", n_workers=2, **kw
        )
        assert ray_ == loc
    assert flip_classes_on(
        factory, str(tmp_path / "ray.sqlite"), [0, 1, 2], tr.y_test, 3, engine="ray"
    ) == flip_classes_on(factory, str(tmp_path / "loc.sqlite"), [0, 1, 2], tr.y_test, 3, n_workers=1)
    w = np.random.default_rng(0).standard_normal((3, 40))
    lin = functools.partial(LinearTrainer, w)
    m_ray = subset_margins_on(lin, str(tmp_path / "ray.sqlite"), 40, [0, 1, 2], 12, engine="ray", n_workers=2)
    m_loc = subset_margins_on(lin, str(tmp_path / "loc.sqlite"), 40, [0, 1, 2], 12, n_workers=1)
    assert np.array_equal(m_ray, m_loc)
    with ResultsStore(str(tmp_path / "loc.sqlite")) as a, ResultsStore(str(tmp_path / "ray.sqlite")) as b:
        assert [r[:7] for r in a.rows()] == [r[:7] for r in b.rows()]


def test_ray_factory_that_raises_is_one_clear_error(tmp_path, ray_cluster):
    with pytest.raises(EngineError, match="factory failed on a Ray worker.*dataset file missing"):
        _failing_run(tmp_path, FailingFactory(), engine="ray", n_workers=2)


def test_ray_worker_killed_mid_run(tmp_path, ray_cluster):
    log = _killed_worker_run(tmp_path, "ray", 0.3)
    # Units executed to completion: every store row once, plus at most the unit that was
    # running on the killed worker (its models finished but never reached the driver).
    with open(log) as f:
        models = sum(int(line.split()[1]) for line in f.read().splitlines())
    with ResultsStore(str(tmp_path / "r.sqlite")) as a:
        assert a.count() <= models <= a.count() + 3


@pytest.mark.parametrize("method", ["cosine", "l2", "esvm"])
@pytest.mark.parametrize("condition", ["true", "none"])
def test_sharded_attribution_on_ray_equals_one_process(ray_cluster, method, condition):
    from simattr_fast import Attributor

    rng = np.random.default_rng(3)
    train = rng.integers(-2, 3, (600, 12)).astype(np.float32)  # small integers: many exact ties
    train[300:320] = train[:20]  # duplicated rows across the set
    ytr = rng.integers(0, 5, 600)
    ytr[ytr == 4] = 3  # class 4 has no training images
    test = rng.standard_normal((70, 12)).astype(np.float32)
    yte = rng.integers(0, 5, 70)
    kw = dict(method=method, k=40, condition=condition, progress=False)
    one = Attributor(**kw).fit(train, ytr).attribute(test, yte)
    many = Attributor(engine="ray", n_shards=3, **kw).fit(train, ytr).attribute(test, yte)
    assert np.array_equal(one.indices, many.indices)
    assert np.array_equal(one.scores, many.scores, equal_nan=True)
