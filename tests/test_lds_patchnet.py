"""LDS with several models per subset and bootstrap intervals, and the random-patch network
(the quality study's evaluation model)."""

import numpy as np
import pytest
import torch

from simattr_fast import Attribution
from simattr_fast.evaluation import ResultsStore, lds, subset_margins, subset_masks, trainer_from_spec
from simattr_fast.evaluation.lds import bootstrap_ci, subset_seeds
from simattr_fast.evaluation.patchnet import PatchNet, patch_features, patch_filters
from simattr_fast.evaluation.runner import subset_margins_on
from simattr_fast.evaluation.trainers import LinearProbe

from helpers.fakes import NoisyLinearTrainer


def _exact(w):
    idx = np.argsort(-w, axis=1, kind="stable")
    return Attribution(idx, np.take_along_axis(w, idx, 1), np.arange(len(w)))


def test_averaging_models_per_subset_recovers_the_ground_truth(rng):
    n_test, n_train, S = 4, 97, 60
    w = rng.standard_normal((n_test, n_train))
    tr = NoisyLinearTrainer(w, noise=6.0)  # seed noise about as large as the signal
    masks = subset_masks(n_train, S, 0.5, seed=3)
    res = {}
    with ResultsStore(":memory:") as st:
        for r in (1, 8):  # the store grows: the first model of each subset is reused
            mg = subset_margins(tr, st, np.arange(n_test), S, 0.5, seed=3, progress=False, models_per_subset=r)
            assert st.count() == S * r * n_test
            res[r] = lds(_exact(w), masks, mg)["lds"]
        one = st.get(0, "subsets", "lds", 0)
        seeds = subset_seeds(0, 8, 3)
        assert mg[0, 0] == pytest.approx(np.mean([one[q][1] for q in seeds]))
    assert res[8] > res[1] + 0.15 and res[8] > 0.8


def test_engine_and_in_process_lds_margins_agree(rng, tmp_path):
    w = rng.standard_normal((3, 40))
    tr = NoisyLinearTrainer(w, noise=1.0)
    on = subset_margins_on(lambda: tr, str(tmp_path / "e.sqlite"), 40, [0, 1, 2], 6, n_workers=1, models_per_subset=3)
    with ResultsStore(":memory:") as st:
        here = subset_margins(tr, st, [0, 1, 2], 6, progress=False, models_per_subset=3)
    np.testing.assert_allclose(on, here)


def test_subset_seeds_are_stable_and_checked():
    assert subset_seeds(5, 3)[0] == subset_seeds(5, 1)[0]
    assert len(set(subset_seeds(5, 3))) == 3
    with pytest.raises(ValueError, match="models_per_subset"):
        subset_seeds(0, 0)


def test_bootstrap_interval(rng):
    v = rng.normal(0.3, 0.1, 200)
    lo, hi = bootstrap_ci(v)
    assert lo < v.mean() < hi and hi - lo == pytest.approx(2 * 1.96 * v.std() / np.sqrt(200), rel=0.2)
    assert np.isnan(bootstrap_ci(v[:1])).all()


def test_patch_features_shapes_and_filters(rng):
    imgs = torch.as_tensor(rng.random((7, 1, 12, 12), dtype=np.float32))
    f = patch_filters(imgs, 6, 5, seed=0)
    assert f.shape == (6, 1, 5, 5)
    np.testing.assert_allclose(f.flatten(1).mean(1), 0, atol=1e-6)
    assert torch.equal(f, patch_filters(imgs, 6, 5, seed=0)) and not torch.equal(f, patch_filters(imgs, 6, 5, seed=1))
    x = patch_features(imgs, f, pool=2, batch=3)  # batches must not change the result
    assert x.shape == (7, 2 * 6 * 4) and (x >= 0).all()
    np.testing.assert_allclose(x, patch_features(imgs, f, pool=2, batch=100), rtol=1e-6)
    with pytest.raises(ValueError, match="filter images"):
        patch_filters(imgs[:0], 6, 5, seed=0)


