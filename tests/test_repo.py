"""The README's two set-up commands and .ci/run stay in step."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bash_blocks(text):
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_has_two_setup_commands_and_ci_runs_the_second():
    readme = ROOT / "README.md"
    ci = ROOT / ".ci" / "run"
    if not readme.exists() or not ci.exists():
        pytest.skip("not running from a source checkout")
    blocks = _bash_blocks(readme.read_text())
    assert len(blocks) == 2, blocks
    demo, tests = blocks
    assert "simattr demo" in demo and "pytest" in tests
    lines = [ln.strip() for ln in ci.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert tests in lines
