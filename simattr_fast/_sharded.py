"""Attribution on a Ray cluster: the queries are split into shards (by class, with only that
class's keys shipped, for class-conditioned rankings), each shard is ranked by the ordinary
kernel on a worker, and the rows are put back in order.

The result equals one process's, bit for bit: the CPU top-k's scores do not depend on how
queries are batched, and the exemplar SVMs of one class always run together (unconditioned
SVMs are split at multiples of the solver's query tile).
"""

from __future__ import annotations

import numpy as np

_SVM_TILE = 256  # the CPU solver's query tile (esvm_cpu.cpp) while a worker has <= 32 threads


def _rank_shard(kind: str, queries, keys, k, query_labels, key_labels, params, query_rows):
    from . import esvm_topk, topk

    fn = esvm_topk if kind == "esvm" else topk
    # The SVMs' permutations are seeded by the query's row in the whole run, not in the shard.
    extra = {"query_ids": query_rows} if kind == "esvm" else {"metric": kind}
    return fn(
        queries,
        keys,
        k,
        query_labels=query_labels,
        key_labels=key_labels,
        device="cpu",
        progress=False,
        **extra,
        **params,
    )


def rank_on_ray(kind: str, queries, keys, k: int, query_labels, key_labels, params: dict, n_shards=None, address=None):
    """``(scores, indices)`` of ``topk`` (kind = the metric) or ``esvm_topk`` (kind "esvm"),
    computed by Ray tasks; ``params`` are the kernel's keyword arguments."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("engine='ray' needs Ray: pip install 'simattr_fast[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="ERROR")
    queries, keys = np.asarray(queries), np.asarray(keys)
    nq = len(queries)
    n_shards = n_shards or max(1, int(ray.cluster_resources().get("CPU", 1)))
    task = ray.remote(_rank_shard)
    out_s = np.full((nq, k), np.nan, np.float32)
    out_i = np.full((nq, k), -1, np.int64)
    jobs = []
    if query_labels is not None:
        # Whole classes per shard, balanced by query count; each ships only its classes' keys.
        query_labels, key_labels = np.asarray(query_labels), np.asarray(key_labels)
        classes, counts = np.unique(query_labels, return_counts=True)
        shards: list = [[] for _ in range(min(n_shards, len(classes)))]
        loads = [0] * len(shards)
        for c, n in sorted(zip(classes.tolist(), counts.tolist()), key=lambda x: -x[1]):
            j = int(np.argmin(loads))
            shards[j].append(c)
            loads[j] += n
        for cls in shards:
            qrows = np.flatnonzero(np.isin(query_labels, cls))
            krows = np.flatnonzero(np.isin(key_labels, cls))
            ref = task.remote(
                kind, queries[qrows], keys[krows], k, query_labels[qrows], key_labels[krows], params, qrows
            )
            jobs.append((ref, qrows, krows))
    else:
        keys_ref = ray.put(keys)
        step = max(1, -(-nq // n_shards))
        if kind == "esvm":
            step = -(-step // _SVM_TILE) * _SVM_TILE
        for q0 in range(0, nq, step):
            qrows = np.arange(q0, min(nq, q0 + step))
            jobs.append((task.remote(kind, queries[qrows], keys_ref, k, None, None, params, qrows), qrows, None))
    for ref, qrows, krows in jobs:
        s, i = ray.get(ref)
        if krows is not None:  # local key rows -> global training indices (ascending, so ties keep order)
            i = np.where(i >= 0, krows[np.maximum(i, 0)], -1)
        out_s[qrows], out_i[qrows] = s, i
    return out_s, out_i
