"""Shared helpers for the benchmarks: synthetic embedding-like data, timing, machine info."""

from __future__ import annotations

import json
import os
import platform
import time

import numpy as np


def embedding_like(n_per_class: int, n_classes: int, d: int, seed: int, spread: float = 0.8):
    """Non-negative, class-clustered features shaped like pooled ReLU embeddings
    (what a ResNet's global-average-pooled output looks like), float32 [n, d] and labels."""
    rng = np.random.default_rng(seed)
    centers = np.abs(rng.standard_normal((n_classes, d))).astype(np.float32)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    x = centers[labels] + spread * rng.standard_normal((labels.size, d), dtype=np.float32)
    return np.maximum(x, 0, out=x), labels


def timed(fn, repeat: int = 1):
    """Best wall time over `repeat` runs, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def machine() -> dict:
    import scipy

    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {path}")


class Features:
    """Images -> features: raw pixels / 255, or a backbone's embeddings."""

    def __init__(self, checkpoint=None):
        self.checkpoint = checkpoint

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if self.checkpoint is None:
            return images.reshape(len(images), -1).astype(np.float32) / 255
        import tempfile

        from simattr_fast.datasets import ArrayDataset
        from simattr_fast.embed import embed

        data = ArrayDataset(images, np.zeros(len(images), np.int64))
        e = embed(
            data, tempfile.mkdtemp(), backbone="small_cnn", checkpoint=self.checkpoint, dtype="float32", progress=False
        )
        return np.asarray(e.features)


def fashion_features(checkpoint=None):
    """Fashion-MNIST as (train features [60000, d], train labels, test features [10000, d], test
    labels): a SimCLR backbone's embeddings when ``checkpoint`` exists (bench_ssl.py writes one
    to benchmarks/out/ssl_fashion/), raw pixels / 255 otherwise."""
    from simattr_fast.datasets import load_fashion_mnist

    xtr, ytr = load_fashion_mnist("train")
    xte, yte = load_fashion_mnist("test")
    f = Features(checkpoint if checkpoint and os.path.exists(checkpoint) else None)
    return f(xtr), ytr, f(xte), yte
