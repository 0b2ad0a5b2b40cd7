"""Near-duplicates, train-test leakage and label-error scores against brute-force references."""

import json

import numpy as np
import pytest

from simattr_fast.cli import main
from simattr_fast.debugging import default_threshold, find_duplicates, label_error_scores
from simattr_fast.label_errors import lda_posterior, logistic_posterior


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
    got = label_error_scores(x, y, method="neighbours", k=k)
    assert np.allclose(got, _label_scores_reference(x, y, k), atol=1e-5)


@pytest.mark.parametrize("n", [3, 97, 1025])
def test_lda_scores_match_scikit_learn(rng, n, tmp_path):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    y = np.arange(n) % 3 + 5  # labels need not start at 0
    x = (rng.standard_normal((n, 4)) + y[:, None]).astype(np.float32)
    if n == 3:  # one image per class, fewer than dimensions: only the ridge makes the covariance invertible
        got = label_error_scores(x, y, method="lda")
        assert np.isfinite(got).all() and (got >= 0).all() and (got <= 1).all()
        return
    ref = LinearDiscriminantAnalysis(solver="lsqr").fit(x.astype(np.float64), y).predict_proba(x.astype(np.float64))
    want = 1 - ref[np.arange(n), y - 5]
    got = label_error_scores(x, y, method="lda")
    np.testing.assert_allclose(got, want, atol=1e-4)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float16, shape=x.shape)
    mm[:] = x
    np.testing.assert_allclose(
        label_error_scores(mm, y, method="lda"),
        label_error_scores(x.astype(np.float16).astype(np.float32), y, method="lda"),
    )


@pytest.mark.parametrize("n", [3, 97, 1025])
def test_logistic_scores_match_scikit_learn(rng, n, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    y = np.arange(n) % 3 + 5
    x = (rng.standard_normal((n, 4)) * [1, 2, 0.5, 3] + y[:, None] * [1, 0, -1, 0.5]).astype(np.float32)
    x[:, 1] = 7.0  # a constant feature: standardised to 0, not divided by 0
    ridge = 1e-2
    # Ours: mean cross-entropy + ridge |W|^2; scikit-learn's: C * summed cross-entropy + |W|^2 / 2.
    z = StandardScaler().fit_transform(x.astype(np.float64))
    ref = LogisticRegression(C=1 / (2 * n * ridge), tol=1e-10, max_iter=10000).fit(z, y).predict_proba(z)
    want = 1 - ref[np.arange(n), y - 5]
    got = label_error_scores(x, y, method="logistic", ridge=ridge)
    np.testing.assert_allclose(got, want, atol=2e-5)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float16, shape=x.shape)
    mm[:] = x
    np.testing.assert_allclose(
        label_error_scores(mm, y, method="logistic", ridge=ridge),
        label_error_scores(x.astype(np.float16).astype(np.float32), y, method="logistic", ridge=ridge),
    )


def test_logistic_reads_large_inputs_chunk_by_chunk(rng, tmp_path, monkeypatch):
    """Beyond the float64 cache the rows are read in chunks in every step: same fit."""
    from simattr_fast import label_errors

    y = np.arange(97) % 3
    x = (rng.standard_normal((97, 5)) + y[:, None]).astype(np.float32)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mm[:] = x
    cached = logistic_posterior(x, y, 1e-2)
    monkeypatch.setattr(label_errors, "_CACHE_BYTES", 0)
    np.testing.assert_allclose(logistic_posterior(mm, y, 1e-2, chunk=10), cached, atol=1e-7)


def _clusters_with_flips(rng, n, n_flips, spread):
    """n points [n, 16] around 4 class centres, with n_flips labels moved to the next class:
    (points, noisy labels, flipped indices)."""
    centers = rng.standard_normal((4, 16)) * spread
    y = rng.integers(0, 4, n)
    x = (centers[y] + rng.standard_normal((n, 16))).astype(np.float32)
    noisy = y.copy()
    flipped = rng.choice(n, n_flips, replace=False)
    noisy[flipped] = (y[flipped] + 1) % 4
    return x, noisy, flipped


