"""topk against faiss-cpu IndexFlatIP and torch.mm + torch.topk, measured in one run.

    python benchmarks/bench_topk.py                # 10,000 x 50,000 x 512, k=1280
    python benchmarks/bench_topk.py --nq 2000      # smaller

Cosine similarity, unconditioned and class-conditioned (10 classes). Prints each time and
its ratio to simattr_fast; "bare GEMM" is torch.mm of the normalised matrices alone, in
query blocks (the floor any exact method pays).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import simattr_fast as sa

from _common import embedding_like, machine, timed, write_json


def normalise(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def torch_topk(q, k_, kk, labels=None, block=1024):
    import torch

    qt, kt = torch.from_numpy(normalise(q)), torch.from_numpy(normalise(k_))
    out_s, out_i = [], []
    for s in range(0, qt.shape[0], block):
        sc = qt[s : s + block] @ kt.T
        if labels is not None:
            ql, kl = labels
            sc[torch.from_numpy(ql[s : s + block, None] != kl[None, :])] = -float("inf")
        v, i = torch.topk(sc, kk, dim=1)
        out_s.append(v.numpy())
        out_i.append(i.numpy())
    return np.vstack(out_s), np.vstack(out_i)


def torch_gemm(q, k_, block=1024):
    import torch

    qt, kt = torch.from_numpy(normalise(q)), torch.from_numpy(normalise(k_))
    for s in range(0, qt.shape[0], block):
        qt[s : s + block] @ kt.T


def faiss_topk(q, k_, kk, labels=None):
    import faiss

    qn, kn = normalise(q).astype(np.float32), normalise(k_).astype(np.float32)
    if labels is None:
        index = faiss.IndexFlatIP(q.shape[1])
        index.add(kn)
        return index.search(qn, kk)
    ql, kl = labels  # one index per class: how FAISS users condition on the label
    out_s = np.empty((q.shape[0], kk), np.float32)
    out_i = np.empty((q.shape[0], kk), np.int64)
    for c in np.unique(ql):
        rows, pool = np.flatnonzero(ql == c), np.flatnonzero(kl == c)
        index = faiss.IndexFlatIP(q.shape[1])
        index.add(kn[pool])
        s, i = index.search(qn[rows], kk)
        out_s[rows], out_i[rows] = s, np.where(i >= 0, pool[i], -1)
    return out_s, out_i


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nq", type=int, default=10_000)
    ap.add_argument("--nk", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=1280)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--data",
        choices=("embedding", "gaussian"),
        default="embedding",
        help="embedding-like (non-negative, clustered, stored by class) or i.i.d. Gaussian",
    )
    ap.add_argument("--out", default="benchmarks/results/topk.json")
    a = ap.parse_args(argv)
    keys, kl = embedding_like(a.nk // a.classes, a.classes, a.d, seed=0)
    queries, ql = embedding_like(a.nq // a.classes, a.classes, a.d, seed=1)
    if a.data == "gaussian":  # the hard case for pruning: no structure, every score alike
        rng = np.random.default_rng(0)
        keys = rng.standard_normal(keys.shape, dtype=np.float32)
        queries = rng.standard_normal(queries.shape, dtype=np.float32)
    print(f"topk: {len(queries)} queries x {len(keys)} keys x d={a.d}, k={a.k}, cosine; {machine()}")
    rows = {}
    t_gemm, _ = timed(lambda: torch_gemm(queries, keys), a.repeat)
    rows["bare GEMM (torch.mm)"] = t_gemm
    for cond in (False, True):
        lab = (ql, kl) if cond else None
        tag = "class-conditioned" if cond else "unconditioned"
        ql_, kl_ = lab or (None, None)
        t_sa, (s, i) = timed(
            lambda lab=lab, ql_=ql_, kl_=kl_: sa.topk(
                queries, keys, a.k, metric="cosine", query_labels=ql_, key_labels=kl_, device="cpu"
            ),
            a.repeat,
        )
        t_fa, (fs, fi) = timed(lambda lab=lab: faiss_topk(queries, keys, a.k, lab), a.repeat)
        t_to, (ts, ti) = timed(lambda lab=lab: torch_topk(queries, keys, a.k, lab), a.repeat)
        agree = np.mean([len(set(i[r]) & set(fi[r])) / a.k for r in range(0, len(i), 97)])
        rows[f"simattr_fast {tag}"] = t_sa
        rows[f"faiss IndexFlatIP {tag}"] = t_fa
        rows[f"torch.mm+topk {tag}"] = t_to
        print(
            f"{tag}: simattr_fast {t_sa:.2f}s | faiss {t_fa:.2f}s ({t_fa / t_sa:.2f}x ours) | "
            f"torch.mm+topk {t_to:.2f}s ({t_to / t_sa:.2f}x ours) | bare GEMM {t_gemm:.2f}s "
            f"(ours = {t_sa / t_gemm:.2f}x GEMM) | top-k overlap with faiss {agree:.4f}"
        )
    write_json(a.out, {"args": vars(a), "machine": machine(), "seconds": rows})


if __name__ == "__main__":
    sys.exit(main())
