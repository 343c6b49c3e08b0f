"""Builds the offline crawl test site (media, pages with licence marks, an RSS feed)."""

from __future__ import annotations

from pathlib import Path

from tests.audio_fixtures import speech_clip, write_encoded, write_mp3, write_wav
from tests.http_server import Site

HOSTILE_TITLE = (
    "../../../etc/passwd $(touch /tmp/speechmill-pwned) `id` ; rm -rf / "
    "\x1b[31mred\x1b[0m \u202eevil\u202c " + "long " * 70
)

CC_PAGE = """<!doctype html><html lang="en"><head><title>Lecture</title>
<meta property="og:title" content="A lecture on rivers">
<meta name="author" content="Ada Teacher"></head><body>
<audio controls src="/media/lecture.mp3"></audio>
<p><a rel="license" href="https://creativecommons.org/licenses/by/4.0/">CC BY 4.0</a></p>
</body></html>"""

ARR_PAGE = """<!doctype html><html lang="en"><head><title>Clip</title>
<meta property="og:title" content="A private clip"></head><body>
<video controls src="/media/clip.m4a"></video>
<footer>Copyright 2026 Example Media. All rights reserved.</footer></body></html>"""

HOSTILE_PAGE = """<!doctype html><html><head>
<meta property="og:title" content="{title}"></head><body>
<audio src="/media/hostile.mp3"></audio>
<a rel="license" href="https://creativecommons.org/publicdomain/zero/1.0/">CC0</a>
</body></html>"""


