"""Screenshot a dataset's HTML report with headless Chromium (the picture in the README).

    make demo                                   # demo-data/dataset; then refine and relabel
    .venv/bin/python scripts/report_screenshot.py demo-data/dataset docs/img/report.png \
        --height 2000

Writes the report (`speechmill.report_html.write_report`, to `<root>/report.html`
unless `--report` names a file), opens it in headless Chromium at `--width` CSS pixels
(default 1200), and saves the top `--height` pixels (default 1500; 0: the whole page)
as a PNG, reduced to a 256-colour palette to keep it small. Fails if the page logs an
error or warning, or requests anything but itself. Needs Debian's `chromium` (or
`$CHROMIUM`); the browser is driven by tests/browser.py, nothing is downloaded.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechmill.report_html import write_report
from speechmill.store import Store
from tests.browser import Chromium


def shrink(png: bytes) -> bytes:
    """The PNG with a 256-colour palette (plots and text survive it; a third of the size)."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, format="PNG", optimize=True
    )
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", help="dataset root")
    p.add_argument("out", type=Path, help="PNG to write")
    p.add_argument("--report", type=Path, help="write the report here (default: the root)")
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=1500, help="CSS pixels from the top; 0: all")
    args = p.parse_args(argv)
    html = Path(write_report(Store(args.root), args.report, progress=False))
    with Chromium() as browser:
        page = browser.open(html.as_uri(), width=args.width, height=900)
        png = page.screenshot(full_page=args.height == 0, max_height=args.height or None)
        problems = page.problems()
        others = [u for u in page.requests() if u != html.as_uri()]
    if problems or others:
        print("\n".join([*problems, *(f"requested {u}" for u in others)]), file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    small = shrink(png)
    args.out.write_bytes(small)
    print(f"{args.out}: {len(small) / 1024:.0f} KB (report {html})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
