"""Trainers for counterfactual evaluation, behind one small protocol:

    handle = trainer.train(indices, labels, seeds)   # one model per seed, trained on
                                                     # images[indices] with labels[indices]
    logits = trainer.logits(handle, test_ids)        # float32 [len(seeds), len(test_ids), C]

``labels`` is a full-length label vector (the caller relabels entries for mislabel support).
Trainers hold their training and test data; they are picklable so that worker processes can
each build their own.

- :class:`SmallCNN`: a three-convolution network for 28x28 / 32x32 images (CPU, seconds per
  model); the ``M`` models of one step train *together*, vectorised with ``torch.func.vmap``
  over stacked parameters, each with its own initialisation and data order.
- :class:`LinearProbe`: softmax regression on embeddings, also vectorised over seeds.
- :class:`~simattr_fast.evaluation.resnet9.ResNet9`: the reference CIFAR recipe for a GPU (24 epochs, triangular learning rate
  peaking at 0.5 at epoch 5, label smoothing 0.1, SGD momentum 0.9 with Nesterov, weight decay
  5e-4, batch 512, flip / 4-pixel translate / 8x8 cutout); one model at a time.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def margins(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Correct-class margin ``logit_true - logsumexp(other logits)``; logits ``[..., n, C]``."""
    lg = np.asarray(logits, dtype=np.float64)
    true = np.take_along_axis(lg, labels.reshape((1,) * (lg.ndim - 2) + (-1, 1)), -1)[..., 0]
    other = lg.copy()
    np.put_along_axis(other, labels.reshape((1,) * (lg.ndim - 2) + (-1, 1)), -np.inf, -1)
    mx = other.max(-1, keepdims=True)
    return true - (mx[..., 0] + np.log(np.exp(other - mx).sum(-1)))


def small_cnn_classifier(in_channels: int, n_classes: int, size: int = 28) -> nn.Module:
    """conv 8 -> pool -> conv 16 -> pool -> linear: about 0.3 M multiply-adds per 28x28 image,
    so a model trains on 4,000 images for 3 epochs in about a second on a CPU core."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * (size // 4) ** 2, n_classes),
    )


class _Vectorised:
    """Trains ``len(seeds)`` copies of ``make()`` at once: stacked parameters, vmap'd forward,
    one Adam over the stack (elementwise, so each copy trains exactly as it would alone)."""

    def __init__(self, x_train, y_train, x_test, y_test, epochs, batch_size, lr, device="cpu", weight_decay=0.0):
        self.x_train, self.x_test = torch.as_tensor(x_train), torch.as_tensor(x_test)
        self.y_train, self.y_test = np.asarray(y_train, np.int64), np.asarray(y_test, np.int64)
        self.n_classes = int(max(self.y_train.max(), self.y_test.max())) + 1
        self.epochs, self.batch_size, self.lr, self.device = epochs, batch_size, lr, torch.device(device)
        self.weight_decay = weight_decay

    def make(self) -> nn.Module:
        raise NotImplementedError

    @torch.enable_grad()
    def train(self, indices, labels, seeds, on_epoch=None):
        """Trains one model per seed on ``indices``; ``on_epoch(epoch, handle, lr)`` is called
        after every epoch with the handle as it stands (TracIn reads its checkpoints there)."""
        indices, labels = np.asarray(indices, np.int64), torch.as_tensor(np.asarray(labels, np.int64))
        models = []
        for s in seeds:
            torch.manual_seed(int(s))
            models.append(self.make().to(self.device))
        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        fwd = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)))
        # Adam's weight decay is an L2 term added to each element's gradient, so it stays per model.
        opt = torch.optim.Adam(params.values(), lr=self.lr, weight_decay=self.weight_decay)
        n, M = len(indices), len(seeds)
        gens = [torch.Generator().manual_seed(int(s) + 1) for s in seeds]
        steps = max(1, n // self.batch_size)
        total = self.epochs * steps
        linear = isinstance(models[0], nn.Linear) and not self.x_train.requires_grad
        xb = torch.empty(0, dtype=self.x_train.dtype)
        for epoch in range(self.epochs):
            orders = torch.stack([torch.randperm(n, generator=g) for g in gens])  # [M, n]: own order per model
            for s in range(steps):
                pos = torch.as_tensor(indices[orders[:, s * self.batch_size : (s + 1) * self.batch_size].numpy()])
                if linear:  # one reused buffer: a fresh 10 MB batch per step costs its page faults
                    torch.index_select(self.x_train, 0, pos.reshape(-1), out=xb)
                    x = xb.view(*pos.shape, -1).to(self.device)  # [M, B, D]
                else:
                    x = self.x_train[pos].to(self.device)  # [M, B, ...]
                y = labels[pos].to(self.device)  # [M, B]
                for g in opt.param_groups:  # linear decay to zero: stable in few epochs
                    g["lr"] = self.lr * (1 - (epoch * steps + s) / total)
                if linear:
                    _linear_gradients(params["weight"], params["bias"], x, y)
                else:
                    out = fwd(params, buffers, x)  # [M, B, C]
                    loss = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)) * M
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                opt.step()
            if on_epoch is not None:
                on_epoch(epoch, (fwd, params, buffers), self.lr * (1 - epoch / self.epochs))
        return fwd, params, buffers

    def logits(self, handle, test_ids) -> np.ndarray:
        fwd, params, buffers = handle
        x = self.x_test[torch.as_tensor(np.asarray(test_ids, np.int64))].to(self.device)
        M = next(iter(params.values())).shape[0]
        with torch.no_grad():
            out = [
                fwd(params, buffers, x[i : i + 1024].unsqueeze(0).expand(M, *x[i : i + 1024].shape))
                for i in range(0, len(x), 1024)
            ]
        return torch.cat(out, 1).float().cpu().numpy()

    def module(self, handle, j: int = 0) -> nn.Module:
        """Model ``j`` of a trained handle as a plain ``nn.Module`` (for tools that need one,
        such as TRAK); it expects inputs prepared as this trainer prepares them."""
        _, params, buffers = handle
        m = self.make()
        m.load_state_dict({**{k: v[j].detach() for k, v in params.items()}, **{k: v[j] for k, v in buffers.items()}})
        return m.eval()


def _linear_gradients(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
    """Sets ``.grad`` of stacked linear heads (weight ``[M, C, D]``, bias ``[M, C]``) to the
    gradient of each model's mean cross-entropy on its batch (x ``[M, B, D]``, y ``[M, B]``):
    ``(softmax - onehot) / B`` in closed form. The same gradient autograd gives through
    ``vmap(functional_call)``, three times faster on a CPU (the vmap'd backward is slow)."""
    with torch.no_grad():
        p = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2)).softmax(-1)  # [M, B, C]
        p.scatter_add_(2, y.unsqueeze(2), torch.full(y.unsqueeze(2).shape, -1.0, dtype=p.dtype, device=p.device))
        p /= x.shape[1]
        weight.grad = torch.bmm(p.transpose(1, 2), x)
        bias.grad = p.sum(1)


