"""`simattr duplicates`: near-duplicate training images and train-test leakage."""

from __future__ import annotations

import os

from .common import load_side


def add(sub):
    p = sub.add_parser(
        "duplicates",
        help="find near-duplicate training images and test images that leak from the training set "
        "(duplicates.json with groups, duplicates.csv with pairs)",
    )
    p.add_argument("--train", required=True, help="training embeddings: an embed folder or a .npy [n, d]")
    p.add_argument("--test", help="test embeddings to check for leakage (embed folder or .npy)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--threshold",
        type=float,
        help="cosine similarity for a duplicate (default: derived from the data, see the docs)",
    )
    p.add_argument("--k", type=int, default=10, help="neighbours examined per image (default 10)")
    p.set_defaults(func=duplicates_cmd)


def duplicates_cmd(args) -> int:
    from ..debugging import find_duplicates

    train, _ = load_side(args.train, None, "train")
    test = load_side(args.test, None, "test")[0] if args.test else None
    feats = getattr(train, "features", train)
    tfeats = None if test is None else getattr(test, "features", test)
    dup = find_duplicates(feats, tfeats, threshold=args.threshold, k=args.k)
    os.makedirs(args.out, exist_ok=True)
    dup.to_json(os.path.join(args.out, "duplicates.json"))
    dup.to_csv(os.path.join(args.out, "duplicates.csv"))
    print(
        f"simattr duplicates: threshold {dup.threshold:.4f}; {len(dup.groups)} groups of near-duplicate training "
        f"images ({len(dup.train_pairs)} pairs), {len(dup.leaks)} test-train leaks -> {args.out}"
    )
    return 0
