"""Writers for small files in real dataset formats (IDX, CIFAR python batches, ImageFolder),
and a deliberately slow dataset for the kill-and-resume tests."""

from __future__ import annotations

import gzip
import os
import pickle
import time

import numpy as np


def write_idx(path, array: np.ndarray) -> None:
    """IDX: magic 0,0,dtype-code,ndim, then big-endian uint32 dims, then the data."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def write_mnist(root, rng, n_train=7, n_test=3, gz=True):
    os.makedirs(root, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n).astype(np.uint8)
        ext = ".gz" if gz else ""
        write_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte{ext}"), x)
        write_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte{ext}"), y)
        out[prefix] = (x, y)
    return out


def _cifar_rows(x):  # [n, 32, 32, 3] -> [n, 3072]: all red, then green, then blue
    return x.transpose(0, 3, 1, 2).reshape(len(x), -1)


def write_cifar10(root, rng, per_batch=2):
    os.makedirs(root, exist_ok=True)
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, per_batch).tolist()
        with open(os.path.join(root, name), "wb") as f:
            pickle.dump(
                {
                    b"batch_label": name.encode(),
                    b"labels": y,
                    b"data": _cifar_rows(x),
                    b"filenames": [b"x.png"] * per_batch,
                },
                f,
            )
        xs.append(x)
        ys.append(np.array(y))
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


def write_cifar100(root, rng, n=3):
    os.makedirs(root, exist_ok=True)
    out = {}
    for split in ("train", "test"):
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        fine, coarse = rng.integers(0, 100, n).tolist(), rng.integers(0, 20, n).tolist()
        with open(os.path.join(root, split), "wb") as f:
            pickle.dump({b"fine_labels": fine, b"coarse_labels": coarse, b"data": _cifar_rows(x)}, f)
        out[split] = (x, np.array(fine))
    with open(os.path.join(root, "meta"), "wb") as f:
        pickle.dump({b"fine_label_names": [b"c%d" % i for i in range(100)]}, f)
    return out


def write_image_folder(root, rng, classes=("cat", "dog"), per_class=2, size=(12, 10)):
    from PIL import Image

    images = {}
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            a = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
            Image.fromarray(a).save(os.path.join(root, c, f"{i}.png"))
            images[(c, i)] = a
    return images


class SlowDataset:
    """Random 8x8 grey images (seeded) that take `delay` seconds each; counts items served."""

    def __init__(self, n=48, delay=0.0, seed=3):
        rng = np.random.default_rng(seed)
        self.x = rng.random((n, 1, 8, 8), dtype=np.float32)
        self.targets = rng.integers(0, 3, n)
        self.delay, self.served = delay, 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        import torch

        time.sleep(self.delay)
        self.served += 1
        return torch.from_numpy(self.x[i]), int(self.targets[i])

    def fingerprint(self):
        return f"slow-{len(self)}"
