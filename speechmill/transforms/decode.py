"""fetch/decode stage: local files or crawled media -> hashed, decoded 16 kHz mono FLAC."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping

import apache_beam as beam

from speechmill.audio import AudioRejected, Transcoded, sha256_file, transcode_to_flac
from speechmill.config import AudioConfig, CrawlConfig, FaultInjection
from speechmill.schemas import Attribution, Category, Recording, SourceItem
from speechmill.store import Store, fs
from speechmill.transforms.common import SOURCES, FaultHook, internal_detail, reject

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


class AcquireDoFn(beam.DoFn):
    """SourceItem -> Recording (main), the linked SourceItem (`sources`), or a reject.

    Local files are read in place (stage `decode`); crawled items are downloaded
    with yt-dlp into a temporary directory first (stage `fetch`), with retries,
    backoff, per-host pacing, a size cap and a deadline. Either way the bytes are
    hashed (the recording id) and decoded once into the media store.
    """

    def __init__(
        self,
        root: str,
        audio: AudioConfig,
        run_id: str,
        committed_recordings: frozenset[str],
        fault: FaultInjection | None = None,
        *,
        crawl: CrawlConfig | None = None,
        attempts: Mapping[str, int] | None = None,
        pacing: Mapping[str, tuple[float, str | None]] | None = None,
    ) -> None:
        self._root = root
        self._audio = audio
        self._run_id = run_id
        self._committed = committed_recordings
        self._fault = fault
        self._crawl = crawl or CrawlConfig()
        self._attempts = dict(attempts or {})
        self._pacing = dict(pacing or {})

    def setup(self) -> None:
        self._store = Store(self._root)
        self._hook = FaultHook(self._fault, STAGE)
        self._last_request: dict[str, float] = {}

    def process(self, item: SourceItem) -> Iterator[object]:
        self._hook.tick()
        stage = STAGE if item.kind == "local" else FETCH_STAGE
        try:
            if item.kind == "local":
                yield from self._local(item)
            else:
                yield from self._remote(item)
        except Exception as e:  # one bad item never stops the run
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            yield self._reject(
                item, stage, Category.INTERNAL, "unexpected error", internal_detail(e)
            )

    def _reject(
        self,
        item: SourceItem,
        stage: str,
        category: Category,
        reason: str,
        detail: str | None = None,
        retryable: bool = False,
    ) -> beam.pvalue.TaggedOutput:
        return reject(
            item_id=item.media_id,
            item_kind="source",
            stage=stage,
            category=category,
            reason=reason,
            run_id=self._run_id,
            source_id=item.media_id,
            detail=detail,
            retryable=retryable,
        )

    def _local(self, item: SourceItem) -> Iterator[object]:
        path = item.url
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            yield self._reject(
                item, STAGE, Category.NOT_FOUND, "file disappeared", path, retryable=True
            )
            return
        except OSError as e:
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            yield self._reject(
                item, STAGE, Category.IO_ERROR, "cannot stat file", str(e), retryable=True
            )
            return
        yield from self._ingest(item, path, size, STAGE)

    def _pace(self, url: str, interval: float) -> None:
        host = urllib.parse.urlsplit(url).hostname or ""
        wait = self._last_request.get(host, 0.0) + interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_request[host] = time.monotonic()

    def _remote(self, item: SourceItem) -> Iterator[object]:
        from speechmill.backends import ytdlp
        from speechmill.net import HostPolicy, guarded

        crawl = self._crawl
        interval, cookies = self._pacing.get(item.source_name, (1.0, None))
        policy = HostPolicy(crawl.allow_private_networks, frozenset(crawl.allow_hosts))
        opts = ytdlp.base_options(socket_timeout=crawl.socket_timeout_s, cookies_file=cookies)
        workdir = tempfile.mkdtemp(prefix="speechmill-fetch-")
        try:
            failure: ytdlp.FetchError | None = None
            for attempt in range(crawl.retries + 1):
                if attempt:
                    time.sleep(crawl.backoff_s * 2 ** (attempt - 1))
                self._pace(item.url, interval)
                try:
                    with guarded(policy):
                        got = ytdlp.download(
                            item.url,
                            opts,
                            workdir,
                            max_bytes=min(crawl.max_filesize_bytes, self._audio.max_size_bytes),
                            deadline_s=crawl.item_deadline_s,
                        )
                    failure = None
                    break
                except ytdlp.FetchError as fe:
                    failure = fe
                    if not fe.retryable:
                        break
            if failure is not None:
                retryable = failure.retryable
                reason = failure.reason
                tries = self._attempts.get(item.media_id, 0) + 1
                if retryable and tries >= crawl.max_attempts:
                    retryable = False
                    reason = f"{reason} (gave up after {tries} runs; crawl.max_attempts)"
                yield beam.pvalue.TaggedOutput(SOURCES, item)
                yield self._reject(
                    item, FETCH_STAGE, failure.category, reason, failure.detail, retryable=retryable
                )
                return
            yield from self._ingest(item, got.path, got.bytes, FETCH_STAGE)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _ingest(self, item: SourceItem, path: str, size: int, stage: str) -> Iterator[object]:
        if size == 0:
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            yield self._reject(item, stage, Category.EMPTY, "zero bytes")
            return
        if size > self._audio.max_size_bytes:
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            yield self._reject(
                item, stage, Category.TOO_LARGE, f"{size} bytes is over audio.max_size_bytes"
            )
            return
        try:
            recording_id, _ = sha256_file(path)
        except OSError as e:
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            yield self._reject(
                item, stage, Category.IO_ERROR, "cannot read file", str(e), retryable=True
            )
            return
        linked = dataclasses.replace(item, recording_id=recording_id, size_bytes=size)
        if recording_id in self._committed:
            yield beam.pvalue.TaggedOutput(SOURCES, linked)  # same bytes already stored
            return
        try:
            rel, info = store_flac(self._store, recording_id, path, self._audio)
        except AudioRejected as r:
            yield beam.pvalue.TaggedOutput(SOURCES, item)
            yield self._reject(item, stage, r.category, r.reason, r.detail)
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
