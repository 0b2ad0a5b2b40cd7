"""Removal support on Fashion-MNIST for ESVM, cosine and random rankings (docs/architecture.md, section 4).

    python benchmarks/bench_removal.py                 # the recorded run (about 20 min on 2 cores)
    python benchmarks/bench_removal.py --n-test 4 --k 40 --budget 2   # a quick look

Pipeline: the SimCLR backbone of bench_ssl.py (its checkpoint; run that first) embeds the first
--n-train training images and the test set; ESVM and cosine rank each test image's same-class
training images (k=--k); a random same-class ranking is the baseline. Each ranking's removal
support is searched with the small CNN of simattr_fast.evaluation (M models per step, the
<= 0.5 rule, censoring at k, --budget bisection steps). The test images are fixed in
benchmarks/results/removal_test_ids.json (made on the first run: --n-test images drawn with seed 0
among the first 1,000 test images that the full-data ensemble classifies correctly). Every
model is a row of the results store, so an interrupted run resumes where it stopped.
Writes benchmarks/results/removal_fashion.json and benchmarks/results/removal_fashion.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from simattr_fast import Attributor
from simattr_fast.datasets import ArrayDataset, open_dataset
from simattr_fast.embed import embed
from simattr_fast.evaluation import ResultsStore, evaluate, flip_classes, random_attribution, trainer_from_spec

from _common import machine

HERE = os.path.dirname(os.path.abspath(__file__))


def pick_test_ids(spec, store_path, n_test, n_models, path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)["test_ids"]
    trainer = trainer_from_spec(spec)
    cand = np.arange(1000)
    with ResultsStore(store_path) as st:
        flip_classes(trainer, st, cand.tolist(), n_models)  # trains the full-data ensemble, stores its outcomes
        right = {t for t in cand.tolist() if np.mean([c for c, _ in st.get(t, "full", "flipclass", 0).values()]) > 0.5}
    ids = sorted(np.random.default_rng(0).choice(sorted(right), n_test, replace=False).tolist())
    with open(path, "w") as f:
        json.dump(
            {
                "test_ids": ids,
                "how": f"{n_test} drawn with numpy default_rng(0) among the {len(right)} of the "
                "first 1,000 Fashion-MNIST test images that a majority of the full-data small-CNN ensemble "
                f"({n_models} models, n_train={spec['n_train']}) classifies correctly",
            },
            f,
            indent=2,
        )
    return ids


def rankings(e_tr, e_te, ids, k, seconds=None) -> dict:
    """The rankings this run evaluates: ESVM and cosine top-k of the test images ``ids``
    (timed into ``seconds``) and the random same-class baseline. bench_trak.py reuses them."""
    atts = {}
    for method in ("esvm", "cosine"):
        t0 = time.perf_counter()
        atts[method] = (
            Attributor(method, k=k, progress=False)
            .fit(e_tr)
            .attribute(e_te.features[ids], e_te.labels[ids], test_ids=ids)
        )
        if seconds is not None:
            seconds[method] = time.perf_counter() - t0
    atts["random"] = random_attribution(e_tr.labels, e_te.labels[ids], ids, k)
    return atts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-test", type=int, default=20)
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--models", type=int, default=5)
    p.add_argument("--budget", type=int, default=5)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ssl-checkpoint", default=os.path.join(HERE, "out", "ssl_fashion", "checkpoint.pt"))
    p.add_argument("--work", default=os.path.join(HERE, "out", "removal"), help="store, embeddings, attributions")
    p.add_argument("--ids-file", default=os.path.join(HERE, "results", "removal_test_ids.json"))
    p.add_argument("--result", default=os.path.join(HERE, "results", "removal_fashion"))
    args = p.parse_args(argv)
    if not os.path.exists(args.ssl_checkpoint):
        sys.exit(f"bench_removal: no SimCLR checkpoint at {args.ssl_checkpoint}; run benchmarks/bench_ssl.py first")
    t_start = time.perf_counter()
    os.makedirs(args.work, exist_ok=True)
    store = os.path.join(args.work, "results.sqlite")
    spec = {
        "kind": "small_cnn",
        "dataset": "fashion-mnist",
        "root": None,
        "n_train": args.n_train,
        "epochs": args.epochs,
    }
    ids = pick_test_ids(spec, store, args.n_test, args.models, args.ids_file)

    train, test = open_dataset("fashion-mnist", "train"), open_dataset("fashion-mnist", "test")
    sub = ArrayDataset(train.images[: args.n_train], train.targets[: args.n_train], name="fashion-mnist-first")
    t0 = time.perf_counter()
    kw = dict(backbone="small_cnn", checkpoint=args.ssl_checkpoint, dtype="float32", progress=False)
    e_tr = embed(sub, os.path.join(args.work, "emb_train"), **kw)
    e_te = embed(test, os.path.join(args.work, "emb_test"), **kw)
    embed_s = time.perf_counter() - t0
    att_s = {}
    atts = rankings(e_tr, e_te, ids, args.k, att_s)

    t0 = time.perf_counter()
    summary = evaluate(
        atts,
        spec,
        store,
        "removal",
        ids,
        args.work,
        k=args.k,
        n_models=args.models,
        budget=args.budget,
        n_workers=args.workers,
    )
    eval_s = time.perf_counter() - t0
    os.replace(summary["plot"], args.result + ".png")
    out = {
        "settings": {**vars(args), "trainer": spec, "rule": "flipped when <= 0.5 of M models are correct"},
        "machine": machine(),
        "torch": torch.__version__,
        "test_ids": ids,
        "seconds": {
            "embed": embed_s,
            "attribute": att_s,
            "evaluate_this_run": eval_s,
            "total_this_run": time.perf_counter() - t_start,
        },
        "rows_in_store": summary["rows_in_store"],
        "methods": summary["methods"],
        "head_to_head": summary["head_to_head"],
        "supports": summary["supports"],
    }
    with open(args.result + ".json", "w") as f:
        json.dump(out, f, indent=2)
    for name, m in summary["methods"].items():
        print(
            f"{name:7s} flipped {m['flipped']:2d}/{m['n']} within k={args.k}, median {m['median']}, "
            f"CDF area {m['cdf_area']:.3f}"
        )
    print(
        f"{summary['rows_in_store']} outcome rows in the store; this run {out['seconds']['total_this_run'] / 60:.1f} min; "
        f"wrote {args.result}.json and .png"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
