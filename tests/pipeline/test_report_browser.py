"""The HTML report in a real browser: headless Chromium over the DevTools protocol.

The report of a small dataset of every table (with hostile titles, authors, URLs,
source names and reasons) is opened from a file:// URL. Checked: the plots render
(SVG elements with drawn paths, of a real size), the page logs no error or warning,
requests nothing but itself, opens no dialog and runs no script but its own (whose
table sorting works under the page's Content-Security-Policy), and a full-page
screenshot is a real picture. Skipped where Chromium is not installed (`.ci/run`
installs Debian's `chromium` when it runs as root).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from speechmill.report_html import write_report
from speechmill.store import Store
from tests.browser import Chromium, find_chromium
from tests.unit.test_report_html import HOSTILE_SOURCE, HOSTILE_TITLE, build_dataset

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="chromium not installed: apt-get install chromium (.ci/run installs it)",
)

PLOTS_WITH_DRAWINGS = """
Array.from(document.querySelectorAll('figure.plot svg')).filter(function (s) {
  var r = s.getBoundingClientRect();
  return s.querySelector('path, rect') !== null && r.width > 200 && r.height > 80;
}).length
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with Chromium() as b:
        yield b


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = build_dataset(tmp_path_factory.mktemp("browser") / "ds")
    return Path(write_report(store, progress=False))


def png_picture(png: bytes) -> tuple[int, int, int]:
    """(width, height, distinct colours) of a PNG."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 24) or []
    return img.width, img.height, len(colours)


def test_the_report_renders_in_chromium(browser: Chromium, report: Path) -> None:
    page = browser.open(report.as_uri(), width=1200, height=900)
    assert page.evaluate("document.title").startswith("speechmill report: ")
    figures = page.evaluate("document.querySelectorAll('figure.plot').length")
    assert figures >= 15
    assert page.evaluate(PLOTS_WITH_DRAWINGS) == figures  # every plot drawn, at a real size
    assert page.evaluate("document.querySelectorAll('svg text').length") > 100  # axes, labels
    assert page.evaluate("document.querySelectorAll('section').length") == 9
    # remote text is shown as text, and nothing of it became an element or ran
    text = page.evaluate("document.body.innerText")
    assert HOSTILE_TITLE in text and HOSTILE_SOURCE in text
    assert page.evaluate("document.querySelectorAll('img, iframe, object, embed').length") == 0
    assert page.evaluate("document.scripts.length") == 1
    assert page.dialogs() == []
    # the page's own script runs under its CSP: a click on a heading sorts the table
    rows = "document.querySelectorAll('table[data-table=\"rejects-category\"] tbody tr')"
    items = f"Array.from({rows}).map(function (r) {{ return +r.cells[2].getAttribute('data-v'); }})"
    before = page.evaluate(items)
    page.evaluate(
        "document.querySelectorAll('table[data-table=\"rejects-category\"] th')[2].click()"
    )
    after = page.evaluate(items)
    assert after == sorted(before) and before != after
    # nothing but the file itself was requested; nothing was logged
    assert page.requests() == [report.as_uri()]
    assert page.problems() == []
    # a full-page screenshot is a picture, not a blank page
    png = page.screenshot(full_page=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    width, height, colours = png_picture(png)
    assert width == 1200 and height > 3000 and colours > 50


def test_an_empty_report_renders_without_problems(browser: Chromium, tmp_path: Path) -> None:
    out = Path(write_report(Store(str(tmp_path / "none")), tmp_path / "r.html", progress=False))
    page = browser.open(out.as_uri(), width=1000, height=700)
    assert "This dataset is empty" in page.evaluate("document.body.innerText")
    assert page.evaluate("document.querySelectorAll('svg').length") == 0
    assert page.problems() == [] and page.requests() == [out.as_uri()]
    width, height, colours = png_picture(page.screenshot())
    assert (width, height) == (1000, 700) and colours > 10
