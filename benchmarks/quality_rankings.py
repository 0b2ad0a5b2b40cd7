"""The rankings of bench_quality.py, each computed once and cached under the work folder:
the full-data models and checkpoints, ours (ESVM, cosine, L2 on the SimCLR embedding), the
gradient baselines and TRAK's grid with its choice by validation LDS."""

from __future__ import annotations

import functools
import json
import os
import time

import numpy as np
import torch

from simattr_fast import Attribution, Attributor
from simattr_fast.datasets import ArrayDataset, open_dataset
from simattr_fast.embed import embed
from simattr_fast.evaluation import lds

import quality_gradients as qg


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


def _trak_features_cached(path, *args):
    """:func:`quality_gradients.trak_features` through :func:`cached`, so a killed run resumes."""

    def make():
        phi, phi_t, q = qg.trak_features(*args)
        return {"phi": phi.numpy(), "phi_t": phi_t.numpy(), "q": q.numpy()}

    z = cached(path, make)
    return torch.as_tensor(z["phi"]), torch.as_tensor(z["phi_t"]), torch.as_tensor(z["q"])


class Seconds(dict):
    """Compute seconds per step, persisted in ``path`` so that a resumed run reports the run that
    did the work, not the cache hit."""

    def __init__(self, path):
        if os.path.exists(path):
            with open(path) as f:
                super().__init__(json.load(f))
        else:
            super().__init__()
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
                lambda: _trak_features_cached(path, head(trainer, w), c, x, y, xt, yt, max(a.proj_dims)),  # noqa: B023
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
