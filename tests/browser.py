"""Measure a rendered report's layout in headless Chromium (no Python driver needed).

:func:`measure` copies the page, appends a script that records where the first headline
card and the first figure are and which elements stick out horizontally, and reads the
result back from Chromium's ``--dump-dom``. Elements inside a ``.scroll`` box may be wider
than the page (they scroll in their box); the box itself may not.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

_SCRIPT = r"""
<script>
window.addEventListener('load', function () {
  var W = document.documentElement.clientWidth, out = {width: W, overflow: []};
  function top(el) { return el ? el.getBoundingClientRect().top + window.scrollY : null; }
  function bottom(el) { return el ? el.getBoundingClientRect().bottom + window.scrollY : null; }
  var card = document.querySelector('.card');
  out.card_top = top(card); out.card_bottom = bottom(card);
  var img = document.querySelector('img');
  out.figure_top = top(img); out.figure_bottom = bottom(img);
  out.figure_height = img ? img.getBoundingClientRect().height : null;
  out.scroll_width = document.documentElement.scrollWidth;
  out.page_height = document.documentElement.scrollHeight;
  var all = document.body.querySelectorAll('*');
  for (var i = 0; i < all.length; i++) {
    var el = all[i], r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    var box = el.parentElement && el.parentElement.closest('.scroll, details:not([open])');
    if (box) continue;
    if (r.right > W + 1 || r.left < -1) {
      out.overflow.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') +
                        ' [' + Math.round(r.left) + ', ' + Math.round(r.right) + ']');
    }
  }
  var pre = document.createElement('pre'); pre.id = 'agval-layout';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>
"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if p := shutil.which(name):
            return p
    return None


def measure(html_path: Path, work: Path, *, width: int = 1400, height: int = 1500) -> dict:
    """Layout facts of ``html_path`` in a ``width`` x ``height`` headless window (px)."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed")
    page = work / f"{html_path.stem}-measured.html"
    page.write_text(html_path.read_text().replace("</body>", _SCRIPT + "</body>"))
    p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={width},{height}", "--virtual-time-budget=10000",
                        f"--user-data-dir={work / 'chromium-profile'}", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="agval-layout">(.*?)</pre>', p.stdout, re.S)
    if not m:
        raise RuntimeError(f"no layout result from chromium (rc {p.returncode}): {p.stderr[-2000:]}")
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                      .replace("&gt;", ">"))
