from __future__ import annotations

import json
from pathlib import Path

import pytest

from speechmill.cli import main

pytestmark = pytest.mark.model


@pytest.fixture
def config(tmp_path: Path, speech_dir: Path) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(
        f"store:\n  root: {tmp_path / 'ds'}\nsources:\n  - kind: local\n    name: clips\n"
        f"    paths: [{speech_dir}]\nasr:\n  beam_size: 4\n  n_best: 2\n"
    )
    return p


def test_config_check_and_show(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(config)]) == 0
    assert "OK (1 sources: clips" in capsys.readouterr().out
    assert main(["config", "show", str(config), "--set", "asr.beam_size=9"]) == 0
    assert "beam_size: 9" in capsys.readouterr().out


def test_config_errors_exit_2_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("asr:\n  beam_sise: 3\n")
    assert main(["config", "check", str(bad)]) == 2
    assert f"{bad}:2: asr.beam_sise" in capsys.readouterr().err


def test_run_tables_query_rejects_views_gc(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(tmp_path / "ds")
    assert main(["run", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "items in       3" in out and "segments       3" in out and "x RT" in out
    assert main(["run", str(config), "--root", root, "--no-progress"]) == 0
    assert "nothing new in" in (out := capsys.readouterr().out) and "3 listed items" in out

    assert main(["tables", "--root", root, "--json"]) == 0
    t = json.loads(capsys.readouterr().out)
    assert t["tables"]["segments"] == 3 and len(t["runs"]) == 1
    assert main(["tables", "--root", root]) == 0
    assert "hypotheses" in capsys.readouterr().out

    assert (
        main(
            [
                "query",
                "--root",
                root,
                "--format",
                "json",
                "select count(*) as n, sum(duration_s) > 0 as some from recordings",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == [{"n": 3, "some": True}]
    assert main(["query", "--root", root, "select nonsense from nowhere"]) == 2
    assert "query failed" in capsys.readouterr().err

    assert main(["views", "--root", root]) == 0
    assert 'CREATE OR REPLACE VIEW "segments"' in capsys.readouterr().out
    assert main(["rejects", "--root", root, "--by", "reason"]) == 0
    assert main(["summary", "--root", root]) == 0
    assert "segments       3" in capsys.readouterr().out
    assert main(["gc", "--root", root, "--dry-run"]) == 0
    assert "would remove 0 files" in capsys.readouterr().out


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("run", "tables", "query", "gc", "config"):
        assert cmd in out
