"""The HTML report's own style and script, and the Content-Security-Policy that admits exactly
them (by hash) and data-URI images: nothing else may load or run in the page."""

from __future__ import annotations

import base64
import hashlib

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.4em} h2{font-size:1.1em;margin:0 0 .4em} h3{font-size:.85em;margin:.2em 0;color:#555}
.meta{color:#555;font-size:.9em} .index{display:flex;flex-wrap:wrap;gap:6px;margin:1em 0}
.index a{text-decoration:none;color:#222;font-size:.75em;text-align:center}
.filters{display:flex;gap:1em;align-items:center;font-size:.85em;margin:.5em 0}
img{image-rendering:pixelated;border:1px solid #ccc;display:block;margin:auto}
section{border-top:1px solid #ddd;padding:1em 0;display:flex;gap:1.5em;align-items:flex-start}
section:target{background:#f4f8ff}
.query{min-width:160px} .row{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;font-size:.75em;text-align:center} .bad{color:#b00}
.badge{display:inline-block;font-size:.7em;padding:0 .4em;border-radius:.6em;color:#fff;margin:1px}
.b-dup{background:#8a5a00} .b-suspect{background:#b00} .b-miss{background:#555} .b-leak{background:#6a1b9a}
[hidden]{display:none !important}
"""

# After load: records on <body> how many images decoded (data-images / data-loaded) and how
# many sections are visible (data-visible); wires the filters (class, misclassified, has a
# duplicate, suspected label error) and the keyboard (j / k or arrows: next / previous
# visible test image).
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-loaded', imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length);
  var secs = Array.prototype.slice.call(document.querySelectorAll('section[data-class]'));
  var links = Array.prototype.slice.call(document.querySelectorAll('nav.index a'));
  var cls = document.getElementById('f-class');
  var flags = ['miss', 'dup', 'suspect'];
  function keep(el) {
    if (cls && cls.value !== '' && el.getAttribute('data-class') !== cls.value) return false;
    return flags.every(function (f) {
      var box = document.getElementById('f-' + f);
      return !box || !box.checked || el.getAttribute('data-' + f) === '1';
    });
  }
  function apply() {
    var n = 0;
    secs.forEach(function (s) { s.hidden = !keep(s); if (!s.hidden) n += 1; });
    links.forEach(function (a) { a.hidden = !keep(a); });
    document.body.setAttribute('data-visible', n);
    var c = document.getElementById('f-count');
    if (c) c.textContent = n + ' shown';
  }
  if (cls) cls.addEventListener('change', apply);
  flags.forEach(function (f) {
    var box = document.getElementById('f-' + f);
    if (box) box.addEventListener('change', apply);
  });
  function move(step) {
    var vis = secs.filter(function (s) { return !s.hidden; });
    if (!vis.length) return;
    var at = vis.map(function (s) { return '#' + s.id; }).indexOf(location.hash);
    var next = at < 0 ? (step > 0 ? 0 : vis.length - 1) : Math.min(vis.length - 1, Math.max(0, at + step));
    location.hash = '#' + vis[next].id;
  }
  document.addEventListener('keydown', function (ev) {
    if (ev.target && ev.target.tagName === 'SELECT') return;
    if (ev.key === 'j' || ev.key === 'ArrowDown') { move(1); ev.preventDefault(); }
    if (ev.key === 'k' || ev.key === 'ArrowUp') { move(-1); ev.preventDefault(); }
  });
  apply();
});
"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Nothing may be fetched or run but the page's own style, its one script and data-URI images:
# a value that escaped escaping still could not load or execute anything.
CSP = (
    "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
    f"style-src {_hash(CSS)}; script-src {_hash(SCRIPT)}; base-uri 'none'; form-action 'none'\">"
)
