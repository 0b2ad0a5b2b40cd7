"""Training images whose label is probably wrong, from the embedding alone.

Three experts look at each image, and their ranks are averaged:

- a **logistic regression** of the labels on the (standardised) embedding, with a small ridge
  penalty, fitted once to all images: ``1 - p(label | x)``. Discriminative and global; a few
  hundred L-BFGS steps (scipy), no cross-validation: with the penalty, an image's own noisy
  label barely moves a linear model fitted to tens of thousands.
- a **shared-covariance Gaussian model** (linear discriminant analysis) of the classes:
  ``1 - p(label | x)``. The generative counterpart; one pass over the data, closed form.
- the **neighbours**: the weighted share of the image's ``k`` nearest neighbours (exact cosine
  top-k over all classes, our kernel) whose label differs from its own. Local, free of any
  model, but blind inside a tight cluster of wrong labels and coarse (most images score 0).

On Fashion-MNIST SimCLR embeddings with 5% injected noise the rank average is better than
any expert alone and than cleanlab's cross-validated logistic regression, in a small fraction
of its time (benchmarks/bench_debugging.py; figures in benchmarks/README.md).
"""

from __future__ import annotations

import numpy as np

from ._kernels.validate import check_label_array, check_positive

METHODS = ("ensemble", "logistic", "lda", "neighbours")
# The ensemble's weights for (logistic, lda, neighbours) and the logistic ridge, chosen on the
# first 10,000 Fashion-MNIST training images (the benchmark reports the next 10,000).
DEFAULT_WEIGHTS = (0.45, 0.45, 0.1)
DEFAULT_RIDGE = 3e-4
_CACHE_BYTES = 1 << 30  # the logistic fit keeps a float64 copy of the rows up to this size


def neighbour_disagreement(embeddings, labels, k: int, temperature: float, n_threads=None, progress=None):
    """Weighted share ``[n]`` of each image's ``k`` nearest other images (cosine) with another
    label; a neighbour at cosine ``s`` weighs ``exp((s - 1) / temperature)``."""
    from . import topk

    n = len(labels)
    s, i = topk(embeddings, embeddings, min(k + 1, n), metric="cosine", n_threads=n_threads, progress=progress)
    keep = (i != np.arange(n)[:, None]) & (i >= 0)
    # Keep the k best other images per row (an exact copy can take the self slot's place).
    keep &= np.cumsum(keep, axis=1) <= k
    w = np.where(keep, np.exp((np.nan_to_num(s, nan=-1.0).astype(np.float64) - 1.0) / temperature), 0.0)
    other = labels[np.maximum(i, 0)] != labels[:, None]
    total = w.sum(1)
    return np.where(total > 0, (w * other).sum(1) / np.where(total > 0, total, 1), 0.0)


def _blocks(embeddings, chunk):
    """(first row, float64 rows) of ``embeddings`` ``chunk`` rows at a time, checked finite."""
    for a in range(0, embeddings.shape[0], chunk):
        block = np.asarray(embeddings[a : a + chunk], np.float64)
        if not np.isfinite(block).all():
            raise ValueError(f"embeddings: rows {a}..{a + len(block) - 1} contain NaN or infinity")
        yield a, block


def lda_posterior(embeddings, labels, chunk: int = 65536) -> np.ndarray:
    """Posterior ``[n, C]`` of the classes ``np.unique(labels)`` under a Gaussian model with one
    covariance shared by all classes, fitted to ``embeddings`` ``[n, d]`` (read ``chunk`` rows
    at a time, so memmaps stay on disk). The covariance gets a ridge of 1e-6 of its mean
    variance, which only matters when it is singular (fewer images than dimensions)."""
    classes, y = np.unique(labels, return_inverse=True)
    n, d = embeddings.shape
    counts = np.bincount(y, minlength=len(classes)).astype(np.float64)
    means = np.zeros((len(classes), d))
    for a, block in _blocks(embeddings, chunk):
        np.add.at(means, y[a : a + len(block)], block)
    means /= counts[:, None]
    cov = np.zeros((d, d))
    for a in range(0, n, chunk):
        r = np.asarray(embeddings[a : a + chunk], np.float64) - means[y[a : a + chunk]]
        cov += r.T @ r
    cov /= n
    scale = np.trace(cov) / d
    if not scale > 0:  # every class a single point: take the spread of the class means instead
        scale = float(means.var(0).mean()) if means.var(0).mean() > 0 else 1.0
    cov += np.eye(d) * (1e-6 * scale)
    coef = np.linalg.solve(cov, means.T)  # [d, C]: the classes' linear discriminants
    bias = -0.5 * np.einsum("dc,cd->c", coef, means) + np.log(counts / n)
    out = np.empty((n, len(classes)))
    for a in range(0, n, chunk):
        z = np.asarray(embeddings[a : a + chunk], np.float64) @ coef + bias
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        out[a : a + chunk] = e / e.sum(1, keepdims=True)
    return out


