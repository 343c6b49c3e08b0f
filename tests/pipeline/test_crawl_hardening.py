"""Crawl hardening (issue 10): remote text, header casing, robots.txt, licence statements,
concurrent fetches, listed URLs. Every server is a local one on 127.0.0.1 the test starts."""

from __future__ import annotations

import itertools
from pathlib import Path

from speechmill.config import load_config
from speechmill.pipelines.corpus import run_corpus
from tests import http_server
from tests.crawl_site import (
    CC_PAGE,
    SURROGATE_LD_PAGE,
    TEXT_LICENCE_PAGE,
    add_media,
    simple_feed,
    stall_site,
)
from tests.fakes import FakeFactory
from tests.http_server import Site
from tests.pipeline.helpers import check_accounting, rows

http_site = http_server.http_site
CC_ONLY = "license_policy: {allow: [cc-by, cc-by-sa, cc0]}"


def run(cfg):
    return run_corpus(cfg, factory=FakeFactory(), progress=False)


def config(root: Path, sources: str, crawl: str = "") -> object:
    return load_config(
        text=f"""
store: {{root: {root}}}
crawl: {{allow_hosts: [127.0.0.1], socket_timeout_s: 5, retries: 0, backoff_s: 0{crawl}}}
sources:
{sources}
"""
    )


def url_list(tmp_path: Path, urls: list[str], name: str = "urls.txt") -> Path:
    path = tmp_path / name
    path.write_text("".join(u + "\n" for u in urls))
    return path


def outcomes(root: Path) -> dict[str, str]:
    """File name of each source's URL -> `ok` or its reject category."""
    got = rows(
        root,
        """select s.url, coalesce(j.category, case when s.recording_id is null then 'none'
                                         else 'ok' end)
           from sources s left join rejects j on j.item_id = s.media_id""",
    )
    return {url.rsplit("/", 1)[-1]: outcome for url, outcome in got}


# ------------------------------------------------------------------------- remote text


def test_remote_strings_with_lone_surrogates_and_noncharacters_are_stored(
    tmp_path: Path, http_site: Site
) -> None:
    media = add_media(http_site, "/media/ld.mp3")
    add_media(http_site, "/media/episode.mp3", sentence=1)
    http_site.add_file("ld.html", SURROGATE_LD_PAGE.format(media=media))
    # XML cannot carry a lone surrogate, but U+FDD0 and U+1FFFE (noncharacters) are XML
    http_site.add_file(
        "feed.xml",
        simple_feed(
            http_site, [("Episode \ufdd0 one", "/media/episode.mp3")], keywords="a\U0001fffe,b"
        ),
    )
    root = tmp_path / "ds"
    cfg = config(
        root,
        f"""  - {{kind: ytdlp, name: ld, url: "{http_site.url("/ld.html")}", rate_limit_s: 0}}
  - {{kind: rss, name: feed, url: "{http_site.url("/feed.xml")}", rate_limit_s: 0}}
""",
    )
    (run_id,) = run(cfg).run_ids
    check_accounting(root, run_id)
    got = {
        r[0]: r[1:]
        for r in rows(root, "select source_name, title, author, tags, recording_id from sources")
    }
    assert got["ld"][:3] == ("Talk \ufffd one", "Ann \ufffd", ["rivers", "\ufffddeltas"])
    assert got["feed"][:3] == ("Episode \ufffd one", None, ["a\ufffd", "b"])
    assert got["ld"][3] is not None and got["feed"][3] is not None  # both fetched
    assert rows(root, "select count(*) from rejects") == [(0,)]


# ------------------------------------------------------------------------- header casing


def test_header_names_are_matched_whatever_their_case(tmp_path: Path, http_site: Site) -> None:
    http_site.spell_headers("Content-type", "etag", "LAST-MODIFIED")  # http.server's style
    add_media(http_site, "/media/lecture.mp3", sentence=2)
    add_media(http_site, "/media/episode.mp3", sentence=1)
    http_site.add_file("cc.html", CC_PAGE)
    http_site.add_file("feed.xml", simple_feed(http_site, [("One", "/media/episode.mp3")]))
    root = tmp_path / "ds"
    cfg = config(
        root,
        f"""  - {{kind: ytdlp, name: page, url: "{http_site.url("/cc.html")}", rate_limit_s: 0,
     {CC_ONLY}}}
  - {{kind: rss, name: feed, url: "{http_site.url("/feed.xml")}", rate_limit_s: 0}}
""",
    )
    run(cfg)
    # the page is HTML despite `Content-type`: its rel=license link is read and the
    # CC-only policy lets the recording through
    assert outcomes(root)["lecture.mp3"] == "ok"
    assert rows(root, "select license from sources where source_name = 'page'") == [("cc-by-4.0",)]
    # `etag` / `LAST-MODIFIED` became the feed's watermark: the next refresh asks with them
    second = run(cfg)
    assert second.unchanged == ["feed"]
    feed_gets = [r for r in http_site.requests if r.path == "/feed.xml"]
    assert "If-None-Match" in feed_gets[-1].headers
    assert "If-Modified-Since" in feed_gets[-1].headers


