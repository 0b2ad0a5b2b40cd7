"""The SimCLR trainer: augmentation, loss and kNN against plain references; checkpoints and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from simattr_fast.backbones import build_backbone
from simattr_fast.checkpoints import load_checkpoint
from simattr_fast.datasets import ArrayDataset, digits_dataset
from simattr_fast.simclr import augment, knn_accuracy, nt_xent, train_ssl

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("c", [1, 3])
def test_augment_shapes_range_and_seed(c):
    x = torch.rand(5, c, 9, 7, generator=torch.Generator().manual_seed(0))
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and not torch.allclose(a, x)


def test_nt_xent_matches_a_loop():
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    t = 0.3
    zn = z / z.norm(dim=1, keepdim=True)
    losses = []
    for i in range(6):
        j = (i + 3) % 6
        logits = torch.tensor([float(zn[i] @ zn[m]) / t for m in range(6) if m != i])
        pos = float(zn[i] @ zn[j]) / t
        losses.append(-(pos - torch.logsumexp(logits, 0)))
    assert torch.allclose(nt_xent(z, t), torch.stack(losses).mean(), atol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 97])
def test_knn_accuracy_matches_brute_force(rng, k):
    xtr, ytr = rng.standard_normal((120, 5)), rng.integers(0, 4, 120)
    xte, yte = rng.standard_normal((31, 5)), rng.integers(0, 4, 31)
    a = xte / np.linalg.norm(xte, axis=1, keepdims=True)
    b = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
    sims = a @ b.T
    correct = 0
    for i in range(len(yte)):
        top = np.argsort(-sims[i], kind="stable")[:k]
        votes = np.bincount(ytr[top], weights=np.exp(sims[i, top] / 0.1), minlength=4)
        correct += votes.argmax() == yte[i]
    assert knn_accuracy(xtr, ytr, xte, yte, k=k) == pytest.approx(correct / len(yte))


def _tiny(n=64):
    d = digits_dataset("train")
    return ArrayDataset(d.images[:n], d.targets[:n], name="digits-tiny")


def test_train_ssl_writes_a_loadable_checkpoint_and_log(tmp_path):
    data, evals = _tiny(), _tiny(32)
    last = train_ssl(data, str(tmp_path), epochs=2, batch_size=32, eval_dataset=evals, progress=False)
    assert last["epoch"] == 2 and 0 <= last["knn_accuracy"] <= 1 and np.isfinite(last["loss"])
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]
    model = build_backbone("small_cnn")
    assert load_checkpoint(model, str(tmp_path / "checkpoint.pt"))["nest"] == "state_dict"
    # a finished run is not redone; other settings on the same folder are refused
    mtime = os.path.getmtime(tmp_path / "checkpoint.pt")
    assert train_ssl(data, str(tmp_path), epochs=2, batch_size=32, progress=False) == last
    assert os.path.getmtime(tmp_path / "checkpoint.pt") == mtime
    with pytest.raises(ValueError, match="other settings"):
        train_ssl(data, str(tmp_path), epochs=3, batch_size=32, progress=False)


def test_train_ssl_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="epochs"):
        train_ssl(_tiny(), str(tmp_path), epochs=0)
    with pytest.raises(ValueError, match="at least 2 images"):
        train_ssl(_tiny(), str(tmp_path), batch_size=1)


SCRIPT = """
import sys, time
import simattr_fast.simclr as ssl
from test_ssl import _tiny
save = ssl._save_atomic
def slow_save(obj, path):  # slows epochs down so that the parent can kill between them
    save(obj, path)
    time.sleep(0.5)
ssl._save_atomic = slow_save
ssl.train_ssl(_tiny(), sys.argv[1], epochs=6, batch_size=32, progress=False)
"""


def test_killed_training_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], cwd=tmp_path, env=env)
    log = out / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 2):
        assert proc.poll() is None, "the training subprocess ended before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = train_ssl(_tiny(), str(out), epochs=6, batch_size=32, progress=False)
    epochs = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 6  # nothing redone, nothing skipped
    whole = train_ssl(_tiny(), str(tmp_path / "whole"), epochs=6, batch_size=32, progress=False)
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-4)
    a = torch.load(out / "checkpoint.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["state_dict"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_time_limit_never_logs_an_empty_epoch(tmp_path, monkeypatch):
    """A time limit that runs out at an epoch boundary used to log one more epoch of zero steps
    with loss 0.0000; an epoch with no step is neither counted nor logged."""
    import simattr_fast.simclr as simclr

    clock = iter(np.arange(0.0, 1e6, 1.0))  # every perf_counter call advances one second
    monkeypatch.setattr(simclr.time, "perf_counter", lambda: float(next(clock)))
    data = _tiny()
    steps_per_epoch = len(data) // 16
    # The budget covers the first epoch's steps, then runs out before the second one's first.
    last = train_ssl(data, str(tmp_path), epochs=5, batch_size=16, time_limit=steps_per_epoch + 1.5, progress=False)
    with open(tmp_path / "log.jsonl") as f:
        log = [json.loads(line) for line in f]
    assert all(e["steps"] > 0 and e["loss"] > 0 for e in log)
    assert last == log[-1] and last["epoch"] == len(log)


def test_time_limit_before_the_first_step_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="time_limit: the limit ended the run before its first training step"):
        train_ssl(_tiny(), str(tmp_path), epochs=2, batch_size=16, time_limit=1e-9, progress=False)
