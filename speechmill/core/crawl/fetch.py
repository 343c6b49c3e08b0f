"""The fetch stage without Beam: retries, per-host pacing and slots, and item outcomes.

Everything here is plain Python (threads where there are threads); the DoFn in
`speechmill.transforms.fetch` wires it to yt-dlp (`speechmill.backends.ytdlp`),
the host guard and the output rows. Time is injected (`clock`, `sleep`) where
something waits, so tests run without sleeping.

* `retry`: a download attempted `retries + 1` times at most, with exponential
  backoff; a permanent failure ends it at once.
* `Pacer`: consecutive requests to a host start at least an interval apart (the
  source's `rate_limit_s`, raised to the host's robots.txt `Crawl-delay`); start
  times are reserved under a lock, so threads never overlap.
* `HostSlots` / `HostPool`: at most `per_host` jobs of one host run at a time; the
  others wait in the host's queue (not in a thread), so a slow host never takes
  threads from the others.
* `InFlight`: submitted jobs in order, what has finished, and waiting when too many
  have not (bounded memory, steady output).
* `local_size`, `size_drop`, `recording_id_of`, `fetch_drop`: an item's outcome as a
  value or a `Drop`; `recording_of` builds its `Recording` row.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent import futures
from typing import Any, Generic, TypeVar

from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.core.audio.io import Transcoded, sha256_file
from speechmill.core.crawl.policy import give_up
from speechmill.schemas import Attribution, Recording, SourceItem
from speechmill.schemas.rejects import Category, Drop, Dropped

T = TypeVar("T")
J = TypeVar("J")
P = TypeVar("P")

Clock = Callable[[], float]
Sleep = Callable[[float], None]

DEFAULT_RATE_S = 1.0  # pacing of a source the stage was given no `rate_limit_s` for


def host_of(url: str) -> str:
    """The lower-case host name of a URL ('' if it has none); ValueError if unparseable."""
    return (urllib.parse.urlsplit(url).hostname or "").lower()


# ---------------------------------------------------------------------------- retries


def backoff_delay(retry_number: int, backoff_s: float) -> float:
    """Seconds before the `retry_number`-th retry (1-based): `backoff_s`, then doubling."""
    return backoff_s * 2.0 ** (retry_number - 1)


def retry(
    attempt: Callable[[], T], retries: int, backoff_s: float, sleep: Sleep = time.sleep
) -> T | Dropped:
    """What `attempt` returns, tried `retries + 1` times at most; else the last failure.

    A `Dropped` (e.g. `speechmill.backends.ytdlp.FetchError`) that is retryable is
    tried again after `backoff_delay`; a permanent one is returned at once. Any
    other exception propagates.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    n = 0  # retries so far
    while True:
        try:
            return attempt()
        except Dropped as e:
            if not e.retryable or n >= retries:
                return e
        n += 1
        sleep(backoff_delay(n, backoff_s))


# ---------------------------------------------------------------------------- pacing


class Pacer:
    """Per-host pacing shared by threads: each request's start reserved under a lock.

    `floors` (lower-case host name -> seconds, from robots.txt `Crawl-delay`) is a
    lower bound on every interval of that host. A request to a host starts at the
    later of now and the previous request's start plus the interval the request
    asks for; the first request to a host starts at once.
    """

    def __init__(
        self,
        floors: Mapping[str, float] | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._floors = dict(floors or {})
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last_start: dict[str, float] = {}

    def interval(self, host: str, rate_s: float) -> float:
        """The spacing for a request to `host` from a source paced at `rate_s`."""
        return max(rate_s, self._floors.get(host, 0.0))

    def reserve(self, host: str, interval: float) -> float:
        """Reserve the next start time for `host`; the seconds to wait until then (>= 0)."""
        with self._lock:
            now = self._clock()
            last = self._last_start.get(host)
            start = now if last is None else max(now, last + interval)
            self._last_start[host] = start
        return start - now

    def wait(self, host: str, interval: float) -> None:
        """Reserve the next start time for `host` and sleep until it."""
        delay = self.reserve(host, interval)
        if delay > 0:
            self._sleep(delay)


# ---------------------------------------------------------------------------- per-host slots


class HostSlots(Generic[J]):
    """At most `per_host` jobs of one host running; the others queue per host (FIFO).

    Plain bookkeeping (no lock, no threads): the caller serialises the calls.
    """

    def __init__(self, per_host: int) -> None:
        if per_host < 1:
            raise ValueError(f"per_host must be >= 1, got {per_host}")
        self._per_host = per_host
        self._running: dict[str, int] = {}
        self._waiting: dict[str, collections.deque[J]] = {}

    def admit(self, host: str, job: J) -> bool:
        """True: `job` takes a slot of `host` and runs now; False: it waits in the queue."""
        if self._running.get(host, 0) >= self._per_host:
            self._waiting.setdefault(host, collections.deque()).append(job)
            return False
        self._running[host] = self._running.get(host, 0) + 1
        return True

    def finish(self, host: str) -> J | None:
        """A job of `host` finished: the host's next queued job (it takes over the slot),
        or None (the slot is free)."""
        queue = self._waiting.get(host)
        if queue:
            return queue.popleft()
        self._running[host] -= 1
        return None

    def clear_waiting(self) -> list[J]:
        """Take every queued job out (they will not run); running ones keep their slots."""
        jobs = [job for queue in self._waiting.values() for job in queue]
        self._waiting.clear()
        return jobs

    def running(self, host: str) -> int:
        return self._running.get(host, 0)

    def waiting(self, host: str) -> int:
        return len(self._waiting.get(host, ()))


_Job = tuple[Callable[[], Any], "futures.Future[Any]"]


class HostPool:
    """A thread pool of `workers` threads running at most `per_host` calls of one host.

    A call whose host is at its limit waits in that host's queue, not in a thread;
    when a call of a host finishes, the host's next queued call goes to the back of
    the pool's queue (hosts take turns). `submit` returns at once.
    """

    def __init__(self, workers: int, per_host: int, *, thread_name_prefix: str = "") -> None:
        self._pool = futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=thread_name_prefix
        )
        self._lock = threading.Lock()
        self._slots: HostSlots[_Job] = HostSlots(per_host)

    def submit(self, host: str, call: Callable[[], T]) -> futures.Future[T]:
        """Run `call` in the pool when `host` has a free slot; its future."""
        out: futures.Future[T] = futures.Future()
        with self._lock:
            now = self._slots.admit(host, (call, out))
        if now:
            self._pool.submit(self._run, host, call, out)
        return out

    def close(self) -> None:
        """Cancel the queued calls, wait for the running ones, stop the threads."""
        with self._lock:
            for _, out in self._slots.clear_waiting():
                out.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, host: str, call: Callable[[], Any], out: futures.Future[Any]) -> None:
        """One call in a pool thread; then the next queued call of the host, if any."""
        try:
            out.set_result(call())
        except BaseException as e:  # the caller's thread sees it through the future
            out.set_exception(e)
        finally:
            with self._lock:
                following = self._slots.finish(host)
            if following is not None:  # back of the pool's queue: hosts take turns
                self._pool.submit(self._run, host, *following)


