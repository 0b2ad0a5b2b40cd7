"""`simattr label-errors`: training images ranked by how likely their label is wrong."""

from __future__ import annotations

import csv
import io

import numpy as np

from .._io import write_text
from ..label_errors import METHODS
from .common import CliError, load_side


def add(sub):
    p = sub.add_parser(
        "label-errors",
        help="rank training images by how likely their label is wrong (two linear class models and the "
        "neighbours in the embedding)",
    )
    p.add_argument("--train", required=True, help="training embeddings: an embed folder or a .npy [n, d]")
    p.add_argument("--train-labels", help=".npy int [n] (only with a .npy --train)")
    p.add_argument("--out", required=True, help="CSV to write: rank, index, label, score (most suspicious first)")
    p.add_argument(
        "--method",
        choices=METHODS,
        default="ensemble",
        help="ensemble (default): rank average of a logistic regression's and an LDA's label posterior and the "
        "neighbours' disagreement; or any one alone",
    )
    p.add_argument("--k", type=int, default=20, help="neighbours per image (default 20)")
    p.add_argument("--top", type=int, default=10, help="suspects printed (default 10)")
    p.set_defaults(func=label_errors_cmd)


def label_errors_cmd(args) -> int:
    from ..debugging import label_error_scores

    train, labels = load_side(args.train, args.train_labels, "train")
    if labels is None:
        labels = getattr(train, "labels", None)
    if labels is None:
        raise CliError("--train-labels: label errors need the training labels (.npy)")
    scores = label_error_scores(getattr(train, "features", train), labels, method=args.method, k=args.k)
    order = np.argsort(-scores, kind="stable")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["rank", "index", "label", "score"])
    for r, j in enumerate(order):
        w.writerow([r + 1, int(j), int(labels[j]), f"{scores[j]:.6f}"])
    write_text(args.out, buf.getvalue())
    suspects = int((scores > 0.5).sum())
    print(
        f"simattr label-errors: {suspects} of {len(scores)} training images look mislabelled (score > 0.5) -> {args.out}"
    )
    for j in order[: args.top]:
        print(f"  index {int(j)}: label {int(labels[j])}, score {scores[j]:.3f}")
    return 0
