"""Plain NumPy / scikit-learn references the kernels are checked against."""

import numpy as np


def scores_ref(q, k, metric):
    """[nq, n] float64 scores, larger is better (l2: negated squared distance)."""
    q = q.astype(np.float64)
    k = k.astype(np.float64)
    if metric == "cosine":
        qn = np.linalg.norm(q, axis=1, keepdims=True)
        kn = np.linalg.norm(k, axis=1, keepdims=True)
        return (q / np.where(qn == 0, 1, qn)) @ (k / np.where(kn == 0, 1, kn)).T
    if metric == "ip":
        return q @ k.T
    return -(np.sum(q * q, 1)[:, None] - 2 * q @ k.T + np.sum(k * k, 1)[None, :])


def topk_ref(q, k, kk, metric, ql=None, kl=None):
    """Reference top-k indices [nq, kk] (-1 padded), ties to the lower index."""
    s = scores_ref(q, k, metric)
    out = np.full((q.shape[0], kk), -1, np.int64)
    for r in range(q.shape[0]):
        cand = np.arange(k.shape[0]) if ql is None else np.flatnonzero(kl == ql[r])
        order = cand[np.lexsort((cand, -s[r, cand]))][:kk]
        out[r, : order.size] = order
    return out, s


def esvm_ref(q, pool, C, loss="squared_hinge", intercept_scaling=1.0, tol=1e-6, max_iter=10000):
    """Decision values of sklearn LinearSVC fitted with q as the only positive."""
    from sklearn.svm import LinearSVC

    X = np.vstack([q[None], pool]).astype(np.float64)
    y = np.r_[1, -np.ones(len(pool))]
    m = LinearSVC(
        C=C,
        loss=loss,
        class_weight="balanced",
        tol=tol,
        max_iter=max_iter,
        intercept_scaling=intercept_scaling,
        dual=True,
        random_state=0,
    )
    m.fit(X, y)
    return m.decision_function(pool.astype(np.float64))
