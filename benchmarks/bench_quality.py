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
import time

import numpy as np
import torch

from simattr_fast import Attribution, Attributor
from simattr_fast.datasets import ArrayDataset, open_dataset
from simattr_fast.embed import embed
from simattr_fast.evaluation import ResultsStore, lds, random_attribution, subset_masks, trainer_from_spec
from simattr_fast.evaluation.runner import flip_classes_on, run_searches, subset_margins_on

import quality_gradients as qg
import quality_report
from _common import machine

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


def cached(path, make):
    """``make()`` once: the npz at ``path`` (a dict of arrays) is reused by later runs."""
    if not os.path.exists(path):
        from simattr_fast._io import atomic_write

        out = make()
        with atomic_write(path, "wb") as f:
            np.savez(f, **out)
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def full_models(a, trainer, spec):
    """Accuracy of 5 full-data models, the --counts checkpoints for TRAK (seeds 1000...), and the
    epoch checkpoints of the first of them for TracIn; ``{name: array}``."""
    n, cmax = a.n_train, max(a.counts)

    def make():
        t0 = time.perf_counter()
        h = trainer.train(np.arange(n), trainer.y_train, [1, 2, 3, 4, 5])
        sec = (time.perf_counter() - t0) / 5
        acc = (trainer.logits(h, np.arange(len(trainer.y_test))).argmax(-1) == trainer.y_test[None]).mean(1)
        epochs, lrs = [], []

        def keep(e, handle, lr):  # model 0 of the checkpoint run, after every epoch
            epochs.append(torch.cat([v[0].detach().flatten() for v in handle[1].values()]).numpy().copy())
            lrs.append(lr)

        h = trainer.train(np.arange(n), trainer.y_train, list(range(1000, 1000 + cmax)), on_epoch=keep)
        ck = torch.cat([v.detach().flatten(1) for v in h[1].values()], 1).numpy()
        return {
            "accuracy": acc,
            "seconds_per_model": np.array(sec),
            "checkpoints": ck,
            "epochs": np.stack(epochs),
            "epoch_lr": np.array(lrs),
            "seconds_checkpoints": np.array(time.perf_counter() - t0),
        }

    return cached(os.path.join(a.work, "full_models.npz"), make)


class Seconds(dict):
    """Compute seconds per step, persisted in ``path`` so that a resumed run reports the run that
    did the work, not the cache hit."""

    def __init__(self, path):
        super().__init__(json.load(open(path)) if os.path.exists(path) else {})
        self.path = path

    def run(self, name, fn):
        t0 = time.perf_counter()
        out = fn()
        if name not in self:
            self[name] = time.perf_counter() - t0
            from simattr_fast._io import write_json

            write_json(self.path, dict(self))
        return out


def head(trainer, flat) -> torch.nn.Linear:
    m = trainer.make()
    torch.nn.utils.vector_to_parameters(torch.as_tensor(flat), m.parameters())
    return m.eval()


def ssl_rankings(a, targets, y_tgt, seconds):
    """ESVM, cosine and L2 over the whole class (so LDS sees every same-class score)."""
    train = open_dataset("fashion-mnist", "train")
    test = open_dataset("fashion-mnist", "test")
    kw = dict(backbone="small_cnn", checkpoint=a.ssl_checkpoint, dtype="float16", progress=False)
    sub = ArrayDataset(train.images[: a.n_train], train.targets[: a.n_train], name="train")
    e_tr = seconds.run("embed_train", lambda: embed(sub, os.path.join(a.work, "emb_train"), **kw))
    chosen = ArrayDataset(test.images[targets], test.targets[targets], name="targets")
    e_te = seconds.run("embed_targets", lambda: embed(chosen, os.path.join(a.work, "emb_targets"), **kw))
    k = int(np.bincount(e_tr.labels).min())
    out = {}
    for method in ("esvm", "cosine", "l2"):
        path = os.path.join(a.work, f"{method}.npz")

        def make(method=method, path=path):
            if not os.path.exists(path):
                att = Attributor(method, k=k, progress=False).fit(e_tr)
                att.attribute(e_te.features, y_tgt, test_ids=targets).save(path)

        seconds.run(method, make)
        out[method] = Attribution.load(path)
    return out


