"""Counterfactual evaluation: the search, the store, resume after a kill, workers, LDS, summaries."""

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from simattr_fast import Attribution
from simattr_fast.evaluation import (
    CENSORED,
    LinearProbe,
    ResultsStore,
    SmallCNN,
    flip_classes,
    head_to_head,
    lds,
    margins,
    plot_cdf,
    run_searches,
    subset_margins,
    subset_masks,
    summarize,
    support,
)
from simattr_fast.evaluation.resnet9 import ResNet9, augment_batch

from helpers.fakes import LinearTrainer, ThresholdTrainer

HERE = os.path.dirname(os.path.abspath(__file__))


def test_margins_reference(rng):
    lg = rng.standard_normal((2, 5, 4))
    y = rng.integers(0, 4, 5)
    want = np.empty((2, 5))
    for a in range(2):
        for i in range(5):
            other = np.delete(lg[a, i], y[i])
            want[a, i] = lg[a, i, y[i]] - np.log(np.exp(other).sum())
    np.testing.assert_allclose(margins(lg, y), want, rtol=1e-12)


@pytest.mark.parametrize("budget", [1, 3, 20])
def test_removal_support_bisects_to_the_threshold(tmp_path, budget):
    tr = ThresholdTrainer()
    with ResultsStore(str(tmp_path / "r.sqlite")) as st:
        for t in range(4):
            ranking = tr.supporters[t]
            k = len(ranking)
            s = support(tr, st, t, ranking, "oracle", k=k, n_models=3, budget=budget)
            need = tr.need[t]
            if need > k:
                assert s == CENSORED
            elif budget == 20:
                assert s == need  # enough steps: exact
            else:
                assert need <= s <= k  # the smallest m that flipped among those tried
        assert st.count() == tr.trained  # one row per model trained


def test_k_caps_the_search_and_rankings_pad(tmp_path):
    tr = ThresholdTrainer()
    with ResultsStore(str(tmp_path / "r.sqlite")) as st:
        assert support(tr, st, 0, tr.supporters[0], "oracle", k=4, budget=9) == CENSORED  # needs 5
        padded = np.concatenate([tr.supporters[0][:6], [-1, -1]])
        assert support(tr, st, 0, padded, "padded", k=1280, budget=9) == 5
        with pytest.raises(ValueError, match="criterion"):
            support(tr, st, 0, padded, "x", criterion="both")
        with pytest.raises(ValueError, match="flip_class"):
            support(tr, st, 0, padded, "x", criterion="mislabel")
        with pytest.raises(ValueError, match="budget"):
            support(tr, st, 0, padded, "x", budget=0)


def test_half_correct_rule(tmp_path):
    # noisy models: each seed independently wrong with probability 0.5 -> the <= 0.5 rule decides
    with ResultsStore(str(tmp_path / "r.sqlite")) as st:
        tr = ThresholdTrainer(need=(1000,) * 4, noisy=0.5)
        s = support(tr, st, 0, tr.supporters[0], "noisy", k=3, n_models=5, budget=2)
        fracs = [np.mean([c for c, _ in st.get(0, "noisy", "removal", m).values()]) for m in (3,)]
        assert (s == CENSORED) == (fracs[0] > 0.5)


def test_mislabel_support_and_flip_class(tmp_path):
    tr = ThresholdTrainer()
    with ResultsStore(str(tmp_path / "r.sqlite")) as st:
        flips = flip_classes(tr, st, [0, 1], n_models=3)
        assert flips == {0: 1, 1: 0}  # the fake predicts the true class; the wrong ones tie, the lower wins
        s = support(tr, st, 0, tr.supporters[0], "oracle", criterion="mislabel", k=10, budget=10, flip_class=flips[0])
        assert s == 5
        assert len(st.rows(criterion="flipclass")) == 6


