"""Backbones that map an image to its pooled feature vector.

- ``resnet18`` (512-d) / ``resnet50`` (2048-d): torchvision's ImageNet ResNets; by default
  images are resized to 224 and normalised with the ImageNet mean and std, as their
  self-supervised checkpoints (MoCo, SimCLR, BYOL, DINO) were trained.
- ``cifar_resnet18`` (512-d): ResNet-18 with a 3x3 stride-1 stem and no max-pool, the usual
  variant for 32x32 images; images keep their size.
- ``small_cnn`` (256-d): a four-stage CNN that trains on a CPU in minutes; the default of the
  built-in self-supervised trainer.
- any ``nn.Module`` the user passes (it must map ``[n, C, H, W]`` to ``[n, d]``).

Every backbone is wrapped as ``Sequential(Preprocess, net)`` with the classifier head replaced by
the identity, so the output is the pooled feature. Weights are never downloaded.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONES = ("resnet18", "resnet50", "cifar_resnet18", "small_cnn")


class Preprocess(nn.Module):
    """[n, C, H, W] float in [0, 1] -> what the network expects: grey repeated to 3 channels,
    optionally resized (bilinear, antialiased), then normalised per channel."""

    def __init__(self, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize: int | None = None):
        super().__init__()
        self.resize = resize
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"images: expected a batch [n, C, H, W], got shape {tuple(x.shape)}")
        if x.shape[1] == 1 and self.mean.shape[1] == 3:
            x = x.expand(-1, 3, -1, -1)
        if self.resize is not None and x.shape[-2:] != (self.resize, self.resize):
            x = nn.functional.interpolate(
                x, size=(self.resize, self.resize), mode="bilinear", align_corners=False, antialias=True
            )
        return (x - self.mean) / self.std

    def describe(self) -> dict:
        return {
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
            "resize": self.resize,
            "channels": int(self.mean.shape[1]),
        }


def _conv_bn(cin, cout, stride):
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def small_cnn(in_channels: int = 3) -> nn.Module:
    """3x3 convolutions 32 | 64, 64 | 128, 128 | 256 (a stride of 2 opens each stage after the
    first), batch norm and ReLU, global average pool -> 256-d. About 27 MFLOP (multiply-adds)
    per 28x28 image, so SimCLR on Fashion-MNIST runs an epoch in a few minutes on 2 CPU cores."""
    plan = [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2)]
    layers, cin = [], in_channels
    for width, stride in plan:
        layers += _conv_bn(cin, width, stride)
        cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


def _resnet(name: str) -> nn.Module:
    from torchvision import models

    net = getattr(models, "resnet18" if name == "cifar_resnet18" else name)(weights=None)
    if name == "cifar_resnet18":
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


def default_preprocess(name: str) -> dict:
    """The preprocessing a named backbone expects (see the module docstring)."""
    if name in ("resnet18", "resnet50"):
        return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "resize": 224}
    return {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "resize": None}


def build_backbone(name, preprocess: dict | None = None) -> nn.Sequential:
    """``Sequential(Preprocess, net)`` for a backbone name or a user ``nn.Module``; the net is
    randomly initialised until a checkpoint is loaded into it (:func:`load_checkpoint`)."""
    if isinstance(name, nn.Module):
        net, spec = name, preprocess or default_preprocess("custom")
    elif name in BACKBONES:
        net = small_cnn() if name == "small_cnn" else _resnet(name)
        spec = {**default_preprocess(name), **(preprocess or {})}
    else:
        raise ValueError(f"backbone: expected one of {', '.join(BACKBONES)} or an nn.Module, got {name!r}")
    pre = Preprocess(spec["mean"], spec["std"], spec.get("resize"))
    return nn.Sequential(pre, net)


def backbone_name(model) -> str:
    return model if isinstance(model, str) else type(model).__name__