def logistic_posterior(
    embeddings, labels, ridge: float = DEFAULT_RIDGE, max_iter: int = 300, chunk: int = 65536, progress=None
) -> np.ndarray:
    """Posterior ``[n, C]`` of the classes ``np.unique(labels)`` under a multinomial logistic
    regression fitted to all of ``embeddings`` ``[n, d]`` (standardised per feature), minimising
    the mean cross-entropy plus ``ridge`` times the squared weights (not the biases) with
    scipy's L-BFGS. Rows are held once as float64 when that fits in 1 GiB, else read ``chunk``
    at a time in every step (so large memmaps stay on disk). ``progress``: a bar over the
    L-BFGS steps (None: on a terminal, for inputs of a million entries or more)."""
    from scipy.optimize import minimize

    classes, y = np.unique(labels, return_inverse=True)
    n, d = embeddings.shape
    c = len(classes)
    if c == 1:
        return np.ones((n, 1))
    mean, sq = np.zeros(d), np.zeros(d)
    for _, block in _blocks(embeddings, chunk):
        mean += block.sum(0)
        sq += (block * block).sum(0)
    mean /= n
    std = np.sqrt(np.maximum(sq / n - mean * mean, 0.0))
    std[std <= 1e-12 * max(1.0, float(std.max()))] = 1.0  # constant features stay at 0

    # The standardisation is folded into the weights, (x - mean) / std @ W = x @ (W / std) -
    # mean @ (W / std), so no standardised copy is made. Rows are converted to float64 once
    # when that copy fits in _CACHE_BYTES (converting them in every step cost more than the
    # products), else chunk by chunk in every step.
    rows64 = np.asarray(embeddings, np.float64) if n * d * 8 <= _CACHE_BYTES else None

    def blocks():
        for a in range(0, n, chunk):
            yield (
                a,
                (rows64[a : a + chunk] if rows64 is not None else np.asarray(embeddings[a : a + chunk], np.float64)),
            )

    def logits(theta, block):  # [rows, C]; theta = [W (d x C); b (C)] on standardised features
        w = theta[: d * c].reshape(d, c) / std[:, None]
        return block @ w + (theta[d * c :] - mean @ w)

    def loss_and_grad(theta):
        w = theta[: d * c].reshape(d, c)
        loss, xtp, psum = ridge * float((w * w).sum()), np.zeros((d, c)), np.zeros(c)
        for a, block in blocks():
            z = logits(theta, block)
            z -= z.max(1, keepdims=True)
            p = np.exp(z)
            s = p.sum(1, keepdims=True)
            rows = np.arange(len(block))
            yy = y[a : a + len(block)]
            loss += float((np.log(s[:, 0]) - z[rows, yy]).sum()) / n
            p /= s
            p[rows, yy] -= 1.0  # d loss / d logits, times n
            xtp += block.T @ p
            psum += p.sum(0)
        gw = (xtp - np.outer(mean, psum)) / (n * std[:, None]) + 2 * ridge * w
        return loss, np.concatenate([gw.ravel(), psum / n])

    from ._progress import progress_bar

    # Small problems fit in well under a second: no bar for them.
    with progress_bar(
        total=max_iter, desc="label errors: logistic fit", unit="step", progress=progress, min_items=1 + n * d // 10**6
    ) as bar:
        theta = minimize(
            loss_and_grad,
            np.zeros(d * c + c),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": 1e-8, "ftol": 1e-13},
            callback=lambda *_: bar.update(1),
        ).x
    out = np.empty((n, c))
    for a, block in blocks():
        z = logits(theta, block)
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        out[a : a + len(e)] = e / e.sum(1, keepdims=True)
    return out