def test_ensemble_ranks_three_experts_and_flags_what_two_reject(rng):
    from scipy.stats import rankdata

    x, noisy, flipped = _clusters_with_flips(rng, 1025, 60, spread=3)
    near = label_error_scores(x, noisy, method="neighbours", k=10)
    lda = label_error_scores(x, noisy, method="lda")
    lr = label_error_scores(x, noisy, method="logistic")
    ens = label_error_scores(x, noisy, k=10)
    combined = 0.45 * rankdata(lr) + 0.45 * rankdata(lda) + 0.1 * rankdata(near)
    assert (np.diff(ens[np.argsort(combined, kind="stable")]) >= 0).all()  # a monotone map of the rank average
    votes = (
        (logistic_posterior(x, noisy).argmax(1) != noisy).astype(int)
        + (lda_posterior(x, noisy).argmax(1) != noisy)
        + (near > 0.5)
    )
    assert ((ens > 0.5) == (rankdata(combined) > 1025 - (votes >= 2).sum())).all()
    assert 0 < (ens > 0.5).sum() < 200 and ens.min() >= 0 and ens.max() <= 1
    truth = np.isin(np.arange(1025), flipped)
    auc = {name: _auroc(v, truth) for name, v in (("near", near), ("lda", lda), ("lr", lr), ("ens", ens))}
    assert auc["ens"] >= max(auc["near"], auc["lda"], auc["lr"]) - 0.01 and auc["ens"] > 0.95, auc
    only_lda = label_error_scores(x, noisy, k=10, weights=(0, 1, 0))
    assert (np.argsort(only_lda, kind="stable")[-20:] == np.argsort(lda, kind="stable")[-20:]).all()
    only_lr = label_error_scores(x, noisy, k=10, weights=(2, 0, 0))  # normalised
    assert (np.argsort(only_lr, kind="stable")[-20:] == np.argsort(lr, kind="stable")[-20:]).all()


def _auroc(scores, positives):
    from scipy.stats import rankdata

    r, p = rankdata(scores), positives.sum()
    return (r[positives].sum() - p * (p + 1) / 2) / (p * (len(scores) - p))


def test_label_error_scores_edges_and_bad_input(rng):
    x = rng.standard_normal((5, 3)).astype(np.float32)
    assert label_error_scores(x[:0], np.zeros(0, np.int64)).shape == (0,)
    one = label_error_scores(x[:1], np.array([2]))
    assert one.shape == (1,) and one[0] <= 0.5  # nothing to disagree with
    same = label_error_scores(x, np.zeros(5, np.int64))  # one class: no image is suspect
    assert (same <= 0.5).all()
    with pytest.raises(ValueError, match="method: expected one of ensemble, logistic, lda, neighbours"):
        label_error_scores(x, np.zeros(5, np.int64), method="knn")
    for bad_w in ((0.5, 0.5), (1, -1, 1), (0, 0, 0), (1, np.nan, 1), 0.7):
        with pytest.raises(ValueError, match="weights: expected 3 numbers"):
            label_error_scores(x, np.zeros(5, np.int64), weights=bad_w)
    with pytest.raises(ValueError, match="ridge"):
        label_error_scores(x, np.zeros(5, np.int64), ridge=0)
    bad = x.copy()
    bad[3, 1] = np.nan
    for method in ("lda", "logistic", "ensemble"):
        with pytest.raises(ValueError, match="NaN"):
            label_error_scores(bad, np.arange(5) % 2, method=method)
    with pytest.raises(ValueError, match="embeddings: expected a 2-D array"):
        label_error_scores(x[0], np.zeros(3, np.int64))


def test_label_errors_find_flipped_labels(rng):
    x, noisy, flipped = _clusters_with_flips(rng, 400, 20, spread=4)
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
