"""Loading self-supervised checkpoints in the layouts people download.

Handled layouts (the backbone's weights are found wherever they sit):

=================  ==========================================================================
plain torchvision  ``{"conv1.weight": ..., "fc.weight": ...}``
MoCo v2            ``{"state_dict": {"module.encoder_q.conv1.weight", ..., "module.encoder_k...",
                   "module.queue"}}`` (query encoder kept)
MoCo v3            ``{"state_dict": {"module.base_encoder...", "module.momentum_encoder...",
                   "module.predictor..."}}`` (base encoder kept)
SimCLR             ``{"state_dict": {"backbone.conv1.weight", ..., "backbone.fc.0.weight"}}``,
                   Lightning's ``"encoder."`` / ``"projection."``, converted TF weights
BYOL               ``"online_network.encoder."``, ``"online_encoder.net."``, ...
                   (online network kept, target network ignored)
DINO               ``{"teacher": {"module.backbone...", "module.head..."}, "student": ...}``
                   (teacher kept), or its backbone-only release
simattr train-ssl  ``{"format": "simattr-ssl", "state_dict": backbone weights, ...}``
=================  ==========================================================================

Wrappers (``module.`` from DataParallel, ``encoder_q.`` ...) are found by matching key
suffixes against the backbone's own keys; projection/prediction heads (``fc``, ``head``,
``projector``, ``predictor`` ...) are dropped. Anything else that is left over, any backbone
weight the checkpoint lacks, and any shape that differs is an error listing the keys: a
checkpoint never silently leaves a randomly initialised model.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections import Counter

import torch
from torch import nn

# Where training scripts nest the weights; searched in this order (DINO: teacher first).
_NESTS = (
    "teacher",
    "state_dict",
    "model",
    "online_backbone",
    "online_network",
    "backbone",
    "encoder",
    "net",
    "network",
    "student",
)
_HEADS = (
    "fc.",
    "head.",
    "heads.",
    "projector.",
    "projection.",
    "projection_head.",
    "predictor.",
    "prediction_head.",
    "classifier.",
    "mlp.",
)
# Between two encoders with the same keys (MoCo's query/key, BYOL's online/target), keep these.
_PREFER = ("encoder_q", "base_encoder", "online", "teacher")
_AVOID = ("encoder_k", "momentum", "target", "student", "ema")


class CheckpointError(ValueError):
    """A checkpoint that does not fit the backbone (the message lists the keys)."""


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checkpoint(path: str):
    """``torch.load`` without running pickled code (``weights_only``); DINO's checkpoints carry
    their ``argparse.Namespace`` of settings, which is allowed as plain data."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint: no file at {path!r}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds (UnpicklingError, struct.error, RuntimeError...)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint: {path!r} cannot be read by torch.load ({msg})") from None


def checkpoint_backbone(path: str) -> str | None:
    """The backbone name recorded in a ``simattr train-ssl`` checkpoint (None for other layouts)."""
    obj = read_checkpoint(path)
    return obj.get("backbone") if isinstance(obj, dict) and obj.get("format") == "simattr-ssl" else None


def _is_state_dict(d) -> bool:
    return isinstance(d, dict) and len(d) > 0 and all(isinstance(v, torch.Tensor) for v in d.values())


def _find_state_dict(obj):
    """The dict of tensors inside a checkpoint object, and where it was found."""
    if isinstance(obj, nn.Module):
        return obj.state_dict(), "module"
    if _is_state_dict(obj):
        return obj, "root"
    if isinstance(obj, dict):
        for key in _NESTS:
            if key in obj and isinstance(obj[key], (dict, nn.Module)):
                found = _find_state_dict(obj[key])
                if found is not None:
                    return found[0], key + ("" if found[1] == "root" else "/" + found[1])
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors, "root"
    return None


def _prefix_rank(prefix: str, count: int):
    pref = any(p in prefix for p in _PREFER) - any(a in prefix for a in _AVOID)
    return (count, pref, -len(prefix))


def _choose_prefix(keys, wanted: set) -> tuple[str, int]:
    counts = Counter()
    for k in keys:
        parts = k.split(".")
        for i in range(len(parts)):
            if ".".join(parts[i:]) in wanted:
                counts[".".join(parts[:i]) + ("." if i else "")] += 1
    if not counts:
        return "", 0
    best = max(counts, key=lambda p: _prefix_rank(p, counts[p]))
    return best, counts[best]


def _backbone_net(model: nn.Module) -> nn.Module:
    # build_backbone returns Sequential(Preprocess, net); the checkpoint belongs to the net.
    from .backbones import Preprocess

    if isinstance(model, nn.Sequential) and len(model) == 2 and isinstance(model[0], Preprocess):
        return model[1]
    return model


def load_checkpoint(model: nn.Module, path: str) -> dict:
    """Loads the backbone weights of the checkpoint at ``path`` into ``model`` (in place) and
    returns what was done: layout, prefix stripped, head keys dropped, SHA-256. Raises
    :class:`CheckpointError` naming missing, unexpected and mis-shaped keys."""
    obj = read_checkpoint(path)
    found = _find_state_dict(obj)
    if found is None:
        raise CheckpointError(f"checkpoint: {path!r} holds no tensors (top-level keys: {_short(obj)})")
    state, nest = found
    net = _backbone_net(model)
    own = net.state_dict()
    wanted = {k for k in own if not k.endswith("num_batches_tracked")}
    prefix, matched = _choose_prefix(state.keys(), wanted)
    if matched == 0:
        raise CheckpointError(
            f"checkpoint: no key of {path!r} fits the backbone {type(net).__name__} "
            f"(checkpoint keys start {_short(list(state))}, backbone keys start {_short(sorted(wanted))})"
        )
    picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    heads = sorted(k for k in picked if k not in own and k.startswith(_HEADS))
    unexpected = sorted(k for k in picked if k not in own and k not in heads)
    missing = sorted(k for k in wanted if k not in picked)
    shapes = sorted(
        f"{k} {tuple(picked[k].shape)} vs {tuple(own[k].shape)}"
        for k in wanted & picked.keys()
        if picked[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        parts = [
            f"{name} ({len(ks)}): {_short(ks)}"
            for name, ks in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
            if ks
        ]
        raise CheckpointError(
            f"checkpoint: {path!r} does not fit the backbone {type(net).__name__} "
            f"(prefix {prefix!r}); " + "; ".join(parts)
        )
    load = {k: v for k, v in picked.items() if k in own}
    net.load_state_dict(load, strict=False)  # only num_batches_tracked may be absent (old checkpoints)
    return {
        "path": os.path.abspath(path),
        "sha256": file_sha256(path),
        "nest": nest,
        "prefix": prefix,
        "loaded": len(load),
        "dropped_head": heads,
    }


def _short(keys, n: int = 6) -> str:
    keys = list(keys)
    shown = ", ".join(map(str, keys[:n]))
    return shown + (f", ... (+{len(keys) - n})" if len(keys) > n else "")
