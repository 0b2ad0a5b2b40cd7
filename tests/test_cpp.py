"""The C++ unit tests of the core (tests/cpp): built with CMake and run with ctest."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_cpp_unit_tests(tmp_path):
    cmake, ctest = shutil.which("cmake"), shutil.which("ctest")
    if not (ROOT / "tests" / "cpp" / "CMakeLists.txt").exists():
        pytest.skip("not running from a source checkout")
    if cmake is None or ctest is None:
        if os.environ.get("CI"):
            pytest.fail("cmake/ctest missing in CI: the test extra installs cmake")
        pytest.skip("cmake not installed")
    build = tmp_path / "build"
    run = dict(capture_output=True, text=True, timeout=600)
    p = subprocess.run([cmake, "-S", str(ROOT / "tests" / "cpp"), "-B", str(build)], **run)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run([cmake, "--build", str(build), "-j", "2"], **run)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "warning:" not in p.stdout + p.stderr, p.stdout + p.stderr  # -Wall -Wextra clean
    p = subprocess.run([ctest, "--test-dir", str(build), "--output-on-failure"], **run)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "100% tests passed" in p.stdout
