"""`simattr embed` and `simattr train-ssl`: argument definitions and handlers."""
from __future__ import annotations

import os

from ._cli_common import DEVICES


def _dataset_args(p, split_default="train"):
    p.add_argument("--dataset", required=True,
                   help="fashion-mnist | mnist | cifar10 | cifar100 | digits, or a path: a folder of IDX files, "
                        "of CIFAR batches, an ImageFolder tree, or an .npz with 'images' and 'labels'")
    p.add_argument("--split", choices=("train", "test", "all"), default=split_default)
    p.add_argument("--data-root", help="folder holding the dataset's files (needed for mnist/cifar by name)")
    p.add_argument("--image-size", type=int, help="resize+centre-crop ImageFolder images to this square size")


def add_embed(sub):
    p = sub.add_parser("embed", help="embed a dataset with a backbone and checkpoint into a folder "
                                     "(embeddings.npy, labels.npy, meta.json); resumes when interrupted")
    _dataset_args(p)
    p.add_argument("--backbone", help="resnet18 | resnet50 | cifar_resnet18 | small_cnn "
                                      "(default: the one a simattr train-ssl checkpoint names, else resnet18)")
    p.add_argument("--checkpoint", required=True, help="weights: torchvision, MoCo v2/v3, SimCLR, BYOL, DINO "
                                                       "or simattr train-ssl layout")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes (default 0)")
    p.set_defaults(func=embed_cmd)


def embed_cmd(args) -> int:
    from .checkpoints import checkpoint_backbone
    from .datasets import open_dataset
    from .embed import embed

    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"--checkpoint: no file at {args.checkpoint!r}")
    data = open_dataset(args.dataset, args.split, root=args.data_root, image_size=args.image_size)
    backbone = args.backbone or checkpoint_backbone(args.checkpoint) or "resnet18"
    e = embed(data, args.out, backbone=backbone, checkpoint=args.checkpoint, batch_size=args.batch_size,
              device=args.device, dtype=args.dtype, num_workers=args.workers)
    print(f"simattr embed: {len(e)} images -> {e.features.shape[1]}-d {e.meta['dtype']} embeddings in {e.path}")
    return 0


def add_train_ssl(sub):
    p = sub.add_parser("train-ssl", help="train a backbone with SimCLR on a small-image dataset "
                                         "(checkpoint per epoch, resumes); reports weighted-kNN accuracy")
    _dataset_args(p)
    p.add_argument("--eval-split", choices=("test", "none"), default="test",
                   help="split for the kNN accuracy report (default: test)")
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
    from .datasets import open_dataset
    from .ssl import train_ssl

    data = open_dataset(args.dataset, args.split, root=args.data_root, image_size=args.image_size)
    evals = None if args.eval_split == "none" else open_dataset(args.dataset, args.eval_split, root=args.data_root,
                                                                image_size=args.image_size)
    last = train_ssl(data, args.out, backbone=args.backbone, epochs=args.epochs, batch_size=args.batch_size,
                     lr=args.lr, temperature=args.temperature, seed=args.seed, device=args.device,
                     time_limit=60 * args.minutes if args.minutes else None, eval_dataset=evals)
    acc = f", kNN accuracy on {args.eval_split} {last['knn_accuracy']:.4f}" if "knn_accuracy" in last else ""
    print(f"simattr train-ssl: {last['epoch']} epochs, loss {last['loss']:.4f}{acc}; "
          f"checkpoint {os.path.join(args.out, 'checkpoint.pt')}")
    return 0
