"""The built-in SimCLR trainer on Fashion-MNIST: weighted-kNN accuracy of its embeddings after a
CPU run of bounded time, beside the kNN accuracy of raw pixels measured in the same script.

    python benchmarks/bench_ssl.py                      # 25 minutes of training, all 60,000 images
    python benchmarks/bench_ssl.py --minutes 2 --n-train 10000   # a quick look

kNN: k=200 nearest training images by cosine similarity, votes weighted by exp(sim / 0.1)
(Wu et al., 2018), evaluated on the 10,000 test images; also reported with k=10, which suits
raw pixels better. The training run checkpoints to
--out and resumes there when started again (the time already spent counts toward --minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from simattr_fast.datasets import ArrayDataset, open_dataset
from simattr_fast.simclr import features, knn_accuracy, train_ssl

from _common import machine, write_json


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=25.0, help="training time limit (default 25)")
    p.add_argument("--epochs", type=int, default=100, help="epoch cap; the time limit usually ends the run first")
    p.add_argument("--n-train", type=int, default=60000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--backbone", default="small_cnn")
    p.add_argument("--out", default="benchmarks/out/ssl_fashion")
    p.add_argument("--json", default="benchmarks/results/ssl.json")
    args = p.parse_args(argv)

    train, test = open_dataset("fashion-mnist", "train"), open_dataset("fashion-mnist", "test")
    if args.n_train < len(train):
        train = ArrayDataset(train.images[: args.n_train], train.targets[: args.n_train], name="fashion-mnist-subset")
    t0 = time.perf_counter()
    pix_tr, pix_te = train.images.reshape(len(train), -1), test.images.reshape(len(test), -1)
    raw = knn_accuracy(pix_tr, train.targets, pix_te, test.targets)
    raw_s = time.perf_counter() - t0
    raw10 = knn_accuracy(pix_tr, train.targets, pix_te, test.targets, k=10)
    print(f"raw pixels: kNN accuracy {raw:.4f} (k=10: {raw10:.4f}) ({raw_s:.1f}s)")

    t0 = time.perf_counter()
    last = train_ssl(
        train,
        args.out,
        backbone=args.backbone,
        epochs=args.epochs,
        batch_size=args.batch_size,
        time_limit=60 * args.minutes,
        device="cpu",
        progress=sys.stderr.isatty(),
    )
    wall = time.perf_counter() - t0
    ckpt = torch.load(os.path.join(args.out, "checkpoint.pt"), weights_only=True)
    from simattr_fast.backbones import build_backbone

    model = build_backbone(args.backbone)
    model[1].load_state_dict(ckpt["state_dict"])
    t0 = time.perf_counter()
    f_tr, f_te = features(model, train.tensors(), "cpu"), features(model, test.tensors(), "cpu")
    acc = knn_accuracy(f_tr, train.targets, f_te, test.targets)
    eval_s = time.perf_counter() - t0
    acc10 = knn_accuracy(f_tr, train.targets, f_te, test.targets, k=10)
    print(
        f"SimCLR {args.backbone}: {last['epoch']} epochs in {last['seconds'] / 60:.1f} min of training, "
        f"kNN accuracy {acc:.4f} (raw pixels {raw:.4f}); k=10: {acc10:.4f} (raw {raw10:.4f}); embedding + kNN {eval_s:.1f}s"
    )
    write_json(
        args.json,
        {
            "machine": machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "settings": vars(args),
            "n_train": len(train),
            "n_test": len(test),
            "knn": {"k": 200, "temperature": 0.1, "metric": "cosine"},
            "raw_pixels": {"knn_accuracy": raw, "knn_accuracy_k10": raw10, "seconds": raw_s},
            "simclr": {
                "knn_accuracy": acc,
                "knn_accuracy_k10": acc10,
                "epochs": last["epoch"],
                "train_seconds": last["seconds"],
                "final_loss": last["loss"],
                "wall_seconds_this_run": wall,
                "eval_seconds": eval_s,
            },
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