def test_store_resume_trains_nothing_twice(tmp_path):
    path = str(tmp_path / "r.sqlite")
    with ResultsStore(path) as st:
        support(ThresholdTrainer(), st, 1, ThresholdTrainer().supporters[1], "oracle", k=18, budget=6)
        n = st.count()
    again = ThresholdTrainer()
    with ResultsStore(path) as st:
        support(again, st, 1, again.supporters[1], "oracle", k=18, budget=6)
        assert again.trained == 0 and st.count() == n
        st.set_info("k", "18")
        with pytest.raises(ValueError, match="k=18, not 20"):
            st.set_info("k", "20")


def _jobs(tr):
    return [
        (m, t, tr.supporters[t][::-1] if m == "reversed" else tr.supporters[t])
        for m in ("oracle", "reversed")
        for t in range(4)
    ]


def test_parallel_workers_share_one_store(tmp_path):
    tr = ThresholdTrainer()
    serial = run_searches(
        ThresholdTrainer, str(tmp_path / "a.sqlite"), _jobs(tr), k=20, n_models=3, budget=6, n_workers=1, progress=False
    )
    counts = tmp_path / "pids.txt"
    factory = functools.partial(ThresholdTrainer, count_file=str(counts), delay=0.2)
    par = run_searches(
        factory, str(tmp_path / "b.sqlite"), _jobs(tr), k=20, n_models=3, budget=6, n_workers=2, progress=False
    )
    assert par == serial
    pids = {line.split()[0] for line in counts.read_text().splitlines()}
    assert len(pids) == 2  # both workers trained models and wrote to the store
    with ResultsStore(str(tmp_path / "a.sqlite")) as a, ResultsStore(str(tmp_path / "b.sqlite")) as b:
        assert [r[:7] for r in a.rows()] == [r[:7] for r in b.rows()]


SCRIPT = """
import sys
from helpers.fakes import ThresholdTrainer
from simattr_fast.evaluation import run_searches
import test_evaluation as te
tr = ThresholdTrainer()
run_searches(lambda: ThresholdTrainer(delay=0.05), sys.argv[1], te._jobs(tr), k=20, n_models=3, budget=6,
             n_workers=1, progress=False)
"""


