"""A random-patch network: the quality study's evaluation model (benchmarks/bench_quality.py).

One convolution whose filters are image patches drawn at random from *held-out* images (not from
the training set a model sees, so removing a training image removes all of its influence),
a split-sign rectifier ``[relu(z - b), relu(-z - b)]``, average pooling to a ``pool x pool``
grid, standardisation with statistics of the same held-out images, then a trained linear
softmax head. Only the head trains, so thousands of models fit on a CPU: with the defaults
(128 filters of 5x5, 4x4 grid: 4,096 features, 40,970 trained parameters) a model trains on
10,000 Fashion-MNIST images in well under a second, vectorised over seeds, and reaches about
88% test accuracy (Coates & Ng, 2011, measured the same family of single-layer networks).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .trainers import _Vectorised


def patch_filters(images: torch.Tensor, n_filters: int, size: int, seed: int) -> torch.Tensor:
    """Filters ``[n_filters, C, size, size]``: random patches of ``images`` ``[n, C, H, W]``
    (scaled to [-1, 1]), each made zero-mean and unit-norm so that no patch dominates."""
    n, _, h, w = images.shape
    if n == 0:
        raise ValueError("filter images: expected at least one image, got none")
    g = torch.Generator().manual_seed(int(seed))
    which = torch.randint(0, n, (n_filters,), generator=g).tolist()
    at = torch.randint(0, min(h, w) - size + 1, (n_filters, 2), generator=g).tolist()
    p = torch.stack([images[i, :, a : a + size, b : b + size] * 2 - 1 for i, (a, b) in zip(which, at)])
    p = p - p.mean((1, 2, 3), keepdim=True)
    return p / (p.flatten(1).norm(dim=1)[:, None, None, None] + 1e-3)


def patch_features(
    images: torch.Tensor, filters: torch.Tensor, bias: float = 0.25, pool: int = 4, batch: int = 1000
) -> torch.Tensor:
    """Features ``[n, 2 * n_filters * pool * pool]`` of images ``[n, C, H, W]`` in [0, 1],
    computed ``batch`` images at a time (the full feature maps of 10,000 images would not fit)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            z = F.conv2d(images[i : i + batch].float() * 2 - 1, filters)
            h = torch.cat([F.relu(z - bias), F.relu(-z - bias)], 1)
            out.append(F.adaptive_avg_pool2d(h, pool).flatten(1))
    return torch.cat(out) if out else torch.zeros((0, 2 * len(filters) * pool * pool))


class PatchNet(_Vectorised):
    """Images ``[n, C, H, W]`` float in [0, 1]; ``filter_images`` (same layout) must not overlap
    the training images. ``logits`` and ``module`` work on the features: ``module(handle, j)`` is
    the trained ``nn.Linear`` head, whose inputs are ``x_train`` / ``x_test`` of this trainer."""

    def __init__(
        self,
        x_train,
        y_train,
        x_test,
        y_test,
        filter_images,
        n_filters: int = 128,
        patch: int = 5,
        pool: int = 4,
        epochs: int = 10,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-3,
        seed: int = 0,
        device: str = "cpu",
    ):
        x_train, x_test, held = (torch.as_tensor(np.asarray(x)) for x in (x_train, x_test, filter_images))
        self.filters = patch_filters(held, n_filters, patch, seed)
        ref = patch_features(held, self.filters, pool=pool)
        mu, sd = ref.mean(0), ref.std(0) + 1e-3  # from held-out images: a fixed part of the architecture
        f_train = (patch_features(x_train, self.filters, pool=pool) - mu) / sd
        f_test = (patch_features(x_test, self.filters, pool=pool) - mu) / sd
        super().__init__(f_train, y_train, f_test, y_test, epochs, batch_size, lr, device, weight_decay)

    def make(self):
        return nn.Linear(self.x_train.shape[1], self.n_classes)
