"""Side by side with TRAK (traker, CPU projector) on the same model family, data and test images.

    python benchmarks/bench_trak.py            # the recorded run (runs bench_ssl / bench_removal first
                                               # when their outputs are missing)
    python benchmarks/bench_trak.py --quick    # everything sized down, under benchmarks/out/quick/

Same split as bench_removal.py: the first --n-train Fashion-MNIST training images, the test
images of benchmarks/results/removal_test_ids.json. It reuses the SimCLR checkpoint of bench_ssl.py and
the results store of bench_removal.py (running them first when they are missing), so their
ESVM/cosine/random searches are not redone.

Cost, each stage timed in this run with its peak RSS and bytes written:
- TRAK: train the small-CNN checkpoints it needs, featurize the training set (per-example
  gradients, projected to --proj-dim=2048, TRAK's default), score the test images; with one
  checkpoint and with --checkpoints of them.
- ours: embed the training and test images with the SimCLR backbone, then ESVM and cosine
  top-k. (Training the SimCLR backbone is a one-off per dataset, reported from bench_ssl.json.)
Quality: removal support of every ranking (ESVM, cosine, random, TRAK x1, TRAK xC; TRAK ranks
all training images, as it is meant to be used) through simattr_fast.evaluation, and LDS of
all of them on the same --subsets subset-trained models.
Writes benchmarks/results/trak_comparison.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time

import numpy as np
import psutil
import torch

from simattr_fast import Attribution, Attributor
from simattr_fast.datasets import ArrayDataset, open_dataset
from simattr_fast.embed import embed, load_embeddings
from simattr_fast.evaluation import evaluate, trainer_from_spec

import bench_removal
from _common import machine

HERE = os.path.dirname(os.path.abspath(__file__))


class Stage:
    """Wall time, peak RSS (sampled every 20 ms) and bytes written under ``paths``."""

    def __init__(self, name, results, paths=()):
        self.name, self.results, self.paths = name, results, paths

    def __enter__(self):
        self.proc, self.peak, self.stop = psutil.Process(), 0, threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        self.t0 = time.perf_counter()
        return self

    def _sample(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        self.stop.set()
        self.thread.join()
        written = sum(du(p) for p in self.paths)
        self.results[self.name] = {"seconds": wall, "peak_rss_gb": self.peak / 1e9, "bytes_written": written}
        print(f"  {self.name}: {wall:.1f}s, peak RSS {self.peak / 1e9:.2f} GB, {written / 1e6:.1f} MB written")


def du(path) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def trak_scores(trainer, modules, test_ids, n_train, proj_dim, save_dir, batch_size=256, targets=None):
    """TRAK scores [n_train, n_test] from ``modules`` (one per checkpoint); ``targets``
    ``(x, y)`` replaces the test images (the self-influence check scores training images)."""
    from trak import TRAKer

    shutil.rmtree(save_dir, ignore_errors=True)
    tk = TRAKer(
        model=modules[0],
        task="image_classification",
        train_set_size=n_train,
        save_dir=save_dir,
        device="cpu",
        proj_dim=proj_dim,
        use_half_precision=False,
        logging_level=40,
    )
    xs, ys = trainer.x_train[:n_train], torch.as_tensor(trainer.y_train[:n_train])
    for mid, m in enumerate(modules):
        tk.load_checkpoint(m.state_dict(), model_id=mid)
        for i in range(0, n_train, batch_size):
            tk.featurize(
                batch=(xs[i : i + batch_size], ys[i : i + batch_size]), num_samples=len(ys[i : i + batch_size])
            )
    tk.finalize_features()
    xt, yt = targets or (trainer.x_test[torch.as_tensor(test_ids)], torch.as_tensor(trainer.y_test[test_ids]))
    for mid, m in enumerate(modules):
        tk.start_scoring_checkpoint(exp_name="bench", checkpoint=m.state_dict(), model_id=mid, num_targets=len(yt))
        tk.score(batch=(xt, yt), num_samples=len(yt))
    return np.asarray(tk.finalize_scores(exp_name="bench"), dtype=np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--checkpoints", type=int, default=5, help="TRAK's 'several checkpoints' run (default 5)")
    p.add_argument("--proj-dim", type=int, default=2048)
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--models", type=int, default=5)
    p.add_argument("--budget", type=int, default=5)
    p.add_argument("--subsets", type=int, default=50)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-removal", action="store_true")
    p.add_argument("--mislabel", action="store_true", help="also mislabel support for every ranking")
    p.add_argument("--ids-file", default=os.path.join(HERE, "results", "removal_test_ids.json"))
    p.add_argument("--ssl-checkpoint", default=os.path.join(HERE, "out", "ssl_fashion", "checkpoint.pt"))
    p.add_argument("--work", default=os.path.join(HERE, "out", "removal"), help="bench_removal's work folder")
    p.add_argument("--result", default=os.path.join(HERE, "results", "trak_comparison"))
    p.add_argument("--ssl-minutes", type=float, default=25.0, help="SimCLR training time when it must be run")
    p.add_argument(
        "--quick",
        action="store_true",
        help="everything sized down (about 5 minutes), written under "
        "benchmarks/out/quick/ so the recorded figures stay",
    )
    args = p.parse_args(argv)
    if args.quick:
        q = os.path.join(HERE, "out", "quick")
        args.n_train, args.checkpoints, args.k, args.budget, args.models, args.subsets = 2000, 2, 40, 2, 3, 10
        args.ssl_minutes, args.ids_file = 2.0, os.path.join(q, "test_ids.json")
        args.ssl_checkpoint, args.work = os.path.join(q, "ssl", "checkpoint.pt"), os.path.join(q, "removal")
        args.result, n_test = os.path.join(q, "trak_comparison"), 4
        os.makedirs(q, exist_ok=True)
    else:
        n_test = 20
    # One command reruns everything: the SimCLR backbone and the removal run come first when missing.
    if not os.path.exists(args.ssl_checkpoint):
        import bench_ssl

        bench_ssl.main(
            [
                "--minutes",
                str(args.ssl_minutes),
                "--out",
                os.path.dirname(args.ssl_checkpoint),
                "--json",
                os.path.join(os.path.dirname(args.ssl_checkpoint), "ssl.json"),
            ]
        )
    if not os.path.exists(os.path.join(args.work, "results.sqlite")) or not os.path.exists(args.ids_file):
        bench_removal.main(
            [
                "--n-train",
                str(args.n_train),
                "--n-test",
                str(n_test),
                "--k",
                str(args.k),
                "--models",
                str(args.models),
                "--budget",
                str(args.budget),
                "--epochs",
                str(args.epochs),
                "--workers",
                str(args.workers),
                "--ssl-checkpoint",
                args.ssl_checkpoint,
                "--work",
                args.work,
                "--ids-file",
                args.ids_file,
                "--result",
                os.path.join(os.path.dirname(args.result), "removal_fashion")
                if args.quick
                else os.path.join(HERE, "results", "removal_fashion"),
            ]
        )
    with open(args.ids_file) as f:
        ids = json.load(f)["test_ids"]
    spec = {
        "kind": "small_cnn",
        "dataset": "fashion-mnist",
        "root": None,
        "n_train": args.n_train,
        "epochs": args.epochs,
    }
    trainer = trainer_from_spec(spec)
    n = args.n_train
    tmp = os.path.join(HERE, "out", "trak_tmp")
    os.makedirs(tmp, exist_ok=True)
    cost: dict = {}
    print("cost")
    with Stage(f"trak: train {args.checkpoints} checkpoints", cost):
        handle = trainer.train(np.arange(n), trainer.y_train, list(range(1000, 1000 + args.checkpoints)))
        modules = [trainer.module(handle, j) for j in range(args.checkpoints)]
    scores = {}
    for c in sorted({1, args.checkpoints}):
        d = os.path.join(tmp, f"trak_{c}")
        with Stage(f"trak: featurize + score, {c} checkpoint(s)", cost, [d]):
            scores[c] = trak_scores(trainer, modules[:c], ids, n, args.proj_dim, d)
    # Diagnostics: TRAK works if training images find themselves; how class-consistent are its tops?
    self_s = trak_scores(
        trainer,
        modules[:1],
        None,
        n,
        args.proj_dim,
        os.path.join(tmp, "trak_self"),
        targets=(trainer.x_train[:50], torch.as_tensor(trainer.y_train[:50])),
    )
    same = {
        f"trak_x{c}": float(
            (trainer.y_train[np.argsort(-s, 0, kind="stable")[: args.k]] == trainer.y_test[ids][None, :]).mean()
        )
        for c, s in scores.items()
    }
    diagnostics = {
        "trak_x1_self_influence_top1": float((self_s.argmax(0) == np.arange(50)).mean()),
        f"same_class_fraction_of_top{args.k}": same,
    }
    print(f"  diagnostics: {diagnostics}")
    train, test = open_dataset("fashion-mnist", "train"), open_dataset("fashion-mnist", "test")
    sub = ArrayDataset(train.images[:n], train.targets[:n], name="fashion-mnist-first")
    chosen = ArrayDataset(test.images[ids], test.targets[ids], name="fashion-mnist-test-chosen")
    ours = os.path.join(tmp, "ours")
    shutil.rmtree(ours, ignore_errors=True)
    kw = dict(backbone="small_cnn", checkpoint=args.ssl_checkpoint, dtype="float16", progress=False)
    with Stage("ours: embed train + test", cost, [ours]):
        e_tr, e_te = embed(sub, os.path.join(ours, "train"), **kw), embed(chosen, os.path.join(ours, "test"), **kw)
    for method in ("esvm", "cosine"):
        f = os.path.join(ours, f"{method}.npz")
        with Stage(f"ours: {method} top-{args.k}", cost, [f]):
            Attributor(method, k=args.k, progress=False).fit(e_tr).attribute(e_te, test_ids=ids).save(f)

    # Quality: rankings on bench_removal's embeddings (the same ones its store was filled with).
    r_tr, r_te = (
        load_embeddings(os.path.join(args.work, "emb_train")),
        load_embeddings(os.path.join(args.work, "emb_test")),
    )
    atts = bench_removal.rankings(r_tr, r_te, ids, args.k)
    for c, s in scores.items():
        atts[f"trak_x{c}"] = Attribution.from_scores(s, "train_test", test_ids=ids, method=f"trak_x{c}")
    store = os.path.join(args.work, "results.sqlite")
    quality = {}
    if not args.skip_removal:
        print("removal support")
        quality["removal"] = evaluate(
            atts,
            spec,
            store,
            "removal",
            ids,
            os.path.join(tmp, "eval"),
            k=args.k,
            n_models=args.models,
            budget=args.budget,
            n_workers=args.workers,
        )
        shutil.copy(quality["removal"]["plot"], args.result + ".png")
    if args.mislabel:
        print("mislabel support")
        quality["mislabel"] = evaluate(
            atts,
            spec,
            store,
            "mislabel",
            ids,
            os.path.join(tmp, "eval"),
            k=args.k,
            n_models=args.models,
            budget=args.budget,
            n_workers=args.workers,
        )
        shutil.copy(quality["mislabel"]["plot"], args.result + "_mislabel.png")
    print("LDS")
    quality["lds"] = evaluate(
        atts, spec, store, "lds", ids, os.path.join(tmp, "eval"), n_subsets=args.subsets, alpha=args.alpha
    )
    ssl_json = os.path.join(os.path.dirname(args.ssl_checkpoint), "ssl.json")
    ssl_json = ssl_json if os.path.exists(ssl_json) else os.path.join(HERE, "results", "ssl.json")
    ssl = json.load(open(ssl_json))["simclr"] if os.path.exists(ssl_json) else None
    import trak

    out = {
        "settings": {**vars(args), "trainer": spec},
        "machine": machine(),
        "torch": torch.__version__,
        "traker": getattr(trak, "__version__", "?"),
        "test_ids": ids,
        "cost": cost,
        "ssl_training_once": ssl,
        "diagnostics": diagnostics,
        "quality": {m: {k: v for k, v in q.items() if k not in ("plot",)} for m, q in quality.items()},
    }
    with open(args.result + ".json", "w") as f:
        json.dump(out, f, indent=2)
    write_table(out, args.result + ".md")
    print(open(args.result + ".md").read())
    return 0


def write_table(out: dict, path: str) -> None:
    cost, q = out["cost"], out["quality"]
    lines = ["| stage | seconds | peak RSS (GB) | written (MB) |", "|---|---|---|---|"]
    lines += [
        f"| {k} | {v['seconds']:.3g} | {v['peak_rss_gb']:.2f} | {v['bytes_written'] / 1e6:.3g} |"
        for k, v in cost.items()
    ]
    lines += [
        "",
        "| ranking | removal: flipped within k | median | CDF area | mislabel: flipped within k | median "
        "| CDF area | LDS (95% CI) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, lds_m in q["lds"]["methods"].items():
        cells = []
        for criterion in ("removal", "mislabel"):
            r = q.get(criterion, {}).get("methods", {}).get(m)
            cells.append(f"{r['flipped']}/{r['n']} | {r['median']} | {r['cdf_area']:.3f}" if r else "— | — | —")
        lines.append(
            f"| {m} | {' | '.join(cells)} | {lds_m['lds']:.3f} ({lds_m['ci95'][0]:.3f} .. {lds_m['ci95'][1]:.3f}) |"
        )
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
