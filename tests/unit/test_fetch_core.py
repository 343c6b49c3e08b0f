"""The fetch stage's core without Beam or the network: retries, pacing (a fake clock),
per-host slots, the pool's per-host limit, in-flight bookkeeping and item outcomes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speechmill.backends.ytdlp import FetchError
from speechmill.core.audio.io import Transcoded
from speechmill.core.crawl.fetch import (
    HostPool,
    HostSlots,
    InFlight,
    Pacer,
    attribution_of,
    backoff_delay,
    fetch_drop,
    first_by_media,
    host_of,
    local_size,
    recording_id_of,
    recording_of,
    retry,
    size_drop,
)
from speechmill.schemas import Attribution, Category, Drop, Dropped, SourceItem

WAIT = 30  # seconds a test waits for a thread before it fails (never slept through)


class FakeClock:
    """A monotonic clock that moves only when told to, or when `sleep` is called."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def item(url: str = "https://h/a.mp3", kind: str = "list", **kw: Any) -> SourceItem:
    base = SourceItem(
        media_id="url:" + url,
        source_name="s",
        kind=kind,
        url=url,
        listed_url=None,
        webpage_url=None,
        extractor=None,
        title="T",
        author="A",
        channel_id=None,
        license="cc0-1.0",
        license_raw=None,
        upload_date=None,
        duration_s=None,
        language="en",
        tags=[],
        size_bytes=None,
        etag=None,
        discovered_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        recording_id=None,
        run_id="r1",
    )
    return dataclasses.replace(base, **kw)


# ---------------------------------------------------------------------------- host_of


def test_host_of() -> None:
    assert host_of("https://Media.Example.COM:8443/a.mp3?x=1") == "media.example.com"
    assert host_of("ytsearch5:talks") == ""
    with pytest.raises(ValueError):
        host_of("http://[::1")


# ---------------------------------------------------------------------------- retry


