"""`simattr attribute`: embeddings -> an attribution file."""

from __future__ import annotations

import numpy as np

from ..attributor import CONDITIONS, METHODS
from .common import DEVICES, CliError, load_side, require_file


def add(sub):
    p = sub.add_parser(
        "attribute", help="rank each test image's training images (esvm, cosine, l2, ip) and save an attribution file"
    )
    p.add_argument("--train", required=True, help="training embeddings: a simattr embed folder, or a .npy [n, d]")
    p.add_argument("--test", required=True, help="test embeddings: a simattr embed folder, or a .npy [n, d]")
    p.add_argument("--train-labels", help=".npy int [n_train] (only with a .npy --train)")
    p.add_argument("--test-labels", help=".npy int [n_test] (only with a .npy --test)")
    p.add_argument("--out", required=True, help="attribution file to write (.npz)")
    p.add_argument("--method", choices=METHODS, default="esvm")
    p.add_argument("--k", type=int, default=1280, help="training images kept per test image (default 1280)")
    p.add_argument(
        "--condition",
        choices=CONDITIONS,
        default="true",
        help="pool: training images of the true label (default), the predicted label, or all",
    )
    p.add_argument("--predictions", help=".npy int [n_test] predicted labels (for --condition predicted)")
    p.add_argument("--C", type=float, default=0.1, help="exemplar SVM regularisation (default 0.1)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--export-topk", help="also write the reference [n_test, k] int64 .npy here")
    p.add_argument(
        "--opponents",
        metavar="PROBS.npy",
        help="the model's [n_test, n_classes] probabilities or logits: also rank each test image's opponents "
        "(top training images of its competing class: the prediction when wrong, else the runner-up)",
    )
    p.set_defaults(func=attribute_cmd)


def attribute_cmd(args) -> int:
    from ..attributor import Attributor

    train, train_y = load_side(args.train, args.train_labels, "train")
    test, test_y = load_side(args.test, args.test_labels, "test")
    pred = None
    if args.predictions:
        pred = np.load(require_file("--predictions", args.predictions), allow_pickle=False)
    elif args.condition == "predicted":
        raise CliError("--predictions: --condition predicted needs the predicted labels (.npy)")
    opponents = None
    if args.opponents:
        from ..attributor import competing_labels

        probs = np.load(require_file("--opponents", args.opponents), allow_pickle=False)
        labels = test_y if test_y is not None else getattr(test, "labels", None)
        if labels is None:
            raise CliError("--opponents: the competing class needs the test labels")
        opponents = competing_labels(probs, labels)
    att = Attributor(method=args.method, k=args.k, condition=args.condition, device=args.device, C=args.C)
    result = att.fit(train, train_y).attribute(test, test_y, predicted_labels=pred, opponent_labels=opponents)
    result.save(args.out)
    if args.export_topk:
        result.to_topk_matrix(args.export_topk)
    print(
        f"simattr attribute: {args.method} top-{args.k} for {len(result)} test images over "
        f"{att.n_train_} training images in {result.params['seconds']:.2f}s -> {args.out}"
    )
    return 0
