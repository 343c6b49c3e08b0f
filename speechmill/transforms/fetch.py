"""fetch/decode stage: local files or crawled media -> hashed, decoded 16 kHz mono FLAC."""

from __future__ import annotations

import collections
import dataclasses
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from concurrent import futures
from typing import TYPE_CHECKING, Any

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from speechmill.config import AudioConfig, CrawlConfig
from speechmill.core.audio.chunks import local_path
from speechmill.core.audio.io import AudioRejected, Transcoded, sha256_file, transcode_to_flac
from speechmill.core.crawl.policy import give_up
from speechmill.faults import fault_point
from speechmill.schemas import Attribution, Category, Drop, Recording, SourceItem
from speechmill.store import Store, fs
from speechmill.transforms.common import SOURCES, internal_detail, reject

if TYPE_CHECKING:
    from speechmill.backends.ytdlp import Downloaded, FetchError

STAGE = "decode"
FETCH_STAGE = "fetch"


def attribution_of(item: SourceItem) -> Attribution:
    url = item.webpage_url or (item.url if item.kind != "local" else None)
    return Attribution(author=item.author, title=item.title, url=url)


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
        with open(local, "rb") as f:
            fs.write_bytes_atomic(store.path(rel), f.read())
        return rel, info
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@dataclasses.dataclass
class _Fetched:
    """What a fetch thread hands back: the download or the failure, in a temporary dir."""

    workdir: str
    got: Downloaded | None = None
    failure: FetchError | None = None