class InFlight(Generic[P, T]):
    """Jobs handed to a pool (each a tag and its future), oldest first."""

    def __init__(self) -> None:
        self._jobs: list[tuple[P, futures.Future[T]]] = []

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, tag: P, future: futures.Future[T]) -> None:
        self._jobs.append((tag, future))

    def abandon(self) -> list[tuple[P, futures.Future[T]]]:
        """Take every job out without waiting (e.g. those of a failed bundle)."""
        jobs, self._jobs = self._jobs, []
        return jobs

    def finished(self, keep: int) -> Iterator[tuple[P, futures.Future[T]]]:
        """Every finished job (in submission order within each batch), taken out;
        waits while more than `keep` jobs are still running."""
        while self._jobs:
            done = [j for j in self._jobs if j[1].done()]
            if not done:
                if len(self._jobs) <= keep:
                    return
                futures.wait([f for _, f in self._jobs], return_when=futures.FIRST_COMPLETED)
                continue
            taken = {id(f) for _, f in done}  # one pass: a job finishing now waits its turn
            self._jobs = [j for j in self._jobs if id(j[1]) not in taken]
            yield from done


# ---------------------------------------------------------------------------- outcomes


def local_size(path: str) -> int | Drop:
    """The size of a local file, or why it cannot be read (a later run may succeed)."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return Drop(Category.NOT_FOUND, "file disappeared", path, retryable=True)
    except OSError as e:
        return Drop(Category.IO_ERROR, "cannot stat file", str(e), retryable=True)


def size_drop(size: int, max_size_bytes: int) -> Drop | None:
    """None if a file of `size` bytes may be decoded, else why not (`audio.max_size_bytes`)."""
    if size == 0:
        return Drop(Category.EMPTY, "zero bytes")
    if size > max_size_bytes:
        return Drop(Category.TOO_LARGE, f"{size} bytes is over audio.max_size_bytes")
    return None


def recording_id_of(path: str, size: int, max_size_bytes: int) -> str | Drop:
    """The recording id (sha256 hex of the bytes) of a file of `size` bytes, or why it
    gets none: empty, over the size cap, or unreadable."""
    drop = size_drop(size, max_size_bytes)
    if drop is not None:
        return drop
    try:
        digest, _ = sha256_file(path)
    except OSError as e:
        return Drop(Category.IO_ERROR, "cannot read file", str(e), retryable=True)
    return digest


def fetch_drop(failure: Drop, earlier_runs: int, max_attempts: int) -> Drop:
    """The reject of a failed download: this run counts as one more try (`give_up`)."""
    return give_up(failure, earlier_runs + 1, max_attempts)


def attribution_of(item: SourceItem) -> Attribution:
    url = item.webpage_url or (item.url if item.kind != "local" else None)
    return Attribution(author=item.author, title=item.title, url=url)


def recording_of(
    item: SourceItem, recording_id: str, audio_uri: str, info: Transcoded, size: int, run_id: str
) -> Recording:
    """The `recordings` row of an item decoded into the media store."""
    return Recording(
        recording_id=recording_id,
        media_id=item.media_id,
        audio_uri=audio_uri,
        duration_s=info.duration_s,
        num_samples=info.num_samples,
        sample_rate=SAMPLE_RATE,
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
        run_id=run_id,
    )


def first_by_media(recs: Iterable[Recording]) -> Recording:
    """Of recordings with the same bytes, the one kept: the smallest `media_id`."""
    return min(recs, key=lambda r: r.media_id)
