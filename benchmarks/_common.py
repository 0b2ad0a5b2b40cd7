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
