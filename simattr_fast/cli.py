"""The `simattr` command line.

    simattr demo [--out DIR] [--k K] [--method esvm|cosine]
    simattr embed --dataset NAME|PATH --checkpoint FILE --out DIR [--backbone NAME] ...
    simattr train-ssl --dataset NAME|PATH --out DIR [--epochs N] [--minutes M] ...

Errors are one line on stderr and a non-zero exit status, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from ._cli_embed import add_embed, add_train_ssl


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _demo(args) -> int:
    import simattr_fast as sa
    from simattr_fast.datasets import load_digits

    if args.k <= 0:
        raise CliError(f"--k: expected a positive integer, got {args.k}")
    images, labels = load_digits()
    x = images.reshape(len(images), -1)
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(x))
    n_test = len(x) // 5
    test, train = perm[:n_test], np.sort(perm[n_test:])
    t0 = time.perf_counter()
    if args.method == "esvm":
        scores, idx = sa.esvm_topk(x[test], x[train], args.k, labels[test], labels[train], device=args.device)
    else:
        scores, idx = sa.topk(x[test], x[train], args.k, "cosine", labels[test], labels[train], device=args.device)
    elapsed = time.perf_counter() - t0
    global_idx = np.where(idx >= 0, train[np.maximum(idx, 0)], -1)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"digits_{args.method}_top{args.k}.npz")
    np.savez(path, test_ids=test, indices=global_idx, scores=scores)
    with open(os.path.join(args.out, "demo.json"), "w") as f:
        json.dump({"dataset": "sklearn digits (8x8 pixels as features)", "method": args.method,
                   "k": args.k, "n_train": int(len(train)), "n_test": int(len(test)),
                   "seconds": elapsed, "results": os.path.basename(path)}, f, indent=2)
    print(f"simattr demo: {args.method} attribution of {len(test)} test digits over "
          f"{len(train)} training digits (class-conditioned, k={args.k}) in {elapsed:.2f}s")
    for r in range(min(3, len(test))):
        top = global_idx[r, :5]
        print(f"  test image {test[r]} (label {labels[test[r]]}): top training images "
              f"{top.tolist()} with labels {labels[top].tolist()}")
    print(f"results: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simattr", description="Similarity-based data attribution for image classifiers.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="attribute scikit-learn digits (no download) and save the rankings")
    d.add_argument("--out", default="simattr_out", help="output folder (default: simattr_out)")
    d.add_argument("--k", type=int, default=50, help="training images kept per test image (default: 50)")
    d.add_argument("--method", choices=("esvm", "cosine"), default="esvm")
    d.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    d.add_argument("--seed", type=int, default=0, help="train/test split seed")
    d.set_defaults(func=_demo)
    add_embed(sub)
    add_train_ssl(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (CliError, ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"simattr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"simattr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
