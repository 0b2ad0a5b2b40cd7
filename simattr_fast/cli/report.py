"""`simattr report`: an attribution file -> a self-contained HTML report."""

from __future__ import annotations

import os

from .common import CliError


def add(sub):
    p = sub.add_parser("report", help="write a self-contained HTML report of an attribution file")
    p.add_argument("--attribution", required=True, help="file written by simattr attribute")
    p.add_argument("--out", required=True, help="HTML file to write")
    p.add_argument("--train-data", help="training images (name or path; default: as recorded by simattr embed)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--test-data", help="test images (name or path; default: as recorded by simattr embed)")
    p.add_argument("--test-split", default="test")
    p.add_argument("--data-root", help="folder holding the dataset files (mnist/cifar by name)")
    p.add_argument("--n-test", type=int, default=50, help="test images shown (default 50)")
    p.add_argument("--top", type=int, default=10, help="training images per test image (default 10)")
    p.add_argument(
        "--probabilities",
        help=".npy [n_test, n_classes]: the model's probabilities, one row per attribution row (prediction, confidence)",
    )
    p.add_argument("--duplicates", help="duplicates.json from simattr duplicates (badges)")
    p.add_argument("--label-errors", help="CSV from simattr label-errors (badges for scores above 0.5)")
    p.add_argument("--store", help="results store of simattr evaluate (removal / mislabel verdicts)")
    p.set_defaults(func=report_cmd)


def _reopen(attr, side, name, split, root):
    """The dataset of one side: as given, or as recorded in the attribution's provenance.

    The recorded spec is untrusted text from a file: it is type-checked, and whatever it names
    is opened only through the package's own readers (IDX, CIFAR batches through a restricted
    unpickler, ImageFolder images, pickle-free .npz). The path opened is printed."""
    from ..datasets import open_dataset

    if name:
        data = open_dataset(name, split, root=root)
    else:
        prov = attr.provenance.get(side)
        ds = prov.get("dataset") if isinstance(prov, dict) else None
        spec = ds.get("spec") if isinstance(ds, dict) else None
        if not spec:
            raise CliError(f"--{side}-data: the attribution does not record its {side} images; pass --{side}-data")
        ok = (
            isinstance(spec, dict)
            and isinstance(spec.get("dataset"), str)
            and isinstance(spec.get("split"), str)
            and isinstance(spec.get("root"), (str, type(None)))
            and (spec.get("image_size") is None or type(spec.get("image_size")) is int)
        )
        if not ok:
            raise CliError(f"--attribution: the recorded {side} dataset spec is malformed; pass --{side}-data")
        data = open_dataset(spec["dataset"], spec["split"], root=spec.get("root"), image_size=spec.get("image_size"))
    src = getattr(data, "spec", {}).get("dataset")
    print(f"simattr report: {side} images from {src} ({getattr(data, 'spec', {}).get('split', split)} split)")
    return data


def report_cmd(args) -> int:
    from ..attribution import Attribution
    from ..report import render_report

    if args.n_test <= 0:
        raise CliError(f"--n-test: expected a positive integer, got {args.n_test}")
    attr = Attribution.load(args.attribution)
    train = _reopen(attr, "train", args.train_data, args.train_split, args.data_root)
    test = _reopen(attr, "test", args.test_data, args.test_split, args.data_root)
    names = (train.describe() if hasattr(train, "describe") else {}).get("class_names")
    extras = _extras(args, attr, len(train))
    render_report(
        attr, train, test, args.out, rows=range(min(args.n_test, len(attr))), top=args.top, class_names=names, **extras
    )
    print(f"simattr report: {min(args.n_test, len(attr))} test images -> {os.path.abspath(args.out)}")
    return 0


def _extras(args, attr, n_train: int) -> dict:
    """Prediction confidence, duplicate and label-error badges, and support verdicts."""
    import csv

    import numpy as np

    from .common import require_file

    out = {}
    if args.probabilities:
        probs = np.load(require_file("--probabilities", args.probabilities), allow_pickle=False)
        if probs.ndim != 2 or len(probs) != len(attr):
            raise CliError(f"--probabilities: expected one row per attribution row ({len(attr)}), got {probs.shape}")
        if attr.predicted_labels is None:
            attr.predicted_labels = probs.argmax(1).astype(np.int64)
        out["confidence"] = probs[np.arange(len(attr)), attr.predicted_labels]
    if args.duplicates:
        from ..debugging import Duplicates

        out["duplicates"] = Duplicates.from_json(require_file("--duplicates", args.duplicates))
    if args.label_errors:
        scores = np.zeros(n_train)
        with open(require_file("--label-errors", args.label_errors), encoding="utf-8") as f:
            for row in csv.DictReader(f):
                try:
                    j, sc = int(row["index"]), float(row["score"])
                except (KeyError, TypeError, ValueError):
                    raise CliError(f"--label-errors: {args.label_errors!r} is not a simattr label-errors CSV") from None
                if 0 <= j < n_train:
                    scores[j] = sc
        out["label_scores"] = scores
    if args.store:
        from ..evaluation import ResultsStore

        method = str(attr.params.get("method"))
        with ResultsStore(require_file("--store", args.store), readonly=True) as st:
            out["supports"] = {c: st.supports(c).get(method, {}) for c in ("removal", "mislabel")}
    return out
