"""`simattr embed`: a dataset through a backbone into an embed folder."""

from __future__ import annotations

import os

from ..embed import DTYPES
from .common import DEVICES, dataset_args


def add(sub):
    p = sub.add_parser(
        "embed",
        help="embed a dataset with a backbone and checkpoint into a folder "
        "(embeddings.npy, labels.npy, meta.json); resumes when interrupted",
    )
    dataset_args(p)
    p.add_argument(
        "--backbone",
        help="resnet18 | resnet50 | cifar_resnet18 | small_cnn "
        "(default: the one a simattr train-ssl checkpoint names, else resnet18)",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="weights: torchvision, MoCo v2/v3, SimCLR, BYOL, DINO or simattr train-ssl layout",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dtype", choices=DTYPES, default="float16")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes (default 0)")
    p.set_defaults(func=embed_cmd)


def embed_cmd(args) -> int:
    from ..checkpoints import checkpoint_backbone
    from ..datasets import open_dataset
    from ..embed import embed

    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"--checkpoint: no file at {args.checkpoint!r}")
    data = open_dataset(args.dataset, args.split, root=args.data_root, image_size=args.image_size)
    backbone = args.backbone or checkpoint_backbone(args.checkpoint) or "resnet18"
    e = embed(
        data,
        args.out,
        backbone=backbone,
        checkpoint=args.checkpoint,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        num_workers=args.workers,
    )
    print(f"simattr embed: {len(e)} images -> {e.features.shape[1]}-d {e.meta['dtype']} embeddings in {e.path}")
    return 0
