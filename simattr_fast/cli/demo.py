"""`simattr demo`: the whole pipeline on scikit-learn's digits, no download, about a minute on
2 CPU cores: SimCLR backbone -> embeddings -> exemplar-SVM attribution -> HTML report -> a small
removal-support check (ESVM against random rankings, small CNNs retrained without the top images).
Every stage resumes, so running it again reuses what is already there."""

from __future__ import annotations

import json
import os
import time

from .._io import atomic_write
from ..attributor import METHODS
from .common import DEVICES, CliError


def add(sub):
    d = sub.add_parser(
        "demo",
        help="the whole pipeline on scikit-learn digits (no download): "
        "SimCLR backbone, embeddings, ESVM attribution, HTML report",
    )
    d.add_argument("--out", default="simattr_out", help="output folder (default: simattr_out)")
    d.add_argument("--k", type=int, default=50, help="training images kept per test image (default: 50)")
    d.add_argument("--method", choices=METHODS, default="esvm")
    d.add_argument("--epochs", type=int, default=15, help="SimCLR epochs on the digits (default: 15)")
    d.add_argument("--check", type=int, default=4, help="test images in the removal-support check (0 skips it)")
    d.add_argument("--device", choices=DEVICES, default="auto")
    d.set_defaults(func=demo_cmd)


def demo_cmd(args) -> int:
    from ..attributor import Attributor
    from ..datasets import open_dataset
    from ..embed import embed
    from ..report import render_report
    from ..simclr import train_ssl

    if args.k <= 0:
        raise CliError(f"--k: expected a positive integer, got {args.k}")
    if args.epochs <= 0:
        raise CliError(f"--epochs: expected a positive integer, got {args.epochs}")
    t0 = time.perf_counter()
    train, test = open_dataset("digits", "train"), open_dataset("digits", "test")
    out = args.out
    ssl_dir = os.path.join(out, "ssl")
    print(f"[1/5] SimCLR on {len(train)} training digits ({args.epochs} epochs) -> {ssl_dir}")
    last = train_ssl(train, ssl_dir, epochs=args.epochs, batch_size=128, device=args.device, progress=False)
    ckpt = os.path.join(ssl_dir, "checkpoint.pt")
    print(f"[2/5] embedding {len(train)} + {len(test)} images")
    kw = dict(backbone="small_cnn", checkpoint=ckpt, dtype="float32", device=args.device, progress=False)
    e_train = embed(train, os.path.join(out, "embeddings", "train"), **kw)
    e_test = embed(test, os.path.join(out, "embeddings", "test"), **kw)
    print(f"[3/5] {args.method} attribution, top {args.k} same-class training images per test image")
    att = Attributor(method=args.method, k=args.k, device=args.device, progress=False).fit(e_train)
    result = att.attribute(e_test)
    path = result.save(os.path.join(out, "attribution.npz"))
    report = os.path.join(out, "report.html")
    print(f"[4/5] HTML report of 30 test images -> {report}")
    render_report(result, train, test, report, rows=range(30), top=10, title="simattr demo: digits, exemplar SVM")
    check = _removal_check(result, e_train, out, args.check, args.k) if args.check > 0 else None
    seconds = time.perf_counter() - t0
    summary = {
        "removal_check": check,
        "dataset": "sklearn digits, fixed stratified 75/25 split",
        "n_train": len(train),
        "n_test": len(test),
        "backbone": "small_cnn (SimCLR)",
        "ssl_epochs": last["epoch"],
        "ssl_loss": last["loss"],
        "method": args.method,
        "k": args.k,
        "attribution": path,
        "report": report,
        "attribute_seconds": result.params["seconds"],
        "total_seconds": seconds,
    }
    with atomic_write(os.path.join(out, "demo.json"), "w") as f:
        json.dump(summary, f, indent=2)
    top = result.indices[0, :5]
    print(
        f"test digit {result.test_ids[0]} (label {result.test_labels[0]}): top training images {top.tolist()}, "
        f"labels {train.targets[top].tolist()}"
    )
    print(f"done in {seconds:.0f}s. Open the report: {os.path.abspath(report)}")
    return 0


def _removal_check(result, e_train, out: str, n: int, k: int) -> dict:
    """Removal support of ``n`` test digits for ESVM and random same-class rankings (up to k, M=3
    small CNNs per step, 3 bisection steps), stored in ``out/results.sqlite``. The digits are
    the ``n`` that a 3-model full-data ensemble classifies correctly with the smallest margins:
    support is only defined for images the model gets right, and on digits the confident ones
    survive removing a whole top-50."""
    import numpy as np

    from ..evaluation import evaluate, margins, random_attribution, trainer_from_spec

    spec = {"kind": "small_cnn", "dataset": "digits", "epochs": 20}  # ~95% test accuracy, 1 s per 3 models
    trainer = trainer_from_spec(spec)
    full = trainer.logits(trainer.train(np.arange(len(trainer.y_train)), trainer.y_train, [0, 1, 2]), result.test_ids)
    y = trainer.y_test[result.test_ids]
    right = (full.argmax(-1) == y).mean(0) > 0.5
    mg = margins(full, y).mean(0)
    rows = np.sort(np.flatnonzero(right)[np.argsort(mg[right], kind="stable")[:n]])
    ids = result.test_ids[rows].tolist()
    print(f"[5/5] removal-support check on {len(ids)} least confident correct test digits: esvm vs random, k={k}")
    rand = random_attribution(e_train.labels, result.test_labels[rows], ids, k)
    s = evaluate(
        {"esvm": result, "random": rand},
        spec,
        os.path.join(out, "results.sqlite"),
        "removal",
        ids,
        os.path.join(out, "evaluation"),
        k=k,
        n_models=3,
        budget=3,
        n_workers=1,
        progress=False,
    )
    for name, m in s["methods"].items():
        print(
            f"      {name:6s}: flipped {m['flipped']}/{m['n']} by removing at most {k} images, "
            f"median support {m['median']}"
        )
    return s["methods"]