def gradient_rankings(a, trainer, fm, targets, seconds):
    """Gradient dot / cosine (final checkpoint) and TracIn (its epoch checkpoints)."""
    x, y = trainer.x_train, torch.as_tensor(trainer.y_train)
    xt, yt = trainer.x_test[targets], torch.as_tensor(trainer.y_test[targets])
    final = head(trainer, fm["checkpoints"][0])
    runs = {
        "grad_dot": ([final], [1.0], False),
        "grad_cos": ([final], [1.0], True),
        "tracin": ([head(trainer, w) for w in fm["epochs"]], fm["epoch_lr"], False),
    }
    out = {}
    for name, (models, weights, norm) in runs.items():
        path = os.path.join(a.work, f"{name}.npz")
        make = functools.partial(qg.tracin_scores, models, weights, x, y, xt, yt, norm)
        s = seconds.run(name, lambda: cached(path, lambda: {"scores": make()}))["scores"]  # noqa: B023
        out[name] = Attribution.from_scores(s, "train_test", test_ids=targets, method=name)
    return out


def trak_rankings(a, trainer, fm, targets, val_rows, masks, margins, seconds):
    """TRAK for every (C, p, ridge); per C, the setting with the best validation LDS."""
    x, y = trainer.x_train, torch.as_tensor(trainer.y_train)
    xt, yt = trainer.x_test[targets], torch.as_tensor(trainer.y_test[targets])

    def feats():
        for c, w in enumerate(fm["checkpoints"][: max(a.counts)]):
            path = os.path.join(a.work, f"trak_{c}.npz")
            yield seconds.run(
                f"trak_features_{c}",
                lambda: qg.trak_features(head(trainer, w), c, x, y, xt, yt, max(a.proj_dims), path),  # noqa: B023
            )

    def select():
        grid = seconds.run("trak_grid_total", lambda: qg.trak_grid(feats(), a.proj_dims, a.ridges, a.counts))
        table, best, chosen = [], {}, {}
        for (c, p, r), s in sorted(grid.items()):
            att = Attribution.from_scores(s, "train_test", test_ids=targets, method="trak")
            v = lds(att, masks, margins[:, val_rows], val_rows)
            table.append({"checkpoints": c, "proj_dim": p, "ridge": r, "validation_lds": v["lds"]})
            if c not in chosen or v["lds"] > chosen[c]["validation_lds"]:
                chosen[c], best[f"trak_x{c}"] = table[-1], s
        info = {"grid": table, "chosen": {f"trak_x{c}": v for c, v in chosen.items()}}
        return {"info": np.array(json.dumps(info)), **best}

    z = cached(os.path.join(a.work, "trak_chosen.npz"), select)  # the grid is not recomputed on resume
    out = {n: Attribution.from_scores(z[n], "train_test", test_ids=targets, method=n) for n in z if n != "info"}
    return out, json.loads(str(z["info"]))


def support_methods(spec: str, names: list, val_lds: dict) -> list:
    """The methods whose supports are searched: ``spec`` is 'all' or comma-separated names, where
    trak_best and gradient_best stand for the TRAK and gradient ranking of best validation LDS."""
    if spec == "all":
        return names
    families = {
        "trak_best": [n for n in names if n.startswith("trak_x")],
        "gradient_best": ["grad_dot", "grad_cos", "tracin"],
    }
    out = []
    for token in spec.split(","):
        pick = max(families[token], key=val_lds.get) if token in families else token
        if pick not in names:
            raise SystemExit(f"--support-methods: expected 'all' or names from {names}, got {token!r}")
        out.append(pick)
    return out


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
    for i in range(0, 0 if a.report_only else len(a.reported), a.chunk):  # all methods on a chunk of images
        chunk = a.reported[i : i + a.chunk]
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
