"""Do opponents matter? Removing a test image's top-m opponents (the top training images of
its competing class) should raise its correct-class margin more than removing m random
training images of that class.

    python benchmarks/bench_opponents.py            # about 5 minutes on 2 cores
    python benchmarks/bench_opponents.py --quick

Fashion-MNIST, the first --n-train training images, the evaluation's small CNN. A full-data
ensemble (M models) gives each of the first --n-test test images its competing class (the
prediction when wrong, else the runner-up) and its margin. Opponents: cosine top-m of the
competing class (features: raw pixels, or --checkpoint embeddings). For each test image, M
models are trained without its top-m opponents and M without m random images of the
competing class; the margin change is the mean margin of those models minus the ensemble's.
Reports the mean change of both and the paired difference with a 95% t-interval.
Writes benchmarks/results/opponents.json.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile

import numpy as np
from scipy import stats

from _common import machine, write_json

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-test", type=int, default=40)
    p.add_argument("--m", type=int, default=100)
    p.add_argument("--models", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=os.path.join(HERE, "results", "opponents.json"))
    a = p.parse_args()
    if a.quick:
        a.n_train, a.n_test, a.m, a.models = 1000, 6, 30, 2
    from simattr_fast import Attributor
    from simattr_fast.datasets import load_fashion_mnist
    from simattr_fast.evaluation import ResultsStore, TrainingUnit, make_engine, margins, trainer_from_spec
    from simattr_fast.evaluation.scheduler import run_schedule

    spec = {"kind": "small_cnn", "dataset": "fashion-mnist", "n_train": a.n_train, "epochs": 3}
    factory = functools.partial(trainer_from_spec, spec)
    xtr, ytr = load_fashion_mnist("train")
    xte, yte = load_fashion_mnist("test")
    xtr, ytr = xtr[: a.n_train], ytr[: a.n_train]
    ids = list(range(a.n_test))
    store = os.path.join(tempfile.mkdtemp(), "opp.sqlite")
    rng = np.random.default_rng(0)

    def run(units):
        with ResultsStore(store) as st:
            return run_schedule(make_engine("local", factory, a.workers), st, [], units, desc="models")

    # The full-data ensemble: competing classes and reference margins.
    ens = run([TrainingUnit(("full", "ens", 0), (s,), tuple(ids), want_logits=True) for s in range(a.models)])
    lg = np.concatenate([r.logits for r in ens])  # [M, n, C]
    base = margins(lg, yte[ids]).mean(0)
    prob = np.exp(lg - lg.max(-1, keepdims=True))
    prob = (prob / prob.sum(-1, keepdims=True)).mean(0)
    from simattr_fast.attributor import competing_labels

    comp = competing_labels(prob, yte[ids])
    f_tr = xtr.reshape(len(xtr), -1).astype(np.float32) / 255
    f_te = xte[ids].reshape(len(ids), -1).astype(np.float32) / 255
    att = Attributor("cosine", k=a.m, progress=False).fit(f_tr, ytr).attribute(f_te, yte[ids], opponent_labels=comp)
    units, kinds = [], []
    for r, t in enumerate(ids):
        opp = att.opponent_indices[r]
        opp = opp[opp >= 0]
        pool = np.flatnonzero(ytr == comp[r])
        rand = rng.choice(pool, len(opp), replace=False)
        seeds = tuple(1000 + 10 * t + j for j in range(a.models))
        units.append(TrainingUnit(("opponents", "margin", t), seeds, (t,), exclude_ids=np.sort(opp)))
        units.append(TrainingUnit(("random", "margin", t), seeds, (t,), exclude_ids=np.sort(rand)))
        kinds += [("opponents", r), ("random", r)]
    res = run(units)
    change = {"opponents": np.zeros(len(ids)), "random": np.zeros(len(ids))}
    for (kind, r), out in zip(kinds, res):
        change[kind][r] = np.mean([g for _, _, _, g, _ in out.rows]) - base[r]
    diff = change["opponents"] - change["random"]
    ci = stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=stats.sem(diff))
    result = {
        "machine": machine(),
        "settings": {**spec, "n_test": a.n_test, "m": a.m, "models": a.models, "features": "raw pixels / 255"},
        "mean_margin_change": {k: float(v.mean()) for k, v in change.items()},
        "paired_difference": {
            "mean": float(diff.mean()),
            "ci95": [float(ci[0]), float(ci[1])],
            "wilcoxon_p": float(stats.wilcoxon(diff).pvalue) if len(diff) > 5 else None,
            "opponents_larger": int((diff > 0).sum()),
            "n": len(diff),
        },
    }
    print(result["mean_margin_change"], result["paired_difference"], flush=True)
    write_json(a.out, result)


if __name__ == "__main__":
    main()
