"""The fetch stage's thread pool: per-host limit, pacing, the host guard in every thread, and
the DoFn's outputs (every item accounted for). Servers are local (127.0.0.1)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from speechmill.config import AudioConfig, CrawlConfig
from speechmill.schemas import SourceItem
from speechmill.transforms.common import REJECTS, SOURCES
from speechmill.transforms.fetch import AcquireDoFn, _Fetcher
from tests import http_server
from tests.audio_fixtures import speech_clip, write_mp3, write_wav
from tests.http_server import Handler, Site

http_site = http_server.http_site
LOCAL = {"allow_hosts": ["127.0.0.1"], "retries": 0, "backoff_s": 0}


def item(url: str, name: str = "s", kind: str = "list") -> SourceItem:
    return SourceItem(
        media_id="url:" + url,
        source_name=name,
        kind=kind,
        url=url,
        listed_url=None,
        webpage_url=None,
        extractor=None,
        title=None,
        author=None,
        channel_id=None,
        license="cc0-1.0",
        license_raw=None,
        upload_date=None,
        duration_s=None,
        language="en",
        tags=[],
        size_bytes=None,
        etag=None,
        discovered_at=dt.datetime.now(dt.timezone.utc),
        recording_id=None,
        run_id="r1",
    )


def mp3_bytes(tmp_path: Path) -> bytes:
    return write_mp3(
        tmp_path / "a.mp3", speech_clip(sentence=1, seconds_pad=0.1), 16000
    ).read_bytes()


def test_at_most_per_host_concurrency_fetches_hit_one_host(tmp_path: Path, http_site: Site) -> None:
    data = mp3_bytes(tmp_path)
    release = threading.Event()

    def hold(h: Handler) -> None:
        release.wait(20)
        h.send_entity(data, "audio/mpeg")

    for i in range(4):
        http_site.route(f"/hold/{i}.mp3", hold)
    crawl = CrawlConfig(**LOCAL, socket_timeout_s=30, fetch_concurrency=4, per_host_concurrency=2)
    fetcher = _Fetcher(crawl, {"s": (0.0, None)}, {}, 10_000_000)
    try:
        jobs = [fetcher.submit(item(http_site.url(f"/hold/{i}.mp3"))) for i in range(4)]
        deadline = time.monotonic() + 20
        while len(http_site.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # four threads are free: only the host limit holds two back
        assert len(http_site.requests) == 2
        release.set()
        done = [j.result(timeout=60) for j in jobs]
    finally:
        release.set()
        fetcher.close()
    assert all(d.got is not None and d.failure is None for d in done)
    assert {r.path for r in http_site.requests} == {f"/hold/{i}.mp3" for i in range(4)}


def test_a_busy_host_does_not_take_threads_from_other_hosts(
    tmp_path: Path, http_site: Site
) -> None:
    data = mp3_bytes(tmp_path)
    http_site.add_file("b.mp3", data)
    release = threading.Event()

    def hold(h: Handler) -> None:
        release.wait(20)
        h.send_entity(data, "audio/mpeg")

    http_site.route("/a1.mp3", hold)
    http_site.route("/a2.mp3", hold)
    crawl = CrawlConfig(
        retries=0,
        allow_hosts=["127.0.0.1", "localhost"],
        socket_timeout_s=30,
        fetch_concurrency=2,
        per_host_concurrency=1,
    )
    fetcher = _Fetcher(crawl, {"s": (0.0, None)}, {}, 10_000_000)
    other = http_site.url("/b.mp3").replace("127.0.0.1", "localhost")  # another host name
    try:
        held = [fetcher.submit(item(http_site.url(p))) for p in ("/a1.mp3", "/a2.mp3")]
        fast = fetcher.submit(item(other))
        # a2 waits in its host's queue, not in the second thread: b is fetched meanwhile
        assert fast.result(timeout=30).got is not None
        assert not any(f.done() for f in held)
        assert http_site.hits["/a2.mp3"] == 0
        release.set()
        assert all(f.result(timeout=60).got is not None for f in held)
    finally:
        release.set()
        fetcher.close()


def test_every_fetch_thread_enters_the_host_guard(tmp_path: Path, http_site: Site) -> None:
    http_site.add_file("a.mp3", mp3_bytes(tmp_path))
    crawl = CrawlConfig(retries=0, fetch_concurrency=3)  # no allow_hosts: 127.0.0.1 is refused
    fetcher = _Fetcher(crawl, {"s": (0.0, None)}, {}, 10_000_000)
    try:
        done = [
            j.result(timeout=60)
            for j in [fetcher.submit(item(http_site.url("/a.mp3"))) for _ in range(3)]
        ]
    finally:
        fetcher.close()
    assert all(d.failure is not None and d.failure.category.value == "blocked_host" for d in done)
    assert http_site.hits["/a.mp3"] == 0


def test_pacing_holds_across_threads(tmp_path: Path, http_site: Site) -> None:
    data = mp3_bytes(tmp_path)
    paths = [f"/m/{i}.mp3" for i in range(4)]
    for p in paths:
        http_site.add_file(p, data)
    crawl = CrawlConfig(**LOCAL, fetch_concurrency=4, per_host_concurrency=4)
    # the source asks for 0.1 s, robots.txt's Crawl-delay for 0.4 s: the larger one holds
    fetcher = _Fetcher(crawl, {"s": (0.1, None)}, {"127.0.0.1": 0.4}, 10_000_000)
    try:
        for j in [fetcher.submit(item(http_site.url(p))) for p in paths]:
            assert j.result(timeout=60).got is not None
    finally:
        fetcher.close()
    starts = http_site.first_requests(paths)
    # a lower bound only: k gaps take at least 0.4 s each, less what thread scheduling (on
    # a loaded machine) adds to the first request and not the last (0.25 s allowed: a run
    # beside a full test suite once lost 0.15 s there); 0.1 s pacing would give 0.1 s
    # gaps, under the 0.15 s this still demands of the closest pair, and 0.3 s over the
    # whole span
    assert all(
        starts[j] - starts[i] >= 0.4 * (j - i) - 0.25
        for i, j in itertools.combinations(range(len(starts)), 2)
    )
    assert starts[-1] - starts[0] >= 1.05


def test_the_dofn_accounts_for_every_item(tmp_path: Path, http_site: Site) -> None:
    http_site.add_file("a.mp3", mp3_bytes(tmp_path))
    http_site.add_status("/gone.mp3", 410)
    local = write_wav(tmp_path / "l.wav", speech_clip(sentence=2), 16000)
    items = [
        item(http_site.url("/a.mp3")),
        item(http_site.url("/gone.mp3")),
        item("http://[::1"),  # unparseable: the fetch thread raises, the item is still counted
        dataclasses.replace(item(str(local), kind="local"), media_id="local:l"),
    ]
    crawl = CrawlConfig(**LOCAL, fetch_concurrency=2)
    with TestPipeline() as p:
        out = (
            p
            | beam.Create(items)
            | beam.ParDo(
                AcquireDoFn(
                    str(tmp_path / "ds"),
                    AudioConfig(),
                    "r1",
                    frozenset(),
                    crawl=crawl,
                    pacing={"s": (0.0, None)},
                )
            ).with_outputs(SOURCES, REJECTS, main="recordings")
        )
        assert_that(
            out.recordings | "RecMedia" >> beam.Map(lambda r: r.media_id),
            equal_to(["url:" + http_site.url("/a.mp3"), "local:l"]),
            label="recordings",
        )
        assert_that(
            out[SOURCES] | "SrcIds" >> beam.Map(lambda s: s.media_id),
            equal_to([i.media_id for i in items]),
            label="sources",
        )
        assert_that(
            out[REJECTS] | "Why" >> beam.Map(lambda r: (r.item_id, r.stage, r.category)),
            equal_to(
                [
                    ("url:" + http_site.url("/gone.mp3"), "fetch", "not_found"),
                    ("url:http://[::1", "fetch", "internal"),
                ]
            ),
            label="rejects",
        )