def _host_of(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


_Job = tuple[SourceItem, "futures.Future[_Fetched]"]


class _Fetcher:
    """Downloads on a bounded thread pool: a per-host limit and per-host pacing.

    `fetch_concurrency` threads in all, and at most `per_host_concurrency` items of
    one host in the pool at a time: an item of a busy host waits in that host's
    queue (not in a thread), so a slow host never takes threads from the others.
    Consecutive requests to a host start at least the pacing interval apart (the
    source's `rate_limit_s`, raised to the host's robots.txt `Crawl-delay`),
    reserved under a lock so threads never overlap. Each thread enters the host
    guard itself (`speechmill.backends.net.guarded` is thread-local). Only the download runs
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
        self._host_delays = host_delays
        self._max_bytes = max_bytes
        self._pool = futures.ThreadPoolExecutor(
            max_workers=crawl.fetch_concurrency, thread_name_prefix="speechmill-fetch"
        )
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}  # items of a host in the pool
        self._waiting: dict[str, collections.deque[_Job]] = {}
        self._last_start: dict[str, float] = {}
        from speechmill.backends import ytdlp

        ytdlp.warm_up()  # once here, not in every thread at its first request

    def submit(self, item: SourceItem) -> futures.Future[_Fetched]:
        """Start (or queue behind its host's limit) one download; its future."""
        out: futures.Future[_Fetched] = futures.Future()
        try:
            host = _host_of(item.url)
        except ValueError as e:  # not a URL we can fetch: the item's reject says so
            out.set_exception(e)
            return out
        with self._lock:
            busy = self._active.get(host, 0) >= self._crawl.per_host_concurrency
            if busy:
                self._waiting.setdefault(host, collections.deque()).append((item, out))
            else:
                self._active[host] = self._active.get(host, 0) + 1
        if not busy:
            self._pool.submit(self._run, item, host, out)
        return out

    def close(self) -> None:
        with self._lock:
            for queue in self._waiting.values():
                for _, out in queue:
                    out.cancel()
            self._waiting.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, item: SourceItem, host: str, out: futures.Future[_Fetched]) -> None:
        """One download in a pool thread; then the next queued item of the host, if any."""
        try:
            out.set_result(self._fetch(item, host))
        except BaseException as e:  # the DoFn's thread turns it into the item's reject
            out.set_exception(e)
        finally:
            with self._lock:
                queue = self._waiting.get(host)
                following = queue.popleft() if queue else None
                if following is None:
                    self._active[host] -= 1
            if following is not None:  # back of the pool's queue: hosts take turns
                self._pool.submit(self._run, following[0], host, following[1])

    def _pace(self, host: str, interval: float) -> None:
        """Wait for this host's next start time, reserved under the lock."""
        with self._lock:
            now = time.monotonic()
            last = self._last_start.get(host)
            start = now if last is None else max(now, last + interval)
            self._last_start[host] = start
        if start > now:
            time.sleep(start - now)

    def _fetch(self, item: SourceItem, host: str) -> _Fetched:
        from speechmill.backends import ytdlp
        from speechmill.backends.net import HostPolicy, guarded

        crawl = self._crawl
        rate, cookies = self._pacing.get(item.source_name, (1.0, None))
        interval = max(rate, self._host_delays.get(host, 0.0))
        policy = HostPolicy(crawl.allow_private_networks, frozenset(crawl.allow_hosts))
        opts = ytdlp.base_options(socket_timeout=crawl.socket_timeout_s, cookies_file=cookies)
        out = _Fetched(tempfile.mkdtemp(prefix="speechmill-fetch-"))
        try:
            for attempt in range(crawl.retries + 1):
                if attempt:
                    time.sleep(crawl.backoff_s * 2 ** (attempt - 1))
                try:
                    with guarded(policy):  # in this thread: the guard is thread-local
                        out.got = ytdlp.download(
                            item.url,
                            opts,
                            out.workdir,
                            max_bytes=self._max_bytes,
                            deadline_s=crawl.item_deadline_s,
                            before_start=lambda: self._pace(host, interval),
                        )
                    out.failure = None
                    return out
                except ytdlp.FetchError as fe:
                    out.failure = fe
                    if not fe.retryable:
                        break
            return out
        except BaseException:
            shutil.rmtree(out.workdir, ignore_errors=True)
            raise


def _discard(future: futures.Future[_Fetched]) -> None:
    if not future.cancelled() and future.exception() is None:
        shutil.rmtree(future.result().workdir, ignore_errors=True)


@dataclasses.dataclass
class _Pending:
    item: SourceItem
    windowed: WindowedValue
    future: futures.Future[_Fetched]


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
    """

    def __init__(
        self,
        root: str,
        audio: AudioConfig,
        run_id: str,
        committed_recordings: frozenset[str],
        *,
        crawl: CrawlConfig | None = None,
        attempts: Mapping[str, int] | None = None,
        pacing: Mapping[str, tuple[float, str | None]] | None = None,
        host_delays: Mapping[str, float] | None = None,
    ) -> None:
        self._root = root
        self._audio = audio
        self._run_id = run_id
        self._committed = committed_recordings
        self._crawl = crawl or CrawlConfig()
        self._attempts = dict(attempts or {})
        self._pacing = dict(pacing or {})
        self._host_delays = {h.lower(): float(d) for h, d in (host_delays or {}).items()}

    def setup(self) -> None:
        self._store = Store(self._root)
        self._fetcher: _Fetcher | None = None
        self._pending: list[_Pending] = []

    def teardown(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None

    def start_bundle(self) -> None:
        for p in self._pending:  # left by a failed bundle: its retry emits the rows again
            p.future.add_done_callback(_discard)
        self._pending = []

    def process(
        self,
        item: SourceItem,
        windowed: Any = beam.DoFn.WindowedValueParam,  # a WindowedValue at run time
    ) -> Iterator[object]:
        fault_point(STAGE)
        if item.kind == "local":
            yield from self._guard(item, STAGE, self._local)
        else:
            if self._fetcher is None:
                self._fetcher = _Fetcher(
                    self._crawl,
                    self._pacing,
                    self._host_delays,
                    min(self._crawl.max_filesize_bytes, self._audio.max_size_bytes),
                )
            self._pending.append(_Pending(item, windowed, self._fetcher.submit(item)))
        # keep at most two items per thread in flight (bounded memory, steady output)
        yield from self._drain(keep=2 * self._crawl.fetch_concurrency - 1)

    def finish_bundle(self) -> Iterator[object]:
        yield from self._drain(keep=0)

    def _drain(self, keep: int) -> Iterator[object]:
        """Emit every finished fetch; wait until at most `keep` are still running."""
        while self._pending:
            done = [p for p in self._pending if p.future.done()]
            if not done:
                if len(self._pending) <= keep:
                    return
                futures.wait([p.future for p in self._pending], return_when=futures.FIRST_COMPLETED)
                continue
            self._pending = [p for p in self._pending if not p.future.done()]
            for p in done:
                yield from self._windowed(p.windowed, self._guard(p.item, FETCH_STAGE, p.future))

    @staticmethod
    def _windowed(windowed: WindowedValue, outputs: Iterable[object]) -> Iterator[object]:
        """Outputs of one item, in that item's window (it may finish during another's)."""
        for out in outputs:
            if isinstance(out, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(out.tag, windowed.with_value(out.value))
            else:
                yield windowed.with_value(out)

    def _guard(self, item: SourceItem, stage: str, work: object) -> Iterator[object]:
        """The outputs of one item; an unexpected error becomes its one reject."""
        try:
            if isinstance(work, futures.Future):
                yield from self._remote(item, work.result())
            else:
                yield from self._local(item)
        except Exception as e:  # one bad item never stops the run
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            yield self._reject(
                item, stage, Drop(Category.INTERNAL, "unexpected error", internal_detail(e))
            )

    def _reject(self, item: SourceItem, stage: str, drop: Drop) -> beam.pvalue.TaggedOutput:
        return reject(
            drop,
            item_id=item.media_id,
            item_kind="source",
            stage=stage,
            run_id=self._run_id,
            source_id=item.media_id,
        )

    def _local(self, item: SourceItem) -> Iterator[object]:
        path = local_path(item.url)
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            drop = Drop(Category.NOT_FOUND, "file disappeared", path, retryable=True)
            yield self._reject(item, STAGE, drop)
            return
        except OSError as e:
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            drop = Drop(Category.IO_ERROR, "cannot stat file", str(e), retryable=True)
            yield self._reject(item, STAGE, drop)
            return
        yield from self._ingest(item, path, size, STAGE)

    def _remote(self, item: SourceItem, fetched: _Fetched) -> Iterator[object]:
        """Rows for one finished download (on the DoFn's thread); removes its directory."""
        try:
            failure = fetched.failure
            if fetched.got is None or failure is not None:
                if failure is None:  # no attempt ran (retries < 0 cannot happen): be safe
                    raise RuntimeError("download produced neither a file nor a failure")
                tries = self._attempts.get(item.media_id, 0) + 1
                yield beam.pvalue.TaggedOutput(SOURCES, item)
                yield self._reject(
                    item, FETCH_STAGE, give_up(failure.drop, tries, self._crawl.max_attempts)
                )
                return
            yield from self._ingest(item, fetched.got.path, fetched.got.bytes, FETCH_STAGE)
        finally:
            shutil.rmtree(fetched.workdir, ignore_errors=True)

    def _ingest(self, item: SourceItem, path: str, size: int, stage: str) -> Iterator[object]:
        if size == 0:
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            yield self._reject(item, stage, Drop(Category.EMPTY, "zero bytes"))
            return
        if size > self._audio.max_size_bytes:
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            drop = Drop(Category.TOO_LARGE, f"{size} bytes is over audio.max_size_bytes")
            yield self._reject(item, stage, drop)
            return
        try:
            recording_id, _ = sha256_file(path)
        except OSError as e:
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            drop = Drop(Category.IO_ERROR, "cannot read file", str(e), retryable=True)
            yield self._reject(item, stage, drop)
            return
        linked = dataclasses.replace(item, recording_id=recording_id, size_bytes=size)
        if recording_id in self._committed:
            yield beam.pvalue.TaggedOutput(SOURCES, linked)  # same bytes already stored
            return
        try:
            rel, info = store_flac(self._store, recording_id, path, self._audio)
        except AudioRejected as r:
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            yield self._reject(item, stage, r.drop)
            return
        yield beam.pvalue.TaggedOutput(SOURCES, linked)
        yield Recording(
            recording_id=recording_id,
            media_id=item.media_id,
            audio_uri=rel,
            duration_s=info.duration_s,
            num_samples=info.num_samples,
            sample_rate=16000,
            orig_sample_rate=info.orig_sample_rate,
            orig_channels=info.orig_channels,
            downmix=info.downmix,
            orig_codec=info.orig_codec,
            orig_container=info.orig_container,
            orig_sample_format=info.orig_sample_format,
            orig_size_bytes=size,
            rms_dbfs=info.rms_dbfs,
            language=item.language,
            license=item.license,
            attribution=attribution_of(item),
            run_id=self._run_id,
        )


def _first_by_media(recs: Iterable[Recording]) -> Recording:
    return min(recs, key=lambda r: r.media_id)


class DedupeRecordings(beam.PTransform):
    """Identical bytes from two sources in one run become one recording."""

    def expand(self, recs: beam.PCollection) -> beam.PCollection:
        return (
            recs
            | "KeyByRecording" >> beam.Map(lambda r: (r.recording_id, r))
            | "OnePerRecording" >> beam.CombinePerKey(_first_by_media)
            | "DropKey" >> beam.Values()
        )