class Attempts:
    """Fails with the given errors in turn, then returns 'ok'."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def transient(reason: str = "503") -> FetchError:
    return FetchError(Category.NETWORK, reason, True)


def test_backoff_doubles() -> None:
    assert [backoff_delay(n, 2.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff_delay(3, 0.0) == 0.0


def test_retry_returns_the_first_success_without_sleeping() -> None:
    clock = FakeClock()
    attempt = Attempts()
    assert retry(attempt, 2, 1.0, clock.sleep) == "ok"
    assert attempt.calls == 1 and clock.slept == []


def test_transient_failures_are_retried_with_exponential_backoff() -> None:
    clock = FakeClock()
    attempt = Attempts(transient(), transient())
    assert retry(attempt, 2, 0.5, clock.sleep) == "ok"
    assert attempt.calls == 3 and clock.slept == [0.5, 1.0]


def test_the_last_failure_is_returned_once_retries_are_spent() -> None:
    clock = FakeClock()
    last = transient("third")
    attempt = Attempts(transient("first"), transient("second"), last, transient("never"))
    got = retry(attempt, 2, 2.0, clock.sleep)
    assert got is last and isinstance(got, Dropped)
    assert got.drop == Drop(Category.NETWORK, "third", None, True)
    assert attempt.calls == 3 and clock.slept == [2.0, 4.0]


def test_a_permanent_failure_is_not_retried() -> None:
    clock = FakeClock()
    gone = FetchError(Category.NOT_FOUND, "HTTP Error 404", False)
    attempt = Attempts(transient(), gone)
    assert retry(attempt, 5, 1.0, clock.sleep) is gone
    assert attempt.calls == 2 and clock.slept == [1.0]


def test_no_retries_means_one_attempt() -> None:
    clock = FakeClock()
    attempt = Attempts(transient())
    assert isinstance(retry(attempt, 0, 1.0, clock.sleep), FetchError)
    assert attempt.calls == 1 and clock.slept == []
    with pytest.raises(ValueError, match="retries"):
        retry(Attempts(), -1, 1.0, clock.sleep)


def test_other_exceptions_propagate() -> None:
    clock = FakeClock()
    attempt = Attempts(transient(), KeyError("bug"))
    with pytest.raises(KeyError):
        retry(attempt, 3, 1.0, clock.sleep)
    assert attempt.calls == 2


# ---------------------------------------------------------------------------- pacing


def test_requests_to_one_host_start_an_interval_apart() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    assert pacer.reserve("a", 2.0) == 0.0  # the first request starts at once
    # three more asked for at the same moment: each reserved after the previous one
    assert [pacer.reserve("a", 2.0) for _ in range(3)] == [2.0, 4.0, 6.0]
    assert pacer.reserve("b", 2.0) == 0.0  # another host is paced on its own
    clock.now += 10.0  # later than the last reservation (+6) plus the interval: no wait
    assert pacer.reserve("a", 2.0) == 0.0


def test_the_interval_is_the_asking_requests() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    pacer.reserve("a", 5.0)
    clock.now += 1.0
    assert pacer.reserve("a", 0.5) == 0.0  # 1 s since the last start, 0.5 s asked for
    assert pacer.reserve("a", 3.0) == 3.0


def test_crawl_delay_is_a_floor() -> None:
    pacer = Pacer({"a": 0.4})
    assert pacer.interval("a", 0.1) == 0.4
    assert pacer.interval("a", 1.5) == 1.5
    assert pacer.interval("b", 0.1) == 0.1


def test_wait_sleeps_only_when_it_must() -> None:
    clock = FakeClock()
    pacer = Pacer({"a": 1.0}, clock=clock, sleep=clock.sleep)
    pacer.wait("a", pacer.interval("a", 0.0))
    assert clock.slept == []
    pacer.wait("a", pacer.interval("a", 0.0))
    assert clock.slept == [1.0] and clock.now == 101.0
    clock.now += 0.25
    pacer.wait("a", 1.0)
    assert clock.slept == [1.0, 0.75]


def test_threads_never_share_a_start_time() -> None:
    clock = FakeClock()  # frozen: every thread asks at the same moment
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    waits: list[float] = []
    lock = threading.Lock()

    def ask() -> None:
        w = pacer.reserve("h", 0.5)
        with lock:
            waits.append(w)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert sorted(waits) == [0.5 * i for i in range(16)]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.floats(0, 5, allow_nan=False),  # interval asked for
            st.floats(0, 5, allow_nan=False),  # clock advance before asking
        ),
        max_size=30,
    )
)
def test_pacing_invariants(requests: list[tuple[str, float, float]]) -> None:
    clock = FakeClock()
    pacer = Pacer(clock=lambda: clock.now, sleep=lambda s: None)
    last: dict[str, float] = {}
    for host, interval, advance in requests:
        clock.now += advance
        wait = pacer.reserve(host, interval)
        assert wait >= 0  # never in the past
        start = clock.now + wait
        if host in last:  # the interval apart, or at once when that has passed; no later
            assert start == pytest.approx(max(clock.now, last[host] + interval), abs=1e-9)
        else:
            assert wait == 0
        last[host] = start


# ---------------------------------------------------------------------------- slots


def test_host_slots_queue_beyond_the_limit() -> None:
    slots: HostSlots[str] = HostSlots(2)
    assert slots.admit("a", "a1") and slots.admit("a", "a2")
    assert not slots.admit("a", "a3") and not slots.admit("a", "a4")
    assert slots.admit("b", "b1")  # another host has its own slots
    assert (slots.running("a"), slots.waiting("a")) == (2, 2)
    assert slots.finish("a") == "a3"  # the next queued job takes the slot over (FIFO)
    assert (slots.running("a"), slots.waiting("a")) == (2, 1)
    assert slots.finish("a") == "a4"
    assert slots.finish("a") is None and slots.running("a") == 1  # a slot is free
    assert slots.admit("a", "a5")
    assert not slots.admit("a", "a6")
    assert slots.clear_waiting() == ["a6"] and slots.waiting("a") == 0
    assert slots.running("a") == 2  # running jobs keep their slots
    with pytest.raises(ValueError):
        HostSlots(0)


def test_the_pool_runs_at_most_per_host_calls_of_a_host() -> None:
    pool = HostPool(4, 2)
    release = threading.Event()
    lock = threading.Lock()
    running = peak = 0
    two_running = threading.Event()

    def call(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 2:
                two_running.set()
        release.wait(WAIT)
        with lock:
            running -= 1
        return i

    try:
        jobs = [pool.submit("h", lambda i=i: call(i)) for i in range(5)]
        assert two_running.wait(WAIT)
        assert not any(j.done() for j in jobs)  # two threads are free: only the limit holds
        release.set()
        assert [j.result(timeout=WAIT) for j in jobs] == list(range(5))
    finally:
        release.set()
        pool.close()
    assert peak == 2


def test_a_busy_host_does_not_take_threads_from_others() -> None:
    pool = HostPool(2, 1)
    release = threading.Event()
    try:
        held = [pool.submit("slow", lambda: release.wait(WAIT)) for _ in range(2)]
        # the second `slow` call waits in its host's queue, not in the second thread
        assert pool.submit("fast", lambda: "done").result(timeout=WAIT) == "done"
        assert not any(f.done() for f in held)
        release.set()
        assert all(f.result(timeout=WAIT) for f in held)
    finally:
        release.set()
        pool.close()


def test_a_failing_call_fails_its_future_and_frees_its_slot() -> None:
    pool = HostPool(1, 1)

    def boom() -> None:
        raise OSError("disk")

    try:
        bad = pool.submit("h", boom)
        good = pool.submit("h", lambda: 7)
        with pytest.raises(OSError, match="disk"):
            bad.result(timeout=WAIT)
        assert good.result(timeout=WAIT) == 7
    finally:
        pool.close()


def test_closing_cancels_queued_calls() -> None:
    pool = HostPool(2, 1)
    release = threading.Event()
    started = threading.Event()

    def hold() -> str:
        started.set()
        release.wait(WAIT)
        return "held"

    running = pool.submit("h", hold)
    queued = pool.submit("h", lambda: "never")
    assert started.wait(WAIT)
    threading.Timer(0.05, release.set).start()  # close waits for the running call
    pool.close()
    assert queued.cancelled()
    assert running.result(timeout=WAIT) == "held"


# ---------------------------------------------------------------------------- in flight


def test_finished_jobs_come_out_in_order_without_waiting() -> None:
    flight: InFlight[str, int] = InFlight()
    fs = [futures.Future[int]() for _ in range(3)]
    for name, f in zip("abc", fs, strict=True):
        flight.add(name, f)
    fs[2].set_result(2)
    fs[0].set_result(0)
    assert [tag for tag, _ in flight.finished(keep=1)] == ["a", "c"]  # b runs: 1 <= keep
    assert len(flight) == 1
    assert list(flight.finished(keep=1)) == []
    fs[1].set_result(1)
    assert [(tag, f.result()) for tag, f in flight.finished(keep=1)] == [("b", 1)]
    assert len(flight) == 0


def test_finished_waits_while_too_many_run() -> None:
    flight: InFlight[str, int] = InFlight()
    slow: futures.Future[int] = futures.Future()
    flight.add("slow", slow)
    threading.Timer(0.01, slow.set_result, (5,)).start()
    assert [tag for tag, _ in flight.finished(keep=0)] == ["slow"]  # waited for it


def test_abandon_takes_everything_out() -> None:
    flight: InFlight[str, int] = InFlight()
    f: futures.Future[int] = futures.Future()
    flight.add("x", f)
    assert flight.abandon() == [("x", f)]
    assert len(flight) == 0 and list(flight.finished(keep=0)) == []


# ---------------------------------------------------------------------------- outcomes


def test_local_size(tmp_path: Path) -> None:
    f = tmp_path / "a.wav"
    f.write_bytes(b"12345")
    assert local_size(str(f)) == 5
    missing = str(tmp_path / "gone.wav")
    assert local_size(missing) == Drop(Category.NOT_FOUND, "file disappeared", missing, True)
    under_a_file = local_size(str(f / "x.wav"))  # a path through a regular file
    assert isinstance(under_a_file, Drop)
    assert (under_a_file.category, under_a_file.reason) == (Category.IO_ERROR, "cannot stat file")
    assert under_a_file.retryable and under_a_file.detail


def test_size_drop() -> None:
    assert size_drop(0, 10) == Drop(Category.EMPTY, "zero bytes")
    assert size_drop(1, 10) is None and size_drop(10, 10) is None
    assert size_drop(11, 10) == Drop(Category.TOO_LARGE, "11 bytes is over audio.max_size_bytes")


def test_recording_id_of(tmp_path: Path) -> None:
    f = tmp_path / "a.mp3"
    f.write_bytes(b"audio bytes")
    assert recording_id_of(str(f), 11, 100) == hashlib.sha256(b"audio bytes").hexdigest()
    assert recording_id_of(str(f), 0, 100) == Drop(Category.EMPTY, "zero bytes")
    too_large = recording_id_of(str(f), 11, 10)
    assert isinstance(too_large, Drop) and too_large.category == Category.TOO_LARGE
    unreadable = recording_id_of(str(tmp_path), 1, 10)  # a directory: open() fails
    assert isinstance(unreadable, Drop)
    assert (unreadable.category, unreadable.reason) == (Category.IO_ERROR, "cannot read file")
    assert unreadable.retryable


def test_fetch_drop_counts_this_run() -> None:
    flaky = Drop(Category.NETWORK, "HTTP Error 503", None, True)
    assert fetch_drop(flaky, 0, 3) == flaky
    assert fetch_drop(flaky, 1, 3) == flaky
    final = fetch_drop(flaky, 2, 3)  # the third run gives up
    assert not final.retryable and final.category == Category.NETWORK
    assert final.reason == "HTTP Error 503 (gave up after 3 runs; crawl.max_attempts)"
    gone = Drop(Category.NOT_FOUND, "HTTP Error 404")
    assert fetch_drop(gone, 0, 3) == gone


def test_attribution() -> None:
    assert attribution_of(item()) == Attribution("A", "T", "https://h/a.mp3")
    page = item(webpage_url="https://h/page")
    assert attribution_of(page).url == "https://h/page"
    assert attribution_of(item("/data/a.wav", kind="local")).url is None


def test_recording_rows() -> None:
    info = Transcoded(
        num_samples=32000,
        orig_sample_rate=44100,
        orig_channels=2,
        orig_codec="mp3",
        orig_container="mp3",
        orig_sample_format="fltp",
        rms_dbfs=-20.0,
    )
    rec = recording_of(item(), "abc", "media/ab/c.flac", info, 1234, "r2")
    assert (rec.recording_id, rec.media_id, rec.audio_uri) == (
        "abc",
        "url:https://h/a.mp3",
        "media/ab/c.flac",
    )
    assert (rec.duration_s, rec.num_samples, rec.sample_rate) == (2.0, 32000, 16000)
    assert (rec.orig_sample_rate, rec.orig_channels, rec.downmix) == (44100, 2, "mean")
    assert (rec.orig_size_bytes, rec.rms_dbfs, rec.run_id) == (1234, -20.0, "r2")
    assert (rec.language, rec.license) == ("en", "cc0-1.0")
    assert rec.attribution == Attribution("A", "T", "https://h/a.mp3")
    other = dataclasses.replace(rec, media_id="url:a")
    assert first_by_media([rec, other]) is other
