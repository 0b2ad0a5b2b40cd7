"""Batched feature extraction to a memory-mappable ``.npy``, resumable after a kill.

An output folder holds, once finished::

    embeddings.npy   float16 or float32 [n, d], row i = image i of the dataset
    labels.npy       int64 [n]
    meta.json        backbone, checkpoint SHA-256, preprocessing, dim, count, dtype, dataset
                     fingerprint, ...  Written last: a folder without it is not finished.

While running it holds ``embeddings.npy.partial``, ``labels.npy.partial`` and ``progress.json``
(rows finished, and the run's settings). Each batch is flushed to disk before ``progress.json``
is replaced (atomically), so a run killed at any point restarts from its last finished batch;
batches keep the same boundaries and the model runs in eval mode, so the resumed array is
identical to an uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass

import numpy as np

from ._io import write_json
from ._progress import progress_bar

# torch (the [vision] extra) is imported inside the functions that run a model, so that
# `load_embeddings` and `Embeddings` work on the kernel-only install.

FORMAT = "simattr-embeddings"
DTYPES = ("float16", "float32")  # storage types of embeddings.npy
VERSION = 1


@dataclass
class Embeddings:
    """A finished embedding folder: ``features`` ``[n, d]`` (memmap unless loaded with
    ``mmap=False``), ``labels`` int64 ``[n]``, ``meta`` (the metadata JSON), ``path``."""

    features: np.ndarray
    labels: np.ndarray
    meta: dict
    path: str

    def __len__(self):
        return len(self.labels)


def load_embeddings(path: str, mmap: bool = True) -> Embeddings:
    """Opens a folder written by :func:`embed`; refuses one that is unfinished or inconsistent."""
    meta_path = os.path.join(path, "meta.json")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"embeddings: no embedding folder at {path!r}")
    if not os.path.exists(meta_path):
        hint = (
            " (a run was interrupted: run embed again to resume it)"
            if os.path.exists(os.path.join(path, "progress.json"))
            else ""
        )
        raise ValueError(f"embeddings: {path!r} is not a finished embedding folder, meta.json is missing{hint}")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"embeddings: {meta_path!r} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"embeddings: {meta_path!r} is not simattr embedding metadata")
    for key, kind in (("count", int), ("dim", int), ("dtype", str)):
        if isinstance(meta.get(key), bool) or not isinstance(meta.get(key), kind):
            raise ValueError(
                f"embeddings: {meta_path!r} is damaged: {key!r} must be {kind.__name__}, "
                f"got {type(meta.get(key)).__name__}"
            )
    features = np.load(os.path.join(path, "embeddings.npy"), mmap_mode="r" if mmap else None)
    labels = np.load(os.path.join(path, "labels.npy"))
    if (
        features.shape != (meta["count"], meta["dim"])
        or str(features.dtype) != meta["dtype"]
        or labels.shape != (meta["count"],)
    ):
        raise ValueError(
            f"embeddings: {path!r} is inconsistent: meta.json says {meta['count']} x {meta['dim']} "
            f"{meta['dtype']}, files hold {features.shape} {features.dtype} and {labels.shape[0]} labels"
        )
    return Embeddings(features, labels, meta, os.path.abspath(path))


def resolve_torch_device(device: str):
    """The torch device that runs a model for a ``device`` argument (checked as the kernels
    check theirs); "cuda" without one is an error."""
    import torch

    from ._kernels.backend import check_device

    if check_device(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but torch sees no CUDA device")
    return torch.device(device)


def weights_sha256(model) -> str:
    """SHA-256 over the model's state (names and values): ties a resumed run to the same weights."""
    import torch

    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _forward(model, images, dev):
    import torch

    with torch.inference_mode():
        out = model(images.to(dev, non_blocking=True))
    if out.ndim != 2 or out.shape[0] != images.shape[0]:
        raise ValueError(
            f"backbone: expected features [batch, d], got shape {tuple(out.shape)}; "
            "a custom backbone must pool and flatten its output"
        )
    return out.float().cpu().numpy()


