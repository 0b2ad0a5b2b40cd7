"""A built-in SimCLR trainer for small images, and the weighted-kNN accuracy used to judge it.

For a user without a pretrained backbone: ``train_ssl(dataset, out)`` trains a backbone (default
``small_cnn``, CPU-friendly) with SimCLR (Chen et al., 2020): two augmented views per image, a
2-layer projection head, the NT-Xent loss. Augmentations are SimCLR's for small images (random
resized crop at scale 0.2-1, horizontal flip, colour jitter with p=0.8, grayscale with p=0.2 for
colour images; no blur), drawn per image but applied to the whole batch at once with one
``affine_grid``/``grid_sample`` call, which on a CPU is far cheaper than per-image PIL transforms
for 28x28 and 32x32 images.

``out/checkpoint.pt`` is rewritten atomically after every epoch and when a time limit stops
training; it loads with :func:`simattr_fast.checkpoints.load_checkpoint` (the ``simattr-ssl``
layout), and a run started again on the same folder resumes from it. ``out/log.jsonl`` gets one
line per epoch (loss, seconds, kNN accuracy when an evaluation split is given).
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import torch
from torch import nn

from ._io import atomic_write
from ._progress import progress_bar, progress_write
from .backbones import build_backbone
from .embed import resolve_torch_device

FORMAT = "simattr-ssl"


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One SimCLR view of each image of ``x`` ``[n, C, H, W]`` in [0, 1] (same shape)."""
    n, c = x.shape[:2]
    u = lambda *s: torch.rand(*s, generator=gen, device=x.device)  # noqa: E731
    area = 0.2 + 0.8 * u(n)
    ratio = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u(n))
    w, h = torch.sqrt(area * ratio).clamp(max=1.0), torch.sqrt(area / ratio).clamp(max=1.0)
    cx, cy = (2 * u(n) - 1) * (1 - w), (2 * u(n) - 1) * (1 - h)
    flip = torch.where(u(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * flip, cx, h, cy
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    jitter = (u(n) < 0.8).float().view(n, 1, 1, 1)
    bright = 1 + jitter * (0.8 * u(n, 1, 1, 1) - 0.4)
    contrast = 1 + jitter * (0.8 * u(n, 1, 1, 1) - 0.4)
    x = x * bright
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    if c == 3:
        sat = 1 + jitter * (0.8 * u(n, 1, 1, 1) - 0.4)
        grey = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = grey + (x - grey) * sat
        x = torch.where(u(n, 1, 1, 1) < 0.2, grey.expand_as(x), x)
    return x.clamp_(0.0, 1.0)


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over ``z`` ``[2n, p]``: rows i and i+n are the two views of one image."""
    z = nn.functional.normalize(z, dim=1)
    n2 = z.shape[0]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = (torch.arange(n2, device=z.device) + n2 // 2) % n2
    return nn.functional.cross_entropy(sim, target)


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 200, temperature: float = 0.1) -> float:
    """Weighted kNN accuracy (Wu et al., 2018): each test image's ``k`` most cosine-similar
    training images vote for their labels with weight ``exp(similarity / temperature)``."""
    from . import topk

    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    sims, idx = topk(
        np.asarray(test_x, dtype=np.float32),
        np.asarray(train_x, dtype=np.float32),
        min(k, len(train_y)),
        metric="cosine",
        progress=False,
    )
    votes = np.zeros((len(test_y), int(train_y.max()) + 1))
    np.add.at(votes, (np.arange(len(test_y))[:, None], train_y[idx]), np.exp(sims / temperature))
    return float((votes.argmax(1) == test_y).mean())


def features(model: nn.Module, images: torch.Tensor, dev, batch_size: int = 512) -> np.ndarray:
    """Eval-mode features of in-memory images ``[n, C, H, W]`` -> float32 ``[n, d]``."""
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        out = [model(images[i : i + batch_size].to(dev)).float().cpu() for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(out).numpy()


def as_tensors(dataset) -> torch.Tensor:
    """All images of a dataset as one tensor ``[n, C, H, W]`` (small datasets only)."""
    if hasattr(dataset, "tensors"):
        return dataset.tensors()
    return torch.stack([dataset[i][0] for i in progress_bar(range(len(dataset)), desc="load", unit="img")])


def _save_atomic(obj, path):
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def train_ssl(
    dataset,
    out: str,
    backbone: str = "small_cnn",
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 2e-3,
    temperature: float = 0.2,
    time_limit: float | None = None,
    seed: int = 0,
    device: str = "auto",
    eval_dataset=None,
    eval_every: int = 5,
    knn_k: int = 200,
    progress: bool = True,
) -> dict:
    """Trains a backbone with SimCLR, resumably, and returns the last log entry.

    Parameters
    ----------
    dataset : torch Dataset
        Yields ``(image [C, H, W] float32 in [0, 1], label)``; the labels are only used by the
        kNN evaluation.
    out : str
        Folder for ``checkpoint.pt`` (written atomically after every epoch; a run of the same
        settings resumes from it) and ``log.jsonl`` (one entry per epoch).
    backbone : str, default "small_cnn"
        ``small_cnn``, ``cifar_resnet18`` or ``resnet18``.
    epochs : int, default 20
    batch_size : int, default 256
    lr : float, default 2e-3
        Peak AdamW learning rate; one epoch of warm-up, then one cosine over the shorter of
        ``epochs`` and ``time_limit``.
    temperature : float, default 0.2
        NT-Xent temperature.
    time_limit : float or None, default None
        Seconds of training after which the run stops. An epoch the limit leaves no step for
        is not an epoch: it is neither counted nor logged.
    seed : int, default 0
    device : {"auto", "cpu", "cuda"}, default "auto"
    eval_dataset : torch Dataset or None, default None
        Images for the weighted kNN accuracy (k = ``knn_k``, T = 0.1) every ``eval_every``
        epochs and at the end.
    eval_every : int, default 5
    knn_k : int, default 200
    progress : bool, default True

    Returns
    -------
    dict
        The last epoch's log entry: ``epoch``, ``steps``, ``loss``, ``seconds``, ``lr`` and,
        when evaluated, ``knn_accuracy``.
    """
    _check_train_args(dataset, epochs, batch_size)
    dev = resolve_torch_device(device)
    settings = {
        "backbone": backbone,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "temperature": temperature,
        "time_limit": time_limit,
        "seed": seed,
    }
    torch.manual_seed(seed)
    model = build_backbone(backbone).to(dev)
    dim = features(model, dataset[0][0][None], dev).shape[1]  # one image tells the feature size
    head = nn.Sequential(nn.Linear(dim, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, 128)).to(dev)
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=lr, weight_decay=1e-6)
    os.makedirs(out, exist_ok=True)
    ckpt_path, log_path = os.path.join(out, "checkpoint.pt"), os.path.join(out, "log.jsonl")
    state = _resume(ckpt_path, settings, model, head, opt, dev)
    if state["finished"]:
        return state["last"]
    images = as_tensors(dataset).to(dev)
    eval_images = as_tensors(eval_dataset) if eval_dataset is not None else None

    def evaluate() -> float:
        return knn_accuracy(
            features(model, images, dev),
            dataset.targets,
            features(model, eval_images, dev),
            eval_dataset.targets,
            k=knn_k,
        )

    schedule = _Schedule(lr, epochs, time_limit, max(len(images) // batch_size, 1))
    while not state["finished"]:
        t0 = time.perf_counter()
        done, mean_loss, out_of_time = _train_epoch(
            model, head, opt, images, state, schedule, batch_size, temperature, seed, dev, progress
        )
        state["seconds"] += time.perf_counter() - t0
        if done == 0:
            # The time limit left this epoch no step: stop without counting or logging it.
            state["finished"] = True
            if state["last"] is not None and eval_images is not None and "knn_accuracy" not in state["last"]:
                state["last"]["knn_accuracy"] = evaluate()
            _checkpoint(ckpt_path, settings, backbone, model, head, opt, state)
            break
        state["epoch"] += 1
        state["finished"] = state["epoch"] >= epochs or out_of_time
        entry = {
            "epoch": state["epoch"],
            "steps": done,
            "loss": mean_loss,
            "seconds": state["seconds"],
            "lr": opt.param_groups[0]["lr"],
        }
        if eval_images is not None and (state["finished"] or state["epoch"] % eval_every == 0):
            entry["knn_accuracy"] = evaluate()
        state["last"] = entry
        _checkpoint(ckpt_path, settings, backbone, model, head, opt, state)
        with open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if progress:
            progress_write(
                f"simclr epoch {state['epoch']}: " + ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if k != "epoch")
            )
    if state["last"] is None:
        raise ValueError("time_limit: the limit ended the run before its first training step; raise it")
    return state["last"]


def _check_train_args(dataset, epochs, batch_size) -> None:
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    if batch_size < 2 or len(dataset) < 2:
        raise ValueError("batch_size and the dataset need at least 2 images for contrastive pairs")


def _resume(ckpt_path, settings, model, head, opt, dev) -> dict:
    """The saved run state (loading weights and optimizer), or a fresh one."""
    if not os.path.exists(ckpt_path):
        return {"epoch": 0, "seconds": 0.0, "finished": False, "last": None}
    saved = torch.load(ckpt_path, map_location=dev, weights_only=True)
    if saved.get("format") != FORMAT or saved["settings"] != settings:
        raise ValueError(
            f"out: {ckpt_path!r} belongs to a run with other settings ({saved.get('settings')}); "
            "choose another output folder"
        )
    model[1].load_state_dict(saved["state_dict"])
    head.load_state_dict(saved["head"])
    opt.load_state_dict(saved["optimizer"])
    return saved["state"]


class _Schedule:
    """Progress through the run (epochs or time, whichever ends first) and the learning rate:
    linear warm-up over the first epoch, then one cosine."""

    def __init__(self, lr, epochs, time_limit, steps):
        self.lr, self.epochs, self.time_limit, self.steps = lr, epochs, time_limit, steps

    def fraction(self, epoch, step, seconds) -> float:
        by_time = seconds / self.time_limit if self.time_limit else 0.0
        return max((epoch + step / self.steps) / self.epochs, by_time)

    def rate(self, epoch, step, frac) -> float:
        warm = min(1.0, (epoch * self.steps + step + 1) / self.steps)
        return self.lr * warm * 0.5 * (1 + math.cos(math.pi * frac))


def _train_epoch(model, head, opt, images, state, schedule, batch_size, temperature, seed, dev, progress):
    """One epoch (or what the time limit leaves of it): (steps done, mean loss, out of time)."""
    epoch = state["epoch"]
    gen = torch.Generator(device=dev).manual_seed(seed * 100003 + epoch)
    order = torch.randperm(len(images), generator=gen, device=dev)
    model.train(), head.train()
    t0, total, done = time.perf_counter(), 0.0, 0
    bar = progress_bar(
        range(schedule.steps),
        desc=f"simclr epoch {epoch + 1}/{schedule.epochs}",
        unit="step",
        progress=progress,
        leave=False,
    )
    for s in bar:
        frac = schedule.fraction(epoch, s, state["seconds"] + time.perf_counter() - t0)
        if frac >= 1.0:
            bar.close()
            return done, total / max(done, 1), True
        for g in opt.param_groups:
            g["lr"] = schedule.rate(epoch, s, frac)
        x = images[order[s * batch_size : (s + 1) * batch_size]]
        views = torch.cat([augment(x, gen), augment(x, gen)])
        loss = nt_xent(head(model(views)), temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
        done += 1
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return done, total / max(done, 1), False


def _checkpoint(ckpt_path, settings, backbone, model, head, opt, state) -> None:
    _save_atomic(
        {
            "format": FORMAT,
            "version": 1,
            "settings": settings,
            "backbone": backbone,
            "preprocess": model[0].describe(),
            "state_dict": model[1].state_dict(),
            "head": head.state_dict(),
            "optimizer": opt.state_dict(),
            "state": state,
        },
        ckpt_path,
    )
