"""Gradient-based attributions for bench_quality.py, all as score matrices ``[n_train, n_targets]``
(higher = the training image helps the target more).

TRAK: traker's own pieces (its margin model output, its out-to-loss term, its Gaussian
``BasicProjector``) with the score algebra of ``TRAKer.finalize_features`` / ``finalize_scores``,
written out so that a grid of projection sizes and ridge terms costs one featurisation per
checkpoint: the features of size p are the first p columns of one normal projection of size
max(p), which is itself a normal projection of size p. ``benchmarks/test_quality_methods.py``
checks the result against ``TRAKer`` end to end.

Gradient dot, gradient cosine and TracIn: our own ``torch.func`` code, checked against a
per-example loop. (dattri 0.3.0 installs beside our torch, but its ``TracInAttributor`` returned
dot products that differ from the exact per-example ones by 2-30% on a 24-parameter linear
model in our check, although its own per-example gradients match; we did not find why.)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap


def margin(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """TRAK's model output for classification: ``logit_y - logsumexp(other logits)``."""
    mask = torch.arange(logits.shape[-1]) == label[..., None]  # one_hot calls .item(), which vmap refuses
    other = logits.masked_fill(mask, float("-inf"))
    return logits.gather(-1, label[..., None])[..., 0] - torch.logsumexp(other, -1)


def per_example_grads(fn, model: nn.Module, x, y, batch: int = 2000, then=None) -> torch.Tensor:
    """Gradients of ``fn(logits [C], label)`` per example, flattened in ``named_parameters``
    order: ``[n, P]`` float32, ``batch`` examples at a time; ``then`` maps each batch ``[b, P]``
    (a projection, a product), so that the whole ``[n, P]`` never exists."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def one(p, xi, yi):
        return fn(functional_call(model, p, (xi[None],))[0], yi)

    g = vmap(grad(one), in_dims=(None, 0, 0))
    out = []
    for i in range(0, len(x), batch):
        d = g(params, x[i : i + batch], y[i : i + batch])
        flat = torch.cat([d[k].flatten(1) for k in params], 1)
        out.append(flat if then is None else then(flat))
    return torch.cat(out)


def margin_grads(model, x, y, batch: int = 2000, then=None) -> torch.Tensor:
    """Per-example gradients of TRAK's margin (see :func:`per_example_grads`)."""
    return per_example_grads(margin, model, x, y, batch, then)


def loss_grads(model, x, y, batch: int = 2000, then=None) -> torch.Tensor:
    """Per-example gradients of the cross-entropy loss (see :func:`per_example_grads`)."""
    return per_example_grads(lambda lg, t: nn.functional.cross_entropy(lg[None], t[None]), model, x, y, batch, then)


def out_to_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """TRAK's reweighting term ``Q = 1 - p_y`` per example ``[n]``."""
    with torch.no_grad():
        return 1 - torch.softmax(model(x), -1).gather(-1, y[:, None])[:, 0]


def projector(grad_dim: int, proj_dim: int, seed: int = 0):
    """traker's normal projector in one block (it would otherwise regenerate its matrix in blocks
    of 100 columns for every batch, which dominates the CPU time)."""
    from trak.projectors import BasicProjector, ProjectionType

    return BasicProjector(grad_dim, proj_dim, seed, ProjectionType.normal, "cpu", block_size=proj_dim)


def trak_features(model, model_id, x_train, y_train, x_tgt, y_tgt, proj_dim):
    """(train features ``[n, proj_dim]``, target features ``[t, proj_dim]``, Q ``[n]``) of one
    checkpoint."""
    n_params = sum(p.numel() for p in model.parameters())
    proj, scale = projector(n_params, proj_dim), n_params**0.5  # TRAKer divides by sqrt(#params)
    phi = margin_grads(model, x_train, y_train, then=lambda g: proj.project(g, model_id) / scale)
    phi_t = margin_grads(model, x_tgt, y_tgt, then=lambda g: proj.project(g, model_id) / scale)
    return phi, phi_t, out_to_loss(model, x_train, y_train)


def trak_grid(features, proj_dims, ridges, counts) -> dict:
    """TRAK scores for every (checkpoints C, proj_dim p, ridge r): ``{(C, p, r): [n, t]}``.

    ``features``: an iterable of :func:`trak_features` triples, one per checkpoint, in order; C
    takes the first C checkpoints. The ridge is relative: ``lambda = r * trace(X^T X) / p``,
    so one grid suits every p. Per checkpoint, as ``TRAKer``: ``X (X^T X + lambda I)^-1``
    rescaled by the mean absolute entry of the inverse, times the target features; the sum over
    checkpoints is divided by C and each row multiplied by the mean Q of the C checkpoints.
    """
    acc, q_sum, out = {}, None, {}
    for c, (phi, phi_t, q) in enumerate(features, start=1):
        q_sum = q.double() if q_sum is None else q_sum + q.double()
        for p in proj_dims:
            x, xt = phi[:, :p].double(), phi_t[:, :p].double()
            xtx = x.T @ x
            for r in ridges:
                inv = torch.linalg.inv(xtx + r * torch.trace(xtx) / p * torch.eye(p, dtype=xtx.dtype))
                inv /= inv.abs().mean()
                s = x @ (inv @ xt.T)
                acc[(p, r)] = s if (p, r) not in acc else acc[(p, r)] + s
        if c in counts:
            for (p, r), s in acc.items():
                out[(c, p, r)] = ((s / c) * (q_sum / c)[:, None]).float().numpy()
    missing = sorted(set(counts) - {c for c, _, _ in out})
    if missing:
        raise ValueError(f"counts: expected at most as many checkpoints as given, got {missing}")
    return out


def tracin_scores(models, weights, x_train, y_train, x_tgt, y_tgt, normalized: bool) -> np.ndarray:
    """TracIn (Pruthi et al., 2020): ``sum_c weights[c] * <grad loss(train), grad loss(target)>``
    over the checkpoints ``models``, cross-entropy loss, gradients unprojected; cosine when
    ``normalized``. One checkpoint with weight 1 is the gradient dot product (or cosine), as
    dattri defines them. ``[n, t]``."""

    def unit(g):
        return nn.functional.normalize(g, dim=1) if normalized else g

    out = 0
    for w, m in zip(weights, models):
        gt = unit(loss_grads(m, x_tgt, y_tgt))
        out = out + float(w) * loss_grads(m, x_train, y_train, then=lambda g, gt=gt: unit(g) @ gt.T)
    return out.numpy()