def embed(
    dataset,
    out: str,
    backbone="resnet18",
    checkpoint: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
    dtype: str = "float16",
    preprocess: dict | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> Embeddings:
    """Embeds every image of a dataset into a resumable folder.

    Parameters
    ----------
    dataset : torch Dataset
        Yields ``(image [C, H, W] float32 in [0, 1], int label)``; see
        :func:`simattr_fast.datasets.open_dataset`.
    out : str
        Output folder (see the module docstring for its files). An interrupted run of the same
        settings resumes; a finished one is returned as it is.
    backbone : str or torch.nn.Module, default "resnet18"
        A name from :mod:`simattr_fast.backbones` or a module returning ``[batch, d]``.
    checkpoint : str or None, default None
        Weights to load (any layout :func:`~simattr_fast.checkpoints.load_checkpoint` reads);
        required for a named backbone.
    batch_size : int, default 256
    device : {"auto", "cpu", "cuda"}, default "auto"
    dtype : {"float16", "float32"}, default "float16"
    preprocess : dict or None, default None
        Overrides of the backbone's preprocessing (see :mod:`simattr_fast.backbones`).
    num_workers : int, default 0
        Data-loading worker processes.
    progress : bool, default True

    Returns
    -------
    Embeddings
        The finished folder, its features memory-mapped.

    Raises
    ------
    ValueError
        Bad arguments, a folder holding another run's settings, non-finite features.
    """
    _check_embed_args(dataset, backbone, checkpoint, batch_size, dtype)
    import torch

    from .backbones import backbone_name

    dev = resolve_torch_device(device)
    model, ckpt = _load_model(backbone, preprocess, checkpoint, dev)
    n = len(dataset)
    settings = {
        "backbone": backbone_name(backbone),
        "checkpoint_sha256": ckpt and ckpt["sha256"],
        "weights_sha256": weights_sha256(model),
        "preprocess": model[0].describe(),
        "dataset_fingerprint": dataset.fingerprint() if hasattr(dataset, "fingerprint") else None,
        "count": n,
        "batch_size": batch_size,
        "dtype": dtype,
    }
    os.makedirs(out, exist_ok=True)
    if os.path.exists(os.path.join(out, "meta.json")):
        return _finished(out, settings)
    start = _resume_point(out, settings, n)
    t0 = time.perf_counter()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, range(start, n)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
    )
    dim = _run_batches(model, loader, dev, out, settings, start, n, dtype, progress)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "count": n,
        "dim": int(dim),
        "dtype": dtype,
        "backbone": settings["backbone"],
        "checkpoint": ckpt,
        "preprocess": settings["preprocess"],
        "dataset": dataset.describe() if hasattr(dataset, "describe") else {"name": type(dataset).__name__},
        "dataset_fingerprint": settings["dataset_fingerprint"],
        "settings": settings,
        "device": str(dev),
        "seconds_last_run": time.perf_counter() - t0,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "simattr_fast": _package_version(),
        "torch": torch.__version__,
    }
    return _finish(out, meta)


def _check_embed_args(dataset, backbone, checkpoint, batch_size, dtype) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if len(dataset) == 0:
        raise ValueError("dataset: it is empty")
    if isinstance(backbone, str) and not checkpoint:
        raise ValueError(
            f"checkpoint: backbone {backbone!r} has only random weights without one; pass a "
            "checkpoint (simattr train-ssl makes one) or an nn.Module you initialised"
        )


def _load_model(backbone, preprocess, checkpoint, dev):
    """(model in eval mode on dev, checkpoint info or None)."""
    from .backbones import build_backbone
    from .checkpoints import load_checkpoint

    model = build_backbone(backbone, preprocess)
    ckpt = load_checkpoint(model, checkpoint) if checkpoint else None
    return model.eval().to(dev), ckpt