class SmallCNN(_Vectorised):
    """Images ``[n, C, H, W]`` float in [0, 1] (28x28 or 32x32). The defaults reach about 78%
    test accuracy on 4,000 Fashion-MNIST images in 1-2 s per model on a CPU."""

    def __init__(self, x_train, y_train, x_test, y_test, epochs=3, batch_size=128, lr=3e-3, device="cpu"):
        super().__init__(x_train, y_train, x_test, y_test, epochs, batch_size, lr, device)
        self.x_train = (self.x_train - 0.5) / 0.5
        self.x_test = (self.x_test - 0.5) / 0.5

    def make(self):
        return small_cnn_classifier(self.x_train.shape[1], self.n_classes, self.x_train.shape[-1])


class LinearProbe(_Vectorised):
    """Softmax regression on embeddings ``[n, d]`` (standardised with the training statistics)."""

    def __init__(self, f_train, y_train, f_test, y_test, epochs=20, batch_size=256, lr=1e-2, device="cpu"):
        f_train = torch.as_tensor(np.asarray(f_train, np.float32))
        mu, sd = f_train.mean(0), f_train.std(0) + 1e-6
        super().__init__(
            (f_train - mu) / sd,
            y_train,
            (torch.as_tensor(np.asarray(f_test, np.float32)) - mu) / sd,
            y_test,
            epochs,
            batch_size,
            lr,
            device,
        )

    def make(self):
        return nn.Linear(self.x_train.shape[1], self.n_classes)


def trainer_from_spec(spec: dict):
    """Builds a trainer from plain data (picklable, so every worker process builds its own):
    ``{"kind": "small_cnn", "dataset": name or path, "root": ..., "n_train": N, "epochs": E}``,
    the same with ``"kind": "patchnet"`` (:class:`~simattr_fast.evaluation.patchnet.PatchNet`, its
    filters drawn from the last ``filter_images`` = 1000 training images, outside the first N), or ``{"kind": "linear", "train_embeddings": dir, "test_embeddings": dir, "n_train": N}``.
    ``n_train`` keeps the first N training images (attributions must index the same N)."""
    train, test, n = _open_spec(spec)
    extra = {k: spec[k] for k in ("epochs", "batch_size", "lr", "device") if spec.get(k) is not None}
    if spec["kind"] == "patchnet":
        from ..simclr import as_tensors
        from .patchnet import PatchNet

        held = spec.get("filter_images", 1000)
        if n + held > len(train):
            raise ValueError(
                f"n_train: a patchnet draws its filters from the last {held} training images, which the study "
                f"must not use; expected n_train <= {len(train) - held}, got {n}"
            )
        extra.update({k: spec[k] for k in ("n_filters", "weight_decay", "seed") if spec.get(k) is not None})
        x = as_tensors(train)
        return PatchNet(x[:n], train.targets[:n], as_tensors(test), test.targets, x[len(train) - held :], **extra)
    if spec["kind"] == "small_cnn":
        from ..simclr import as_tensors

        return SmallCNN(as_tensors(train)[:n], train.targets[:n], as_tensors(test), test.targets, **extra)
    return LinearProbe(train.features[:n], train.labels[:n], test.features, test.labels, **extra)


def spec_labels(spec: dict):
    """(train labels ``[n_train]``, test labels) of a trainer spec, without loading images."""
    train, test, n = _open_spec(spec)
    if spec["kind"] in ("small_cnn", "patchnet"):
        return train.targets[:n], test.targets
    return train.labels[:n], test.labels


def _open_spec(spec: dict):
    """(train, test, n_train) for a spec: datasets for ``small_cnn``, embedding folders for
    ``linear``."""
    kind = spec.get("kind")
    if kind in ("small_cnn", "patchnet"):
        from ..datasets import open_dataset

        train = open_dataset(spec["dataset"], "train", root=spec.get("root"))
        test = open_dataset(spec["dataset"], "test", root=spec.get("root"))
    elif kind == "linear":
        from ..embed import load_embeddings

        train, test = load_embeddings(spec["train_embeddings"]), load_embeddings(spec["test_embeddings"])
    else:
        raise ValueError(f"trainer: expected 'small_cnn', 'patchnet' or 'linear', got {kind!r}")
    return train, test, len(train) if spec.get("n_train") is None else spec["n_train"]
