"""bench_quality.py's gradient methods against their references: our TRAK grid against ``TRAKer``
end to end, gradient dot / cosine / TracIn against a per-example loop.

    pytest benchmarks/test_quality_methods.py        (needs the bench extra: traker)
"""

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("trak")

import quality_gradients as qg  # noqa: E402


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(97, 7, generator=g), torch.randint(0, 3, (97,), generator=g)
    xt, yt = torch.randn(5, 7, generator=g), torch.randint(0, 3, (5,), generator=g)
    models = []
    for s in range(2):
        torch.manual_seed(s)
        models.append(nn.Linear(7, 3))
    return models, x, y, xt, yt


@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_trak_grid_equals_traker(tmp_path, data, ridge):
    from trak import TRAKer

    models, x, y, xt, yt = data
    p = 16
    if ridge:  # traker takes one absolute lambda for every checkpoint: compare one checkpoint
        models = models[:1]
    feats = [qg.trak_features(m, i, x, y, xt, yt, p) for i, m in enumerate(models)]
    ours = qg.trak_grid(feats, [p], [ridge], [len(models)])[(len(models), p, ridge)]
    xtx = feats[0][0].double().T @ feats[0][0].double()
    lam = ridge * float(torch.trace(xtx)) / p
    tk = TRAKer(
        model=models[0],
        task="image_classification",
        train_set_size=len(x),
        save_dir=str(tmp_path / "trak"),
        device="cpu",
        projector=qg.projector(7 * 3 + 3, p),
        proj_dim=p,
        use_half_precision=False,
        logging_level=40,
        lambda_reg=lam,
    )
    for i, m in enumerate(models):
        tk.load_checkpoint(m.state_dict(), model_id=i)
        tk.featurize(batch=(x, y), num_samples=len(x))
    tk.finalize_features()
    # traker frees a one-block projector's matrix there and only rebuilds it for a new model id
    tk.projector.model_id = -1
    for i, m in enumerate(models):
        tk.start_scoring_checkpoint(exp_name="t", checkpoint=m.state_dict(), model_id=i, num_targets=len(yt))
        tk.score(batch=(xt, yt), num_samples=len(yt))
    ref = np.asarray(tk.finalize_scores(exp_name="t"))
    np.testing.assert_allclose(ours, ref, rtol=2e-3, atol=2e-3 * np.abs(ref).max())


def test_nested_projections_and_counts(data):
    models, x, y, xt, yt = data
    feats = [qg.trak_features(m, i, x, y, xt, yt, 16) for i, m in enumerate(models)]
    grid = qg.trak_grid(feats, [4, 16], [0.0, 1.0], [1, 2])
    assert set(grid) == {(c, p, r) for c in (1, 2) for p in (4, 16) for r in (0.0, 1.0)}
    assert not np.allclose(grid[(1, 4, 0.0)], grid[(1, 16, 0.0)])
    with pytest.raises(ValueError, match="counts"):
        qg.trak_grid(feats, [4], [0.0], [3])


def test_margin_grads_equal_a_loop(data):
    models, x, y, _, _ = data
    m = models[0]
    got = qg.margin_grads(m, x[:9], y[:9], batch=4)
    for i in range(9):
        m.zero_grad()
        qg.margin(m(x[i : i + 1]), y[i : i + 1]).sum().backward()
        want = torch.cat([m.weight.grad.flatten(), m.bias.grad.flatten()])
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("normalized", [False, True])
def test_tracin_equals_a_loop(data, normalized):
    models, x, y, xt, yt = data
    weights = [0.5, 2.0]
    got = qg.tracin_scores(models, weights, x, y, xt, yt, normalized)

    def loss_grads(m, xs, ys):
        out = []
        for i in range(len(xs)):
            m.zero_grad()
            nn.functional.cross_entropy(m(xs[i : i + 1]), ys[i : i + 1]).backward()
            g = torch.cat([m.weight.grad.flatten(), m.bias.grad.flatten()])
            out.append(g / g.norm() if normalized else g)
        return torch.stack(out)

    want = sum(w * loss_grads(m, x, y) @ loss_grads(m, xt, yt).T for w, m in zip(weights, models))
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_sign_test_counts_censored_searches_as_worst():
    import quality_report as qr

    a = {0: 3, 1: -1, 2: 10, 3: -1, 4: 7}  # -1: did not flip within k
    b = {0: 5, 1: 4, 2: 10, 3: -1, 5: 1}
    r = qr.sign_test(a, b, k=20)
    assert (r["n"], r["wins"], r["losses"], r["ties"]) == (4, 1, 1, 2)
    assert r["p"] == 1.0
    many = qr.sign_test({i: 1 for i in range(12)}, {i: -1 for i in range(12)}, k=20)
    assert many["wins"] == 12 and many["p"] < 1e-3
    assert qr.wilcoxon([0.1, 0.2], [0.1, 0.2])["p"] == 1.0