# ------------------------------------------------------------------------- robots.txt

ROBOTS = """# a comment
User-agent: otherbot
Disallow: /

User-agent: *
Disallow: /private/
"""


def test_robots_txt_is_honoured_before_any_download(tmp_path: Path, http_site: Site) -> None:
    http_site.add_file("robots.txt", ROBOTS)
    ok = add_media(http_site, "/media/ok.mp3")
    secret = add_media(http_site, "/private/secret.mp3", sentence=1)
    add_media(http_site, "/media/episode.mp3", sentence=2)
    http_site.add_file("private/feed.xml", simple_feed(http_site, [("E", "/media/episode.mp3")]))
    http_site.add_file("feed.xml", simple_feed(http_site, [("S", "/private/secret.mp3")]))
    urls = url_list(tmp_path, [ok, secret])
    sources = f"""  - {{kind: list, name: direct, path: {urls}, rate_limit_s: 0}}
  - {{kind: rss, name: hidden-feed, url: "{http_site.url("/private/feed.xml")}", rate_limit_s: 0}}
  - {{kind: rss, name: feed, url: "{http_site.url("/feed.xml")}", rate_limit_s: 0}}
"""
    root = tmp_path / "ds"
    (run_id,) = run(config(root, sources)).run_ids
    check_accounting(root, run_id)
    assert http_site.hits["/robots.txt"] == 1  # once per host per run
    assert http_site.hits["/private/secret.mp3"] == 0  # neither listed nor downloaded
    assert http_site.hits["/private/feed.xml"] == 0
    got = rows(
        root,
        "select s.source_name, s.url, j.category, j.stage, j.retryable, j.reason "
        "from rejects j join sources s on s.media_id = j.item_id order by 1",
    )
    assert [(g[0], g[1].rsplit("/", 1)[-1], *g[2:5]) for g in got] == [
        ("direct", "secret.mp3", "policy_robots", "discover", False),
        ("feed", "secret.mp3", "policy_robots", "discover", False),
        ("hidden-feed", "feed.xml", "policy_robots", "discover", False),
    ]
    assert all("robots.txt" in g[5] for g in got)
    assert outcomes(root)["ok.mp3"] == "ok"

    # crawl.respect_robots: false (for sites you own) fetches everything
    root2 = tmp_path / "ds2"
    run(config(root2, sources, crawl=", respect_robots: false"))
    assert http_site.hits["/robots.txt"] == 1
    assert http_site.hits["/private/secret.mp3"] > 0
    assert outcomes(root2)["secret.mp3"] == "ok"
    assert rows(root2, "select count(*) from rejects") == [(0,)]


def test_a_refresh_rechecks_robots_txt(tmp_path: Path, http_site: Site) -> None:
    http_site.add_file("robots.txt", "User-agent: *\nDisallow: /media/\n")
    url = add_media(http_site, "/media/ok.mp3")
    root = tmp_path / "ds"
    cfg = config(root, f"  - {{kind: list, path: {url_list(tmp_path, [url])}, rate_limit_s: 0}}\n")
    run(cfg)
    assert outcomes(root)["ok.mp3"] == "policy_robots"
    assert run(cfg).run_ids == []  # the same decision is not written twice
    http_site.add_file("robots.txt", "User-agent: *\nDisallow: /private/\n")
    (run3,) = run(cfg).run_ids
    check_accounting(root, run3)
    assert rows(
        root,
        f"select recording_id is not null from sources_history where run_id = '{run3}'",
    ) == [(True,)]
    assert rows(root, f"select count(*) from rejects_history where run_id = '{run3}'") == [(0,)]


