"""Serve the offline example site on 127.0.0.1 and crawl it, as the README shows.

    .venv/bin/python scripts/crawl_tour.py [WORKDIR]

The site (built by tests/crawl_site.py) has direct media files, pages embedding
<audio>/<video> with Creative Commons and "all rights reserved" marks, a page whose
licence is stated only in its text, a podcast feed, broken entries, and a
robots.txt that keeps crawlers out of /private/. The tour runs
`speechmill sources --dry-run`, then
`speechmill refresh` three times: the first fetches, the second finds nothing new,
the third picks up a new episode added to the feed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechmill.cli import main
from tests.crawl_site import TEXT_LICENCE_PAGE, add_episode, build
from tests.http_server import Site

CONFIG = """\
store: {{root: {root}}}
crawl:
  allow_hosts: [127.0.0.1]      # the example site is local; real crawls refuse private addresses
sources:
  - kind: rss
    name: podcast
    url: {feed}
    license_policy: {{allow: [cc-by, cc-by-sa, cc0]}}
  - kind: list
    name: pages
    path: {urls}
    license_policy: {{allow: [cc-by, cc-by-sa, cc0]}}
asr: {{beam_size: 5, n_best: 3}}
"""


def say(cmd: list[str]) -> None:
    print(f"\n$ speechmill {' '.join(cmd)}", flush=True)
    main(cmd)


def tour(work: Path) -> None:
    with Site(work / "site") as site:
        u = build(site)
        site.add_file("robots.txt", "User-agent: *\nDisallow: /private/\n")
        site.add_file("private/talk.mp3", (site.root / "media" / "talk.mp3").read_bytes())
        site.add_file("media/spoken.mp3", (site.root / "media" / "talk.mp3").read_bytes())
        site.add_file("statement.html", TEXT_LICENCE_PAGE)
        listed = [
            u["cc_page"],
            u["arr_page"],
            site.url("/statement.html"),
            site.url("/private/talk.mp3"),
            u["missing"],
        ]
        (work / "urls.txt").write_text("".join(x + "\n" for x in listed))
        cfg = work / "crawl.yaml"
        cfg.write_text(CONFIG.format(root=work / "data", feed=u["feed"], urls=work / "urls.txt"))
        say(["sources", str(cfg), "--dry-run"])
        say(["refresh", str(cfg), "--no-progress"])
        say(["refresh", str(cfg), "--no-progress"])
        add_episode(site)
        say(["refresh", str(cfg), "--no-progress"])
        say(["rejects", "--config", str(cfg), "--by", "reason"])


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="crawl-tour-"))
    shutil.rmtree(target / "data", ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    tour(target)
