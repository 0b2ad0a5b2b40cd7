import json
import subprocess
import sys

import numpy as np

from simattr_fast.cli import main


def test_demo_writes_rankings(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--k", "7"]) == 0
    meta = json.loads((tmp_path / "demo.json").read_text())
    res = np.load(tmp_path / meta["results"])
    assert res["indices"].shape == (meta["n_test"], 7)
    labels = __import__("sklearn.datasets", fromlist=["load_digits"]).load_digits().target
    # class-conditioned: every returned training image has the test image's label
    assert np.all(labels[res["indices"]] == labels[res["test_ids"]][:, None])
    assert "results:" in capsys.readouterr().out


def test_cli_error_is_one_line_and_nonzero(tmp_path):
    # cwd=tmp_path: `python -m` puts the cwd first on sys.path, and from the repository
    # root that would import the source tree (without its compiled modules).
    p = subprocess.run([sys.executable, "-m", "simattr_fast.cli", "demo", "--k", "-1", "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0
    assert "error: --k: expected a positive integer" in p.stderr
    assert "Traceback" not in p.stderr


def _err(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_embed_and_train_ssl_commands(tmp_path, capsys):
    run = tmp_path / "ssl"
    assert main(["train-ssl", "--dataset", "digits", "--out", str(run), "--epochs", "1", "--batch-size", "64"]) == 0
    assert "kNN accuracy on test" in capsys.readouterr().out
    ckpt = str(run / "checkpoint.pt")
    assert main(["embed", "--dataset", "digits", "--split", "test", "--checkpoint", ckpt,
                 "--out", str(tmp_path / "emb"), "--dtype", "float32"]) == 0
    assert "450 images -> 256-d float32" in capsys.readouterr().out
    meta = json.loads((tmp_path / "emb" / "meta.json").read_text())
    assert meta["backbone"] == "small_cnn"  # taken from the train-ssl checkpoint
    assert "fits the backbone" in _err(capsys, ["embed", "--dataset", "digits", "--checkpoint", ckpt, "--backbone",
                                      "cifar_resnet18", "--out", str(tmp_path / "x")])


def test_embed_errors_are_one_line(tmp_path, capsys):
    ckpt = tmp_path / "c.pth"
    ckpt.write_bytes(b"junk")
    assert "--checkpoint: no file" in _err(capsys, ["embed", "--dataset", "digits", "--checkpoint",
                                                    str(tmp_path / "none.pth"), "--out", str(tmp_path / "o")])
    assert "neither a known name" in _err(capsys, ["embed", "--dataset", "imagenet21k", "--checkpoint", str(ckpt),
                                                   "--out", str(tmp_path / "o")])
    assert "cannot be read" in _err(capsys, ["embed", "--dataset", "digits", "--checkpoint", str(ckpt),
                                             "--out", str(tmp_path / "o")])
    assert "needs --data-root" in _err(capsys, ["train-ssl", "--dataset", "cifar10", "--out", str(tmp_path / "o")])
