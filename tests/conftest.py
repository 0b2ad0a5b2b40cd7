import os

import numpy as np
import pytest

import simattr_fast as sa
from simattr_fast.datasets import FASHION_MNIST_DIR


def pytest_collection_modifyitems(config, items):
    if sa.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device and the _cuda module")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def fashion_features():
    """Fashion-MNIST images as 196-d features (2x2 average-pooled pixels in [0, 1]).
    CI installs Debian's dataset-fashion-mnist; elsewhere the test skips, in CI it fails."""
    path = os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail("Fashion-MNIST missing in CI: .ci/run must apt-get install dataset-fashion-mnist")
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    from simattr_fast.datasets import load_fashion_mnist

    x, y = load_fashion_mnist("test")
    x = x[:2000].reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(-1, 196) / 255.0
    return x.astype(np.float32), y[:2000]
