"""``Attributor``: the estimator-style front of the kernels.

    att = Attributor(method="esvm", k=1280).fit(train_embeddings, train_labels)
    result = att.attribute(test_embeddings, test_labels)      # -> Attribution
    result.save("attribution.npz")

Embeddings may be arrays ``[n, d]`` (float32/float16; NumPy, memmap, torch) or
:class:`~simattr_fast.embed.Embeddings` folders from :func:`~simattr_fast.embed.embed` (their
labels and metadata are then used). Memmapped training embeddings are streamed by the kernels,
never loaded whole (except by ``esvm`` with ``condition="none"``, whose pool must fit in RAM).
"""

from __future__ import annotations

import time

import numpy as np

from ._io import InputTypeError
from ._kernels.validate import check_label_array
from .attribution import Attribution
from .embed import Embeddings

METHODS = ("esvm", "cosine", "l2", "ip")
CONDITIONS = ("true", "predicted", "none")


def _features(x, name: str):
    """(features, labels or None, provenance dict) from an array or an Embeddings folder."""
    if isinstance(x, Embeddings):
        m = x.meta
        prov = {
            "path": x.path,
            "backbone": m.get("backbone"),
            "checkpoint_sha256": (m.get("checkpoint") or {}).get("sha256"),
            "dataset": m.get("dataset"),
            "dataset_fingerprint": m.get("dataset_fingerprint"),
            "count": m.get("count"),
            "dim": m.get("dim"),
            "dtype": m.get("dtype"),
        }
        return x.features, x.labels, prov
    if hasattr(x, "detach") or hasattr(x, "__cuda_array_interface__"):
        return x, None, {"array": type(x).__name__}
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array [n, d] of embeddings, got shape {a.shape}")
    if a.dtype not in (np.float32, np.float16):
        if not np.issubdtype(a.dtype, np.floating):
            raise InputTypeError(f"{name}: expected float32 or float16 embeddings, got {a.dtype}")
        a = a.astype(np.float32)  # float64 and friends: one copy to what the kernels take
    return a, None, {"array": type(x).__name__, "shape": list(a.shape), "dtype": str(a.dtype)}


