"""A self-contained HTML report of an attribution: one file, images inlined as PNG data URIs,
no scripts or styles fetched from anywhere, so it opens offline and can be mailed around.

For each chosen test image: the image, its label (and the prediction when known), and its top-N
training images with index, label and score; an index across the test images at the top.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from ._io import write_text
from ._report_assets import CSP, CSS, SCRIPT
from .attribution import Attribution


def png_data_uri(image) -> str:
    """``[C, H, W]`` float in [0, 1] (tensor or array) -> ``data:image/png;base64,...``."""
    from PIL import Image

    a = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=np.float32)
    a = np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
    a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _label(names, y) -> str:
    if y is None or y < 0:
        return "?"
    return f"{int(y)} {names[y]}" if names and y < len(names) else str(int(y))


def render_report(
    attribution: Attribution,
    train_data,
    test_data,
    out: str,
    rows=None,
    top: int = 10,
    class_names=None,
    title: str = "simattr attribution report",
    size: int = 72,
    *,
    confidence=None,
    duplicates=None,
    label_scores=None,
    supports=None,
) -> str:
    """Writes a self-contained HTML report of an attribution.

    Parameters
    ----------
    attribution : Attribution
    train_data, test_data : datasets
        The images the embeddings came from (``(image, label)`` items), indexed by global
        training index and by ``attribution.test_ids``.
    out : str
        The HTML file to write (atomically).
    rows : iterable of int or None, default None
        Attribution rows to show (default: the first 50).
    top : int, default 10
        Training images shown per test image.
    class_names : list of str or None, default None
    title : str, default "simattr attribution report"
    size : int, default 72
        Thumbnail size in pixels.
    confidence : float array [n_test] or None, default None
        The model's confidence in its prediction, per attribution row (shown with it).
    duplicates : Duplicates or None, default None
        From :func:`~simattr_fast.debugging.find_duplicates`: training images in a duplicate
        group get a badge, test images that leak from the training set too.
    label_scores : float array [n_train] or None, default None
        From :func:`~simattr_fast.debugging.label_error_scores`: scores above 0.5 get a
        "label?" badge.
    supports : dict or None, default None
        ``{criterion: {test_id: support}}`` (removal / mislabel, -1 censored) from a results
        store, shown as each test image's verdict.

    Returns
    -------
    str
        ``out``.

    Raises
    ------
    ValueError
        Rows, indices or test ids that do not fit the datasets.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from simattr_fast import Attribution
    >>> from simattr_fast.datasets import ArrayDataset
    >>> from simattr_fast.report import render_report
    >>> imgs = np.zeros((4, 8, 8, 1), np.float32)  # [n, H, W, C]
    >>> data = ArrayDataset(imgs, np.array([0, 0, 1, 1]))
    >>> a = Attribution(np.array([[1, 0]]), np.array([[0.9, 0.1]]), test_ids=np.array([2]))
    >>> path = render_report(a, data, data, os.path.join(tempfile.mkdtemp(), "r.html"))
    >>> from pathlib import Path
    >>> Path(path).read_text().count("<section")
    1
    """
    if top <= 0:
        raise ValueError(f"top: expected a positive number of training images per test image, got {top}")
    rows = list(range(min(50, len(attribution)))) if rows is None else list(rows)
    bad = [r for r in rows if not 0 <= r < len(attribution)]
    if bad:
        raise ValueError(f"rows: expected row numbers in [0, {len(attribution)}), got {bad[:5]}")
    n_train, n_test = len(train_data), len(test_data)
    if attribution.indices.max(initial=-1) >= n_train:
        raise ValueError(
            f"train_data: the attribution ranks training index {attribution.indices.max()}, but the "
            f"training dataset has {n_train} images; pass the dataset the embeddings came from"
        )
    if attribution.test_ids.max(initial=-1) >= n_test:
        raise ValueError(
            f"test_data: the attribution has test id {attribution.test_ids.max()}, but the test "
            f"dataset has {n_test} images; pass the dataset the embeddings came from"
        )
    # Everything from the attribution's metadata is untrusted text (the checksums cover the
    # arrays only): every value goes through e(), whatever its type.
    p = _dict(attribution.params)
    n_ranked = _dict(attribution.provenance.get("train")).get("count") or n_train  # the attributed pool
    dup_train = {int(j) for g in duplicates.groups for j in g} if duplicates is not None else set()
    leaks: dict = {}
    if duplicates is not None:
        for t, j in duplicates.leaks.tolist():
            leaks.setdefault(int(t), []).append(int(j))
    suspect = set() if label_scores is None else {int(j) for j in np.flatnonzero(np.asarray(label_scores) > 0.5)}
    marks = {"dup": dup_train, "suspect": suspect}
    p = _dict(attribution.params)
    n_ranked = _dict(attribution.provenance.get("train")).get("count") or n_train  # the attributed pool
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'>{CSP}<title>{e(title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{e(title)}</h1>",
        f"<p class='meta'>method <b>{e(p.get('method'))}</b>, k={e(p.get('k'))}, pool: "
        f"{e(p.get('condition'))} label; {len(attribution)} test images ({len(rows)} shown), "
        f"{e(n_ranked)} training images. {_provenance(attribution)}</p>",
        _filters(attribution, rows, test_data, class_names),
        "<nav class='index'>",
    ]
    sections = []
    for r in rows:
        tid = int(attribution.test_ids[r])
        img, y = test_data[tid]
        pred = None if attribution.predicted_labels is None else int(attribution.predicted_labels[r])
        shown = [int(j) for j in attribution.indices[r, :top] if j >= 0]
        if attribution.opponent_indices is not None:
            shown += [int(j) for j in attribution.opponent_indices[r, :top] if j >= 0]
        flags = {
            "class": int(y),
            "miss": int(pred is not None and pred != y),
            "dup": int(tid in leaks or any(j in dup_train for j in shown)),
            "suspect": int(any(j in suspect for j in shown)),
        }
        data = " ".join(f"data-{k}='{v}'" for k, v in flags.items())
        uri = png_data_uri(img)
        parts.append(f"<a href='#t{tid}' {data}><img src='{uri}' width='40' height='40' alt='test {tid}'>{tid}</a>")
        figs = _figures(
            attribution.indices[r, :top], attribution.scores[r, :top], train_data, y, class_names, size, marks
        )
        opp = ""
        if attribution.opponent_indices is not None:
            oy = int(attribution.opponent_labels[r])
            ofigs = _figures(
                attribution.opponent_indices[r, :top],
                attribution.opponent_scores[r, :top],
                train_data,
                oy,
                class_names,
                size,
                marks,
            )
            opp = (
                f"<h3>opponents: {e(_label(class_names, oy))}</h3>"
                f"<div class='row opponents'>{''.join(ofigs) or 'no training images of that class'}</div>"
            )
        info = _query_info(attribution, r, tid, y, pred, class_names, confidence, supports, leaks.get(tid))
        sections.append(
            f"<section id='t{tid}' {data}><div class='query'><h2>test image {tid}</h2>"
            f"<img src='{uri}' width='{2 * size}' height='{2 * size}' alt='test {tid}'>"
            f"{info}<br><a href='#'>index</a></div>"
            f"<div><h3>supporters</h3><div class='row supporters'>{''.join(figs) or 'no training images in the pool'}"
            f"</div>{opp}</div></section>"
        )
    parts.append("</nav>")
    parts += sections
    if duplicates is not None:
        parts.append(_duplicates_section(duplicates, train_data, test_data, size))
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    write_text(out, "\n".join(parts))
    return out


def _figures(indices, scores, train_data, y, class_names, size, marks=None) -> list:
    """Thumbnails of ranked training images; a label other than ``y`` is shown in red, and
    images in a duplicate group or suspected of a wrong label get a badge."""
    marks = marks or {}
    figs = []
    for rank, (j, s) in enumerate(zip(indices, scores)):
        if j < 0:
            break
        timg, ty = train_data[int(j)]
        cls = " class='bad'" if ty != y else ""
        badges = ""
        if int(j) in marks.get("dup", ()):
            badges += "<span class='badge b-dup'>dup</span>"
        if int(j) in marks.get("suspect", ()):
            badges += "<span class='badge b-suspect'>label?</span>"
        figs.append(
            f"<figure><img src='{png_data_uri(timg)}' width='{size}' height='{size}' "
            f"alt='train {j}'><figcaption>#{rank + 1} · idx {j}{badges}<br><span{cls}>"
            f"{e(_label(class_names, ty))}</span><br>{s:.4g}</figcaption></figure>"
        )
    return figs


def _duplicates_section(dup, train_data, test_data, size, most: int = 20) -> str:
    """Thumbnails of the largest duplicate groups and of the leaks (test image beside its
    training copy), at most ``most`` of each."""

    def thumb(data, j, what):
        img, lab = data[int(j)]
        return (
            f"<figure><img src='{png_data_uri(img)}' width='{size}' height='{size}' alt='{what} {j}'>"
            f"<figcaption>{what} {int(j)}<br>label {int(lab)}</figcaption></figure>"
        )

    groups = "".join(
        f"<div class='row dup-group'>{''.join(thumb(train_data, j, 'train') for j in g[:8])}</div>"
        for g in dup.groups[:most]
    )
    leaks = "".join(
        f"<div class='row dup-leak'>{thumb(test_data, t, 'test')}{thumb(train_data, j, 'train')}</div>"
        for t, j in dup.leaks.tolist()[:most]
    )
    return (
        f"<section id='duplicates' class='dups'><div><h2>duplicates (cosine >= {dup.threshold:.4f})</h2>"
        f"<h3>{len(dup.groups)} groups in the training set</h3>{groups or 'none'}"
        f"<h3>{len(dup.leaks)} test images that copy a training image</h3>{leaks or 'none'}</div></section>"
    )


def _filters(attribution, rows, test_data, class_names) -> str:
    """The filter bar: class, misclassified, has a duplicate, suspected label error."""
    classes = sorted({int(test_data[int(attribution.test_ids[r])][1]) for r in rows})
    opts = "".join(f"<option value='{c}'>{e(_label(class_names, c))}</option>" for c in classes)
    boxes = "".join(
        f"<label><input type='checkbox' id='f-{k}'> {e(text)}</label>"
        for k, text in (("miss", "misclassified"), ("dup", "has a duplicate"), ("suspect", "suspected label error"))
    )
    return (
        f"<div class='filters'><label>class <select id='f-class'><option value=''>all</option>{opts}</select>"
        f"</label>{boxes}<span id='f-count'></span><span class='meta'>keys: j / k</span></div>"
    )


def _query_info(attribution, r, tid, y, pred, class_names, confidence, supports, leaked) -> str:
    """The test image's label, prediction (and confidence), verdicts and badges."""
    out = f"label: {e(_label(class_names, y))}"
    if pred is not None:
        conf = "" if confidence is None else f" ({float(confidence[r]):.2f})"
        miss = " <span class='badge b-miss'>wrong</span>" if pred != y else ""
        out += f"<br>predicted: {e(_label(class_names, pred))}{e(conf)}{miss}"
    for criterion, per in sorted((supports or {}).items()):
        sup = per.get(tid)
        if sup is not None:
            k = _dict(attribution.params).get("k")
            out += f"<br>{e(criterion)} support: {e('>' + str(k) if sup < 0 else sup)}"
    if leaked:
        out += f"<br><span class='badge b-leak'>leak</span> copy of training {e(', '.join(map(str, leaked[:3])))}"
    return out


def e(value) -> str:
    """Any value as escaped HTML text (quotes included)."""
    return html.escape(str(value), quote=True)


def _dict(x) -> dict:
    """Metadata entries are untrusted: anything that is not a JSON object reads as empty."""
    return x if isinstance(x, dict) else {}


def _provenance(a: Attribution) -> str:
    train = _dict(_dict(a.provenance).get("train"))
    bits = [
        f"backbone {train['backbone']}" if train.get("backbone") else None,
        f"checkpoint sha256 {str(train['checkpoint_sha256'])[:12]}" if train.get("checkpoint_sha256") else None,
        f"simattr_fast {a.provenance['simattr_fast']}" if a.provenance.get("simattr_fast") else None,
    ]
    return e("; ".join(b for b in bits if b))
