"""Anything read from a file is untrusted: crafted pickles, planted links, truncated and edited
files, wrong JSON types. Every crafted file is written by the test itself."""

import errno
import json
import os
import pickle
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

import simattr_fast as sa
from simattr_fast import Attribution, Attributor
from simattr_fast._io import DiskFullError, FileFormatError, InputTypeError, atomic_write, write_json
from simattr_fast.cli import main
from simattr_fast.datasets import open_dataset, read_idx
from simattr_fast.evaluation import ResultsStore, StoreError

from helpers.formats import write_cifar10, write_idx, write_mnist


class _RunsCode:
    """Unpickling this calls os.mkdir(marker): the canary of code run from a data file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _crafted_cifar(root: Path, marker: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    payload = {b"labels": [0], b"data": _RunsCode(marker), b"batch_label": b"x"}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(pickle.dumps(payload))


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


# ---- 1, 2: no code runs from a data file, or from a results file ---------------------------


def test_crafted_cifar_batch_runs_no_code(tmp_path):
    marker = tmp_path / "ran"
    _crafted_cifar(tmp_path / "cifar", marker)
    with pytest.raises(FileFormatError, match=r"posix.mkdir|os.mkdir"):
        open_dataset(str(tmp_path / "cifar"), "test")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_cifar_batches_still_load(tmp_path, rng, protocol, monkeypatch):
    orig = pickle.dump
    monkeypatch.setattr(pickle, "dump", lambda obj, f, *a, **k: orig(obj, f, protocol=protocol))
    _, _, x_test, y_test = write_cifar10(tmp_path / "c", rng)
    ds = open_dataset(str(tmp_path / "c"), "test")
    assert len(ds) == len(y_test) and [ds[i][1] for i in range(len(ds))] == list(y_test)


def test_report_refuses_a_crafted_dataset_recorded_in_provenance(tmp_path, capsys):
    marker = tmp_path / "ran"
    _crafted_cifar(tmp_path / "cifar", marker)
    spec = {"dataset": str(tmp_path / "cifar"), "split": "test", "root": None, "image_size": None}
    prov = {"train": {"dataset": {"spec": spec}}, "test": {"dataset": {"spec": spec}}}
    a = Attribution(np.array([[0]]), np.array([[1.0]]), np.array([0]), provenance=prov)
    a.save(str(tmp_path / "a.npz"))
    err = _one_line_error(
        capsys, ["report", "--attribution", str(tmp_path / "a.npz"), "--out", str(tmp_path / "r.html")]
    )
    assert "refused unread" in err and not marker.exists() and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(
    "spec",
    [
        {"dataset": ["not", "a", "path"], "split": "test"},
        {"dataset": "x", "split": "test", "image_size": "9; rm -rf /"},
        "just a string",
    ],
)
def test_report_refuses_a_malformed_recorded_spec(tmp_path, capsys, spec):
    prov = {"train": {"dataset": {"spec": spec}}}
    Attribution(np.array([[0]]), np.array([[1.0]]), np.array([0]), provenance=prov).save(str(tmp_path / "a.npz"))
    err = _one_line_error(
        capsys, ["report", "--attribution", str(tmp_path / "a.npz"), "--out", str(tmp_path / "r.html")]
    )
    assert "spec is malformed" in err


def test_report_refuses_a_recorded_path_that_is_no_dataset(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    spec = {"dataset": str(tmp_path / "notes.txt"), "split": "train", "root": None, "image_size": None}
    prov = {"train": {"dataset": {"spec": spec}}}
    Attribution(np.array([[0]]), np.array([[1.0]]), np.array([0]), provenance=prov).save(str(tmp_path / "a.npz"))
    err = _one_line_error(
        capsys, ["report", "--attribution", str(tmp_path / "a.npz"), "--out", str(tmp_path / "r.html")]
    )
    assert "notes.txt" in err


# ---- 3: the report escapes every value it shows -------------------------------------------


def test_report_escapes_metadata_and_sets_a_csp(tmp_path):
    from simattr_fast.datasets import ArrayDataset
    from simattr_fast.report import render_report

    evil = "<script>alert(1)</script>"
    a = Attribution(
        np.array([[1, 0]]),
        np.array([[0.5, 0.1]]),
        np.array([1]),
        params={"method": evil, "k": evil, "condition": ["<b>", 1]},
        provenance={"train": {"count": evil, "backbone": evil, "checkpoint_sha256": ["<i>"]}, "simattr_fast": evil},
    )
    data = ArrayDataset(np.zeros((2, 4, 4), np.uint8), np.array([0, 1]))
    page = Path(render_report(a, data, data, str(tmp_path / "r.html"))).read_text()
    assert evil not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;" in page and "&lt;i&gt;" in page
    assert "<i>" not in page and "[&#x27;<b>" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


# ---- 4, 5: unique temporary files, atomic writes, a full disk -----------------------------


def test_atomic_write_does_not_follow_a_planted_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "out.json"
    os.symlink(victim, str(target) + ".tmp")  # the old fixed temporary name
    write_json(target, {"a": 1})
    assert victim.read_text() == "precious" and json.loads(target.read_text()) == {"a": 1}


def test_failed_write_leaves_no_temporary_file_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(TypeError):
        write_json(target, {"v": object()})  # not serialisable, half written
    assert json.loads(target.read_text()) == {"v": 1} and sorted(os.listdir(tmp_path)) == ["out.json"]


def test_disk_full_says_so_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError, match="disk full"):
        write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1} and sorted(os.listdir(tmp_path)) == ["out.json"]


def test_concurrent_writers_never_show_a_reader_half_a_file(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"n": 0, "pad": "x" * 200_000})
    stop, bad = threading.Event(), []

    def writer(w):
        for i in range(30):
            write_json(target, {"n": i, "w": w, "pad": "x" * 200_000})

    def reader():
        while not stop.is_set():
            try:
                json.loads(target.read_text())
            except json.JSONDecodeError as exc:
                bad.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    r.join()
    assert not bad and sorted(os.listdir(tmp_path)) == ["out.json"]


def test_atomic_write_writes_exactly_the_path(tmp_path):
    with atomic_write(tmp_path / "m.bin") as f:
        f.write(b"x")
    assert os.listdir(tmp_path) == ["m.bin"]


def test_export_topk_writes_exactly_the_path_given(tmp_path, rng, capsys):
    x = rng.standard_normal((20, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    argv = ["attribute", "--train", str(tmp_path / "x.npy"), "--test", str(tmp_path / "x.npy"), "--condition", "none"]
    argv += [
        "--method",
        "cosine",
        "--k",
        "3",
        "--out",
        str(tmp_path / "a.npz"),
        "--export-topk",
        str(tmp_path / "top.bin"),
    ]
    assert main(argv) == 0
    assert (tmp_path / "top.bin").exists() and not (tmp_path / "top.bin.npy").exists()
    assert np.load(tmp_path / "top.bin").shape == (20, 3)


def test_store_reports_a_full_disk(tmp_path):
    path = str(tmp_path / "r.sqlite")
    with ResultsStore(path) as st:
        st.add_many([(0, "m", "removal", 1, 0, True, 0.5, 0.1)])
        st._con.execute("PRAGMA max_page_count = 1")  # SQLite's own way to run out of room
        with pytest.raises(StoreError, match="disk full"):
            st.add_many([(t, "m" * 500, "removal", 1, s, True, 0.5, 0.1) for t in range(200) for s in range(5)])
    with ResultsStore(path, readonly=True) as st:
        assert st.count() == 1  # the committed row is intact


# ---- 6: readers open the store read-only and refuse what is not a store ---------------------


def test_compare_refuses_a_foreign_database_without_touching_it(tmp_path, capsys):
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE people (name TEXT)")
    con.commit()
    con.close()
    before = path.read_bytes()
    err = _one_line_error(capsys, ["compare", "--store", str(path), "a", "b"])
    assert "not a simattr results store" in err and path.read_bytes() == before


def test_compare_refuses_a_corrupt_file(tmp_path, capsys):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    err = _one_line_error(capsys, ["compare", "--store", str(path), "a", "b"])
    assert "junk.sqlite" in err


def test_results_store_refuses_to_add_tables_to_a_foreign_database(tmp_path):
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE people (name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a simattr results store"):
        ResultsStore(str(path))
    con = sqlite3.connect(path)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["people"]
    con.close()


# ---- 7: embed resume validates its progress file --------------------------------------------


def test_embed_resume_refuses_a_progress_count_beyond_the_data(tmp_path):
    import torch

    from simattr_fast.datasets import ArrayDataset
    from simattr_fast.embed import embed

    data = ArrayDataset(np.zeros((6, 8, 8), np.uint8), np.zeros(6, np.int64))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 4))
    out = tmp_path / "emb"
    embed(data, str(out), backbone=net, batch_size=2, progress=False)
    # Turn the finished folder back into an interrupted one whose progress file lies.
    settings = json.loads((out / "meta.json").read_text())["settings"]
    os.remove(out / "meta.json")
    os.replace(out / "embeddings.npy", out / "embeddings.npy.partial")
    os.replace(out / "labels.npy", out / "labels.npy.partial")
    (out / "progress.json").write_text(json.dumps({"rows_done": 600, "settings": settings}))
    with pytest.raises(ValueError, match="says 600 rows are done, but the dataset has 6"):
        embed(data, str(out), backbone=net, batch_size=2, progress=False)
    (out / "progress.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="not a simattr progress file"):
        embed(data, str(out), backbone=net, batch_size=2, progress=False)


# ---- 8: rankings beyond the training set --------------------------------------------------


def test_support_refuses_rankings_beyond_the_training_set_before_training(tmp_path):
    from simattr_fast.evaluation import support

    from helpers.fakes import ThresholdTrainer

    trainer = ThresholdTrainer(n_train=30, n_test=3)
    with ResultsStore(str(tmp_path / "r.sqlite")) as st:
        with pytest.raises(ValueError, match="ranks training index 30"):
            support(trainer, st, 0, [1, 2, 30], "m", "removal", k=3, n_models=1, budget=1)
        assert st.count() == 0


# ---- 9: labels are integers everywhere ----------------------------------------------------


def test_attributor_refuses_float_labels(rng):
    x = rng.standard_normal((10, 3)).astype(np.float32)
    with pytest.raises(InputTypeError, match="train_labels: expected an integer dtype"):
        Attributor(method="cosine", k=2).fit(x, np.linspace(0, 1, 10))
    att = Attributor(method="cosine", k=2).fit(x, np.arange(10) % 2)
    with pytest.raises(InputTypeError, match="test_labels: expected an integer dtype"):
        att.attribute(x, test_labels=np.full(10, 0.5))


def test_idx_labels_must_be_integers_in_range(tmp_path, rng):
    write_mnist(tmp_path, rng)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, -5, 3], dtype=">i4"))
    with pytest.raises(FileFormatError, match=r"labels in \[-5, 3\]"):
        open_dataset(str(tmp_path), "test")
    hdr = bytes([0, 0, 0x0D, 1]) + (3).to_bytes(4, "big")
    import gzip

    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(hdr + np.array([0.5, 1, 2], dtype=">f4").tobytes())
    with pytest.raises(FileFormatError, match="class labels must be integers"):
        open_dataset(str(tmp_path), "test")


# ---- 10: extreme values -------------------------------------------------------------------


def test_huge_norms_rank_right_or_fail_clearly(rng):
    keys = rng.standard_normal((200, 8)).astype(np.float32)
    q = rng.standard_normal((4, 8)).astype(np.float32)
    big = keys.copy()
    big[5] *= 1e37
    big[77] *= 3e37
    s, i = sa.topk(q, big, 10, metric="cosine")
    assert np.array_equal(i, sa.topk(q, keys, 10, metric="cosine")[1]) and np.isfinite(s).all()
    for metric in ("l2", "ip"):
        with pytest.raises(ValueError, match="norm .* float32 scores"):
            sa.topk(q * 1e20, keys * 1e20, 5, metric=metric)
        s, i = sa.topk(q * 1e17, keys * 1e17, 5, metric=metric)  # large but representable
        assert np.isfinite(s).all() and np.array_equal(i, sa.topk(q, keys, 5, metric=metric)[1])
    with pytest.raises(ValueError, match="norm .* float32 scores"):
        sa.esvm_topk(q * 1e20, keys * 1e20, 5)


# ---- 11: results do not depend on blocks or batches ---------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_results_do_not_depend_on_blocks_or_batches(rng, metric, monkeypatch):
    keys = rng.standard_normal((1025, 33)).astype(np.float32)
    keys[500:520] = keys[100]  # exact ties across blocks
    q = rng.standard_normal((97, 33)).astype(np.float32)
    ref_s, ref_i = sa.topk(q, keys, 50, metric=metric)
    for block_rows in (1, 7, 97, 600):
        s, i = sa.topk(q, keys, 50, metric=metric, block_rows=block_rows)
        assert np.array_equal(i, ref_i) and np.array_equal(s, ref_s, equal_nan=True)
    for rows in (slice(0, 1), slice(3, 40), slice(96, 97)):
        s, i = sa.topk(q[rows], keys, 50, metric=metric)
        assert np.array_equal(i, ref_i[rows]) and np.array_equal(s, ref_s[rows])
    for nt in (1, 2, 3):
        s, i = sa.topk(q, keys, 50, metric=metric, n_threads=nt)
        assert np.array_equal(i, ref_i) and np.array_equal(s, ref_s)
    monkeypatch.setenv("SIMATTR_BLOCK_MB", "0.01")
    s, i = sa.topk(q, keys, 50, metric=metric)
    assert np.array_equal(i, ref_i) and np.array_equal(s, ref_s)


# ---- 13: parameters are bounded -----------------------------------------------------------


def test_parameters_are_bounded(rng):
    x = rng.standard_normal((5, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="n_threads: expected at most"):
        sa.topk(x, x, 2, n_threads=10**6)
    with pytest.raises(ValueError, match="max_iter: expected at most"):
        sa.esvm_topk(x, x, 2, max_iter=2**64)
    with pytest.raises(ValueError, match=r"seed: expected an integer in \[0, 2\*\*64\)"):
        sa.esvm_topk(x, x, 2, seed=2**64)
    with pytest.raises(MemoryError, match="GiB"):
        sa.topk(x, x, 10**15)


# ---- 14: crafted and damaged files of every format ----------------------------------------


def test_npz_dataset_with_an_object_array_is_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, images=np.array([object()] * 3, dtype=object), labels=np.arange(3))
    with pytest.raises(FileFormatError, match="d.npz"):
        open_dataset(str(path))


def test_truncated_npz_dataset_names_the_file(tmp_path, capsys):
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((3, 4, 4), np.uint8), labels=np.arange(3))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(FileFormatError, match="d.npz"):
        open_dataset(str(path))
    err = _one_line_error(capsys, ["embed", "--dataset", str(path), "--checkpoint", str(path), "--out", str(tmp_path)])
    assert "d.npz" in err


def test_idx_header_with_overflowing_sizes_is_refused(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + (2**32 - 1).to_bytes(4, "big") * 3 + b"\0" * 64)
    with pytest.raises(FileFormatError, match="truncated"):
        read_idx(str(path))
    path.write_bytes(bytes([0, 0, 0x08, 200]) + b"\0" * 10)
    with pytest.raises(FileFormatError, match="cut short"):
        read_idx(str(path))


@pytest.mark.parametrize("meta", [[1, 2], {"format": "simattr-embeddings", "count": "7", "dim": 2, "dtype": "f"}, "x"])
def test_embedding_meta_of_the_wrong_json_type(tmp_path, meta):
    from simattr_fast.embed import load_embeddings

    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="meta.json"):
        load_embeddings(str(tmp_path))


@pytest.mark.parametrize("entry", ["params", "provenance", "checksums"])
def test_attribution_metadata_of_the_wrong_json_type(tmp_path, entry, capsys):
    import zipfile

    a = Attribution(np.array([[0]]), np.array([[1.0]]), np.array([0]))
    a.save(str(tmp_path / "a.npz"))
    with np.load(tmp_path / "a.npz") as z:
        arrays = {n: z[n] for n in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta[entry] = ["not", "an", "object"]
    np.savez(tmp_path / "b.npz", meta=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(ValueError, match=f"{entry!r} must be a JSON object"):
        Attribution.load(str(tmp_path / "b.npz"))
    err = _one_line_error(
        capsys, ["report", "--attribution", str(tmp_path / "b.npz"), "--out", str(tmp_path / "r.html")]
    )
    assert "b.npz" in err
    assert zipfile.is_zipfile(tmp_path / "b.npz")


# ---- 15: the CLI shows no traceback for a user error and hides no bug ----------------------


def test_cli_does_not_hide_a_bug(monkeypatch):
    from simattr_fast.cli import compare

    def buggy(args):
        raise TypeError("a bug in our own code")

    monkeypatch.setattr(compare, "compare_cmd", buggy)
    with pytest.raises(TypeError, match="a bug in our own code"):
        main(["compare", "--store", "x", "a", "b"])


def test_cli_reports_user_type_errors_in_one_line(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((4, 3), np.int32))
    argv = ["attribute", "--train", str(tmp_path / "x.npy"), "--test", str(tmp_path / "x.npy"), "--condition", "none"]
    err = _one_line_error(capsys, [*argv, "--out", str(tmp_path / "a.npz")])
    assert "float32 or float16" in err


# ---- 16: an exception on a worker thread reaches Python -----------------------------------


def test_parallel_for_rethrows_on_the_calling_thread():
    from simattr_fast._kernels import backend

    with pytest.raises(RuntimeError, match="iteration 5 failed"):
        backend.cpu()._parallel_for_throw(64, 5, 2)
    backend.cpu()._parallel_for_throw(64, -1, 2)  # and the pool still works afterwards


def test_atomic_write_gives_the_permissions_open_would(tmp_path):
    """mkstemp's private 0600 must not leak into results others are meant to read."""
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "r.json", {"a": 1})
        assert (os.stat(tmp_path / "r.json").st_mode & 0o777) == 0o644
        os.umask(0o077)
        write_json(tmp_path / "p.json", {"a": 1})
        assert (os.stat(tmp_path / "p.json").st_mode & 0o777) == 0o600
    finally:
        os.umask(old)
