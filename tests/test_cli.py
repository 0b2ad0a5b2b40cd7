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
