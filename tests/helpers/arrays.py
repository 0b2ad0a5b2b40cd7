"""Array helpers shared by the tests."""

import numpy as np


def as_memmap(tmp_path, x, name="x.npy"):
    path = tmp_path / name
    np.save(path, x)
    return np.load(path, mmap_mode="r")
