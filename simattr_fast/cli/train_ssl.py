"""`simattr train-ssl`: a SimCLR backbone for small images."""

from __future__ import annotations

import os

from .common import DEVICES, dataset_args


def add(sub):
    p = sub.add_parser(
        "train-ssl",
        help="train a backbone with SimCLR on a small-image dataset "
        "(checkpoint per epoch, resumes); reports weighted-kNN accuracy",
    )
    dataset_args(p)
    p.add_argument(
        "--eval-split",
        choices=("test", "none"),
        default="test",
        help="split for the kNN accuracy report (default: test)",
    )
    p.add_argument("--backbone", default="small_cnn", help="small_cnn (default) | cifar_resnet18 | resnet18")
    p.add_argument("--out", required=True, help="output folder (checkpoint.pt, log.jsonl)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--minutes", type=float, help="stop after this much training time")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.set_defaults(func=train_ssl_cmd)


def train_ssl_cmd(args) -> int:
    from ..datasets import open_dataset
    from ..simclr import train_ssl

    data = open_dataset(args.dataset, args.split, root=args.data_root, image_size=args.image_size)
    evals = (
        None
        if args.eval_split == "none"
        else open_dataset(args.dataset, args.eval_split, root=args.data_root, image_size=args.image_size)
    )
    last = train_ssl(
        data,
        args.out,
        backbone=args.backbone,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        temperature=args.temperature,
        seed=args.seed,
        device=args.device,
        time_limit=60 * args.minutes if args.minutes else None,
        eval_dataset=evals,
    )
    acc = f", kNN accuracy on {args.eval_split} {last['knn_accuracy']:.4f}" if "knn_accuracy" in last else ""
    print(
        f"simattr train-ssl: {last['epoch']} epochs, loss {last['loss']:.4f}{acc}; "
        f"checkpoint {os.path.join(args.out, 'checkpoint.pt')}"
    )
    return 0
