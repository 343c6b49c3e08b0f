"""Live progress (speechmill.progress): bars on a terminal, silence in logs and CI."""

from __future__ import annotations

import io
import sys

import pytest

from speechmill import progress


class Tty(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def stderr(monkeypatch: pytest.MonkeyPatch, *, terminal: bool) -> io.StringIO:
    """Replace stderr for the rest of the test (inside the test: pytest's capture resets
    sys.stderr between a fixture's set-up and the test)."""
    err = Tty() if terminal else io.StringIO()  # a StringIO is not a TTY: a log, or CI
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(progress, "_ENABLED", True)
    return err


def test_a_stage_on_a_terminal_shows_items_audio_and_real_time_factor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tty = stderr(monkeypatch, terminal=True)
    s = progress.stage("transcribe", total=4)
    for _ in range(3):
        s.add(audio_s=90.0)
    progress.close_stages()
    out = tty.getvalue()
    assert "transcribe" in out and "3/4" in out  # items of the total, so tqdm has an ETA
    assert "4.5 min audio" in out and "x RT" in out
    assert (s.items, s.audio_s) == (3, 270.0)


def test_one_stage_per_label_is_shared_by_every_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr(monkeypatch, terminal=True)
    a, b = progress.stage("VAD"), progress.stage("VAD")
    a.add(1.0)
    b.add(2.0)
    assert a is b and a.items == 2
    progress.close_stages()
    assert progress.stage("VAD") is not a  # the next run starts afresh
    progress.close_stages()


def test_nothing_is_written_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    log = stderr(monkeypatch, terminal=False)
    s = progress.stage("fetch+decode", total=2)
    s.add(3.0)
    list(progress.track(range(5), desc="export"))
    with progress.bar(10, desc="report") as b:
        b.update(10)
    progress.close_stages()
    assert log.getvalue() == "" and not s.shown


@pytest.mark.parametrize("how", ["caller", "process"])
def test_turned_off_writes_nothing_even_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    tty = stderr(monkeypatch, terminal=True)
    if how == "process":
        progress.set_enabled(False)  # what the CLI does for --no-progress and -q
    show = False if how == "caller" else None
    s = progress.stage("synth", show=show)
    s.add(5.0)
    with progress.bar(3, desc="export", show=show) as b:
        b.update(3)
    progress.close_stages()
    assert tty.getvalue() == "" and not s.shown and s.items == 0


def test_track_yields_every_item_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = stderr(monkeypatch, terminal=True)
    assert list(progress.track(iter("abc"), desc="export")) == ["a", "b", "c"]
    assert "export:" in tty.getvalue()
