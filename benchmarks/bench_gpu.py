"""GPU benchmarks for a lent device, each against its peer in the same run, within a time budget.

    python benchmarks/bench_gpu.py --out $OUT/bench_gpu.json            # the full sizes
    python benchmarks/bench_gpu.py --quick --out /tmp/g.json             # a smoke run

1. topk: 50,000 queries x 1,281,167 keys x 2048 (float16, ImageNet-sized, generated on the
   device), k=1280, cosine, against torch.mm + torch.topk over the same key blocks.
2. esvm_topk: ImageNet-shaped classes (1,281 keys of d=2048, 50 queries each), 20 classes per
   call; in Gram form (the default for this shape) and in primal form, each for half of
   --esvm-seconds, scaled to 1,000 classes (50,000 queries); the two forms' answers compared.
3. The ResNet-9 trainer (evaluation.resnet9) on CIFAR-sized random data: seconds per model at
   --epochs, and models per hour.
Every figure is written as soon as it is measured, so a run cut short keeps what it has.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def _write(path, results):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=2)
    os.replace(path + ".tmp", path)


def _sync():
    import torch

    torch.cuda.synchronize()


def bench_topk(a, torch, sa):
    g = torch.Generator(device="cuda").manual_seed(0)
    keys = torch.randn((a.n_keys, a.dim), device="cuda", generator=g, dtype=torch.float16)
    queries = torch.randn((a.n_queries, a.dim), device="cuda", generator=g, dtype=torch.float16)
    _sync()
    t0 = time.perf_counter()
    s, i = sa.topk(queries, keys, a.k, metric="cosine", device="cuda")
    t_ours = time.perf_counter() - t0
    # The peer: normalised rows, one GEMM per query chunk x key block, running top-k merged.
    t0 = time.perf_counter()
    kn = keys / keys.float().norm(dim=1, keepdim=True).half()
    qn = queries / queries.float().norm(dim=1, keepdim=True).half()
    best_i = []
    for q0 in range(0, a.n_queries, 4096):
        qb = qn[q0 : q0 + 4096]
        run_s = run_i = None
        for k0 in range(0, a.n_keys, 262_144):
            sc = (qb @ kn[k0 : k0 + 262_144].T).float()
            ts, ti = torch.topk(sc, min(a.k, sc.shape[1]), dim=1)
            ti += k0
            if run_s is None:
                run_s, run_i = ts, ti
            else:
                cs, ci = torch.cat([run_s, ts], 1), torch.cat([run_i, ti], 1)
                run_s, j = torch.topk(cs, a.k, dim=1)
                run_i = torch.gather(ci, 1, j)
        best_i.append(run_i)
    _sync()
    t_torch = time.perf_counter() - t0
    ti = torch.cat(best_i).cpu().numpy()
    overlap = float(np.mean([len(set(i[r]) & set(ti[r])) / a.k for r in range(0, a.n_queries, 997)]))
    return {
        "seconds": t_ours,
        "torch_mm_topk_seconds": t_torch,
        "ratio_vs_torch": t_torch / t_ours,
        "overlap_with_torch": overlap,
        "shape": [a.n_queries, a.n_keys, a.dim],
        "k": a.k,
    }


def bench_esvm(a, torch, sa):
    """Batches of 20 ImageNet-shaped classes per call (one launch per solver form), each form
    timed for half of --esvm-seconds on the same batches; the forms' answers compared."""
    import os

    per_class_keys, per_class_q, d, per_call = 1281, 50, a.dim, 20
    kl = np.repeat(np.arange(per_call), per_class_keys)
    ql = np.repeat(np.arange(per_call), per_class_q)
    out = {"queries_per_class": per_class_q, "keys_per_class": per_class_keys, "dim": d, "k": a.k}
    answers = {}
    for form in ("gram", "primal"):
        os.environ["SIMATTR_CUDA_ESVM"] = form
        t_total, done, batch = 0.0, 0, 0
        while t_total < a.esvm_seconds / 2 and done < 1000:
            g = np.random.default_rng(batch)  # the same batches for both forms
            keys = np.abs(g.standard_normal((per_call * per_class_keys, d))).astype(np.float16)
            q = np.abs(g.standard_normal((per_call * per_class_q, d))).astype(np.float16)
            kt, qt = torch.from_numpy(keys).cuda(), torch.from_numpy(q).cuda()
            _sync()
            t0 = time.perf_counter()
            s_, i_ = sa.esvm_topk(qt, kt, a.k, query_labels=ql, key_labels=kl, device="cuda")
            t_total += time.perf_counter() - t0
            if batch == 0:
                answers[form] = (s_, i_)
            done += per_call
            batch += 1
        out[form] = {
            "classes_measured": done,
            "seconds_measured": t_total,
            "seconds_for_1000_classes": t_total / done * 1000,
        }
    os.environ.pop("SIMATTR_CUDA_ESVM", None)
    (sg, ig), (sp, ip) = answers["gram"], answers["primal"]
    out["gram_vs_primal"] = {
        "max_abs_score_difference": float(np.nanmax(np.abs(sg - sp))),
        "index_agreement": float(np.mean(ig == ip)),
        "primal_over_gram_seconds": out["primal"]["seconds_for_1000_classes"] / out["gram"]["seconds_for_1000_classes"],
    }
    return out


def bench_resnet9(a, torch):
    from simattr_fast.evaluation.resnet9 import ResNet9

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((a.n_train, 3, 32, 32), dtype=np.float32))
    y = rng.integers(0, 10, a.n_train)
    xt, yt = x[:1000], y[:1000]
    trainer = ResNet9(x, y, xt, yt, epochs=a.epochs, device="cuda")
    t0 = time.perf_counter()
    h = trainer.train(np.arange(a.n_train), y, [0, 1])
    trainer.logits(h, np.arange(10))
    _sync()
    per_model = (time.perf_counter() - t0) / 2
    return {
        "seconds_per_model": per_model,
        "models_per_hour": 3600 / per_model,
        "epochs": a.epochs,
        "n_train": a.n_train,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--esvm-seconds", type=float, default=60)
    p.add_argument("--epochs", type=int, default=24)
    a = p.parse_args()
    a.n_queries, a.n_keys, a.dim, a.k, a.n_train = 50_000, 1_281_167, 2048, 1280, 50_000
    if a.quick:
        a.n_queries, a.n_keys, a.esvm_seconds, a.epochs, a.n_train = 2000, 100_000, 5, 1, 2048
    import torch

    import simattr_fast as sa

    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "quick": a.quick}
    for name, fn in (
        ("topk", lambda: bench_topk(a, torch, sa)),
        ("esvm", lambda: bench_esvm(a, torch, sa)),
        ("resnet9", lambda: bench_resnet9(a, torch)),
    ):
        try:
            results[name] = fn()
        except Exception as exc:  # keep going: one failure must not lose the other figures
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(name, json.dumps(results[name]), flush=True)
        _write(a.out, results)


if __name__ == "__main__":
    main()