def label_error_scores(
    embeddings,
    labels,
    *,
    method: str = "ensemble",
    k: int = 20,
    temperature: float = 0.02,
    weights=DEFAULT_WEIGHTS,
    ridge: float = DEFAULT_RIDGE,
    n_threads=None,
    progress=None,
) -> np.ndarray:
    """How likely each training image's label is wrong, from the embedding alone.

    Parameters
    ----------
    embeddings : array [n, d]
        float32 or float16, in RAM or a memmap.
    labels : int array [n]
    method : {"ensemble", "logistic", "lda", "neighbours"}, default "ensemble"
        ``"logistic"``: one minus the posterior of the image's label under a multinomial
        logistic regression fitted to all images (standardised features, penalty ``ridge``).
        ``"lda"``: the same under a Gaussian class model with a shared covariance.
        ``"neighbours"``: the weighted share of the image's ``k`` nearest neighbours (cosine,
        over all classes, itself excluded) whose label differs from its own, a neighbour at
        cosine s weighing ``exp((s - 1) / temperature)``.
        ``"ensemble"``: the three scores' ranks averaged with ``weights``, mapped onto [0, 1] so
        that exactly the ``m`` most suspicious images score above 0.5, ``m`` being the number of
        images whose label at least two experts find less likely than another (a model's best
        class is not the label; more than half the neighbours' weight lies on other labels).
    k : int, default 20
        Neighbours per image.
    temperature : float, default 0.02
        How fast a neighbour's weight falls with its distance (cosine units).
    weights : 3 numbers >= 0, default (0.45, 0.45, 0.1)
        The ensemble's weights of (logistic, lda, neighbours), normalised to sum 1. Chosen on
        the first 10,000 Fashion-MNIST training images; the benchmark reports the next 10,000.
    ridge : float > 0, default 3e-4
        The logistic regression's penalty on its squared weights, per image (the loss is the
        mean cross-entropy).
    n_threads : int or None, default None
    progress : bool or None, default None

    Returns
    -------
    ndarray float64 [n]
        Higher is more suspicious; rank by it, or take ``scores > 0.5`` as suspected errors.

    Raises
    ------
    ValueError, TypeError
        Bad shapes or label dtypes, an unknown method, k < 1, bad weights or ridge.

    Examples
    --------
    >>> import numpy as np
    >>> from simattr_fast.debugging import label_error_scores
    >>> x = np.array([[1, 0], [1, .1], [1, -.1], [0, 1], [.1, 1], [1, .05]], np.float32)
    >>> y = np.array([0, 0, 0, 1, 1, 1])  # the last image sits among class 0
    >>> int(np.argmax(label_error_scores(x, y, k=3)))
    5
    """
    from scipy.stats import rankdata

    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    temperature = check_positive("temperature", temperature)
    ridge = check_positive("ridge", ridge)
    w = np.asarray(weights, np.float64) if np.ndim(weights) == 1 else np.zeros(0)
    if w.shape != (3,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"weights: expected 3 numbers >= 0, not all 0, for (logistic, lda, neighbours), got {weights!r}"
        )
    shape = getattr(embeddings, "shape", ())
    if len(shape) != 2:
        raise ValueError(f"embeddings: expected a 2-D array [n, d], got shape {tuple(shape)}")
    labels = check_label_array("labels", labels, shape[0], "embeddings")
    if shape[0] == 0:
        return np.zeros(0)
    own = np.unique(labels, return_inverse=True)[1]
    rows = np.arange(len(labels))
    if method == "neighbours":
        return neighbour_disagreement(embeddings, labels, k, temperature, n_threads, progress)
    if method == "lda":
        return 1.0 - lda_posterior(embeddings, labels)[rows, own]
    if method == "logistic":
        return 1.0 - logistic_posterior(embeddings, labels, ridge, progress=progress)[rows, own]
    post_lr = logistic_posterior(embeddings, labels, ridge, progress=progress)
    post_lda = lda_posterior(embeddings, labels)
    near = neighbour_disagreement(embeddings, labels, k, temperature, n_threads, progress)
    w = w / w.sum()
    experts = (1.0 - post_lr[rows, own], 1.0 - post_lda[rows, own], near)
    rank = rankdata(sum(wi * rankdata(e) for wi, e in zip(w, experts)))  # 1 .. n, ties averaged
    votes = (post_lr.argmax(1) != own).astype(int) + (post_lda.argmax(1) != own) + (near > 0.5)
    m = int((votes >= 2).sum())
    t = len(labels) - m  # ranks above t are the m suspects
    return np.where(rank > t, 0.5 + 0.5 * (rank - t) / max(m, 1), 0.5 * rank / max(t, 1))