def test_crawl_delay_spaces_the_downloads_from_a_host(tmp_path: Path, http_site: Site) -> None:
    http_site.add_file("robots.txt", "User-agent: *\nCrawl-delay: 1\nDisallow:\n")
    paths = [f"/media/e{i}.mp3" for i in range(3)]
    for i, p in enumerate(paths):
        add_media(http_site, p, sentence=i, pad=0.1)
    http_site.add_file("feed.xml", simple_feed(http_site, [(p, p) for p in paths]))
    root = tmp_path / "ds"
    # rate_limit_s: 0 and 8 fetch threads: only Crawl-delay keeps the requests apart
    cfg = config(root, f'  - {{kind: rss, url: "{http_site.url("/feed.xml")}", rate_limit_s: 0}}\n')
    run(cfg)
    assert set(outcomes(root).values()) == {"ok"}
    starts = http_site.first_requests(paths)  # the feed never fetches its enclosures
    assert len(starts) == 3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.85, gaps  # a lower bound only (less scheduling jitter)


# ------------------------------------------------------------------------- licence text


def test_a_licence_stated_only_in_the_page_text_is_read(tmp_path: Path, http_site: Site) -> None:
    add_media(http_site, "/media/spoken.mp3")
    http_site.add_file("talk.html", TEXT_LICENCE_PAGE)
    root = tmp_path / "ds"
    cfg = config(
        root,
        f"""  - {{kind: ytdlp, url: "{http_site.url("/talk.html")}", rate_limit_s: 0, {CC_ONLY}}}
""",
    )
    run(cfg)
    assert outcomes(root) == {"spoken.mp3": "ok"}
    ((lic, raw),) = rows(root, "select license, license_raw from sources")
    assert lic == "cc-by-4.0"
    assert raw == "Creative Commons Attribution 4.0 International License"


# ------------------------------------------------------------------------- concurrency


def _overlap(spans: list[tuple[str, float, float]], prefix: str) -> float:
    """The longest time two requests for different paths under `prefix` were both open."""
    mine = [s for s in spans if s[0].startswith(prefix)]
    best = 0.0
    for (p1, a1, b1), (p2, a2, b2) in itertools.combinations(mine, 2):
        if p1 != p2:
            best = max(best, min(b1, b2) - max(a1, a2))
    return best


def test_stalling_servers_do_not_serialise_the_fetch_stage(tmp_path: Path, http_site: Site) -> None:
    stalls, fast = stall_site(http_site, stalls=2, fast=2)
    urls = url_list(tmp_path, stalls + fast)
    sources = f"  - {{kind: list, path: {urls}, rate_limit_s: 0}}\n"
    quick = ", socket_timeout_s: 1, item_deadline_s: 2"
    outcome: dict[int, dict[str, tuple[str, bool]]] = {}
    for threads in (1, 4):
        root = tmp_path / f"ds-{threads}"
        http_site.spans.clear()
        cfg = config(root, sources, crawl=f"{quick}, fetch_concurrency: {threads}")
        (run_id,) = run(cfg).run_ids
        check_accounting(root, run_id)
        outcome[threads] = {
            u.rsplit("/", 1)[-1]: (c or "ok", bool(r))
            for u, c, r in rows(
                root,
                "select s.url, j.category, j.retryable from sources s "
                "left join rejects j on j.item_id = s.media_id",
            )
        }
        if threads > 1:  # the two stalled downloads were waited for at the same time
            assert _overlap(http_site.spans, "/stall/") >= 0.5
    assert outcome[1] == outcome[4]
    assert outcome[4] == {
        "0.mp3": ("timeout", True),
        "1.mp3": ("timeout", True),
        "fast-0.mp3": ("ok", False),
        "fast-1.mp3": ("ok", False),
    }


# ------------------------------------------------------------------------- listed URLs


def test_a_redirected_item_keeps_the_url_it_was_listed_under(
    tmp_path: Path, http_site: Site
) -> None:
    target = add_media(http_site, "/media/x.mp3")
    plain = add_media(http_site, "/media/y.mp3", sentence=1)
    http_site.add_redirect("/redirect/x.mp3", "/media/x.mp3")
    listed = [http_site.url("/redirect/x.mp3"), plain]
    root = tmp_path / "ds"
    cfg = config(root, f"  - {{kind: list, path: {url_list(tmp_path, listed)}, rate_limit_s: 0}}\n")
    (run_id,) = run(cfg).run_ids
    check_accounting(root, run_id)
    got = dict(rows(root, "select url, listed_url from sources"))
    assert got == {target: listed[0], plain: None}
    # a user's list joins the sources table on coalesce(listed_url, url)
    by_listed = dict(rows(root, "select coalesce(listed_url, url), recording_id from sources"))
    assert set(by_listed) == set(listed) and all(by_listed.values())
