"""Crawling against a local HTTP server on 127.0.0.1 (the tests start it; no other address)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from speechmill.config import load_config
from speechmill.pipelines.corpus import plan, run_corpus
from speechmill.store import Store, new_run_id
from tests import http_server
from tests.crawl_site import HOSTILE_TITLE, add_episode, build, config_text
from tests.fakes import FakeFactory
from tests.http_server import refused_url
from tests.pipeline.helpers import check_accounting, no_duplicates, rows

http_site = http_server.http_site
CC_ONLY = "\n    license_policy: {allow: [cc-by, cc-by-sa, cc0]}"


def run(cfg, **kw):
    return run_corpus(
        cfg, factory=FakeFactory(), progress=False, pipeline="refresh", lock=True, **kw
    )


@pytest.fixture
def site(http_site):
    return http_site, build(http_site)


def test_crawl_fetches_good_items_and_rejects_broken_ones(tmp_path: Path, site) -> None:
    _, urls = site
    root = tmp_path / "ds"
    cfg = load_config(text=config_text(root, urls, tmp_path / "urls.txt", refused_url()))
    (run_id,) = run(cfg).run_ids
    check_accounting(root, run_id)
    outcome = dict(
        rows(
            root,
            """
        select s.url, coalesce(j.category, case when s.recording_id is null then 'none'
                                              else 'ok' end)
        from sources s left join rejects j on j.item_id = s.media_id""",
        )
    )
    by_name = {u.rsplit("/", 1)[-1]: v for u, v in outcome.items()}
    assert by_name == {
        "talk.wav": "ok",
        "talk.mp3": "ok",
        "lecture.mp3": "ok",
        "clip.m4a": "ok",
        "hostile.mp3": "ok",
        "episode1.ogg": "ok",
        "episode2.m4a": "ok",
        "truncated.mp3": "too_short",
        "html.mp3": "undecodable",
        "zero.mp3": "empty",
        "missing.mp3": "not_found",
        "x": "network",
    }
    retry = dict(rows(root, "select category, retryable from rejects"))
    assert retry["network"] is True and retry["not_found"] is False and retry["empty"] is False
    # licences from the page marks and the feed, attribution on recordings and segments
    lic = dict(rows(root, "select title, license from sources where title is not null"))
    assert lic["A lecture on rivers (1)"] == "cc-by-4.0"
    assert lic["A private clip (1)"] == "all-rights-reserved"
    assert lic["Episode 1"] == "cc-by-sa-4.0"
    att = rows(
        root,
        "select r.license, r.attribution.author, g.license from recordings r "
        "join segments g using (recording_id) where r.license = 'cc-by-4.0'",
    )
    assert att and all(a == ("cc-by-4.0", "Ada Teacher", "cc-by-4.0") for a in att)
    # the podcast's declared metadata
    ep = rows(root, "select upload_date, duration_s, author from sources where title = 'Episode 2'")
    assert str(ep[0][0]) == "2026-06-02" and ep[0][1] == 2.0 and ep[0][2] == "Pat Podcaster"


def test_generic_ids_never_collide(tmp_path: Path, site) -> None:
    _, urls = site
    cfg = load_config(text=config_text(tmp_path / "ds", urls, tmp_path / "urls.txt", refused_url()))
    work = plan(cfg, Store(str(tmp_path / "ds")), new_run_id(), dry_run=True)
    ids = {it.url.rsplit("/", 1)[-1]: it.media_id for _, it, _ in work.decisions()}
    work.close()
    assert ids["talk.mp3"] != ids["talk.wav"]
    assert len(set(ids.values())) == len(ids)


def test_hostile_metadata_is_data_only(tmp_path: Path, site) -> None:
    _, urls = site
    root = tmp_path / "ds"
    cfg = load_config(text=config_text(root, urls, tmp_path / "urls.txt", refused_url()))
    before = set(os.listdir(tmp_path))
    run(cfg)
    (title,) = rows(root, "select title from sources where url like '%hostile.mp3'")[0]
    assert title == HOSTILE_TITLE + " (1)"  # verbatim, control characters and all
    assert not Path("/tmp/speechmill-pwned").exists()
    assert set(os.listdir(tmp_path)) - before <= {"ds"}
    for p in root.rglob("*"):  # every name in the store comes from ids and hashes
        assert "passwd" not in str(p) and "$(" not in str(p) and "\u202e" not in str(p)


def test_licence_policy_filters_before_any_download(tmp_path: Path, site) -> None:
    s, urls = site
    root = tmp_path / "ds"
    cfg = load_config(
        text=config_text(root, urls, tmp_path / "urls.txt", refused_url(), policy=CC_ONLY)
    )
    run(cfg)
    assert s.hits["/media/clip.m4a"] == 0  # the all-rights-reserved item is never fetched
    rej = rows(
        root,
        "select r.category, r.reason from rejects r join sources s "
        "on r.item_id = s.media_id where s.url like '%clip.m4a'",
    )
    assert rej[0][0] == "policy_license" and "all-rights-reserved" in rej[0][1]
    assert rows(root, "select count(*) from recordings where license = 'all-rights-reserved'") == [
        (0,)
    ]


def test_refresh_processes_exactly_the_new_episode(tmp_path: Path, site) -> None:
    s, urls = site
    root = tmp_path / "ds"
    text = f"""
