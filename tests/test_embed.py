"""embed: features equal the model's, metadata, and resume after a kill."""

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
from simattr_fast.datasets import digits_dataset
from simattr_fast.embed import embed, load_embeddings

from helpers.formats import SlowDataset

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "small.pth"
    torch.save(build_backbone("small_cnn")[1].state_dict(), path)
    return str(path)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("batch_size", [1, 4, 97])
def test_embed_matches_model(tmp_path, ckpt, dtype, batch_size):
    data = SlowDataset(n=13)
    e = embed(
        data,
        str(tmp_path / "e"),
        backbone="small_cnn",
        checkpoint=ckpt,
        batch_size=batch_size,
        dtype=dtype,
        device="cpu",
        progress=False,
    )
    model = build_backbone("small_cnn")
    model[1].load_state_dict(torch.load(ckpt))
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(data.x)).numpy()
    assert isinstance(e.features, np.memmap) and e.features.dtype == np.dtype(dtype)
    tol = 1e-5 if dtype == "float32" else 2e-3
    np.testing.assert_allclose(e.features.astype(np.float32), want, rtol=tol, atol=tol)
    np.testing.assert_array_equal(e.labels, data.targets)
    m = json.loads((tmp_path / "e" / "meta.json").read_text())
    assert (m["count"], m["dim"], m["dtype"], m["backbone"]) == (13, 256, dtype, "small_cnn")
    assert m["checkpoint"]["sha256"] and m["dataset_fingerprint"] == "slow-13" and m["preprocess"]["channels"] == 3
    assert sorted(os.listdir(tmp_path / "e")) == ["embeddings.npy", "labels.npy", "meta.json"]


def test_custom_module_and_real_dataset(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64, 5))
    data = digits_dataset("test")
    e = embed(data, str(tmp_path / "d"), backbone=net, batch_size=100, dtype="float32", progress=False)
    with torch.no_grad():
        want = net((data.tensors().expand(-1, 3, -1, -1) - 0.5) / 0.5).numpy()
    np.testing.assert_allclose(e.features, want, rtol=1e-5, atol=1e-6)
    assert e.meta["backbone"] == "Sequential" and e.meta["dataset"]["count"] == 450


def test_named_backbone_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(ValueError, match="checkpoint: backbone 'resnet18' has only random weights"):
        embed(SlowDataset(n=2), str(tmp_path / "e"), backbone="resnet18")


def test_bad_arguments(tmp_path, ckpt):
    with pytest.raises(ValueError, match="dtype"):
        embed(SlowDataset(), str(tmp_path), checkpoint=ckpt, backbone="small_cnn", dtype="int8")
    with pytest.raises(ValueError, match="batch_size"):
        embed(SlowDataset(), str(tmp_path), checkpoint=ckpt, backbone="small_cnn", batch_size=0)
    with pytest.raises(ValueError, match="features \\[batch, d\\]"):
        embed(SlowDataset(), str(tmp_path / "x"), backbone=torch.nn.Identity(), progress=False)


def test_finished_folder_is_reused_and_guarded(tmp_path, ckpt):
    out = str(tmp_path / "e")
    a = embed(SlowDataset(n=6), out, backbone="small_cnn", checkpoint=ckpt, progress=False)
    data = SlowDataset(n=6)
    b = embed(data, out, backbone="small_cnn", checkpoint=ckpt, progress=False)
    assert data.served == 0 and np.array_equal(a.features, b.features)
    with pytest.raises(ValueError, match="different settings"):
        embed(SlowDataset(n=6), out, backbone="small_cnn", checkpoint=ckpt, dtype="float32", progress=False)


SCRIPT = """
import sys
from helpers.formats import SlowDataset
from simattr_fast.embed import embed
embed(SlowDataset(n=48, delay=0.03), sys.argv[1], backbone="small_cnn", checkpoint=sys.argv[2],
      batch_size=4, device="cpu", progress=False)
"""


def test_killed_run_resumes_to_the_same_array(tmp_path, ckpt):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), ckpt], cwd=tmp_path, env=env)
    prog = out / "progress.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if json.loads(prog.read_text())["rows_done"] >= 12:
                break
        except (OSError, ValueError):
            pass
        assert proc.poll() is None, "the embedding subprocess ended before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = json.loads(prog.read_text())["rows_done"]
    assert 12 <= done_at_kill < 48
    with pytest.raises(ValueError, match="not a finished embedding folder.*resume"):
        load_embeddings(str(out))
    data = SlowDataset(n=48)
    resumed = embed(data, str(out), backbone="small_cnn", checkpoint=ckpt, batch_size=4, device="cpu", progress=False)
    assert data.served == 48 - done_at_kill  # it continued, it did not start over
    whole = embed(
        SlowDataset(n=48),
        str(tmp_path / "whole"),
        backbone="small_cnn",
        checkpoint=ckpt,
        batch_size=4,
        device="cpu",
        progress=False,
    )
    np.testing.assert_array_equal(resumed.features, whole.features)
    np.testing.assert_array_equal(resumed.labels, whole.labels)
    assert not (out / "progress.json").exists()


def test_resume_with_other_settings_is_refused(tmp_path, ckpt):
    out = tmp_path / "e"
    out.mkdir()
    (out / "progress.json").write_text(json.dumps({"rows_done": 4, "settings": {"batch_size": 8}}))
    with open(out / "embeddings.npy.partial", "wb") as f:  # np.save would append ".npy" to a path
        np.save(f, np.zeros((6, 256), np.float16))
    with pytest.raises(ValueError, match="interrupted run with different settings"):
        embed(SlowDataset(n=6), str(out), backbone="small_cnn", checkpoint=ckpt, progress=False)


def test_inconsistent_folder_is_refused(tmp_path, ckpt):
    out = str(tmp_path / "e")
    embed(SlowDataset(n=6), out, backbone="small_cnn", checkpoint=ckpt, progress=False)
    np.save(os.path.join(out, "labels.npy"), np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="inconsistent"):
        load_embeddings(out)
