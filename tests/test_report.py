"""The HTML report: content, self-containment, and a real render in headless Chromium."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from simattr_fast import Attributor
from simattr_fast.datasets import ArrayDataset
from simattr_fast.report import render_report


@pytest.fixture
def case(rng):
    tr = ArrayDataset(rng.integers(0, 256, (40, 8, 8), dtype=np.uint8), rng.integers(0, 3, 40))
    te = ArrayDataset(rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8), np.array([0, 1, 2, 0, 1]))
    ftr, fte = rng.random((40, 4), dtype=np.float32), rng.random((5, 4), dtype=np.float32)
    res = Attributor("cosine", k=6).fit(ftr, tr.targets).attribute(fte, te.targets, test_ids=[4, 3, 2, 1, 0])
    return tr, te, res


def test_report_content(tmp_path, case):
    tr, te, res = case
    out = render_report(res, tr, te, str(tmp_path / "r.html"), rows=[0, 2], top=4, class_names=["a", "b", "<c>"])
    page = Path(out).read_text()
    assert page.count("<section") == 2 and "id='t4'" in page and "id='t2'" in page and "id='t3'" not in page
    assert page.count("data:image/png;base64,") == 2 * 2 + 2 * 4  # index + query + 4 training images each
    assert re.search(rf"idx {res.indices[0, 0]}\b", page)
    assert "&lt;c&gt;" in page and "<c>" not in page  # labels are escaped
    assert not re.search(r"""(src|href)=['"]?(https?:|//)""", page)  # nothing fetched from anywhere


def test_report_errors(tmp_path, case):
    tr, te, res = case
    with pytest.raises(ValueError, match="train_data: the attribution ranks training index"):
        render_report(res, ArrayDataset(tr.images[:3], tr.targets[:3]), te, str(tmp_path / "r.html"))
    with pytest.raises(ValueError, match="rows: expected row numbers in \\[0, 5\\)"):
        render_report(res, tr, te, str(tmp_path / "r.html"), rows=[7])
    with pytest.raises(ValueError, match="top"):
        render_report(res, tr, te, str(tmp_path / "r.html"), top=0)


def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium missing in CI: .ci/run must apt-get install chromium")
        pytest.skip("Debian package chromium not installed")
    return exe


def test_report_renders_in_headless_chromium(tmp_path, case):
    exe = chromium()
    tr, te, res = case
    out = render_report(res, tr, te, str(tmp_path / "r.html"), top=6)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=" + str(tmp_path)]
    dom = subprocess.run([exe, *flags, "--dump-dom", "file://" + out], capture_output=True, text=True, timeout=120)
    m = re.search(r'data-images="(\d+)" data-loaded="(\d+)"', dom.stdout)
    assert m, f"the page's load handler did not run: {dom.stderr[-500:]}"
    assert int(m.group(1)) == 5 * 2 + 5 * 6 and m.group(1) == m.group(2)  # every image decoded
    shot = tmp_path / "shot.png"
    subprocess.run(
        [exe, *flags, "--window-size=900,700", f"--screenshot={shot}", "file://" + out],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from PIL import Image

    px = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert px.std() > 20 and (px < 128).mean() > 0.02  # not a blank page: text and images drawn