class Attributor:
    """Ranks, for each test image, the training images it rests on.

    An estimator in scikit-learn's style: parameters are stored by ``__init__`` and checked by
    :meth:`fit`; fitted state ends in an underscore (``train_embeddings_``, ``train_labels_``,
    ``n_train_``, ``dim_``).

    Parameters
    ----------
    method : {"esvm", "cosine", "ip", "l2"}, default "esvm"
        "esvm": an exemplar SVM per test image (see :func:`simattr_fast.esvm_topk`); the others
        rank by similarity (see :func:`simattr_fast.topk`).
    k : int, default 1280
        Training images kept per test image (the reference setting).
    condition : {"true", "predicted", "none"}, default "true"
        The candidates: the training images of the test image's true label, of the label the
        model predicted (pass ``predicted_labels``), or all of them.
    device : {"auto", "cpu", "cuda"}, default "auto"
    C, loss, intercept_scaling, tol, max_iter : default 0.1, "squared_hinge", 1.0, 1e-6, 10000
        The exemplar SVM (scikit-learn ``LinearSVC`` semantics), for ``method="esvm"`` only.
    n_threads : int or None, default None
        CPU threads (None: all cores).
    progress : bool or None, default None
        Progress bars on long runs (None: only on a terminal).
    engine : {"local", "ray"}, default "local"
        "ray" splits the test images over a Ray cluster (by class, shipping each shard only its
        classes' training images, when class-conditioned); the result is the same, bit for bit.
    ray_address : str or None, default None
        The Ray cluster to join (None: the running one, or a new local one).
    n_shards : int or None, default None
        Shards for engine="ray" (None: one per CPU of the cluster).

    Examples
    --------
    >>> import numpy as np
    >>> from simattr_fast import Attributor
    >>> train = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    >>> labels = np.array([0, 0, 1, 1])
    >>> att = Attributor(method="cosine", k=2).fit(train, labels)
    >>> result = att.attribute(np.array([[0.2, 1.0]], np.float32), test_labels=np.array([1]))
    >>> result.indices
    array([[3, 2]])
    """

    def __init__(
        self,
        method="esvm",
        k=1280,
        condition="true",
        device="auto",
        C=0.1,
        loss="squared_hinge",
        intercept_scaling=1.0,
        tol=1e-6,
        max_iter=10000,
        n_threads=None,
        progress=None,
        engine="local",
        ray_address=None,
        n_shards=None,
    ):
        self.method, self.k, self.condition, self.device = method, k, condition, device
        self.C, self.loss, self.intercept_scaling, self.tol, self.max_iter = C, loss, intercept_scaling, tol, max_iter
        self.n_threads, self.progress = n_threads, progress
        self.engine, self.ray_address, self.n_shards = engine, ray_address, n_shards

    def _check_params(self):
        from ._kernels.validate import check_k

        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition: expected one of {CONDITIONS}, got {self.condition!r}")
        check_k(self.k)
        if self.engine not in ("local", "ray"):
            raise ValueError(f"engine: expected 'local' or 'ray', got {self.engine!r}")
        if self.engine == "ray" and self.device == "cuda":
            raise ValueError("engine: 'ray' shards run the CPU kernels; use device='auto' or 'cpu' with it")

    def fit(self, train_embeddings, train_labels=None) -> Attributor:
        """Stores the training embeddings and labels.

        Parameters
        ----------
        train_embeddings : array [n_train, d] or Embeddings
            float32 or float16 (NumPy, memmap, torch), or an :class:`~simattr_fast.embed.Embeddings`
            folder, which brings its labels and metadata. Memmaps are kept by reference.
        train_labels : int array [n_train] or None, default None
            Needed unless ``condition="none"`` or the embeddings bring them.

        Returns
        -------
        Attributor
            ``self``, fitted.

        Raises
        ------
        ValueError, TypeError
            Bad parameters, empty or malformed embeddings, labels of the wrong length or dtype.
        """
        self._check_params()
        x, labels, prov = _features(train_embeddings, "train_embeddings")
        if train_labels is not None:
            labels = train_labels
        n = x.shape[0]
        if n == 0:
            raise ValueError("train_embeddings: expected at least one training image, got 0 rows")
        if labels is not None:
            labels = check_label_array("train_labels", labels, n, "training embeddings")
        elif self.condition != "none":
            raise ValueError(
                f"train_labels: condition={self.condition!r} needs the training labels; pass them "
                "or use condition='none'"
            )
        self.train_embeddings_, self.train_labels_, self.train_provenance_ = x, labels, prov
        self.n_train_, self.dim_ = int(n), int(x.shape[1])
        return self

    def attribute(
        self, test_embeddings, test_labels=None, predicted_labels=None, test_ids=None, opponent_labels=None
    ) -> Attribution:
        """Ranks the training images for each test embedding.

        Parameters
        ----------
        test_embeddings : array [n_test, d] or Embeddings
        test_labels : int array [n_test] or None, default None
            Needed for ``condition="true"`` unless the embeddings bring them.
        predicted_labels : int array [n_test] or None, default None
            Needed for ``condition="predicted"``; stored with the result.
        test_ids : int array [n_test] or None, default None
            Which test images the rows are (default 0..n_test-1).
        opponent_labels : int array [n_test] or None, default None
            Each test image's competing class (see :func:`competing_labels`): its top training
            images are ranked too, the same way, as the *opponents* of the prediction.

        Returns
        -------
        Attribution
            Indices and scores ``[n_test, k]`` with their parameters and provenance.

        Raises
        ------
        RuntimeError
            Called before :meth:`fit`.
        ValueError, TypeError
            Embeddings of another dimension, labels of the wrong length or dtype.
        """
        if not hasattr(self, "train_embeddings_"):
            raise RuntimeError("Attributor: call fit(train_embeddings, train_labels) before attribute()")
        self._check_params()
        q, labels, prov = _features(test_embeddings, "test_embeddings")
        if test_labels is not None:
            labels = test_labels
        nq = q.shape[0]
        if q.shape[1] != self.dim_:
            raise ValueError(
                f"test_embeddings: expected dimension {self.dim_} like the training embeddings, got "
                f"{q.shape[1]}; embed both with the same backbone"
            )
        if labels is not None:
            labels = check_label_array("test_labels", labels, nq, "test embeddings")
        if predicted_labels is not None:
            predicted_labels = check_label_array("predicted_labels", predicted_labels, nq, "test embeddings")
        if opponent_labels is not None:
            opponent_labels = check_label_array("opponent_labels", opponent_labels, nq, "test embeddings")
            if self.train_labels_ is None:
                raise ValueError("opponent_labels: opponents are ranked within a class; fit with train_labels")
        pool = {"true": labels, "predicted": predicted_labels, "none": None}[self.condition]
        if self.condition != "none" and pool is None:
            arg = "test_labels" if self.condition == "true" else "predicted_labels"
            raise ValueError(f"{arg}: condition={self.condition!r} needs them; pass {arg}= or use condition='none'")
        key_labels = None if pool is None else self.train_labels_
        t0 = time.perf_counter()
        scores, idx = self._run(q, pool, key_labels)
        opponents = {}
        if opponent_labels is not None:
            o_scores, o_idx = self._run(q, opponent_labels, self.train_labels_)
            opponents = dict(opponent_indices=o_idx, opponent_scores=o_scores, opponent_labels=opponent_labels)
        seconds = time.perf_counter() - t0
        import simattr_fast

        params = {
            "method": self.method,
            "k": int(self.k),
            "condition": self.condition,
            "higher_is_better": self.method != "l2",
            "device": self.device,
            "seconds": seconds,
        }
        if self.method == "esvm":
            params.update(
                C=self.C, loss=self.loss, intercept_scaling=self.intercept_scaling, tol=self.tol, max_iter=self.max_iter
            )
        provenance = {
            "train": self.train_provenance_,
            "test": prov,
            "simattr_fast": simattr_fast.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        ids = np.arange(nq) if test_ids is None else test_ids
        return Attribution(
            idx,
            scores,
            ids,
            params=params,
            provenance=provenance,
            test_labels=None if labels is None else np.asarray(labels),
            predicted_labels=predicted_labels,
            **opponents,
        )

    def _run(self, q, pool, key_labels):
        from . import esvm_topk, topk

        if self.engine == "ray":
            from ._sharded import rank_on_ray

            params = {"n_threads": self.n_threads}
            if self.method == "esvm":
                params.update(
                    C=self.C,
                    loss=self.loss,
                    intercept_scaling=self.intercept_scaling,
                    tol=self.tol,
                    max_iter=self.max_iter,
                )
            return rank_on_ray(
                self.method,
                q,
                self.train_embeddings_,
                self.k,
                pool,
                key_labels,
                params,
                self.n_shards,
                self.ray_address,
            )
        common = dict(device=self.device, n_threads=self.n_threads, progress=self.progress)
        if self.method == "esvm":
            return esvm_topk(
                q,
                self.train_embeddings_,
                self.k,
                query_labels=pool,
                key_labels=key_labels,
                C=self.C,
                loss=self.loss,
                intercept_scaling=self.intercept_scaling,
                tol=self.tol,
                max_iter=self.max_iter,
                **common,
            )
        return topk(
            q, self.train_embeddings_, self.k, metric=self.method, query_labels=pool, key_labels=key_labels, **common
        )


def competing_labels(probabilities, test_labels) -> np.ndarray:
    """Each test image's competing class: the model's predicted class when it is wrong, else
    its runner-up (the best class other than the true one).

    Parameters
    ----------
    probabilities : array [n_test, n_classes]
        The model's probabilities or logits (only their order within a row matters).
    test_labels : int array [n_test]

    Returns
    -------
    ndarray int64 [n_test]
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = check_label_array("test_labels", test_labels, len(p), "probabilities")
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities: expected [n_test, n_classes >= 2], got shape {p.shape}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"test_labels: expected classes in [0, {p.shape[1]}), got [{y.min()}, {y.max()}]")
    other = p.copy()
    other[np.arange(len(y)), y] = -np.inf
    return other.argmax(1).astype(np.int64)  # the prediction when wrong is the best wrong class
