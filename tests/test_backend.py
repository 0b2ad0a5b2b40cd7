import numpy as np
import pytest

import simattr_fast as sa
from simattr_fast._kernels import backend as _backend


def test_cpu_module_uses_scipy_blas():
    assert _backend.cpu().has_blas()


@pytest.mark.skipif(sa.cuda_available(), reason="a GPU is present")
def test_cuda_request_without_gpu_raises_with_reason():
    q = np.ones((2, 3), np.float32)
    with pytest.raises(RuntimeError, match="device='cuda' was requested but"):
        sa.topk(q, q, 1, device="cuda")
    with pytest.raises(RuntimeError, match="device='cuda' was requested but"):
        sa.esvm_topk(q, q, 1, device="cuda")


@pytest.mark.skipif(sa.cuda_available(), reason="a GPU is present")
def test_auto_picks_cpu_without_gpu():
    assert _backend.resolve_device("auto", False) == "cpu"


def test_cuda_module_was_built_when_nvcc_exists():
    """The build compiles `_cuda` wherever CMake finds nvcc (SIMATTR_CUDA=AUTO)."""
    import shutil

    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc on this machine")
    import importlib

    mod = importlib.import_module("simattr_fast._kernels._cuda")
    assert hasattr(mod, "topk") and hasattr(mod, "esvm_topk")
    assert mod.device_count() >= 0


def test_same_function_names_in_both_modules():
    import importlib

    cpu = _backend.cpu()
    try:
        cu = importlib.import_module("simattr_fast._kernels._cuda")
    except ImportError:
        pytest.skip("built without CUDA")
    for name in ("topk", "esvm_topk", "TopkAccumulator"):
        assert hasattr(cpu, name) and hasattr(cu, name)


def test_portable_fallbacks_without_scipy_blas(rng):
    """The core's own GEMM / Gram / Cholesky fallbacks give the same rankings."""
    q = rng.standard_normal((5, 12)).astype(np.float32)
    k = rng.standard_normal((150, 12)).astype(np.float32)
    ref_t = sa.topk(q, k, 20, metric="ip", device="cpu")
    ref_e = sa.esvm_topk(q, k, 20, device="cpu")
    q2, k2 = np.abs(q), np.abs(k)  # non-negative: small working sets, Gram + Newton path
    ref_g = sa.esvm_topk(q2, k2, 20, device="cpu")
    cpu = _backend.cpu()
    cpu.clear_blas()
    try:
        assert not cpu.has_blas()
        t = sa.topk(q, k, 20, metric="ip", device="cpu")
        e = sa.esvm_topk(q, k, 20, device="cpu")
        g = sa.esvm_topk(q2, k2, 20, device="cpu")
    finally:
        _backend.cpu.cache_clear()
        assert _backend.cpu().has_blas()
    assert np.array_equal(t[1], ref_t[1]) and np.allclose(t[0], ref_t[0], atol=1e-5)
    for a, b in ((e, ref_e), (g, ref_g)):
        assert np.array_equal(a[1], b[1]) and np.allclose(a[0], b[0], atol=1e-4)


@pytest.mark.parametrize("fn", ["topk", "esvm_topk"])
def test_kernels_release_the_gil(rng, fn):
    """Python code keeps running on another thread while a kernel works: the main thread
    ticks about once a millisecond (pure Python, so only while the worker does not hold the
    GIL), and counts the ticks that fall while the worker is inside a kernel call. A kernel
    that held the GIL would let through only the ticks of the Python around it; a released
    one lets through one per millisecond it runs. Speed-independent: the worker repeats its
    call until it has spent 100 ms in them."""
    import threading
    import time

    # Sizes where the compiled kernel is most of the call (preparing the rows and the
    # Python around it hold the GIL legitimately, and let ticks through at switch intervals).
    d = 512 if fn == "topk" else 64
    q = rng.standard_normal((2000 if fn == "topk" else 100, d)).astype(np.float32)
    k = rng.standard_normal((20000, d)).astype(np.float32)
    done, inside = threading.Event(), threading.Event()
    spent = [0.0]

    def work():
        for _ in range(1000):
            inside.set()
            t0 = time.perf_counter()
            if fn == "topk":
                sa.topk(q, k, 50, metric="ip", device="cpu", n_threads=1)
            else:
                sa.esvm_topk(q, k[:5000], 50, device="cpu", n_threads=1)
            spent[0] += time.perf_counter() - t0
            inside.clear()
            if spent[0] > 0.1:
                break
        done.set()

    t = threading.Thread(target=work)
    ticks = 0
    t.start()
    while not done.is_set():
        ticks += inside.is_set()
        done.wait(0.001)
    t.join()
    assert spent[0] > 0.1
    assert ticks > 0.5 * spent[0] * 1000, (ticks, spent[0])


def test_kernel_install_needs_no_torch():
    """`pip install simattr_fast` brings only numpy, scipy, threadpoolctl and tqdm: importing
    the package and running both kernels must not import torch, scikit-learn or matplotlib."""
    code = (
        "import sys, numpy as np, simattr_fast as sa\n"
        "x = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)\n"
        "sa.topk(x, x, 3, device='cpu'); sa.esvm_topk(x, x, 3, device='cpu')\n"
        "bad = [m for m in ('torch', 'sklearn', 'matplotlib', 'PIL') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("name", ["_cpu", "_cuda"])
def test_stubs_match_the_compiled_modules(name):
    """The .pyi stubs name exactly the public functions, classes and constants the module binds."""
    import ast
    import importlib
    from pathlib import Path

    try:
        mod = importlib.import_module(f"simattr_fast._kernels.{name}")
    except ImportError:
        pytest.skip(f"{name} not built")
    stub = Path(mod.__file__).parent / f"{name}.pyi"
    if not stub.exists():  # editable installs keep the stubs beside the sources
        import simattr_fast._kernels as k

        stub = Path(k.__path__[-1]) / f"{name}.pyi"
    tree = ast.parse(stub.read_text())
    stubbed = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    stubbed |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and not n.target.id.startswith("_")}
    bound = {n for n in dir(mod) if not n.startswith("_")}
    assert stubbed == bound