def test_patchnet_trains_vectorised_like_alone_and_reports_epochs(rng):
    x = rng.random((60, 1, 10, 10), dtype=np.float32)
    y = rng.integers(0, 3, 60)
    tr = PatchNet(x[:50], y[:50], x[50:], y[50:], x[50:], n_filters=4, pool=2, epochs=3, batch_size=16)
    seen = []
    both = tr.logits(tr.train(np.arange(50), y[:50], [1, 2], on_epoch=lambda e, h, lr: seen.append((e, lr))), [0, 1])
    one = tr.logits(tr.train(np.arange(50), y[:50], [2]), [0, 1])
    np.testing.assert_allclose(both[1], one[0], rtol=1e-4, atol=1e-4)
    assert [e for e, _ in seen] == [0, 1, 2] and seen[0][1] > seen[2][1] > 0
    m = tr.module(tr.train(np.arange(50), y[:50], [2]), 0)
    assert isinstance(m, torch.nn.Linear) and m.in_features == tr.x_train.shape[1] == 2 * 4 * 4


def test_closed_form_linear_gradients_train_as_autograd_does(rng):
    """The closed-form step for linear heads against the autograd step it replaces: a head
    wrapped in ``nn.Sequential`` is not an ``nn.Linear``, so it takes the autograd path."""
    x = rng.standard_normal((97, 7)).astype(np.float32)
    y = rng.integers(0, 3, 97)
    relabelled = y.copy()
    relabelled[:5] = (y[:5] + 1) % 3  # the labels passed to train, not the trainer's, must count
    tr = LinearProbe(x[:90], y[:90], x[90:], y[90:], epochs=4, batch_size=16, lr=0.05)
    tr.weight_decay = 1e-2
    fast = tr.train(np.arange(3, 90), relabelled[:90], [4, 5])

    class Wrapped(LinearProbe):
        def make(self):
            return torch.nn.Sequential(super().make())

    slow_tr = Wrapped(x[:90], y[:90], x[90:], y[90:], epochs=4, batch_size=16, lr=0.05)
    slow_tr.weight_decay = 1e-2
    slow = slow_tr.train(np.arange(3, 90), relabelled[:90], [4, 5])
    np.testing.assert_allclose(fast[1]["weight"].detach(), slow[1]["0.weight"].detach(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast[1]["bias"].detach(), slow[1]["0.bias"].detach(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tr.logits(fast, np.arange(7)), slow_tr.logits(slow, np.arange(7)), rtol=1e-4, atol=1e-4)
    assert not np.allclose(tr.logits(fast, np.arange(7))[0], tr.logits(fast, np.arange(7))[1])  # seeds differ


def test_weight_decay_shrinks_the_head(rng):
    x = rng.random((40, 1, 10, 10), dtype=np.float32)
    y = rng.integers(0, 2, 40)
    norms = []
    for wd in (0.0, 10.0):
        tr = PatchNet(x, y, x[:2], y[:2], x[:5], n_filters=4, pool=2, epochs=40, batch_size=8, weight_decay=wd)
        norms.append(float(tr.module(tr.train(np.arange(40), y, [0]), 0).weight.detach().norm()))
    assert norms[1] < 0.8 * norms[0]


def test_patchnet_spec_keeps_filter_images_out_of_the_study():
    spec = {"kind": "patchnet", "dataset": "digits", "n_filters": 4, "epochs": 1}
    tr = trainer_from_spec({**spec, "n_train": 300, "filter_images": 100})
    assert tr.x_train.shape == (300, 2 * 4 * 16) and len(tr.y_train) == 300
    with pytest.raises(ValueError, match="n_train"):
        trainer_from_spec({**spec, "n_train": 1300, "filter_images": 100})


def test_centring_removes_the_offset_of_a_partial_ranking(rng):
    """Truth: only the first 30 images matter. A ranking of those 30 with its true weights minus
    a large offset scores a negative LDS raw (more ranked images, lower sum) and 1 centred."""
    n_train, S = 97, 80
    w = np.zeros((1, n_train))
    w[0, :30] = rng.random(30)
    tr = NoisyLinearTrainer(w, noise=0.0)
    masks = subset_masks(n_train, S, 0.5)
    with ResultsStore(":memory:") as st:
        mg = subset_margins(tr, st, [0], S, 0.5, progress=False)
    idx = np.argsort(-w[0, :30])[None]
    shifted = Attribution(idx, w[0, idx] - 10.0, np.arange(1))
    assert lds(shifted, masks, mg)["lds"] < 0
    assert lds(shifted, masks, mg, centre=True)["lds"] > 0.5
    full = _exact(w + rng.random((1, n_train)) * 1e-9)
    assert lds(full, masks, mg)["lds"] == pytest.approx(lds(full, masks, mg, centre=True)["lds"])
