"""Attributor against the kernels it calls; Attribution save/load and interop formats."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import simattr_fast as sa
from simattr_fast import Attribution, Attributor

from helpers.arrays import as_memmap


@pytest.fixture
def data(rng):
    xtr = rng.standard_normal((97, 6)).astype(np.float32)
    ytr = rng.integers(0, 4, 97)
    ytr[ytr == 3] = 2  # class 3 has no training image: empty pool
    xte = rng.standard_normal((3, 6)).astype(np.float32)
    yte = np.array([0, 3, 2])
    return xtr, ytr, xte, yte


@pytest.mark.parametrize("method", ["esvm", "cosine", "l2", "ip"])
def test_attributor_equals_the_kernels(data, method):
    xtr, ytr, xte, yte = data
    res = Attributor(method=method, k=5).fit(xtr, ytr).attribute(xte, yte)
    if method == "esvm":
        s, i = sa.esvm_topk(xte, xtr, 5, query_labels=yte, key_labels=ytr)
    else:
        s, i = sa.topk(xte, xtr, 5, metric=method, query_labels=yte, key_labels=ytr)
    np.testing.assert_array_equal(res.indices, i)
    np.testing.assert_array_equal(res.scores, s)
    assert (res.indices[1] == -1).all()  # empty class
    assert res.params["higher_is_better"] == (method != "l2")
    np.testing.assert_array_equal(res.test_labels, yte)


def test_conditions(data):
    xtr, ytr, xte, yte = data
    pred = np.array([1, 1, 0])
    r = Attributor("cosine", k=97, condition="predicted").fit(xtr, ytr).attribute(xte, predicted_labels=pred)
    for row, p in zip(r.indices, pred):
        assert set(ytr[row[row >= 0]]) == {p}
        assert (row >= 0).sum() == (ytr == p).sum()
    r = Attributor("cosine", k=97, condition="none").fit(xtr).attribute(xte)
    assert (r.indices >= 0).all()
    np.testing.assert_array_equal(r.indices, sa.topk(xte, xtr, 97)[1])


def test_memmap_and_float16(tmp_path, data):
    xtr, ytr, xte, yte = data
    mm = as_memmap(tmp_path, xtr.astype(np.float16))
    a = Attributor("cosine", k=7).fit(mm, ytr)
    assert a.train_embeddings_ is mm  # not copied or loaded
    want = sa.topk(xte, xtr.astype(np.float16), 7, metric="cosine", query_labels=yte, key_labels=ytr)[1]
    np.testing.assert_array_equal(a.attribute(xte, yte).indices, want)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "svm"}, "method: expected one of"),
        ({"condition": "both"}, "condition: expected one of"),
        ({"k": 0}, "k: expected a positive integer"),
    ],
)
def test_bad_parameters(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Attributor(**kwargs).fit(data[0], data[1])


def test_bad_inputs(data):
    xtr, ytr, xte, yte = data
    with pytest.raises(ValueError, match="train_labels: expected one label per row of training embeddings \\(97\\)"):
        Attributor().fit(xtr, ytr[:-1])
    with pytest.raises(ValueError, match="train_labels: condition='true' needs"):
        Attributor().fit(xtr)
    with pytest.raises(TypeError, match="float32 or float16"):
        Attributor().fit(xtr.astype(int), ytr)
    with pytest.raises(RuntimeError, match="call fit"):
        Attributor().attribute(xte, yte)
    a = Attributor().fit(xtr, ytr)
    with pytest.raises(ValueError, match="expected dimension 6 like the training embeddings, got 5"):
        a.attribute(xte[:, :5], yte)
    with pytest.raises(ValueError, match="test_labels: condition='true' needs"):
        a.attribute(xte)
    with pytest.raises(ValueError, match="test_labels: expected one label per row of test embeddings"):
        a.attribute(xte, yte[:2])
    xte[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        a.attribute(xte, yte)


def _result(data):
    xtr, ytr, xte, yte = data
    return Attributor("cosine", k=5).fit(xtr, ytr).attribute(xte, yte, test_ids=[10, 20, 30])


def test_save_load_round_trip(tmp_path, data):
    r = _result(data)
    path = r.save(str(tmp_path / "a.npz"))
    back = Attribution.load(path)
    for name in ("indices", "scores", "test_ids", "test_labels"):
        np.testing.assert_array_equal(getattr(back, name), getattr(r, name))
    assert back.params == r.params and back.provenance == r.provenance and back.predicted_labels is None
    np.testing.assert_array_equal(back.ranking(20), [])  # empty pool
    assert back.ranking(30).size == 5
    with pytest.raises(LookupError, match="test_id: 40"):
        back.ranking(40)


def test_corrupt_and_truncated_files_are_refused(tmp_path, data):
    path = _result(data).save(str(tmp_path / "a.npz"))
    raw = Path(path).read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        Attribution.load(str(tmp_path / "cut.npz"))
    # change one stored index but keep a valid zip: only the checksum can tell
    with np.load(path) as z:
        arrays = {n: z[n] for n in z.files}
    arrays["indices"] = arrays["indices"].copy()
    arrays["indices"][0, 0] += 1
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(ValueError, match="checksum of 'indices'"):
        Attribution.load(str(tmp_path / "edited.npz"))
    meta = json.loads(str(arrays["meta"]))
    meta["version"] = 99
    np.savez(tmp_path / "future.npz", **{**arrays, "meta": np.array(json.dumps(meta))})
    with pytest.raises(ValueError, match="format version 99"):
        Attribution.load(str(tmp_path / "future.npz"))
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a simattr attribution"):
        Attribution.load(str(tmp_path / "foreign.npz"))
    assert zipfile.is_zipfile(path)


def test_topk_matrix_round_trip(tmp_path, data):
    r = _result(data)
    p = r.to_topk_matrix(str(tmp_path / "topk.npy"))
    m = np.load(p)
    assert m.dtype == np.int64 and m.shape == (3, 5)
    back = Attribution.from_topk_matrix(p, test_ids=r.test_ids)
    np.testing.assert_array_equal(back.indices, r.indices)
    assert np.isnan(back.scores).all()
    with pytest.raises(ValueError, match="2-D integer"):
        Attribution.from_topk_matrix(np.zeros((2, 3)))


def _rank_reference(s_test_train, k, ytr=None, yte=None):
    out = []
    for j, row in enumerate(s_test_train):
        cand = range(len(row)) if ytr is None else np.flatnonzero(ytr == yte[j])
        order = sorted(cand, key=lambda i: (-row[i], i))[:k]
        out.append(order + [-1] * (k - len(order)))
    return np.array(out)


@pytest.mark.parametrize("layout", ["train_test", "test_train"])
def test_from_scores(tmp_path, rng, layout):
    n_train, n_test = 1025, 3
    s = rng.integers(0, 50, (n_test, n_train)).astype(np.float32)  # many ties
    ytr, yte = rng.integers(0, 5, n_train), np.array([0, 4, 2])
    stored = s.T.copy() if layout == "train_test" else s
    mm = as_memmap(tmp_path, stored)
    r = Attribution.from_scores(mm, layout, k=11, block=2)
    np.testing.assert_array_equal(r.indices, _rank_reference(s, 11))
    np.testing.assert_array_equal(r.scores, np.take_along_axis(s, r.indices, 1))
    full = Attribution.from_scores(str(tmp_path / "x.npy"), layout, train_labels=ytr, test_labels=yte)
    want = _rank_reference(s, n_train, ytr, yte)
    np.testing.assert_array_equal(full.indices, want)
    assert full.k == n_train and (full.indices[0] >= 0).sum() == (ytr == 0).sum()


def test_from_scores_errors(rng):
    with pytest.raises(ValueError, match="layout"):
        Attribution.from_scores(np.zeros((3, 2)), "trak")
    bad = np.zeros((4, 2))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN for test image 1"):
        Attribution.from_scores(bad, "train_test")
    with pytest.raises(ValueError, match="k: expected a positive"):
        Attribution.from_scores(np.zeros((4, 2)), "train_test", k=0)


def test_attribution_validates_its_arrays():
    with pytest.raises(ValueError, match="scores: expected shape"):
        Attribution(np.zeros((2, 3), int), np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="test_ids"):
        Attribution(np.zeros((2, 3), int), np.zeros((2, 3)), [0])
    with pytest.raises(ValueError, match=">= 0"):
        Attribution(np.full((1, 1), -5), np.zeros((1, 1)), [0])
