"""`simattr evaluate`: counterfactual evaluation of attribution files."""

from __future__ import annotations

import json
import os

from ..evaluation.engines import ENGINES
from ..evaluation.store import CRITERIA
from .common import CliError, require_file


def add(sub):
    p = sub.add_parser(
        "evaluate",
        help="counterfactual evaluation of attributions: removal or mislabel support, "
        "or LDS (every model stored; resumes; parallel)",
    )
    p.add_argument("criterion", choices=CRITERIA)
    p.add_argument(
        "--attribution",
        nargs="+",
        required=True,
        metavar="[NAME=]FILE",
        help="attribution files; NAME defaults to the method recorded in the file",
    )
    p.add_argument("--random", action="store_true", help="also evaluate random same-class rankings (baseline)")
    p.add_argument(
        "--dataset",
        help="images the small_cnn trainer trains on (name or path); the attributions must index its training split",
    )
    p.add_argument("--data-root")
    p.add_argument("--n-train", type=int, help="keep the first N training images (default: all)")
    p.add_argument("--trainer", choices=("small_cnn", "patchnet", "linear"), default="small_cnn")
    p.add_argument("--train-embeddings", help="embed folder (for --trainer linear)")
    p.add_argument("--test-embeddings", help="embed folder (for --trainer linear)")
    p.add_argument("--epochs", type=int, help="trainer epochs (default: the trainer's)")
    p.add_argument("--store", required=True, help="SQLite results store (created, or resumed)")
    p.add_argument("--out", required=True, help="folder for summary_<criterion>.json and the CDF plot")
    p.add_argument("--test-ids", help="comma-separated test ids, or a .json file with a list")
    p.add_argument("--n-test", type=int, default=20, help="without --test-ids: the first N test ids (default 20)")
    p.add_argument("--k", type=int, default=1280, help="search range (default 1280)")
    p.add_argument("--models", type=int, default=5, help="models per step, M (default 5)")
    p.add_argument("--budget", type=int, default=7, help="bisection steps (default 7)")
    p.add_argument("--subsets", type=int, default=50, help="LDS: subsets (default 50)")
    p.add_argument("--alpha", type=float, default=0.5, help="LDS: subset fraction (default 0.5)")
    p.add_argument(
        "--models-per-subset",
        type=int,
        default=1,
        help="LDS: models per subset, margins averaged (default 1; 3 or more for a ground truth that is not "
        "mostly seed noise, as Kronfluence and dattri do)",
    )
    p.add_argument("--workers", type=int, help="worker processes or Ray actors (default: one per core / cluster CPU)")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="where models train: this machine (default) or a Ray cluster (pip install 'simattr_fast[ray]')",
    )
    p.add_argument("--ray-address", help="Ray cluster to join (e.g. auto); default: start a local one")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per Ray worker (default 1)")
    p.add_argument(
        "--gpus-per-model",
        type=float,
        default=0.0,
        help="GPUs per Ray worker; a fraction lets several small models share a GPU",
    )
    p.add_argument(
        "--no-early-decision",
        dest="early_decision",
        action="store_false",
        help="train all M models of every step (default: stop once the verdict is certain; same supports)",
    )
    p.set_defaults(func=evaluate_cmd)


def _attributions(specs):
    from ..attribution import Attribution

    out = {}
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        a = Attribution.load(path)
        name = name or str(a.params.get("method") or os.path.splitext(os.path.basename(path))[0])
        if name in out:
            raise CliError(f"--attribution: two attributions are named {name!r}; name them NAME=FILE")
        out[name] = a
    return out


def _test_ids(args, attributions):
    if args.test_ids:
        if args.test_ids.endswith(".json"):
            with open(require_file("--test-ids", args.test_ids)) as f:
                ids = json.load(f)
            ids = ids["test_ids"] if isinstance(ids, dict) else ids
        else:
            try:
                ids = [int(t) for t in args.test_ids.split(",") if t.strip()]
            except ValueError:
                raise CliError(f"--test-ids: expected comma-separated integers, got {args.test_ids!r}") from None
        return [int(t) for t in ids]
    first = next(iter(attributions.values()))
    return first.test_ids[: args.n_test].tolist()


def evaluate_cmd(args) -> int:
    from ..evaluation import evaluate, random_attribution

    attributions = _attributions(args.attribution)
    if args.trainer in ("small_cnn", "patchnet"):
        if not args.dataset:
            raise CliError(f"--dataset: the {args.trainer} trainer needs the images (name or path)")
        spec = {"kind": args.trainer, "dataset": args.dataset, "root": args.data_root}
    else:
        if not (args.train_embeddings and args.test_embeddings):
            raise CliError("--train-embeddings/--test-embeddings: the linear trainer needs both embed folders")
        spec = {"kind": "linear", "train_embeddings": args.train_embeddings, "test_embeddings": args.test_embeddings}
    spec.update(n_train=args.n_train, epochs=args.epochs)
    ids = _test_ids(args, attributions)
    if args.random:
        from ..evaluation.trainers import spec_labels

        y_train, y_test = spec_labels(spec)
        attributions["random"] = random_attribution(y_train, y_test[ids], ids, args.k)
    s = evaluate(
        attributions,
        spec,
        args.store,
        args.criterion,
        ids,
        args.out,
        k=args.k,
        n_models=args.models,
        budget=args.budget,
        n_workers=args.workers,
        n_subsets=args.subsets,
        alpha=args.alpha,
        models_per_subset=args.models_per_subset,
        engine=args.engine,
        ray_address=args.ray_address,
        gpus_per_model=args.gpus_per_model,
        cpus_per_worker=args.cpus_per_worker,
        early_decision=args.early_decision,
    )
    for name, m in s["methods"].items():
        if args.criterion == "lds":
            print(f"{name}: LDS {m['lds']:.4f} (95% CI {m['ci95'][0]:.4f} .. {m['ci95'][1]:.4f})")
        else:
            print(
                f"{name}: flipped {m['flipped']}/{m['n']} within k={args.k}, median support {m['median']}, "
                f"CDF area {m['cdf_area']:.3f}"
            )
    print(f"simattr evaluate: {s['rows_in_store']} outcome rows in {args.store}; summary {s['summary_file']}")
    return 0