store: {{root: {root}}}
crawl: {{allow_hosts: [127.0.0.1], retries: 0}}
sources:
  - {{kind: rss, name: podcast, url: "{urls["feed"]}", rate_limit_s: 0,
     license_policy: {{allow: [cc-by, cc-by-sa, cc0]}}}}
  - {{kind: ytdlp, name: pages, url: "{urls["arr_page"]}", rate_limit_s: 0,
     license_policy: {{allow: [cc-by, cc-by-sa, cc0]}}}}
"""
    cfg = load_config(text=text)
    first = run(cfg)
    assert len(first.run_ids) == 1
    fetched = s.hits["/media/episode1.ogg"]
    second = run(cfg)  # nothing changed: nothing committed, nothing downloaded
    assert second.run_ids == []
    assert s.hits["/media/episode1.ogg"] == fetched
    add_episode(s)
    third = run(cfg)
    (run3,) = third.run_ids
    assert [
        u.rsplit("/", 1)[-1]
        for (u,) in rows(root, f"select url from sources_history where run_id = '{run3}'")
    ] == ["episode3.mp3"]
    check_accounting(root, run3)
    no_duplicates(root)
    assert s.hits["/media/clip.m4a"] == 0
    assert rows(root, "select count(*) from recordings") == [(3,)]


def test_two_refreshes_never_overlap(tmp_path: Path, site) -> None:
    from speechmill.errors import LockedError

    _, urls = site
    root = tmp_path / "ds"
    store = Store(str(root))
    cfg = load_config(
        text=f"store: {{root: {root}}}\ncrawl: {{allow_hosts: [127.0.0.1]}}\n"
        f"sources:\n  - {{kind: rss, url: '{urls['feed']}'}}\n"
    )
    with store.lock("refresh"), pytest.raises(LockedError, match="break-lock"):
        run(cfg)
    # a lock left by a dead process is taken over
    lock = Path(store.lock_path())
    stale = {"host": os.uname().nodename, "pid": 4194000, "started_at": "2026-01-01T00:00:00+00:00"}
    lock.write_text(json.dumps(stale))
    assert len(run(cfg).run_ids) == 1
    assert not lock.exists()


def test_private_addresses_are_refused_unless_allowed(tmp_path: Path, site) -> None:
    _, urls = site
    root = tmp_path / "ds"
    cfg = load_config(
        text=f"store: {{root: {root}}}\n"
        f"sources:\n  - {{kind: rss, url: '{urls['feed']}'}}\n"
        f"  - {{kind: ytdlp, url: '{urls['talk_wav']}'}}\n"
    )
    run(cfg)
    cats = {c for (c,) in rows(root, "select category from rejects")}
    assert cats == {"blocked_host"}
    assert rows(root, "select count(*) from recordings") == [(0,)]


def test_endless_downloads_are_cut_at_the_size_cap_and_redirects_are_checked(
    tmp_path: Path, http_site
) -> None:
    http_site.add_chunked_endless("/live.mp3")
    http_site.add_redirect("/meta.mp3", "http://169.254.169.254/latest/meta-data/")
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{http_site.url('/live.mp3')}\n{http_site.url('/meta.mp3')}\n")
    root = tmp_path / "ds"
    cfg = load_config(
        text=f"""
store: {{root: {root}}}
crawl: {{allow_hosts: [127.0.0.1], max_filesize_bytes: 300000, retries: 0,
        socket_timeout_s: 5}}
sources:
  - {{kind: list, path: {urls}, rate_limit_s: 0}}
"""
    )
    run(cfg)
    got = dict(
        rows(
            root, "select s.url, j.category from sources s join rejects j on j.item_id = s.media_id"
        )
    )
    assert got[http_site.url("/live.mp3")] == "too_large"
    assert got[http_site.url("/meta.mp3")] == "blocked_host"
    assert http_site.errors == []
