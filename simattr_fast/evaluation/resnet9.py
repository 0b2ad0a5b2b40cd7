"""The reference ResNet-9 recipe for CIFAR-sized images, meant for a GPU.

24 epochs, batch 512, SGD (momentum 0.9, Nesterov, weight decay 5e-4 scaled by the batch),
a triangular learning rate rising linearly to 0.5 at epoch 5 and back to 0 at the end, label
smoothing 0.1, augmentation by random horizontal flip, random translation by up to 4 pixels
(reflect padding) and one 8x8 cutout per image, all applied on the device per batch.
Follows the same protocol as the other trainers (``train(indices, labels, seeds)``,
``logits(handle, test_ids)``); the models of one step train one after the other.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _block(cin, cout, pool=False):
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*(layers + ([nn.MaxPool2d(2)] if pool else [])))


class _Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(_block(c, c), _block(c, c))

    def forward(self, x):
        return x + self.body(x)


def resnet9(in_channels: int = 3, n_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        _block(in_channels, 64),
        _block(64, 128, pool=True),
        _Residual(128),
        _block(128, 256, pool=True),
        _block(256, 512, pool=True),
        _Residual(512),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(512, n_classes, bias=False),
    )


def augment_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flip, translate by up to 4 px (reflect padding) and one 8x8 cutout per image."""
    n, _, h, w = x.shape
    dev = x.device
    flip = torch.rand(n, generator=gen, device=dev) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    pad = nn.functional.pad(x, (4, 4, 4, 4), mode="reflect")
    dx, dy = (torch.randint(0, 9, (n,), generator=gen, device=dev) for _ in range(2))
    rows = (dy.view(n, 1) + torch.arange(h, device=dev)).view(n, 1, h, 1).expand(n, x.shape[1], h, w + 8)
    x = pad.gather(2, rows)
    cols = (dx.view(n, 1) + torch.arange(w, device=dev)).view(n, 1, 1, w).expand(n, x.shape[1], h, w)
    x = x.gather(3, cols)
    cy, cx = (torch.randint(0, max(1, h - 7), (n,), generator=gen, device=dev) for _ in range(2))
    yy, xx = torch.arange(h, device=dev).view(1, h, 1), torch.arange(w, device=dev).view(1, 1, w)
    hole = (
        (yy >= cy.view(n, 1, 1)) & (yy < cy.view(n, 1, 1) + 8) & (xx >= cx.view(n, 1, 1)) & (xx < cx.view(n, 1, 1) + 8)
    )
    return x.masked_fill(hole.unsqueeze(1), 0.0)


class ResNet9:
    def __init__(
        self, x_train, y_train, x_test, y_test, epochs=24, batch_size=512, peak_lr=0.5, peak_epoch=5, device="cuda"
    ):
        self.device = torch.device(device)
        x_train, x_test = torch.as_tensor(x_train), torch.as_tensor(x_test)
        mean, std = x_train.mean((0, 2, 3), keepdim=True), x_train.std((0, 2, 3), keepdim=True)
        self.x_train = ((x_train - mean) / std).to(self.device)
        self.x_test = ((x_test - mean) / std).to(self.device)
        self.y_train, self.y_test = np.asarray(y_train, np.int64), np.asarray(y_test, np.int64)
        self.n_classes = int(max(self.y_train.max(), self.y_test.max())) + 1
        self.epochs, self.batch_size, self.peak_lr, self.peak_epoch = epochs, batch_size, peak_lr, peak_epoch

    def _lr(self, t: float) -> float:  # t in epochs
        if t < self.peak_epoch:
            return self.peak_lr * t / self.peak_epoch
        return self.peak_lr * max(0.0, (self.epochs - t) / (self.epochs - self.peak_epoch))

    def train(self, indices, labels, seeds):
        idx = torch.as_tensor(np.asarray(indices, np.int64), device=self.device)
        y_all = torch.as_tensor(np.asarray(labels, np.int64), device=self.device)
        models = []
        for s in seeds:
            torch.manual_seed(int(s))
            model = resnet9(self.x_train.shape[1], self.n_classes).to(self.device).to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(
                model.parameters(), lr=0.0, momentum=0.9, nesterov=True, weight_decay=5e-4 * self.batch_size
            )
            gen = torch.Generator(device=self.device).manual_seed(int(s))
            steps = max(1, len(idx) // self.batch_size)
            for epoch in range(self.epochs):
                order = idx[torch.randperm(len(idx), generator=gen, device=self.device)]
                for s_ in range(steps):
                    b = order[s_ * self.batch_size : (s_ + 1) * self.batch_size]
                    for g in opt.param_groups:  # lr per example, as the reference sums the loss
                        g["lr"] = self._lr(epoch + s_ / steps) / self.batch_size
                    out = model(augment_batch(self.x_train[b], gen))
                    loss = nn.functional.cross_entropy(out, y_all[b], label_smoothing=0.1, reduction="sum")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            models.append(model.eval())
        return models

    def logits(self, handle, test_ids) -> np.ndarray:
        x = self.x_test[torch.as_tensor(np.asarray(test_ids, np.int64), device=self.device)]
        with torch.no_grad():
            return np.stack(
                [torch.cat([m(x[i : i + 1024]) for i in range(0, len(x), 1024)]).float().cpu().numpy() for m in handle]
            )
