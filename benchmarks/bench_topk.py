"""topk against faiss-cpu IndexFlatIP and torch.mm + torch.topk, measured in one run.

    python benchmarks/bench_topk.py                          # 10,000 x 50,000 x 512, k=1280
    python benchmarks/bench_topk.py --data gaussian --ks 10,100,1280
    python benchmarks/bench_topk.py --data fashion --conditioned

Cosine similarity, unconditioned (and class-conditioned with --conditioned, 10 classes).
simattr_fast runs with its bfloat16 first pass off, on and auto (the default), and the results
must be identical; the re-scored candidates per query are reported. The GEMM floors are
torch.mm of the normalised matrices alone, in float32 and bfloat16, in query blocks.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import simattr_fast as sa
from simattr_fast._kernels import backend

from _common import embedding_like, fashion_features, machine, timed, write_json

HERE = os.path.dirname(os.path.abspath(__file__))


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


def torch_gemm_bf16(q, k_, block=1024):
    """The bfloat16 GEMM floor (torch.mm on bfloat16 copies, oneDNN's kernels: AMX where the
    CPU and kernel allow it, AVX512-BF16 otherwise)."""
    import torch

    qt = torch.from_numpy(normalise(q)).bfloat16()
    kt = torch.from_numpy(normalise(k_)).bfloat16()
    for s in range(0, qt.shape[0], block):
        qt[s : s + block] @ kt.T


def load_data(a):
    """(queries, query labels, keys, key labels) for --data."""
    if a.data == "fashion":  # test images as queries against the first nk training images
        xtr, ytr, xte, yte = fashion_features(a.checkpoint)
        return xte[: a.nq], yte[: a.nq], xtr[: a.nk], ytr[: a.nk]
    keys, kl = embedding_like(a.nk // a.classes, a.classes, a.d, seed=0)
    queries, ql = embedding_like(a.nq // a.classes, a.classes, a.d, seed=1)
    rng = np.random.default_rng(0)
    if a.data == "gaussian":  # the hard case for pruning: no structure, every score alike
        keys = rng.standard_normal(keys.shape, dtype=np.float32)
        queries = rng.standard_normal(queries.shape, dtype=np.float32)
    elif a.data == "clustered":  # unit-variance centres, noise of standard deviation 1.5, signed
        centres = rng.standard_normal((a.classes, a.d), dtype=np.float32)
        keys = centres[kl] + 1.5 * rng.standard_normal(keys.shape, dtype=np.float32)
        queries = centres[ql] + 1.5 * rng.standard_normal(queries.shape, dtype=np.float32)
    return queries, ql, keys, kl


def ours(queries, keys, k, lab, prefilter):
    """simattr_fast topk with SIMATTR_PREFILTER = ``prefilter`` (off, on, auto); and the
    candidates it re-scored per query (0 when the first pass did not run)."""
    os.environ["SIMATTR_PREFILTER"] = prefilter
    cpu = backend.cpu()
    cpu.reset_prefilter_stats()
    ql, kl = lab or (None, None)
    out = sa.topk(queries, keys, k, metric="cosine", query_labels=ql, key_labels=kl, device="cpu")
    return out, cpu.prefilter_stats()[1] / len(queries)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nq", type=int, default=10_000)
    ap.add_argument("--nk", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--ks", default="1280", help="comma-separated k values (the issue's set: 10,100,1280)")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--data",
        choices=("embedding", "gaussian", "clustered", "fashion"),
        default="embedding",
        help="embedding-like (non-negative, clustered, stored by class); i.i.d. Gaussian; clustered "
        "(signed, unit-variance centres, noise sd 1.5); fashion (Fashion-MNIST test against train: "
        "SimCLR features of --checkpoint, raw pixels when it is absent)",
    )
    ap.add_argument("--checkpoint", default=os.path.join(HERE, "out", "ssl_fashion", "checkpoint.pt"))
    ap.add_argument("--conditioned", action="store_true", help="also the class-conditioned case")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "topk.json"))
    a = ap.parse_args(argv)
    queries, ql, keys, kl = load_data(a)
    ks = [int(v) for v in a.ks.split(",")]
    print(
        f"topk: {len(queries)} queries x {len(keys)} keys x d={keys.shape[1]}, k in {ks}, cosine, data={a.data}; "
        f"bfloat16 first pass available: {backend.cpu().bf16_prefilter_available()} "
        f"(kernel: {backend.cpu().prefilter_kernel()}); {machine()}"
    )
    rows = {}
    rows["GEMM float32 (torch.mm)"], _ = timed(lambda: torch_gemm(queries, keys), a.repeat)
    rows["GEMM bfloat16 (torch.mm)"], _ = timed(lambda: torch_gemm_bf16(queries, keys), a.repeat)
    print(
        f"GEMM floor: float32 {rows['GEMM float32 (torch.mm)']:.2f}s, bfloat16 {rows['GEMM bfloat16 (torch.mm)']:.2f}s"
    )
    candidates = {}
    for k in ks:
        for lab in (None, (ql, kl)) if a.conditioned else (None,):
            tag = f"k={k} {'class-conditioned' if lab else 'unconditioned'}"
            t_off, ((s, i), _) = timed(lambda lab=lab, k=k: ours(queries, keys, k, lab, "off"), a.repeat)
            t_on, ((s2, i2), cand) = timed(lambda lab=lab, k=k: ours(queries, keys, k, lab, "on"), a.repeat)
            t_auto, ((s3, i3), _) = timed(lambda lab=lab, k=k: ours(queries, keys, k, lab, "auto"), a.repeat)
            for s_, i_ in ((s2, i2), (s3, i3)):
                if not (np.array_equal(i, i_) and np.array_equal(s.view(np.uint32), s_.view(np.uint32))):
                    raise AssertionError(f"{tag}: the bfloat16 first pass changed the result")
            t_fa, (_, fi) = timed(lambda lab=lab, k=k: faiss_topk(queries, keys, k, lab), a.repeat)
            t_to, _ = timed(lambda lab=lab, k=k: torch_topk(queries, keys, k, lab), a.repeat)
            agree = np.mean([len(set(i[r]) & set(fi[r])) / k for r in range(0, len(i), 97)])
            rows[f"simattr_fast {tag}"] = t_off
            rows[f"simattr_fast first pass on {tag}"] = t_on
            rows[f"simattr_fast first pass auto (default) {tag}"] = t_auto
            rows[f"faiss IndexFlatIP {tag}"] = t_fa
            rows[f"torch.mm+topk {tag}"] = t_to
            candidates[tag] = cand
            print(
                f"{tag}: simattr_fast off {t_off:.2f}s ({t_fa / t_off:.2f}x faiss) | on {t_on:.2f}s "
                f"({t_fa / t_on:.2f}x faiss, {cand:.0f} candidates re-scored per query) | auto (default) "
                f"{t_auto:.2f}s ({t_fa / t_auto:.2f}x faiss) | faiss {t_fa:.2f}s | "
                f"torch.mm+topk {t_to:.2f}s | top-k overlap with faiss {agree:.4f}",
                flush=True,
            )
    write_json(
        a.out,
        {
            "args": vars(a),
            "machine": machine(),
            "prefilter_kernel": backend.cpu().prefilter_kernel(),
            "seconds": rows,
            "candidates_per_query": candidates,
        },
    )


if __name__ == "__main__":
    sys.exit(main())
