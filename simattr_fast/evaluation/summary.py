"""Summaries and pictures of support searches: fraction flipped at each m, the CDF and its
normalised area, median support with censoring, head-to-head counts, matplotlib plots."""

from __future__ import annotations

import numpy as np

from .support import CENSORED


def _values(supports: dict, k: int) -> np.ndarray:
    """Supports as floats with censored values at +inf (they are "> k")."""
    return np.array([np.inf if s == CENSORED else s for s in supports.values()], dtype=np.float64)


def summarize(supports: dict, k: int) -> dict:
    """``supports`` {test_id: support or -1}: fraction flipped at each m in 0..k (the
    empirical CDF), its area normalised by k (1 = everything flips at once, 0 = nothing flips
    within k), median (">k" when censored), counts."""
    v = _values(supports, k)
    if len(v) == 0:
        raise ValueError("supports: no finished searches to summarise")
    grid = np.arange(k + 1)
    cdf = (v[None, :] <= grid[:, None]).mean(1)
    med = float(np.median(v))
    return {
        "n": int(len(v)),
        "flipped": int(np.isfinite(v).sum()),
        "censored": int(np.isinf(v).sum()),
        "median": med if np.isfinite(med) else f">{k}",
        "cdf_area": float(cdf[1:].mean()),
        "fraction_flipped_at": {int(m): float(cdf[m]) for m in _checkpoints(k)},
    }


def _checkpoints(k):
    return sorted({m for m in (1, 5, 10, 20, 50, 100, 200, 500, 1000, k) if m <= k})


def head_to_head(a: dict, b: dict) -> dict:
    """On the test images both have: how often ``a`` found the smaller support, ``b`` did, or
    they tied (both censored counts as a tie)."""
    common = sorted(set(a) & set(b))
    va = np.array([np.inf if a[t] == CENSORED else a[t] for t in common])
    vb = np.array([np.inf if b[t] == CENSORED else b[t] for t in common])
    return {
        "n": len(common),
        "a_smaller": int((va < vb).sum()),
        "b_smaller": int((vb < va).sum()),
        "tie": int((va == vb).sum()),
    }


def plot_cdf(per_method: dict, k: int, path: str, title: str = "removal support") -> str:
    """Step plot of the fraction of test images flipped by m, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    grid = np.arange(k + 1)
    for method, sup in sorted(per_method.items()):
        v = _values(sup, k)
        s = summarize(sup, k)
        ax.step(
            grid,
            (v[None, :] <= grid[:, None]).mean(1),
            where="post",
            label=f"{method} (area {s['cdf_area']:.2f}, median {s['median']})",
        )
    ax.set_xlabel("m (top-ranked training images removed)" if "removal" in title else "m")
    ax.set_ylabel("fraction of test images flipped")
    ax.set_xlim(0, k)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
