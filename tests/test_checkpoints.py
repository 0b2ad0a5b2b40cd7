"""Checkpoint layouts: each built from a known model, loaded back, identical features."""

import argparse

import pytest
import torch
from torch import nn

from simattr_fast.backbones import build_backbone
from simattr_fast.checkpoints import CheckpointError, load_checkpoint

NO_RESIZE = {"resize": None}


def _resnet18(seed):
    from torchvision.models import resnet18

    torch.manual_seed(seed)
    net = resnet18(weights=None)
    for m in net.modules():  # non-trivial batch-norm statistics, so that missing ones would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net


@pytest.fixture(scope="module")
def known():
    net = _resnet18(0)
    ref = build_backbone("resnet18", NO_RESIZE)
    body = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    ref[1].load_state_dict(body)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref.eval()(x)
    return net.state_dict(), body, x, want


def _other():  # a second encoder with other weights (MoCo key encoder, BYOL target, DINO student)
    return {k: v for k, v in _resnet18(7).state_dict().items() if not k.startswith("fc.")}


def _prefixed(prefix, sd):
    return {prefix + k: v for k, v in sd.items()}


def _mlp(prefix):
    return {
        prefix + "0.weight": torch.randn(16, 512),
        prefix + "0.bias": torch.randn(16),
        prefix + "2.weight": torch.randn(8, 16),
    }


LAYOUTS = {
    "torchvision": lambda full, body: full,
    "moco_v2": lambda full, body: {
        "epoch": 200,
        "arch": "resnet18",
        "optimizer": {"state": {}},
        "state_dict": {
            **_prefixed("module.encoder_k.", _other()),
            **_prefixed("module.encoder_q.", body),
            **_mlp("module.encoder_q.fc."),
            **_mlp("module.encoder_k.fc."),
            "module.queue": torch.randn(8, 32),
            "module.queue_ptr": torch.zeros(1),
        },
    },
    "moco_v3": lambda full, body: {
        "epoch": 100,
        "state_dict": {
            **_prefixed("module.momentum_encoder.", _other()),
            **_prefixed("module.base_encoder.", body),
            **_mlp("module.base_encoder.fc."),
            **_mlp("module.predictor."),
        },
    },
    "simclr": lambda full, body: {"epoch": 100, "state_dict": {**_prefixed("backbone.", body), **_mlp("backbone.fc.")}},
    "simclr_lightning": lambda full, body: {"state_dict": {**_prefixed("encoder.", body), **_mlp("projection.model.")}},
    "byol": lambda full, body: {
        "model": {
            **_prefixed("target_network.encoder.", _other()),
            **_prefixed("online_network.encoder.", body),
            **_mlp("online_network.projector."),
            **_mlp("predictor."),
        }
    },
    "dino": lambda full, body: {
        "student": {**_prefixed("module.backbone.", _other()), **_mlp("module.head.mlp.")},
        "teacher": {**_prefixed("backbone.", body), **_mlp("head.mlp.")},
        "epoch": 100,
        "args": argparse.Namespace(arch="resnet18", out_dim=65536),
    },
    "dino_backbone_release": lambda full, body: body,
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layouts_give_identical_features(tmp_path, known, layout):
    full, body, x, want = known
    path = tmp_path / f"{layout}.pth"
    torch.save(LAYOUTS[layout](full, body), path)
    model = build_backbone("resnet18", NO_RESIZE)
    info = load_checkpoint(model, str(path))
    with torch.no_grad():
        got = model.eval()(x)
    assert torch.equal(got, want), layout
    assert info["loaded"] == len(body) and len(info["sha256"]) == 64


def test_missing_keys_are_listed(tmp_path, known):
    _, body, _, _ = known
    torch.save({k: v for k, v in body.items() if not k.startswith("layer4.1.bn2")}, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match=r"missing \(4\): layer4\.1\.bn2\.bias"):
        load_checkpoint(build_backbone("resnet18"), str(tmp_path / "m.pth"))


def test_unexpected_keys_are_listed(tmp_path, known):
    _, body, _, _ = known
    torch.save({**body, "layer5.0.weight": torch.zeros(1)}, tmp_path / "u.pth")
    with pytest.raises(CheckpointError, match=r"unexpected \(1\): layer5\.0\.weight"):
        load_checkpoint(build_backbone("resnet18"), str(tmp_path / "u.pth"))


def test_wrong_architecture_is_an_error(tmp_path, known):
    _, body, _, _ = known
    torch.save({"state_dict": _prefixed("module.encoder_q.", body)}, tmp_path / "r18.pth")
    with pytest.raises(CheckpointError, match="shape mismatch|missing"):
        load_checkpoint(build_backbone("resnet50"), str(tmp_path / "r18.pth"))
    torch.save({"a.weight": torch.zeros(2)}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="no key .* fits the backbone"):
        load_checkpoint(build_backbone("resnet18"), str(tmp_path / "foreign.pth"))


def test_unreadable_and_absent_files(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(build_backbone("small_cnn"), str(tmp_path / "junk.pth"))
    with pytest.raises(FileNotFoundError, match="checkpoint: no file"):
        load_checkpoint(build_backbone("small_cnn"), str(tmp_path / "absent.pth"))


def test_old_checkpoints_without_num_batches_tracked(tmp_path):
    torch.manual_seed(0)
    src = build_backbone("small_cnn")
    sd = {k: v for k, v in src[1].state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "old.pth")
    dst = build_backbone("small_cnn")
    load_checkpoint(dst, str(tmp_path / "old.pth"))
    x = torch.rand(2, 1, 9, 9)
    assert torch.equal(src.eval()(x), dst.eval()(x))


def test_cifar_resnet18_stem():
    m = build_backbone("cifar_resnet18").eval()
    assert m[1].conv1.kernel_size == (3, 3) and isinstance(m[1].maxpool, nn.Identity)
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    assert build_backbone("resnet50", NO_RESIZE).eval()(torch.rand(1, 1, 32, 32)).shape == (1, 2048)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="backbone: expected one of"):
        build_backbone("vit_h")