def feed_xml(site: Site, episodes: int) -> str:
    items = []
    files = [
        ("episode1.ogg", "audio/ogg"),
        ("episode2.m4a", "audio/mp4"),
        ("episode3.mp3", "audio/mpeg"),
    ]
    for i, (name, mime) in enumerate(files[:episodes], start=1):
        items.append(f"""<item><title>Episode {i}</title><guid>ep-{i}</guid>
<pubDate>Mon, 0{i} Jun 2026 10:00:00 GMT</pubDate><itunes:duration>0:0{i}</itunes:duration>
<enclosure url="{site.url("/media/" + name)}" type="{mime}" length="1000"/></item>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"
 xmlns:creativeCommons="http://backend.userland.com/creativeCommonsRssModule">
<channel><title>Test podcast</title><link>{site.url("/")}</link>
<itunes:author>Pat Podcaster</itunes:author><language>en</language>
<creativeCommons:license>http://creativecommons.org/licenses/by-sa/4.0/</creativeCommons:license>
{"".join(items)}</channel></rss>"""


def build(site: Site) -> dict[str, str]:
    """Populate the site; returns name -> URL of everything a test may point at."""
    media = site.root / "media"
    media.mkdir(parents=True, exist_ok=True)
    write_wav(media / "talk.wav", speech_clip(sentence=0), 16000)
    write_mp3(media / "talk.mp3", speech_clip(sentence=1), 16000)
    write_mp3(media / "lecture.mp3", speech_clip(sentence=2), 16000)
    write_encoded(media / "clip.m4a", speech_clip(sentence=3), 16000, "ipod", "aac")
    write_encoded(
        media / "episode1.ogg", speech_clip(sentence=0, seconds_pad=0.5), 16000, "ogg", "libopus"
    )
    write_encoded(
        media / "episode2.m4a", speech_clip(sentence=1, seconds_pad=0.5), 16000, "ipod", "aac"
    )
    write_mp3(media / "episode3.mp3", speech_clip(sentence=2, seconds_pad=0.5), 16000)
    write_mp3(media / "hostile.mp3", speech_clip(sentence=3, seconds_pad=0.2), 16000)
    whole = (media / "talk.mp3").read_bytes()
    (media / "truncated.mp3").write_bytes(whole[:400])
    site.add_bytes("/media/html.mp3", b"<html><body>not audio</body></html>" * 20, "audio/mpeg")
    site.add_bytes("/media/zero.mp3", b"", "audio/mpeg")
    site.add_status("/media/missing.mp3", 404)
    site.add_file("cc.html", CC_PAGE)
    site.add_file("arr.html", ARR_PAGE)
    site.add_file("hostile.html", HOSTILE_PAGE.format(title=HOSTILE_TITLE.replace('"', "&quot;")))
    site.add_file("feed.xml", feed_xml(site, 2))
    return {
        "talk_wav": site.url("/media/talk.wav"),
        "talk_mp3": site.url("/media/talk.mp3"),
        "truncated": site.url("/media/truncated.mp3"),
        "html_as_mp3": site.url("/media/html.mp3"),
        "zero": site.url("/media/zero.mp3"),
        "missing": site.url("/media/missing.mp3"),
        "cc_page": site.url("/cc.html"),
        "arr_page": site.url("/arr.html"),
        "hostile_page": site.url("/hostile.html"),
        "feed": site.url("/feed.xml"),
    }


def add_episode(site: Site) -> None:
    site.add_file("feed.xml", feed_xml(site, 3))


def config_text(
    root: Path, urls: dict[str, str], list_file: Path, refused: str, policy: str = ""
) -> str:
    list_file.write_text(
        "\n".join(
            [
                "# direct media and broken entries",
                urls["talk_wav"],
                urls["talk_mp3"],
                urls["truncated"],
                urls["html_as_mp3"],
                urls["zero"],
                urls["missing"],
                refused,
            ]
        )
        + "\n"
    )
    return f"""
store: {{root: {root}}}
crawl:
  allow_hosts: [127.0.0.1]
  socket_timeout_s: 5
  retries: 0
  backoff_s: 0
sources:
  - kind: list
    name: direct
    path: {list_file}
    rate_limit_s: 0
  - kind: ytdlp
    name: pages-cc
    url: {urls["cc_page"]}
    rate_limit_s: 0{policy}
  - kind: ytdlp
    name: pages-arr
    url: {urls["arr_page"]}
    rate_limit_s: 0{policy}
  - kind: ytdlp
    name: hostile
    url: {urls["hostile_page"]}
    rate_limit_s: 0
  - kind: rss
    name: podcast
    url: {urls["feed"]}
    rate_limit_s: 0{policy}
"""


# --- pages and feeds for the hardening tests (robots, headers, statements, stalls) ------

TEXT_LICENCE_PAGE = """<!doctype html><html lang="en"><head><title>Talk</title></head><body>
<audio controls src="/media/spoken.mp3"></audio>
<footer><p>This recording is licensed under a Creative Commons Attribution 4.0
International License.</p></footer></body></html>"""

# JSON-LD is JSON: `\ud800` escapes decode to lone surrogates, which yt-dlp hands on as
# the item's title, uploader and tags (a real route for text Arrow cannot store).
SURROGATE_LD_PAGE = """<!doctype html><html><head><title>x</title>
<script type="application/ld+json">{{"@context": "https://schema.org", "@type": "AudioObject",
"contentUrl": "{media}", "name": "Talk \\ud800 one", "author": {{"@type": "Person",
"name": "Ann \\udfff"}}, "keywords": "rivers,\\ud801deltas"}}</script></head>
<body><p>A talk.</p></body></html>"""


def add_media(site: Site, path: str, sentence: int = 0, pad: float = 0.3) -> str:
    """An MP3 of a spoken sentence at ``path``; returns its URL."""
    file = site.root / path.lstrip("/")
    file.parent.mkdir(parents=True, exist_ok=True)
    write_mp3(file, speech_clip(sentence=sentence, seconds_pad=pad), 16000)
    return site.url(path)


def simple_feed(site: Site, items: list[tuple[str, str]], keywords: str = "") -> str:
    """An RSS 2.0 feed of (title, media path) items (titles inserted as given, XML-escaped)."""
    from xml.sax.saxutils import escape

    body = "".join(
        f"<item><title>{escape(title)}</title><guid>g-{i}</guid>"
        f"<itunes:keywords>{escape(keywords)}</itunes:keywords>"
        f'<enclosure url="{site.url(path)}" type="audio/mpeg" length="1000"/></item>'
        for i, (title, path) in enumerate(items)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">
<channel><title>Feed</title><link>{site.url("/")}</link><language>en</language>
{body}</channel></rss>"""


def stall_site(site: Site, stalls: int, fast: int) -> tuple[list[str], list[str]]:
    """``stalls`` media URLs that stall after their headers and ``fast`` good ones."""
    media = site.root / "media"
    media.mkdir(parents=True, exist_ok=True)
    one = write_mp3(media / "fast.mp3", speech_clip(sentence=1, seconds_pad=0.1), 16000)
    data = one.read_bytes()
    fast_urls = []
    for i in range(fast):
        site.add_file(f"media/fast-{i}.mp3", data)
        fast_urls.append(site.url(f"/media/fast-{i}.mp3"))
    stall_urls = []
    for i in range(stalls):
        site.add_stall(f"/stall/{i}.mp3")
        stall_urls.append(site.url(f"/stall/{i}.mp3"))
    return stall_urls, fast_urls
