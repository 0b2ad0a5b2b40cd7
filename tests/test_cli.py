import json
import subprocess
import sys

import numpy as np
import pytest

from simattr_fast import Attribution
from simattr_fast.cli import main
from simattr_fast.datasets import digits_dataset


def test_demo_runs_the_whole_pipeline(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--k", "7", "--epochs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Open the report: " + str(out / "report.html") in printed
    meta = json.loads((out / "demo.json").read_text())
    res = Attribution.load(meta["attribution"])
    assert res.indices.shape == (450, 7) and res.params["method"] == "esvm"
    train = digits_dataset("train")
    # class-conditioned: every returned training image has the test image's label
    assert np.all(train.targets[res.indices] == res.test_labels[:, None])
    assert (out / "report.html").read_text().count("<section") == 30
    assert res.provenance["train"]["backbone"] == "small_cnn"
    assert set(meta["removal_check"]) == {"esvm", "random"} and meta["removal_check"]["esvm"]["n"] == 4
    assert "removal-support check on 4 least confident correct test digits" in printed


def test_cli_error_is_one_line_and_nonzero(tmp_path):
    # cwd=tmp_path: `python -m` puts the cwd first on sys.path, and from the repository
    # root that would import the source tree (without its compiled modules).
    p = subprocess.run(
        [sys.executable, "-m", "simattr_fast.cli", "demo", "--k", "-1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
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
    assert (
        main(
            [
                "embed",
                "--dataset",
                "digits",
                "--split",
                "test",
                "--checkpoint",
                ckpt,
                "--out",
                str(tmp_path / "emb"),
                "--dtype",
                "float32",
            ]
        )
        == 0
    )
    assert "450 images -> 256-d float32" in capsys.readouterr().out
    meta = json.loads((tmp_path / "emb" / "meta.json").read_text())
    assert meta["backbone"] == "small_cnn"  # taken from the train-ssl checkpoint
    assert "fits the backbone" in _err(
        capsys,
        [
            "embed",
            "--dataset",
            "digits",
            "--checkpoint",
            ckpt,
            "--backbone",
            "cifar_resnet18",
            "--out",
            str(tmp_path / "x"),
        ],
    )


def test_embed_errors_are_one_line(tmp_path, capsys):
    ckpt = tmp_path / "c.pth"
    ckpt.write_bytes(b"junk")
    assert "--checkpoint: no file" in _err(
        capsys,
        ["embed", "--dataset", "digits", "--checkpoint", str(tmp_path / "none.pth"), "--out", str(tmp_path / "o")],
    )
    assert "neither a known name" in _err(
        capsys, ["embed", "--dataset", "imagenet21k", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")]
    )
    assert "cannot be read" in _err(
        capsys, ["embed", "--dataset", "digits", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")]
    )
    assert "needs --data-root" in _err(capsys, ["train-ssl", "--dataset", "cifar10", "--out", str(tmp_path / "o")])


@pytest.fixture
def arrays(tmp_path, rng):
    paths = {}
    for name, a in {
        "xtr": rng.random((30, 4), dtype=np.float32),
        "ytr": rng.integers(0, 3, 30),
        "xte": rng.random((5, 4), dtype=np.float32),
        "yte": rng.integers(0, 3, 5),
        "xte3": rng.random((5, 3), dtype=np.float32),
        "short": np.zeros(29, int),
    }.items():
        paths[name] = str(tmp_path / f"{name}.npy")
        np.save(paths[name], a)
    return paths


def test_attribute_command_from_arrays(tmp_path, arrays, capsys):
    out, topk = str(tmp_path / "a.npz"), str(tmp_path / "topk.npy")
    assert (
        main(
            [
                "attribute",
                "--train",
                arrays["xtr"],
                "--train-labels",
                arrays["ytr"],
                "--test",
                arrays["xte"],
                "--test-labels",
                arrays["yte"],
                "--out",
                out,
                "--k",
                "4",
                "--method",
                "cosine",
                "--export-topk",
                topk,
            ]
        )
        == 0
    )
    res = Attribution.load(out)
    np.testing.assert_array_equal(np.load(topk), res.indices)
    ytr = np.load(arrays["ytr"])
    assert np.all((ytr[res.indices] == np.load(arrays["yte"])[:, None]) | (res.indices < 0))


def test_attribute_and_report_errors_are_one_line(tmp_path, arrays, capsys):
    base = [
        "attribute",
        "--train",
        arrays["xtr"],
        "--test",
        arrays["xte"],
        "--test-labels",
        arrays["yte"],
        "--out",
        str(tmp_path / "a.npz"),
    ]
    assert "--train-labels: expected one label per embedding (30), got shape (29,)" in _err(
        capsys, base + ["--train-labels", arrays["short"]]
    )
    assert "expected dimension 4 like the training embeddings, got 3" in _err(
        capsys,
        [
            "attribute",
            "--train",
            arrays["xtr"],
            "--train-labels",
            arrays["ytr"],
            "--test",
            arrays["xte3"],
            "--test-labels",
            arrays["yte"],
            "--out",
            str(tmp_path / "a.npz"),
        ],
    )
    assert "--train: no such file" in _err(
        capsys,
        ["attribute", "--train", str(tmp_path / "nope"), "--test", arrays["xte"], "--out", str(tmp_path / "a.npz")],
    )
    assert "--predictions: --condition predicted needs" in _err(
        capsys, base + ["--train-labels", arrays["ytr"], "--condition", "predicted"]
    )
    assert main(base + ["--train-labels", arrays["ytr"], "--k", "3"]) == 0
    capsys.readouterr()
    raw = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[:-40])
    assert "corrupt or truncated" in _err(
        capsys, ["report", "--attribution", str(tmp_path / "cut.npz"), "--out", str(tmp_path / "r.html")]
    )
    assert not (tmp_path / "r.html").exists()
    assert "--train-data: the attribution does not record" in _err(
        capsys, ["report", "--attribution", str(tmp_path / "a.npz"), "--out", str(tmp_path / "r.html")]
    )
    assert "attribution: no file" in _err(
        capsys, ["report", "--attribution", str(tmp_path / "none.npz"), "--out", str(tmp_path / "r.html")]
    )


def test_report_command_reopens_recorded_datasets(tmp_path, capsys):
    demo = tmp_path / "demo"
    assert main(["demo", "--out", str(demo), "--k", "5", "--epochs", "1", "--check", "0"]) == 0
    out = tmp_path / "again.html"
    assert (
        main(
            ["report", "--attribution", str(demo / "attribution.npz"), "--out", str(out), "--n-test", "3", "--top", "2"]
        )
        == 0
    )
    assert out.read_text().count("<section") == 3


def test_evaluate_and_compare_commands(tmp_path, capsys):
    demo = tmp_path / "demo"
    assert main(["demo", "--out", str(demo), "--k", "10", "--epochs", "1", "--check", "0"]) == 0
    store, out = str(tmp_path / "s.sqlite"), str(tmp_path / "ev")
    argv = [
        "evaluate",
        "removal",
        "--attribution",
        f"ours={demo / 'attribution.npz'}",
        "--random",
        "--dataset",
        "digits",
        "--store",
        store,
        "--out",
        out,
        "--test-ids",
        "0,5",
        "--k",
        "8",
        "--models",
        "2",
        "--budget",
        "2",
        "--workers",
        "1",
        "--epochs",
        "1",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ours: flipped" in printed and "random: flipped" in printed
    summary = json.loads((tmp_path / "ev" / "summary_removal.json").read_text())
    assert summary["test_ids"] == [0, 5] and set(summary["supports"]) == {"ours", "random"}
    assert (tmp_path / "ev" / "cdf_removal.png").exists()
    n = summary["rows_in_store"]
    assert main(argv) == 0  # finished: nothing is trained again
    assert json.loads((tmp_path / "ev" / "summary_removal.json").read_text())["rows_in_store"] == n
    capsys.readouterr()
    assert main(["compare", "--store", store, "ours", "random"]) == 0
    assert "removal support on 2 common test images" in capsys.readouterr().out
    assert "nope: no finished removal searches" in _err(capsys, ["compare", "--store", store, "ours", "nope"])
    assert "--dataset: the small_cnn trainer needs" in _err(capsys, argv[:5] + ["--store", store, "--out", out])
    assert "was filled with settings/removal" in _err(capsys, argv[:-2] + ["--epochs", "2"])
    assert "attribution: no file" in _err(
        capsys,
        [
            "evaluate",
            "lds",
            "--attribution",
            str(tmp_path / "x.npz"),
            "--dataset",
            "digits",
            "--store",
            store,
            "--out",
            out,
        ],
    )
    lds_argv = ["evaluate", "lds", "--attribution", f"ours={demo / 'attribution.npz'}", "--dataset", "digits"]
    lds_argv += ["--store", str(tmp_path / "l.sqlite"), "--out", out, "--test-ids", "0,5", "--subsets", "3"]
    lds_argv += ["--models-per-subset", "2", "--workers", "1", "--epochs", "1"]
    assert main(lds_argv) == 0
    summary = json.loads((tmp_path / "ev" / "summary_lds.json").read_text())
    assert summary["models_per_subset"] == 2 and summary["rows_in_store"] == 3 * 2 * 2
