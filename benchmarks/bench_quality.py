"""The quality study: which ranking finds the training images a prediction rests on?

    python benchmarks/bench_quality.py           # the recorded run (resumable: rerun after a kill)
    python benchmarks/bench_quality.py --quick   # everything sized down, under benchmarks/out/quality_quick/

Data: the first --n-train = 20,000 Fashion-MNIST training images; the 100 reported and 20
validation test images of benchmarks/results/quality_test_ids.json (fixed before any result).
Evaluation model: PatchNet (simattr_fast.evaluation.patchnet), about 88% test accuracy here.
Methods: ESVM, cosine and L2 on a SimCLR embedding (bench_ssl.py's backbone); TRAK with 1, 5
and 20 checkpoints, each at the (projection, ridge) with the best LDS on the *validation* images;
gradient dot, gradient cosine and TracIn (final checkpoint / epoch checkpoints of one run);
random same-class. Measures: LDS (--subsets subsets, alpha 0.5, --per-subset models each,
margins averaged, bootstrap intervals), removal and mislabel support (M=--models, bisection
within --k), paired tests between all methods, per class. Every model goes into the results
store under --work; every intermediate (checkpoints, features, scores) is cached there, so a
killed run resumes where it stopped. Results: benchmarks/results/quality.{json,md} and plots.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import numpy as np
import torch

from simattr_fast.evaluation import ResultsStore, lds, random_attribution, subset_masks, trainer_from_spec
from simattr_fast.evaluation.runner import flip_classes_on, run_searches, subset_margins_on

import quality_report
from _common import machine
from quality_rankings import Seconds, full_models, gradient_rankings, ssl_rankings, support_methods, trak_rankings

HERE = os.path.dirname(os.path.abspath(__file__))
PROJ_DIMS, RIDGES, COUNTS = (128, 256, 512, 1024, 2048), (0.0, 1e-3, 1e-2, 1e-1, 1.0), (1, 5, 20)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=20000)
    p.add_argument("--k", type=int, default=400, help="support search range")
    p.add_argument("--models", type=int, default=5, help="M: models per support step")
    p.add_argument("--budget", type=int, default=5, help="bisection steps after m = k")
    p.add_argument("--subsets", type=int, default=100)
    p.add_argument("--per-subset", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk", type=int, default=5, help="test images per support round (all methods)")
    p.add_argument("--criteria", default="mislabel,removal")
    p.add_argument(
        "--support-methods",
        default="esvm,cosine,trak_best,gradient_best,random",
        help="methods whose supports are searched ('all', or names; trak_best / gradient_best: the TRAK and "
        "gradient ranking with the best validation LDS). Supports cost about 100x an LDS per image and method.",
    )
    p.add_argument("--ssl-checkpoint", default=os.path.join(HERE, "out", "ssl_fashion", "checkpoint.pt"))
    p.add_argument("--work", default=os.path.join(HERE, "out", "quality"))
    p.add_argument("--result", default=os.path.join(HERE, "results", "quality"))
    p.add_argument("--quick", action="store_true", help="sized down (minutes), written under benchmarks/out/")
    p.add_argument(
        "--report-only", action="store_true", help="no new support searches: write the results of the store as it is"
    )
    a = p.parse_args(argv)
    a.proj_dims, a.ridges, a.counts, a.ssl_minutes = PROJ_DIMS, RIDGES, COUNTS, 25.0
    with open(os.path.join(HERE, "results", "quality_test_ids.json")) as f:
        ids = json.load(f)
    a.reported, a.validation = ids["reported"], ids["validation"]
    if a.quick:
        q = os.path.join(HERE, "out", "quality_quick")
        a.n_train, a.k, a.models, a.budget, a.subsets, a.per_subset = 3000, 40, 3, 2, 12, 2
        a.proj_dims, a.ridges, a.counts, a.ssl_minutes = (32, 64), (0.0, 0.1), (1, 2), 1.0
        a.reported, a.validation = a.reported[::10], a.validation[::4]
        a.ssl_checkpoint, a.work, a.result = os.path.join(q, "ssl", "checkpoint.pt"), q, os.path.join(q, "quality")
    return a


def _ssl_seconds(checkpoint) -> float | None:
    """Training seconds of the SimCLR backbone (bench_ssl.py's json beside the checkpoint)."""
    path = os.path.join(os.path.dirname(checkpoint), "ssl.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f).get("train_seconds")


def main(argv=None) -> int:
    a = parse(argv)
    os.makedirs(a.work, exist_ok=True)
    torch.set_num_threads(2)
    if not os.path.exists(a.ssl_checkpoint):
        import bench_ssl

        d = os.path.dirname(a.ssl_checkpoint)
        bench_ssl.main(["--minutes", str(a.ssl_minutes), "--out", d, "--json", os.path.join(d, "ssl.json")])
    spec = {"kind": "patchnet", "dataset": "fashion-mnist", "n_train": a.n_train, "epochs": 10}
    trainer = trainer_from_spec(spec)
    targets = a.validation + a.reported  # one row per test image in every attribution
    val_rows = list(range(len(a.validation)))
    y_tgt = trainer.y_test[targets]
    store = os.path.join(a.work, "results.sqlite")
    with ResultsStore(store) as st:
        st.set_info("settings/quality", json.dumps({"spec": spec, "k": a.k, "M": a.models, "budget": a.budget}))
    seconds = Seconds(os.path.join(a.work, "seconds.json"))
    factory = functools.partial(trainer_from_spec, spec)  # each worker process builds its own
    print("full-data models and checkpoints", flush=True)
    fm = full_models(a, trainer, spec)
    print(f"  accuracy {fm['accuracy'].mean():.4f}, {float(fm['seconds_per_model']):.2f} s/model", flush=True)
    print(f"lds: {a.subsets} subsets x {a.per_subset} models", flush=True)
    margins = subset_margins_on(
        factory,
        store,
        a.n_train,
        targets,
        a.subsets,
        0.5,
        n_workers=a.workers,
        models_per_subset=a.per_subset,
        progress=sys.stderr.isatty(),
    )
    masks = subset_masks(a.n_train, a.subsets, 0.5)
    print("rankings", flush=True)
    atts = ssl_rankings(a, targets, y_tgt, seconds)
    atts.update(gradient_rankings(a, trainer, fm, targets, seconds))
    trak, trak_info = trak_rankings(a, trainer, fm, targets, val_rows, masks, margins, seconds)
    atts.update(trak)
    atts["random"] = random_attribution(trainer.y_train, y_tgt, targets, int(np.bincount(trainer.y_train).min()))
    y_test = trainer.y_test
    rep_rows = list(range(len(a.validation), len(targets)))
    lds_res = {m: lds(att, masks, margins[:, rep_rows], rep_rows) for m, att in atts.items()}
    lds_centred = {m: lds(att, masks, margins[:, rep_rows], rep_rows, centre=True) for m, att in atts.items()}
    for m, r in lds_res.items():
        c = lds_centred[m]
        print(
            f"  LDS {m}: {r['lds']:.3f} ({r['ci95'][0]:.3f} .. {r['ci95'][1]:.3f}), centred {c['lds']:.3f}", flush=True
        )
    val_lds = {m: lds(att, masks, margins[:, val_rows], val_rows)["lds"] for m, att in atts.items()}
    chosen = support_methods(a.support_methods, list(atts), val_lds)
    print(f"support searches for {chosen}", flush=True)
    crits = a.criteria.split(",")
    flip = None
    if "mislabel" in crits and not a.report_only:
        flip = flip_classes_on(factory, store, a.reported, y_test, a.models, n_workers=a.workers)
    info = {"fm": fm, "trak": trak_info, "lds": lds_res, "lds_centred": lds_centred, "seconds": seconds}
    info["validation_lds"] = val_lds
    info["y_test"] = y_test
    # Round the classes (the committed list is in class order), so that a stopped run's images
    # are spread over the classes; the first 10 of the recorded run were all class 0, searched
    # before this order existed, and are kept.
    order = interleave_classes(a.reported, y_test)
    for i in range(0, 0 if a.report_only else len(order), a.chunk):  # all methods on a chunk of images
        chunk = order[i : i + a.chunk]
        jobs = [(m, t, atts[m].ranking(t)) for m in chosen for t in chunk]
        for criterion in crits:
            print(f"{criterion} support: images {i}-{i + len(chunk) - 1}", flush=True)
            run_searches(
                factory,
                store,
                jobs,
                criterion,
                a.k,
                a.models,
                a.budget,
                flip if criterion == "mislabel" else None,
                n_workers=a.workers,
                progress=sys.stderr.isatty(),
            )
        report(a, store, chosen, crits, info)  # after every chunk: a stopped run has its results
    report(a, store, chosen, crits, info)
    return 0


def interleave_classes(ids, labels) -> list:
    """``ids`` reordered round-robin over their classes, keeping the order within a class."""
    by_class: dict = {}
    for t in ids:
        by_class.setdefault(int(labels[t]), []).append(t)
    queues = [by_class[c] for c in sorted(by_class)]
    return [q[j] for j in range(max(map(len, queues))) for q in queues if j < len(q)]


def report(a, store, methods, crits, info) -> None:
    """Writes the results from the store. Supports count only on the reported images where
    every method's search has finished, so that each comparison is on the same images."""
    with ResultsStore(store, readonly=True) as st:
        models = quality_report.models_per_method(st)
        supports = {}
        for c in crits:
            got = st.supports(c)
            common = [t for t in a.reported if all(t in got.get(m, {}) for m in methods)]
            if common:
                supports[c] = {m: {str(t): got[m][t] for t in common} for m in methods}
    fm = info["fm"]
    payload = {
        "machine": machine(),
        "settings": {k: v for k, v in vars(a).items() if isinstance(v, (int, float, str, list, tuple))},
        "model": {
            "accuracy": float(fm["accuracy"].mean()),
            "accuracy_sd": float(fm["accuracy"].std()),
            "seconds_per_model": float(fm["seconds_per_model"]),
            "parameters": int(fm["checkpoints"].shape[1]),
        },
        "trak": info["trak"],
        "lds": info["lds"],
        "lds_centred": info["lds_centred"],
        "validation_lds": info["validation_lds"],
        "support_methods": methods,
        "supports": supports,
        "seconds": dict(info["seconds"]),
        "ssl_seconds": _ssl_seconds(a.ssl_checkpoint),
        "models": models,
        "test_labels": {str(t): int(info["y_test"][t]) for t in a.reported},
    }
    quality_report.write(payload, a.result, a.k)


if __name__ == "__main__":
    sys.exit(main())
