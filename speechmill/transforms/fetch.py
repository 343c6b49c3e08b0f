"""fetch/decode stage: local files or crawled media -> hashed, decoded 16 kHz mono FLAC."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from concurrent import futures
from typing import TYPE_CHECKING, Any

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from speechmill import progress as live
from speechmill.config import AudioConfig, CrawlConfig
from speechmill.core.audio.chunks import local_path
from speechmill.core.audio.io import AudioRejected, Transcoded, transcode_to_flac
from speechmill.core.crawl.fetch import (
    DEFAULT_RATE_S,
    HostPool,
    InFlight,
    Pacer,
    fetch_drop,
    first_by_media,
    host_of,
    local_size,
    recording_id_of,
    recording_of,
    retry,
)
from speechmill.faults import fault_point
from speechmill.schemas import Category, Drop, Dropped, Recording, SourceItem
from speechmill.store import Store, as_store, fs
from speechmill.transforms.common import SOURCES, internal_detail, reject

if TYPE_CHECKING:
    from speechmill.backends.ytdlp import Downloaded

STAGE = "decode"
FETCH_STAGE = "fetch"


def store_flac(
    store: Store, recording_id: str, src: str, audio: AudioConfig
) -> tuple[str, Transcoded]:
    """Transcode src into the media store (write-once); returns (relative uri, info)."""
    rel = Store.media_rel(recording_id)
    if not fs.is_remote(store.root):
        info = transcode_to_flac(
            src,
            store.path(rel),
            min_duration_s=audio.min_duration_s,
            max_duration_s=audio.max_duration_s,
        )
        return rel, info
    tmpdir = tempfile.mkdtemp(prefix="speechmill-")
    try:
        local = os.path.join(tmpdir, "a.flac")
        info = transcode_to_flac(
            src, local, min_duration_s=audio.min_duration_s, max_duration_s=audio.max_duration_s
        )
        fs.upload(local, store.path(rel))  # streamed: never whole in memory
        return rel, info
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@dataclasses.dataclass
class _Fetched:
    """What a fetch thread hands back: the download or the failure, in a temporary dir."""

    workdir: str
    got: Downloaded | None = None
    failure: Dropped | None = None


class _Fetcher:
    """Downloads with yt-dlp on a `HostPool`, paced per host by a `Pacer`, with `retry`.

    `fetch_concurrency` threads in all, and at most `per_host_concurrency` items of
    one host in the pool at a time (an item keeps its host slot through its
    retries). Consecutive requests to a host start at least the pacing interval
    apart: the source's `rate_limit_s`, raised to the host's robots.txt
    `Crawl-delay`. Each thread enters the host guard itself
    (`speechmill.backends.net.guarded` is thread-local). Only the download runs
    here; everything that emits rows runs on the DoFn's own thread.
    """

    def __init__(
        self,
        crawl: CrawlConfig,
        pacing: Mapping[str, tuple[float, str | None]],
        host_delays: Mapping[str, float],
        max_bytes: int,
    ) -> None:
        self._crawl = crawl
        self._pacing = pacing
        self._max_bytes = max_bytes
        self._pool = HostPool(
            crawl.fetch_concurrency,
            crawl.per_host_concurrency,
            thread_name_prefix="speechmill-fetch",
        )
        self._pacer = Pacer(host_delays)
        from speechmill.backends import ytdlp

        ytdlp.warm_up()  # once here, not in every thread at its first request

    def submit(self, item: SourceItem) -> futures.Future[_Fetched]:
        """Start (or queue behind its host's limit) one download; its future."""
        try:
            host = host_of(item.url)
        except ValueError as e:  # not a URL we can fetch: the item's reject says so
            out: futures.Future[_Fetched] = futures.Future()
            out.set_exception(e)
            return out
        return self._pool.submit(host, lambda: self._fetch(item, host))

    def close(self) -> None:
        self._pool.close()

    def _fetch(self, item: SourceItem, host: str) -> _Fetched:
        from speechmill.backends import ytdlp
        from speechmill.backends.net import HostPolicy, guarded

        crawl = self._crawl
        rate, cookies = self._pacing.get(item.source_name, (DEFAULT_RATE_S, None))
        interval = self._pacer.interval(host, rate)
        policy = HostPolicy(crawl.allow_private_networks, frozenset(crawl.allow_hosts))
        opts = ytdlp.base_options(socket_timeout=crawl.socket_timeout_s, cookies_file=cookies)
        workdir = tempfile.mkdtemp(prefix="speechmill-fetch-")

        def download() -> Downloaded:
            with guarded(policy):  # in this thread: the guard is thread-local
                return ytdlp.download(
                    item.url,
                    opts,
                    workdir,
                    max_bytes=self._max_bytes,
                    deadline_s=crawl.item_deadline_s,
                    before_start=lambda: self._pacer.wait(host, interval),
                )

        try:
            result = retry(download, crawl.retries, crawl.backoff_s)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        if isinstance(result, Dropped):
            return _Fetched(workdir, failure=result)
        return _Fetched(workdir, got=result)


def _discard(future: futures.Future[_Fetched]) -> None:
    if not future.cancelled() and future.exception() is None:
        shutil.rmtree(future.result().workdir, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class _Pending:
    item: SourceItem
    windowed: WindowedValue


class AcquireDoFn(beam.DoFn):
    """SourceItem -> Recording (main), the linked SourceItem (`sources`), or a reject.

    Local files are read in place (stage `decode`); crawled items are downloaded
    with yt-dlp into a temporary directory first (stage `fetch`), with retries,
    backoff, per-host pacing, a size cap and a deadline. Either way the bytes are
    hashed (the recording id) and decoded once into the media store.

    Crawled items are downloaded concurrently (`crawl.fetch_concurrency` threads per
    DoFn instance, `crawl.per_host_concurrency` per host, see `_Fetcher`), so one
    stalling server does not hold up the rest: `process` hands an item to the pool
    and emits the items whose downloads have finished; `finish_bundle` waits for the
    rest. Outputs of an item keep its own window and timestamp. Every item still
    gets its `sources` row and a recording or exactly one reject. `host_delays`
    (host name -> seconds, from robots.txt `Crawl-delay`) raise that host's pacing.
    The decisions and the timing live in `speechmill.core.crawl.fetch`.
    """

    def __init__(
        self,
        store: Store | str,
        audio: AudioConfig,
        run_id: str,
        committed_recordings: frozenset[str] = frozenset(),
        *,
        crawl: CrawlConfig | None = None,
        attempts: Mapping[str, int] | None = None,
        pacing: Mapping[str, tuple[float, str | None]] | None = None,
        host_delays: Mapping[str, float] | None = None,
        progress: bool = False,
        total: int | None = None,
    ) -> None:
        self._store = as_store(store)
        self._audio = audio
        self._run_id = run_id
        self._committed = committed_recordings
        self._crawl = crawl or CrawlConfig()
        self._attempts = dict(attempts or {})
        self._pacing = dict(pacing or {})
        self._host_delays = {h.lower(): float(d) for h, d in (host_delays or {}).items()}
        self._progress_on = progress
        self._total = total

    def setup(self) -> None:
        self._live = live.stage("fetch+decode", show=self._progress_on, total=self._total)
        self._fetcher: _Fetcher | None = None
        self._pending: InFlight[_Pending, _Fetched] = InFlight()

    def teardown(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None

    def start_bundle(self) -> None:
        for _, future in self._pending.abandon():  # a failed bundle's: its retry emits them
            future.add_done_callback(_discard)

    def process(
        self,
        element: SourceItem | tuple[SourceItem, int],
        windowed: Any = beam.DoFn.WindowedValueParam,  # a WindowedValue at run time
    ) -> Iterator[object]:
        """`element`: a source item, or (item, runs that already tried it) from a plan."""
        fault_point(STAGE)
        if isinstance(element, tuple):
            item, attempts = element
            if attempts:
                self._attempts[item.media_id] = int(attempts)
        else:
            item = element
        if item.kind == "local":
            yield from self._guard(item, STAGE, self._local(item))
        else:
            if self._fetcher is None:
                self._fetcher = _Fetcher(
                    self._crawl,
                    self._pacing,
                    self._host_delays,
                    min(self._crawl.max_filesize_bytes, self._audio.max_size_bytes),
                )
            self._pending.add(_Pending(item, windowed), self._fetcher.submit(item))
        # keep at most two items per thread in flight (bounded memory, steady output)
        yield from self._drain(keep=2 * self._crawl.fetch_concurrency - 1)

    def finish_bundle(self) -> Iterator[object]:
        yield from self._drain(keep=0)

    def _drain(self, keep: int) -> Iterator[object]:
        """Emit every finished fetch; wait until at most `keep` are still running."""
        for p, future in self._pending.finished(keep):
            rows = self._guard(p.item, FETCH_STAGE, self._remote(p.item, future))
            yield from self._windowed(p.windowed, rows)

    @staticmethod
    def _windowed(windowed: WindowedValue, outputs: Iterable[object]) -> Iterator[object]:
        """Outputs of one item, in that item's window (it may finish during another's)."""
        for out in outputs:
            if isinstance(out, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(out.tag, windowed.with_value(out.value))
            else:
                yield windowed.with_value(out)

    def _guard(self, item: SourceItem, stage: str, rows: Iterator[object]) -> Iterator[object]:
        """The outputs of one item (`rows`, run here); an unexpected error becomes its one
        reject."""
        audio_s = 0.0
        try:
            for out in rows:
                if isinstance(out, Recording):
                    audio_s += out.duration_s
                yield out
        except Exception as e:  # one bad item never stops the run
            drop = Drop(Category.INTERNAL, "unexpected error", internal_detail(e))
            yield from self._rejected(item, stage, drop)
        self._live.add(audio_s)

    def _rejected(self, item: SourceItem, stage: str, drop: Drop) -> Iterator[object]:
        """An item that yields nothing: its `sources` row and its one reject."""
        yield beam.pvalue.TaggedOutput(SOURCES, item)
        yield reject(
            drop,
            item_id=item.media_id,
            item_kind="source",
            stage=stage,
            run_id=self._run_id,
            source_id=item.media_id,
        )

    def _local(self, item: SourceItem) -> Iterator[object]:
        path = local_path(item.url)
        size = local_size(path)
        if isinstance(size, Drop):
            yield from self._rejected(item, STAGE, size)
            return
        yield from self._ingest(item, path, size, STAGE)

    def _remote(self, item: SourceItem, future: futures.Future[_Fetched]) -> Iterator[object]:
        """Rows for one finished download (on the DoFn's thread); removes its directory."""
        fetched = future.result()  # raises what the fetch thread raised
        try:
            if fetched.failure is not None:
                earlier = self._attempts.get(item.media_id, 0)
                drop = fetch_drop(fetched.failure.drop, earlier, self._crawl.max_attempts)
                yield from self._rejected(item, FETCH_STAGE, drop)
            elif fetched.got is not None:
                yield from self._ingest(item, fetched.got.path, fetched.got.bytes, FETCH_STAGE)
            else:  # `_fetch` sets one or the other: be safe
                raise RuntimeError("download produced neither a file nor a failure")
        finally:
            shutil.rmtree(fetched.workdir, ignore_errors=True)

    def _ingest(self, item: SourceItem, path: str, size: int, stage: str) -> Iterator[object]:
        recording_id = recording_id_of(path, size, self._audio.max_size_bytes)
        if isinstance(recording_id, Drop):
            yield from self._rejected(item, stage, recording_id)
            return
        linked = dataclasses.replace(item, recording_id=recording_id, size_bytes=size)
        if recording_id in self._committed:
            yield beam.pvalue.TaggedOutput(SOURCES, linked)  # same bytes already stored
            return
        try:
            rel, info = store_flac(self._store, recording_id, path, self._audio)
        except AudioRejected as r:
            yield from self._rejected(item, stage, r.drop)
            return
        yield beam.pvalue.TaggedOutput(SOURCES, linked)
        yield recording_of(item, recording_id, rel, info, size, self._run_id)


class DedupeRecordings(beam.PTransform):
    """Identical bytes from two sources in one run become one recording; with `committed`
    ((recording_id, None) of committed recordings), bytes a committed run already
    stored make no new recording (a join on the workers, not a set on the driver)."""

    def __init__(self, committed: beam.PCollection | None = None) -> None:
        super().__init__()
        self._committed = committed

    def expand(self, recs: beam.PCollection) -> beam.PCollection:
        keyed = recs | "KeyByRecording" >> beam.Map(lambda r: (r.recording_id, r))
        if self._committed is None:
            return (
                keyed
                | "GroupByRecording" >> beam.GroupByKey()
                | "OnePerRecording" >> beam.MapTuple(lambda _, group: first_by_media(group))
            )
        return (
            {"new": keyed, "old": self._committed}
            | "JoinCommitted" >> beam.CoGroupByKey()
            | "NewOnly" >> beam.FlatMap(_new_only)
        )


def _new_only(element: tuple[str, dict[str, list[Any]]]) -> list[Recording]:
    _, groups = element
    if groups["old"] or not groups["new"]:
        return []
    return [first_by_media(groups["new"])]
