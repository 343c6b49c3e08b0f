"""Progress and errors on the terminal: the same on every command (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechmill import progress, reports
from speechmill.cli import main
from speechmill.pipelines.corpus import run_corpus
from tests.conftest import make_config
from tests.fakes import FakeFactory
from tests.unit.test_progress import stderr


def test_a_corpus_run_on_a_terminal_shows_every_stage(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, speech_dir: Path
) -> None:
    err = stderr(monkeypatch, terminal=True)
    run_corpus(make_config(speech_dir), root=str(tmp_path / "ds"), factory=FakeFactory())
    out = err.getvalue()
    for label in ("discover:", "fetch+decode:", "VAD:", "transcribe:"):
        assert label in out, out
    assert "3/3" in out  # fetch+decode knows the part's items, so it shows an ETA
    assert "x RT" in out and "min audio" in out


@pytest.mark.parametrize("off", ["not a terminal", "--no-progress", "-q"])
def test_no_progress_in_logs_or_when_turned_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, speech_dir: Path, off: str
) -> None:
    err = stderr(monkeypatch, terminal=off != "not a terminal")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"sources:\n  - kind: local\n    paths: [{speech_dir}]\n")
    monkeypatch.setattr("speechmill.pipelines.corpus.backend_factory", lambda _: FakeFactory())
    flags = [] if off == "not a terminal" else [off]
    assert main(["run", str(cfg), "--root", str(tmp_path / "ds"), *flags]) == 0
    assert err.getvalue() == ""


def test_an_unexpected_error_is_one_line_and_its_traceback_is_under_v(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*_args: object, **_kw: object) -> str:
        raise RuntimeError("the disk went away\nsecond line of detail")

    monkeypatch.setattr(reports, "tables", broken)
    err = stderr(monkeypatch, terminal=False)
    assert main(["tables", "--root", str(tmp_path)]) == 1
    lines = err.getvalue().splitlines()
    assert lines[0] == "speechmill: error: RuntimeError: the disk went away"
    assert "run again with -v" in lines[1] and len(lines) == 2
    assert "Traceback" not in err.getvalue()

    err = stderr(monkeypatch, terminal=False)
    assert main(["tables", "--root", str(tmp_path), "-v"]) == 1
    assert "Traceback (most recent call last)" in err.getvalue()
    assert err.getvalue().rstrip().endswith("speechmill: error: RuntimeError: the disk went away")


def test_a_missing_file_says_which(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    err = stderr(monkeypatch, terminal=False)
    code = main(["config", "check", str(tmp_path / "nope.yaml")])
    assert code in (1, 2)
    (line, *_) = err.getvalue().splitlines()
    assert line.startswith("speechmill: error:") and "nope.yaml" in line
    assert "Traceback" not in err.getvalue()


def test_quiet_still_prints_results(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress, "_ENABLED", True)  # restored after the test
    assert main(["-q", "query", "--root", str(tmp_path), "select 41 + 1 as answer"]) == 0
    assert "42" in capsys.readouterr().out
    assert not progress.enabled()  # -q turned progress off for the process


def test_a_failed_run_leaves_no_stage_behind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, speech_dir: Path
) -> None:
    """A run that dies mid-way closes its bars: the next run in the process (a notebook,
    the NST loop) starts its stages afresh instead of counting on from dead ones."""
    from speechmill.faults import ENV, FaultInjected

    stderr(monkeypatch, terminal=True)
    monkeypatch.setenv(ENV, "transcribe@1")
    with pytest.raises(FaultInjected):
        run_corpus(make_config(speech_dir), root=str(tmp_path / "ds"), factory=FakeFactory())
    assert progress._STAGES == {}


@pytest.mark.model
def test_refine_on_a_terminal_shows_align_and_decode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, speech_dir: Path
) -> None:
    from speechmill.pipelines.refine import run_refine

    cfg = make_config(speech_dir)
    root = str(tmp_path / "ds")
    run_corpus(cfg, root=root, factory=FakeFactory(), progress=False)
    err = stderr(monkeypatch, terminal=True)
    run_refine(cfg, root=root, asr=FakeFactory())
    out = err.getvalue()
    assert "align:" in out and "3/3" in out, out  # every segment, of a known total
    assert "refine:" in out
