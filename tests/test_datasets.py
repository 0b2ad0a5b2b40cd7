"""Dataset readers: small files written in each real format, read back as torch datasets."""

import numpy as np
import pytest
import torch

from simattr_fast.datasets import ArrayDataset, FolderDataset, digits_dataset, open_dataset, read_idx

from helpers.formats import write_cifar10, write_cifar100, write_idx, write_image_folder, write_mnist


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, rng, gz):
    written = write_mnist(tmp_path, rng, gz=gz)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        ds = open_dataset(str(tmp_path), split)
        x, y = written[prefix]
        assert len(ds) == len(y) and ds.targets.dtype == np.int64
        np.testing.assert_array_equal(ds.targets, y)
        img, label = ds[len(ds) - 1]
        assert img.shape == (1, 28, 28) and img.dtype == torch.float32 and isinstance(label, int)
        np.testing.assert_allclose(img[0].numpy(), x[-1] / 255.0, rtol=1e-6)
        assert label == y[-1]


def test_idx_by_name_needs_root_and_reads_it(tmp_path, rng):
    write_mnist(tmp_path, rng)
    with pytest.raises(ValueError, match="--data-root"):
        open_dataset("mnist", "train")
    assert len(open_dataset("mnist", "train", root=str(tmp_path))) == 7


def test_idx_truncated_and_bad_magic(tmp_path):
    write_idx(tmp_path / "a-idx3-ubyte", np.zeros((4, 5, 5), np.uint8))
    data = (tmp_path / "a-idx3-ubyte").read_bytes()
    (tmp_path / "cut").write_bytes(data[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(str(tmp_path / "cut"))
    (tmp_path / "bad").write_bytes(b"\x01\x02" + data[2:])
    with pytest.raises(ValueError, match="magic"):
        read_idx(str(tmp_path / "bad"))


def test_cifar10_batches(tmp_path, rng):
    xtr, ytr, xte, yte = write_cifar10(tmp_path, rng)
    tr, te = open_dataset(str(tmp_path), "train"), open_dataset("cifar10", "test", root=str(tmp_path))
    assert len(tr) == 10 and len(te) == 2 and tr.describe()["name"] == "cifar10"
    np.testing.assert_array_equal(tr.targets, ytr)
    img, label = tr[3]
    assert img.shape == (3, 32, 32) and label == ytr[3]
    # channel order and layout: pixel (r, c) of channel ch is x[r, c, ch]
    np.testing.assert_allclose(img.permute(1, 2, 0).numpy(), xtr[3] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(te[1][0].permute(1, 2, 0).numpy(), xte[1] / 255.0, rtol=1e-6)


def test_cifar100_fine_labels(tmp_path, rng):
    written = write_cifar100(tmp_path, rng)
    ds = open_dataset(str(tmp_path), "test")
    assert ds.describe()["name"] == "cifar100"
    np.testing.assert_array_equal(ds.targets, written["test"][1])
    np.testing.assert_allclose(ds[2][0].permute(1, 2, 0).numpy(), written["test"][0][2] / 255.0, rtol=1e-6)


def test_cifar_corrupt_batch(tmp_path, rng):
    write_cifar10(tmp_path, rng)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR python batch"):
        open_dataset(str(tmp_path), "test")


def test_image_folder(tmp_path, rng):
    images = write_image_folder(tmp_path / "train", rng)
    ds = open_dataset(str(tmp_path), "train")  # picks the split subfolder
    assert isinstance(ds, FolderDataset) and len(ds) == 4
    np.testing.assert_array_equal(ds.targets, [0, 0, 1, 1])  # classes sorted by name: cat, dog
    img, label = ds[2]
    assert label == 1 and img.shape == (3, 12, 10)
    np.testing.assert_allclose(img.permute(1, 2, 0).numpy(), images[("dog", 0)] / 255.0, atol=1e-6)
    assert FolderDataset(str(tmp_path / "train"), image_size=6)[0][0].shape == (3, 6, 6)
    fp = ds.fingerprint()
    write_image_folder(tmp_path / "train", rng, classes=("dog",), per_class=3)
    assert FolderDataset(str(tmp_path / "train")).fingerprint() != fp


def test_arrays_and_npz(tmp_path, rng):
    x = rng.integers(0, 256, (5, 6, 7), dtype=np.uint8)
    y = np.arange(5)
    ds = ArrayDataset(x, y)
    assert ds.tensors().shape == (5, 1, 6, 7)
    np.save(tmp_path / "unused.npy", x)
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    ds2 = open_dataset(str(tmp_path / "d.npz"))
    assert ds2.fingerprint() == ds.fingerprint()
    np.savez(tmp_path / "bad.npz", pixels=x)
    with pytest.raises(ValueError, match="'images' and 'labels'"):
        open_dataset(str(tmp_path / "bad.npz"))


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (np.zeros((3, 4)), np.zeros(3, int), "expected \\[n, H, W\\]"),
        (np.zeros((3, 4, 4, 2)), np.zeros(3, int), "1 or 3 channels"),
        (np.zeros((3, 4, 4), dtype=np.int32), np.zeros(3, int), "uint8 or floating"),
        (np.zeros((3, 4, 4)), np.zeros(2, int), "labels: expected shape \\(3,\\)"),
        (np.zeros((3, 4, 4)), np.zeros(3), "integer dtype"),
    ],
)
def test_array_dataset_bad_input(images, labels, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ArrayDataset(images, labels)


def test_digits_split_is_fixed_and_disjoint():
    tr, te = digits_dataset("train"), digits_dataset("test")
    assert (len(tr), len(te)) == (1347, 450)
    assert np.bincount(te.targets).min() >= 40  # stratified
    allx = digits_dataset("all").images.reshape(1797, -1)
    assert len(np.unique(np.concatenate([tr.images, te.images]).reshape(1797, -1), axis=0)) == len(
        np.unique(allx, axis=0)
    )


def test_open_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a known name"):
        open_dataset("imagenet-nope")
    with pytest.raises(ValueError, match="split"):
        open_dataset("digits", "val")