def test_killed_run_resumes_without_redoing_work(tmp_path):
    path = tmp_path / "killed.sqlite"
    env = {**os.environ, "PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(path)], cwd=tmp_path, env=env)
    deadline = time.time() + 120
    n_before = 0
    while time.time() < deadline:
        if path.exists():
            try:
                with ResultsStore(str(path)) as st:
                    n_before = st.count()
            except Exception:
                pass
        if n_before >= 20:
            break
        assert proc.poll() is None, "the evaluation subprocess ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with ResultsStore(str(path)) as st:
        n_before = st.count()
    trainers = []

    def factory():
        trainers.append(ThresholdTrainer())
        return trainers[-1]

    tr = ThresholdTrainer()
    resumed = run_searches(factory, str(path), _jobs(tr), k=20, n_models=3, budget=6, n_workers=1, progress=False)
    whole = run_searches(
        ThresholdTrainer,
        str(tmp_path / "whole.sqlite"),
        _jobs(tr),
        k=20,
        n_models=3,
        budget=6,
        n_workers=1,
        progress=False,
    )
    assert resumed == whole
    with ResultsStore(str(path)) as a, ResultsStore(str(tmp_path / "whole.sqlite")) as b:
        assert a.count() == b.count() == n_before + trainers[0].trained  # nothing lost, nothing redone


def test_lds_of_a_perfect_datamodel_is_one(rng):
    n_test, n_train, S = 3, 97, 40
    w = rng.standard_normal((n_test, n_train))
    tr = LinearTrainer(w)
    idx = np.argsort(-w, axis=1, kind="stable")
    exact = Attribution(idx, np.take_along_axis(w, idx, 1), np.arange(n_test))
    masks = subset_masks(n_train, S, 0.5, seed=1)
    assert masks.sum(1).tolist() == [round(0.5 * n_train)] * S
    with ResultsStore(":memory:") as st:
        mg = subset_margins(tr, st, np.arange(n_test), S, 0.5, seed=1, progress=False)
        assert st.count() == S * n_test
    res = lds(exact, masks, mg)
    assert res["lds"] == pytest.approx(1.0) and len(res["per_test"]) == n_test
    noise = Attribution(idx, rng.standard_normal(idx.shape), np.arange(n_test))
    assert abs(lds(noise, masks, mg)["lds"]) < 0.5
    with pytest.raises(ValueError, match="alpha"):
        subset_masks(10, 2, 1.5)


def test_summaries_and_plot(tmp_path):
    a = {0: 3, 1: -1, 2: 10, 3: 1}
    b = {0: 5, 1: -1, 2: 2, 4: 7}
    s = summarize(a, 10)
    assert (s["n"], s["flipped"], s["censored"]) == (4, 3, 1)
    assert s["fraction_flipped_at"][1] == 0.25 and s["fraction_flipped_at"][10] == 0.75
    assert s["cdf_area"] == pytest.approx(np.mean([0.25, 0.25, 0.5] + [0.5] * 6 + [0.75]))
    assert s["median"] == 6.5
    assert summarize({0: -1, 1: -1, 2: 4}, 10)["median"] == ">10"
    assert head_to_head(a, b) == {"n": 3, "a_smaller": 1, "b_smaller": 1, "tie": 1}
    png = plot_cdf({"a": a, "b": b}, 10, str(tmp_path / "cdf.png"))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("cls, shape", [(SmallCNN, (1, 28, 28)), (SmallCNN, (3, 32, 32)), (LinearProbe, (7,))])
def test_vectorised_trainers_equal_separate_training(rng, cls, shape):
    x = rng.random((64, *shape), dtype=np.float32)
    y = rng.integers(0, 3, 64)
    tr = cls(x, y, x[:5], y[:5], epochs=2, batch_size=16)
    both = tr.logits(tr.train(np.arange(50), y, [11, 12]), np.arange(5))
    one = tr.logits(tr.train(np.arange(50), y, [12]), np.arange(5))
    assert both.shape == (2, 5, 3)
    np.testing.assert_allclose(both[1], one[0], rtol=1e-4, atol=1e-4)
    assert not np.allclose(both[0], both[1])  # seeds differ
    m = tr.module(tr.train(np.arange(50), y, [11, 12]), 1)
    with torch.no_grad():
        alone = m(tr.x_test[:5]).numpy()
    np.testing.assert_allclose(alone, both[1], rtol=1e-4, atol=1e-5)


def test_small_cnn_learns(rng):
    from simattr_fast.datasets import digits_dataset

    d = digits_dataset("train")
    x = torch.nn.functional.interpolate(d.tensors(), size=28)
    tr = SmallCNN(x, d.targets, x[:200], d.targets[:200], epochs=3)
    acc = tr.logits(tr.train(np.arange(len(x)), d.targets, [0]), np.arange(200))[0].argmax(1) == d.targets[:200]
    assert acc.mean() > 0.8


def test_resnet9_runs_on_cpu(rng):
    x = rng.random((16, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    g = torch.Generator().manual_seed(0)
    a = augment_batch(torch.as_tensor(x), g)
    assert a.shape == x.shape and (a == 0).any()  # cutout
    recipe = ResNet9(x, y, x[:3], y[:3], device="cpu")
    assert recipe._lr(5) == 0.5 and recipe._lr(24) == 0.0 and recipe._lr(2.5) == 0.25 and recipe._lr(14.5) == 0.25
    tr = ResNet9(x, y, x[:3], y[:3], epochs=1, batch_size=8, device="cpu")
    out = tr.logits(tr.train(np.arange(16), y, [0]), [0, 1, 2])
    assert out.shape == (1, 3, 10) and np.isfinite(out).all()


@pytest.mark.gpu
def test_resnet9_recipe_on_gpu(rng):
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    x = rng.random((1024, 3, 32, 32), dtype=np.float32)
    y = (x[:, 0].mean((1, 2)) > 0.5).astype(int)  # learnable: brightness of the red channel
    tr = ResNet9(x, y, x[:256], y[:256], epochs=4, device="cuda")
    out = tr.logits(tr.train(np.arange(1024), y, [0, 1]), np.arange(256))
    assert out.shape == (2, 256, 2) and (out.argmax(-1) == y[:256]).mean() > 0.7
