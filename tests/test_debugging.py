"""Near-duplicates, train-test leakage and label-error scores against brute-force references."""

import json

import numpy as np
import pytest

from simattr_fast.cli import main
from simattr_fast.debugging import default_threshold, find_duplicates, label_error_scores


def _brute_pairs(x, thr):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T
    i, j = np.nonzero(np.triu(s >= thr, 1))
    return {(int(a), int(b)) for a, b in zip(i, j)}


@pytest.mark.parametrize("n", [3, 97, 1025])
def test_duplicates_match_brute_force(rng, n):
    x = rng.standard_normal((n, 12)).astype(np.float32)
    m = max(1, n // 10)
    src = rng.integers(0, n, m)
    dst = rng.permutation(n)[:m]
    ok = src != dst
    x[dst[ok]] = x[src[ok]] + 1e-3 * rng.standard_normal((ok.sum(), 12)).astype(np.float32)
    d = find_duplicates(x, threshold=0.999, k=n)
    assert {tuple(p) for p in d.train_pairs.tolist()} == _brute_pairs(x.astype(np.float64), 0.999)
    for g in d.groups:  # every group is connected through found pairs
        assert len(g) >= 2


def test_exact_copies_groups_and_leaks(rng):
    x = rng.standard_normal((300, 8)).astype(np.float32)
    x[[10, 20, 30]] = x[5]
    test = rng.standard_normal((40, 8)).astype(np.float32)
    test[7] = x[100] * 3.0  # a scaled copy: cosine 1
    d = find_duplicates(x, test)
    assert d.groups == [[5, 10, 20, 30]]
    assert d.leaks.tolist() == [[7, 100]] and np.isclose(d.leak_similarity[0], 1.0)


def test_default_threshold_is_data_derived():
    assert default_threshold(np.array([0.5, 0.6, 0.7])) == pytest.approx(0.96)  # 1 - 0.1 * median(0.4)
    assert default_threshold(np.array([-0.5, 0.0])) == 0.95  # never looser than 0.95
    assert default_threshold(np.array([0.999, 0.999])) == pytest.approx(0.9999)  # tight data, tight threshold


def test_bad_arguments(rng):
    x = rng.standard_normal((5, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="k: expected a positive integer"):
        find_duplicates(x, k=0)
    with pytest.raises(ValueError, match="threshold"):
        find_duplicates(x, threshold=1.5)
    with pytest.raises(TypeError, match="labels: expected an integer dtype"):
        label_error_scores(x, np.zeros(5))


def _label_scores_reference(x, y, k, temperature=0.02):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn.astype(np.float64) @ xn.T.astype(np.float64)
    out = np.zeros(len(x))
    for i in range(len(x)):
        order = [j for j in np.lexsort((np.arange(len(x)), -s[i])) if j != i][:k]
        w = np.exp((s[i, order] - 1) / temperature)
        out[i] = (w * (y[order] != y[i])).sum() / w.sum() if w.sum() > 0 else 0.0
    return out


@pytest.mark.parametrize("n,k", [(3, 1), (97, 5), (200, 20)])
def test_label_error_scores_match_reference(rng, n, k):
    x = np.abs(rng.standard_normal((n, 6))).astype(np.float32) + 0.1
    y = rng.integers(0, 3, n)
    got = label_error_scores(x, y, k=k)
    assert np.allclose(got, _label_scores_reference(x, y, k), atol=1e-5)


def test_label_errors_find_flipped_labels(rng):
    centers = rng.standard_normal((4, 16)) * 4
    y = rng.integers(0, 4, 400)
    x = (centers[y] + rng.standard_normal((400, 16))).astype(np.float32)
    noisy = y.copy()
    flipped = rng.choice(400, 20, replace=False)
    noisy[flipped] = (y[flipped] + 1) % 4
    scores = label_error_scores(x, noisy, k=10)
    top = set(np.argsort(-scores)[:20].tolist())
    assert len(top & set(flipped.tolist())) >= 18


def test_cli_duplicates_and_label_errors(tmp_path, rng, capsys):
    x = rng.standard_normal((100, 8)).astype(np.float32)
    x[50] = x[3]
    y = rng.integers(0, 2, 100)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    assert (
        main(
            [
                "duplicates",
                "--train",
                str(tmp_path / "x.npy"),
                "--test",
                str(tmp_path / "x.npy"),
                "--out",
                str(tmp_path / "dup"),
            ]
        )
        == 0
    )
    out = json.loads((tmp_path / "dup" / "duplicates.json").read_text())
    assert [3, 50] in out["groups"] and (tmp_path / "dup" / "duplicates.csv").exists()
    assert (
        main(
            [
                "label-errors",
                "--train",
                str(tmp_path / "x.npy"),
                "--train-labels",
                str(tmp_path / "y.npy"),
                "--out",
                str(tmp_path / "le.csv"),
            ]
        )
        == 0
    )
    rows = (tmp_path / "le.csv").read_text().splitlines()
    assert rows[0] == "rank,index,label,score" and len(rows) == 101
    capsys.readouterr()
    assert main(["label-errors", "--train", str(tmp_path / "x.npy"), "--out", str(tmp_path / "le.csv")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
