"""Fake trainers with known answers, for the evaluation tests (picklable for worker processes)."""

from __future__ import annotations

import os
import time

import numpy as np


class ThresholdTrainer:
    """Test image t is classified correctly while fewer than ``need[t]`` of its supporters
    ``supporters[t]`` are in the training set with their true label missing; seeds whose
    number is in ``noisy`` get it wrong regardless. Counts the models it trains."""

    def __init__(self, n_train=60, n_test=4, need=(5, 17, 1, 100), delay=0.0, noisy=0.0, count_file=None):
        rng = np.random.default_rng(0)
        self.y_train = rng.integers(0, 3, n_train)
        self.y_test = np.arange(n_test) % 3
        self.supporters = {t: np.flatnonzero(self.y_train == self.y_test[t]) for t in range(n_test)}
        self.need = dict(enumerate(need))
        self.delay, self.noisy, self.count_file = delay, noisy, count_file
        self.trained = 0

    def train(self, indices, labels, seeds):
        time.sleep(self.delay)
        self.trained += len(seeds)
        if self.count_file:
            with open(self.count_file, "a") as f:
                f.write(f"{os.getpid()} {len(seeds)}\n")
        present = np.zeros(len(self.y_train), bool)
        present[np.asarray(indices)] = True
        return present, np.asarray(labels), list(seeds)

    def logits(self, handle, test_ids):
        present, labels, seeds = handle
        out = np.zeros((len(seeds), len(test_ids), 3), np.float32)
        for i, t in enumerate(test_ids):
            sup = self.supporters[t]
            lost = int((~present[sup] | (labels[sup] != self.y_test[t])).sum())
            for j, s in enumerate(seeds):
                wrong = lost >= self.need[t] or (s % 1000) / 1000 < self.noisy
                out[j, i, (self.y_test[t] + (1 if wrong else 0)) % 3] = 1.0
        return out


class LinearTrainer:
    """Margins that are exactly linear in which training images are present: a perfect
    datamodel, so that the true weights get LDS 1."""

    def __init__(self, weights):
        self.w = np.asarray(weights, np.float64)  # [n_test, n_train]
        self.y_train = np.zeros(self.w.shape[1], int)
        self.y_test = np.zeros(len(self.w), int)

    def train(self, indices, labels, seeds):
        present = np.zeros(self.w.shape[1])
        present[np.asarray(indices)] = 1
        return present, len(seeds)

    def logits(self, handle, test_ids):
        present, m = handle
        margin = self.w[np.asarray(test_ids)] @ present
        out = np.zeros((m, len(test_ids), 2))
        out[:, :, 0] = margin  # logit_true - logsumexp(other) = margin when the other logit is 0
        return out


class NoisyLinearTrainer(LinearTrainer):
    """A perfect datamodel plus seed noise of standard deviation ``noise`` per model: averaging
    the margins of several models per subset must bring the LDS of the true weights back up."""

    def __init__(self, weights, noise):
        super().__init__(weights)
        self.noise = noise

    def train(self, indices, labels, seeds):
        present, _ = super().train(indices, labels, seeds)
        return present, list(seeds)

    def logits(self, handle, test_ids):
        present, seeds = handle
        out = super().logits((present, len(seeds)), test_ids)
        for j, s in enumerate(seeds):
            out[j, :, 0] += self.noise * np.random.default_rng(s).standard_normal(len(test_ids))
        return out


class FailingFactory:
    """A trainer factory that raises (picklable): the engines must say so, not hang."""

    def __call__(self):
        raise OSError("dataset file missing on this worker")


class FailingUnitTrainer(ThresholdTrainer):
    """Builds fine, then fails inside a unit."""

    def train(self, indices, labels, seeds):
        raise ValueError("out of labels")


class SlowCountingTrainer(ThresholdTrainer):
    """A ThresholdTrainer that logs each finished unit (pid and models) after training, so a
    test can count the units executed and kill a worker in the middle of one."""

    def __init__(self, log=None, delay=0.3, **kw):
        super().__init__(delay=delay, **kw)
        self.log = log

    def logits(self, handle, test_ids):
        out = super().logits(handle, test_ids)
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()} {len(handle[2])}\n")
        return out
