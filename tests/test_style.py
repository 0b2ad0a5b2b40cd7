"""Style is checked with the tools the repository configures (pyproject.toml, .clang-format,
.pre-commit-config.yaml): ruff lint and format for Python, clang-format for C++ and CUDA."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PY_DIRS = ["simattr_fast", "tests", "benchmarks"]


def _tool(name):
    if not (ROOT / ".clang-format").exists():
        pytest.skip("not running from a source checkout")
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} missing in CI: the test extra installs it")
        pytest.skip(f"{name} not installed")
    return path


def _run(args):
    p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def test_ruff_lint():
    _run([_tool("ruff"), "check", *PY_DIRS])


def test_ruff_format():
    _run([_tool("ruff"), "format", "--check", *PY_DIRS])


def test_clang_format():
    tool = _tool("clang-format")
    files = sorted(
        str(p.relative_to(ROOT))
        for d in ("csrc", "tests/cpp")
        for p in (ROOT / d).rglob("*")
        if p.suffix in (".h", ".cpp", ".cu", ".cuh")
    )
    assert files
    _run([tool, "--dry-run", "-Werror", *files])
