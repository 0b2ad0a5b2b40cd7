"""Supporters and opponents: the competing class, the opponents' ranking against the kernels,
storage, the CLI and the report."""

from pathlib import Path

import numpy as np
import pytest

import simattr_fast as sa
from simattr_fast import Attribution, Attributor
from simattr_fast.attributor import competing_labels
from simattr_fast.cli import main


def test_competing_labels():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    y = np.array([0, 0, 1])
    # right -> runner-up; wrong -> the predicted class
    assert competing_labels(p, y).tolist() == [1, 2, 2]
    with pytest.raises(ValueError, match="test_labels: expected classes in"):
        competing_labels(p, np.array([0, 3, 1]))
    with pytest.raises(ValueError, match="probabilities"):
        competing_labels(np.ones((3, 1)), np.zeros(3, int))


@pytest.mark.parametrize("method", ["esvm", "cosine", "l2"])
def test_opponents_equal_the_kernel_on_the_competing_class(rng, method):
    x = rng.standard_normal((97, 6)).astype(np.float32)
    y = rng.integers(0, 4, 97)
    t = rng.standard_normal((11, 6)).astype(np.float32)
    ty = rng.integers(0, 4, 11)
    opp = (ty + 1) % 4
    a = Attributor(method, k=7, progress=False).fit(x, y).attribute(t, ty, opponent_labels=opp)
    fn = sa.esvm_topk if method == "esvm" else sa.topk
    kw = {} if method == "esvm" else {"metric": method}
    s, i = fn(t, x, 7, query_labels=opp, key_labels=y, **kw)
    assert np.array_equal(a.opponent_indices, i) and np.array_equal(a.opponent_scores, s, equal_nan=True)
    assert (y[a.opponent_indices[a.opponent_indices >= 0]] == np.repeat(opp, 7)[a.opponent_indices.ravel() >= 0]).all()


def test_opponents_round_trip_and_validation(tmp_path, rng):
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = rng.integers(0, 2, 40)
    a = Attributor("cosine", k=5).fit(x, y).attribute(x[:4], y[:4], opponent_labels=1 - y[:4])
    b = Attribution.load(a.save(str(tmp_path / "a.npz")))
    assert np.array_equal(a.opponent_indices, b.opponent_indices) and np.array_equal(b.opponent_labels, 1 - y[:4])
    with pytest.raises(ValueError, match="all three or none"):
        Attribution(a.indices, a.scores, a.test_ids, opponent_indices=a.opponent_indices)
    with pytest.raises(ValueError, match="fit with train_labels"):
        Attributor("cosine", k=2, condition="none").fit(x).attribute(x[:2], opponent_labels=np.zeros(2, int))


def test_cli_and_report_show_opponents(tmp_path, rng):
    from simattr_fast.datasets import ArrayDataset
    from simattr_fast.report import render_report

    x = rng.standard_normal((60, 4)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    for name, arr in (("x", x), ("y", y), ("p", rng.random((60, 3)))):
        np.save(tmp_path / f"{name}.npy", arr)
    argv = ["attribute", "--train", str(tmp_path / "x.npy"), "--train-labels", str(tmp_path / "y.npy")]
    argv += ["--test", str(tmp_path / "x.npy"), "--test-labels", str(tmp_path / "y.npy"), "--method", "cosine"]
    argv += ["--k", "4", "--out", str(tmp_path / "a.npz"), "--opponents", str(tmp_path / "p.npy")]
    assert main(argv) == 0
    a = Attribution.load(str(tmp_path / "a.npz"))
    assert a.opponent_indices.shape == (60, 4)
    assert np.array_equal(a.opponent_labels, competing_labels(np.load(tmp_path / "p.npy"), y))
    data = ArrayDataset(rng.integers(0, 255, (60, 6, 6)).astype(np.uint8), y)
    page = Path(render_report(a, data, data, str(tmp_path / "r.html"), rows=range(3), top=4)).read_text()
    assert page.count("class='row opponents'") == 3 and page.count("class='row supporters'") == 3
