"""Data debugging measured on Fashion-MNIST: label errors against cleanlab, near-duplicates
against hashing, leakage against injected copies. Features: raw pixels scaled to [0, 1], or
the embeddings of a backbone (--checkpoint: a simattr train-ssl checkpoint); every method
sees the same features.

    python benchmarks/bench_debugging.py              # about 5 minutes on 2 cores
    python benchmarks/bench_debugging.py --quick
    python benchmarks/bench_debugging.py --parts label-errors   # rerun one part, keep the others

1. **Label errors**: --n-label training images from --label-offset (default 10,000-19,999: the
   ensemble's weights and the logistic ridge were chosen on images 0-9,999) with 5% symmetric noise, and separately 5%
   noise between confusable class pairs (T-shirt/Shirt, Pullover/Coat, Sneaker/Ankle boot,
   Sandal/Sneaker), --noise-seeds draws each. Ours: `label_error_scores` (k=20), the default
   ensemble and each of its three experts alone. cleanlab: label quality scores
   (self-confidence) from 5-fold cross-validated probabilities of a logistic regression on the
   same features (what `find_label_issues` ranks by). AUROC, precision at the true number of
   errors, seconds, and the paired AUROC difference per draw.
2. **Duplicates**: all 70,000 images. Ground truth: pairs with identical pixels (exact) or
   identical after 4-bit quantisation (near-exact), found by hashing. Recall and precision of
   `find_duplicates` at its default threshold.
3. **Leakage**: --n-inject test images replaced by copies of training images shifted by one
   pixel, cropped by 2 pixels and resized back, or with Gaussian noise (sigma 8/255); recall of
   `find_duplicates(train, test)` on them, per kind.
Writes benchmarks/results/debugging.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from _common import Features, machine, write_json

HERE = os.path.dirname(os.path.abspath(__file__))
PAIRS = [(0, 6), (2, 4), (7, 9), (5, 7)]  # confusable Fashion-MNIST classes


PARTS = ("label-errors", "duplicates", "leakage")


def auroc(scores, positives):
    from scipy.stats import rankdata

    r = rankdata(scores)
    p = positives.sum()
    n = len(scores) - p
    return float((r[positives].sum() - p * (p + 1) / 2) / (p * n))


def precision_at(scores, positives, m):
    top = np.argsort(-scores, kind="stable")[:m]
    return float(positives[top].mean())


def inject_noise(y, kind, rate, rng):
    noisy = y.copy()
    n = len(y)
    if kind == "symmetric":
        idx = rng.choice(n, int(rate * n), replace=False)
        noisy[idx] = (y[idx] + rng.integers(1, 10, len(idx))) % 10
    else:
        partner = {}
        for a, b in PAIRS:
            partner.setdefault(a, b)
            partner.setdefault(b, a)
        cand = np.flatnonzero(np.isin(y, list(partner)))
        idx = rng.choice(cand, int(rate * n), replace=False)
        noisy[idx] = [partner[int(c)] for c in y[idx]]
    flipped = noisy != y
    return noisy, flipped


def label_errors(x, y, a):
    from cleanlab.rank import get_label_quality_scores
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    from simattr_fast.debugging import label_error_scores
    from simattr_fast.label_errors import METHODS

    out = {}
    for kind in ("symmetric", "pairs"):
        runs = []
        for seed in range(a.noise_seeds):
            noisy, flipped = inject_noise(y, kind, 0.05, np.random.default_rng(seed))
            m = int(flipped.sum())
            run = {"seed": seed, "n": len(y), "errors": m}
            for method in METHODS:
                t0 = time.perf_counter()
                ours = label_error_scores(x, noisy, method=method, k=20)
                run[f"simattr_{method}"] = _scored(ours, flipped, m, time.perf_counter() - t0)
                if method == "ensemble":  # the suspects it flags (score > 0.5), and how many are errors
                    run["simattr_ensemble"]["flagged"] = int((ours > 0.5).sum())
                    run["simattr_ensemble"]["flagged_errors"] = int((flipped & (ours > 0.5)).sum())
            t0 = time.perf_counter()
            probs = cross_val_predict(LogisticRegression(max_iter=300), x, noisy, cv=5, method="predict_proba")
            theirs = 1 - get_label_quality_scores(noisy, probs)
            run["cleanlab_lr_cv5"] = _scored(theirs, flipped, m, time.perf_counter() - t0)
            runs.append(run)
            print("label errors", kind, json.dumps(run), flush=True)
        names = [k for k in runs[0] if k.startswith(("simattr", "cleanlab"))]
        out[kind] = {
            "runs": runs,
            "mean": {
                k: {f: float(np.mean([r[k][f] for r in runs])) for f in ("auroc", "precision_at_m", "seconds")}
                for k in names
            },
            "ensemble_minus_cleanlab_auroc": [
                r["simattr_ensemble"]["auroc"] - r["cleanlab_lr_cv5"]["auroc"] for r in runs
            ],
        }
    return out


def _scored(scores, flipped, m, seconds):
    return {"auroc": auroc(scores, flipped), "precision_at_m": precision_at(scores, flipped, m), "seconds": seconds}


def _pairs_by_hash(keys):
    groups: dict = {}
    for i, h in enumerate(keys):
        groups.setdefault(h, []).append(i)
    pairs = set()
    for g in groups.values():
        for a in range(len(g)):
            for b in range(a + 1, len(g)):
                pairs.add((g[a], g[b]))
    return pairs


def duplicates(images, a):
    from simattr_fast.debugging import find_duplicates

    x = a.features(images)
    exact = _pairs_by_hash([im.tobytes() for im in images])
    near = _pairs_by_hash([(im // 16).tobytes() for im in images]) | exact
    t0 = time.perf_counter()
    d = find_duplicates(x, k=10)
    secs = time.perf_counter() - t0
    found = {tuple(p) for p in d.train_pairs.tolist()}
    out = {
        "images": len(x),
        "threshold": d.threshold,
        "seconds": secs,
        "found_pairs": len(found),
        "exact_pairs": len(exact),
        "near_exact_pairs": len(near),
        "recall_exact": len(found & exact) / max(1, len(exact)),
        "recall_near_exact": len(found & near) / max(1, len(near)),
        "precision_vs_near_exact": len(found & near) / max(1, len(found)),
    }
    print("duplicates", json.dumps(out), flush=True)
    return out


def leakage(train, test, a):
    from simattr_fast.debugging import find_duplicates

    rng = np.random.default_rng(1)
    test = test.copy()
    kinds = ("shift", "crop", "noise")
    src = rng.choice(len(train), a.n_inject, replace=False)
    dst = rng.choice(len(test), a.n_inject, replace=False)
    kind_of = {}
    for n, (s, t) in enumerate(zip(src, dst)):
        im = train[s].astype(np.float32)
        kind = kinds[n % 3]
        if kind == "shift":
            im = np.roll(im, 1, axis=1)
        elif kind == "crop":
            import torch
            import torch.nn.functional as F

            c = torch.from_numpy(im[2:-2, 2:-2])[None, None]
            im = F.interpolate(c, size=im.shape, mode="bilinear", align_corners=False)[0, 0].numpy()
        else:
            im = im + rng.normal(0, 8, im.shape)
        test[t] = np.clip(np.round(im), 0, 255).astype(np.uint8)
        kind_of[int(t)] = (kind, int(s))
    xtr, xte = a.features(train), a.features(test)
    d = find_duplicates(xtr, xte, k=10)
    found = {(int(t), int(j)) for t, j in d.leaks.tolist()}
    out = {"threshold": d.threshold, "injected": a.n_inject, "leaks_found": len(found)}
    for kind in kinds:
        want = {(t, s) for t, (k_, s) in kind_of.items() if k_ == kind}
        out[f"recall_{kind}"] = len(want & found) / len(want)
    injected = {(t, s) for t, (_, s) in kind_of.items()}
    out["leaks_not_injected"] = len(found - injected)
    print("leakage", json.dumps(out), flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--n-label", type=int, default=10_000)
    p.add_argument(
        "--label-offset",
        type=int,
        default=10_000,
        help="first training image of the label-error set (the ensemble weights were chosen on images 0-9,999)",
    )
    p.add_argument("--noise-seeds", type=int, default=3, help="noise draws per kind (AUROC averaged, paired)")
    p.add_argument("--n-inject", type=int, default=300)
    p.add_argument("--checkpoint", help="simattr train-ssl checkpoint (small_cnn): embed instead of raw pixels")
    p.add_argument("--out", default=os.path.join(HERE, "results", "debugging.json"))
    p.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated subset of {','.join(PARTS)}; the other parts of an existing --out are kept",
    )
    a = p.parse_args()
    parts = a.parts.split(",")
    if not parts or set(parts) - set(PARTS):
        p.error(f"--parts: expected a comma-separated subset of {','.join(PARTS)}, got {a.parts!r}")
    from simattr_fast.datasets import load_fashion_mnist

    xtr, ytr = load_fashion_mnist("train")
    xte, _ = load_fashion_mnist("test")
    if a.quick:
        a.n_label, a.n_inject, a.noise_seeds = 2000, 30, 1
        xtr, ytr, xte = xtr[:5000], ytr[:5000], xte[:1000]
    a.features = Features(a.checkpoint)
    out = {}
    if set(parts) != set(PARTS) and os.path.exists(a.out):
        with open(a.out) as f:
            out = {k: v for k, v in json.load(f).items() if k in PARTS and k.replace("_", "-") not in parts}
    out["machine"] = machine()
    out["features"] = "raw pixels / 255" if a.checkpoint is None else f"small_cnn SimCLR embeddings ({a.checkpoint})"
    if "label-errors" in parts:
        lo = min(a.label_offset, len(xtr) - a.n_label)
        feats = a.features(xtr[lo : lo + a.n_label])
        out["label_errors"] = label_errors(feats, ytr[lo : lo + a.n_label], a)
        out["label_errors"]["images"] = [lo, lo + a.n_label]
        write_json(a.out, out)
    if "duplicates" in parts:
        out["duplicates"] = duplicates(np.concatenate([xtr, xte]), a)
        write_json(a.out, out)
    if "leakage" in parts:
        out["leakage"] = leakage(xtr, xte, a)
        write_json(a.out, out)


if __name__ == "__main__":
    main()
