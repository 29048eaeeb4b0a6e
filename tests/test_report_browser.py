"""The demo report as a browser shows it: Debian's headless Chromium at 1,000 and 1,200 px.

A copy of the report gets a script that measures the page after layout and writes the numbers into the DOM;
`chromium --headless --dump-dom` prints that DOM. Checked: no horizontal scrolling, every figure fits its column
at its natural size (nothing is scaled up or squeezed), natural sizes are sane, at least six figures, the verdict
comes first. Skipped where Chromium is absent, except in CI (CI=1), where it must be installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

MEASURE = """
<script>
window.addEventListener("load", () => {
  const root = document.documentElement;
  const figures = [...document.querySelectorAll("figure img")].map((img) => {
    const box = img.getBoundingClientRect();
    return {natural: [img.naturalWidth, img.naturalHeight], width: box.width, left: box.left, right: box.right,
            column: img.parentElement.clientWidth, complete: img.complete};
  });
  const wide = [...document.body.querySelectorAll("*")]
    .filter((e) => e.getBoundingClientRect().right > root.clientWidth + 0.5).map((e) => e.tagName);
  const first = document.body.querySelector("h1 ~ *");
  const out = document.createElement("pre");
  out.id = "measurements";
  out.textContent = JSON.stringify({inner: window.innerWidth, client: root.clientWidth, scroll: root.scrollWidth,
                                    figures, wide, first: first ? first.id : null});
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run) to check the report's layout")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); the report's layout is unchecked")
    return path


def measure(browser: str, page, width: int, profile) -> dict:
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={width},900",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="measurements">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no measurements in Chromium's DOM (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.parametrize("width", [1200, 1000])
def test_demo_report_fits_the_window_in_chromium(tiny_demo, tmp_path, width):
    browser = chromium()
    run, _ = tiny_demo
    page = tmp_path / "report.html"
    page.write_text((run / "report.html").read_text().replace("</body>", MEASURE + "</body>"))
    m = measure(browser, page, width, tmp_path / "profile")
    assert m["inner"] == width
    assert m["scroll"] <= m["client"], f"the page scrolls sideways: {m['scroll']} > {m['client']} ({m['wide'][:8]})"
    assert m["wide"] == []
    assert m["first"] == "verdict"
    figures = m["figures"]
    assert len(figures) >= 6
    for f in figures:
        natural_width, natural_height = f["natural"]
        assert f["complete"] and 300 <= natural_width <= 1100 and 100 <= natural_height <= 2000, f
        assert f["right"] <= m["client"] and f["width"] <= f["column"] + 0.5, f
        # shown at its natural size wherever the column allows it, never enlarged
        assert f["width"] == pytest.approx(min(natural_width, f["column"]), abs=1), f