def _finished(out: str, settings: dict) -> Embeddings:
    """The finished folder when it was made with the same settings, else an error."""
    done = load_embeddings(out)
    if {k: done.meta["settings"].get(k) for k in settings} != settings:
        raise ValueError(
            f"out: {out!r} already holds finished embeddings of different settings; "
            "choose another output folder or delete it"
        )
    return done


def _resume_point(out: str, settings: dict, n: int) -> int:
    """Rows already embedded by an interrupted run of the same settings (0 for a fresh run)."""
    prog_path = os.path.join(out, "progress.json")
    if not (os.path.exists(prog_path) and os.path.exists(os.path.join(out, "embeddings.npy.partial"))):
        return 0
    with open(prog_path) as f:
        state = json.load(f)
    if not isinstance(state, dict) or not isinstance(state.get("settings"), dict):
        raise ValueError(f"out: {prog_path!r} is not a simattr progress file; delete the folder to start again")
    if state["settings"] != settings:
        raise ValueError(
            f"out: {out!r} holds an interrupted run with different settings "
            f"({_diff(state['settings'], settings)}); choose another output folder or delete it"
        )
    done = state.get("rows_done")
    if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= n:
        raise ValueError(
            f"out: {prog_path!r} says {done!r} rows are done, but the dataset has {n}; "
            "the folder is damaged: delete it to start again"
        )
    return done


def _run_batches(model, loader, dev, out, settings, start, n, dtype, progress) -> int:
    """Embeds the remaining rows into the .partial arrays, recording progress after each
    flushed batch; returns the feature dimension."""
    feat_part, lab_part = os.path.join(out, "embeddings.npy.partial"), os.path.join(out, "labels.npy.partial")
    feats = labs = None
    bar = progress_bar(total=n, initial=start, unit="img", desc="embed", progress=progress)
    for images, labels in loader:
        x = _forward(model, images, dev)
        if feats is None:
            feats, labs = _open_partials(feat_part, lab_part, start, n, x.shape[1], dtype)
        if not np.isfinite(x).all() or (dtype == "float16" and np.abs(x).max() > 65504):
            raise ValueError(
                f"backbone: non-finite or float16-overflowing features in rows {start}..{start + len(x) - 1}"
                "; check the checkpoint, or use dtype='float32'"
            )
        feats[start : start + len(x)] = x
        labs[start : start + len(x)] = labels.numpy()
        feats.flush()
        labs.flush()
        start += len(x)
        write_json(os.path.join(out, "progress.json"), {"rows_done": start, "settings": settings})
        bar.update(len(x))
    bar.close()
    if feats is None:  # every batch was done before a kill that came between the last flush and meta.json
        feats, labs = _open_partials(feat_part, lab_part, start, n, None, dtype)
    return int(feats.shape[1])


def _finish(out: str, meta: dict) -> Embeddings:
    """Moves the arrays into place and writes meta.json last: from then on the folder counts
    as finished."""
    os.replace(os.path.join(out, "embeddings.npy.partial"), os.path.join(out, "embeddings.npy"))
    os.replace(os.path.join(out, "labels.npy.partial"), os.path.join(out, "labels.npy"))
    write_json(os.path.join(out, "meta.json"), meta)
    os.remove(os.path.join(out, "progress.json"))
    return load_embeddings(out)


def _package_version() -> str:
    from importlib.metadata import version

    return version("simattr_fast")


def _open_partials(feat_part, lab_part, start, n, dim, dtype):
    from numpy.lib.format import open_memmap

    if start == 0 and dim is not None:
        return (
            open_memmap(feat_part, mode="w+", dtype=dtype, shape=(n, dim)),
            open_memmap(lab_part, mode="w+", dtype=np.int64, shape=(n,)),
        )
    feats, labs = open_memmap(feat_part, mode="r+"), open_memmap(lab_part, mode="r+")
    if feats.shape[0] != n or (dim is not None and feats.shape[1] != dim):
        raise ValueError(f"out: the interrupted run's array has shape {feats.shape}, expected ({n}, {dim})")
    return feats, labs


def _diff(a: dict, b: dict) -> str:
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in b if a.get(k) != b.get(k))
