"""The report a person works in, driven in headless Chromium (selenium + Debian's
chromium-driver): filters hide the right sections, index links and keys navigate, and no
request leaves the page."""

import os
import shutil

import numpy as np
import pytest

from simattr_fast import Attributor
from simattr_fast.datasets import ArrayDataset
from simattr_fast.debugging import find_duplicates
from simattr_fast.report import render_report


def _driver():
    if shutil.which("chromedriver") is None:
        if os.environ.get("CI"):
            pytest.fail("chromedriver missing in CI: .ci/run must apt-get install chromium-driver")
        pytest.skip("Debian package chromium-driver not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


@pytest.fixture
def page(tmp_path):
    rng = np.random.default_rng(0)
    n_train, n_test = 60, 8
    images = rng.integers(0, 255, (n_train, 8, 8)).astype(np.uint8)
    y = np.arange(n_train) % 3
    images[7] = images[4]  # a duplicate pair in the training set
    test_images = rng.integers(0, 255, (n_test, 8, 8)).astype(np.uint8)
    ty = np.arange(n_test) % 3
    x = images.reshape(n_train, -1).astype(np.float32)
    tx = test_images.reshape(n_test, -1).astype(np.float32)
    pred = ty.copy()
    pred[[1, 5]] = (ty[[1, 5]] + 1) % 3  # two misclassified
    att = Attributor("cosine", k=5).fit(x, y).attribute(tx, ty, predicted_labels=pred, opponent_labels=(ty + 2) % 3)
    scores = np.zeros(n_train)
    scores[att.indices[2, 0]] = 0.9  # a suspected label error among test image 2's supporters
    dup = find_duplicates(x, threshold=0.999)
    out = render_report(
        att,
        ArrayDataset(images, y),
        ArrayDataset(test_images, ty),
        str(tmp_path / "r.html"),
        top=5,
        confidence=np.linspace(0.5, 0.9, n_test),
        duplicates=dup,
        label_scores=scores,
        supports={"removal": {0: 3, 1: -1}},
    )
    expect = {
        "miss": 2,
        "class0": int((ty == 0).sum()),
        "dup": sum(
            bool({4, 7} & set(att.indices[r].tolist() + att.opponent_indices[r].tolist())) for r in range(n_test)
        ),
        "suspect": sum(
            int(att.indices[2, 0]) in att.indices[r].tolist() + att.opponent_indices[r].tolist() for r in range(n_test)
        ),
    }
    return "file://" + out, expect


def test_filters_links_keys_and_no_requests(page):
    url, expect = page
    drv = _driver()
    try:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        drv.get(url)
        body = drv.find_element(By.TAG_NAME, "body")
        assert body.get_attribute("data-images") == body.get_attribute("data-loaded")  # the script ran (CSP ok)
        assert body.get_attribute("data-visible") == "8"
        drv.find_element(By.ID, "f-miss").click()
        assert body.get_attribute("data-visible") == str(expect["miss"])
        visible = [s for s in drv.find_elements(By.CSS_SELECTOR, "section[data-class]") if s.is_displayed()]
        assert sorted(s.get_attribute("id") for s in visible) == ["t1", "t5"]
        drv.find_element(By.ID, "f-miss").click()
        Select(drv.find_element(By.ID, "f-class")).select_by_value("0")
        assert body.get_attribute("data-visible") == str(expect["class0"])
        Select(drv.find_element(By.ID, "f-class")).select_by_value("")
        drv.find_element(By.ID, "f-dup").click()
        assert body.get_attribute("data-visible") == str(expect["dup"])
        drv.find_element(By.ID, "f-dup").click()
        drv.find_element(By.ID, "f-suspect").click()
        assert body.get_attribute("data-visible") == str(expect["suspect"])
        drv.find_element(By.ID, "f-suspect").click()
        # an index link, then the keyboard
        drv.find_element(By.CSS_SELECTOR, "nav.index a[href='#t3']").click()
        assert drv.execute_script("return location.hash") == "#t3"
        body.send_keys("j")
        assert drv.execute_script("return location.hash") == "#t4"
        body.send_keys("k")
        body.send_keys("k")
        assert drv.execute_script("return location.hash") == "#t2"
        # nothing was fetched: every resource the page touched is inline
        names = drv.execute_script(
            "return performance.getEntriesByType('resource').map(function (e) { return e.name; })"
        )
        assert all(n.startswith("data:") for n in names), names
        assert "removal support: 3" in drv.page_source and "removal support: &gt;5" in drv.page_source
    finally:
        drv.quit()


def test_cli_report_with_predictions_duplicates_label_errors_and_store(tmp_path):
    from pathlib import Path

    from simattr_fast.cli import main
    from simattr_fast.evaluation import ResultsStore

    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (30, 6, 6)).astype(np.uint8)
    images[9] = images[3]
    y = np.arange(30) % 3
    np.savez(tmp_path / "train.npz", images=images, labels=y)
    x = images.reshape(30, -1).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "p.npy", rng.random((30, 3)))
    base = ["--train", str(tmp_path / "x.npy"), "--train-labels", str(tmp_path / "y.npy")]
    assert (
        main(
            [
                "attribute",
                *base,
                "--test",
                str(tmp_path / "x.npy"),
                "--test-labels",
                str(tmp_path / "y.npy"),
                "--method",
                "cosine",
                "--k",
                "4",
                "--out",
                str(tmp_path / "a.npz"),
            ]
        )
        == 0
    )
    assert main(["duplicates", "--train", str(tmp_path / "x.npy"), "--out", str(tmp_path / "dup")]) == 0
    assert main(["label-errors", *base, "--out", str(tmp_path / "le.csv")]) == 0
    with ResultsStore(str(tmp_path / "r.sqlite")) as st:
        st.add_support(0, "cosine", "removal", 2, 4)
    out = tmp_path / "r.html"
    assert (
        main(
            [
                "report",
                "--attribution",
                str(tmp_path / "a.npz"),
                "--out",
                str(out),
                "--train-data",
                str(tmp_path / "train.npz"),
                "--test-data",
                str(tmp_path / "train.npz"),
                "--probabilities",
                str(tmp_path / "p.npy"),
                "--duplicates",
                str(tmp_path / "dup" / "duplicates.json"),
                "--label-errors",
                str(tmp_path / "le.csv"),
                "--store",
                str(tmp_path / "r.sqlite"),
                "--n-test",
                "30",
            ]
        )
        == 0
    )
    page = Path(out).read_text()
    assert "predicted:" in page and "removal support: 2" in page and "b-dup" in page
    assert "class='row dup-group'" in page  # the duplicates section with its thumbnails
