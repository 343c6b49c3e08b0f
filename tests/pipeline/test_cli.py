from __future__ import annotations

import json
from pathlib import Path

import pytest

from speechmill import reports
from speechmill.cli import build_parser, main
from speechmill.store import Store

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
    assert main(["query", "--root", root, "--format", "csv", "select 3 as n, 'a,b' as t"]) == 0
    assert capsys.readouterr().out == 'n,t\r\n3,"a,b"\r\n'

    assert main(["views", "--root", root]) == 0
    assert 'CREATE OR REPLACE VIEW "segments"' in capsys.readouterr().out
    assert main(["rejects", "--root", root, "--by", "reason"]) == 0
    assert main(["summary", "--root", root]) == 0
    assert "segments       3" in capsys.readouterr().out
    (run_id,) = t["runs"]
    assert reports.summarize(Store(root), [run_id]).segments == 3
    refined = reports.refine_report(Store(root), run_id)  # a corpus run: nothing refined
    assert refined.splitlines()[:3] == [
        f"run            {run_id}",
        "recordings     0 refined (0.000 h)",
        "utterances     0  (0.000 h)",
    ]
    assert main(["gc", "--root", root, "--dry-run"]) == 0
    assert "would remove 0 files" in capsys.readouterr().out


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("run", "tables", "query", "gc", "config"):
        assert cmd in out


def test_config_without_an_action_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["config"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("usage: speechmill config [-h] ACTION ...")


def test_no_command_prints_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr().out.startswith(
        "usage: speechmill [-h] [--version] [-v] [-q] [--no-progress] COMMAND"
    )


COMMANDS = [
    ["config", "check", "c.yaml"],
    ["config", "show", "c.yaml"],
    ["run", "c.yaml"],
    ["refresh", "c.yaml"],
    ["refine", "c.yaml"],
    ["relabel", "c.yaml", "--teacher", "t", "--round", "1"],
    ["nst", "c.yaml", "--rounds", "1", "--train-cmd", "true"],
    ["sources", "c.yaml"],
    ["tables"],
    ["query", "select 1"],
    ["views"],
    ["rejects"],
    ["summary"],
    ["synth", "c.yaml"],
    ["metrics"],
    ["export", "--format", "hf", "--out", "o"],
    ["demo"],
    ["report"],
    ["gc"],
]


@pytest.mark.parametrize("argv", COMMANDS)
def test_every_command_names_its_handler(argv: list[str]) -> None:
    func = build_parser().parse_args(argv).func
    assert func.__name__ == "cmd_" + "_".join(a for a in argv[:2] if a.isalpha())


@pytest.mark.parametrize("argv", COMMANDS)
def test_every_command_takes_the_terminal_flags_before_or_after_its_name(argv: list[str]) -> None:
    parse = build_parser().parse_args
    plain = parse(argv)
    assert (plain.verbose, plain.quiet, plain.no_progress) == (False, False, False)
    for args in (
        parse([*argv, "-v", "-q", "--no-progress"]),
        parse(["-v", "-q", "--no-progress", *argv]),
    ):
        assert (args.verbose, args.quiet, args.no_progress) == (True, True, True)


def test_text_table_pads_cuts_and_shows_null() -> None:
    text = reports.text_table(["a", "long header"], [(None, 1.23456), ("x" * 90, 2e7)])
    assert text.splitlines() == [
        "a" + " " * 81 + "long header",
        "-" * 80 + "  " + "-" * 11,
        "NULL" + " " * 78 + "1.235",
        "x" * 77 + "...  2e+07",
    ]


def test_export_and_report_commands(
    tmp_path: Path,
    speech_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.fakes import FakeFactory

    monkeypatch.setattr("speechmill.pipelines.corpus.backend_factory", lambda _: FakeFactory())
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"sources:\n  - kind: local\n    paths: [{speech_dir}]\n")
    root = str(tmp_path / "ds")
    assert main(["run", str(cfg), "--root", root, "-q"]) == 0
    capsys.readouterr()

    out = tmp_path / "nemo"
    assert main(["export", "--root", root, "--format", "nemo", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "segments (not refined)" in said and "exported as nemo" in said
    lines = [
        json.loads(x) for m in out.glob("*_manifest.jsonl") for x in m.read_text().splitlines()
    ]
    assert len(lines) == 3 and all(line["duration"] > 0 for line in lines)
    assert (out / "ATTRIBUTION.md").exists() and (out / "attribution.jsonl").exists()

    # a licence nothing has, and a corpus filter on a pair format: one line each, exit 2
    assert main(["export", "--root", root, "--format", "kaldi", "--out", str(tmp_path / "k"),
                 "--license", "cc-by-nc"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("speechmill: error: ")
    assert main(["export", "--root", root, "--format", "hf", "--out", str(tmp_path / "h"),
                 "--split", "train"]) == 2  # fmt: skip
    assert "--split: only for corpus exports" in capsys.readouterr().err
    assert not (tmp_path / "k").exists() and not (tmp_path / "h").exists()

    # an empty list is not "no filter"; a zero shard size is not the default
    for flags, says in (
        (["--format", "nemo", "--license", ""], "--license was given an empty list"),
        (["--format", "webdataset", "--shard-size", "0"], "shard_size must be at least 1"),
    ):
        assert main(["export", "--root", root, "--out", str(tmp_path / "z"), *flags]) == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "z").exists()

    assert main(["report", "--root", root, "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["report", "--root", root]) == 0
    assert (tmp_path / "ds" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert "report written to" in capsys.readouterr().out


def test_error_paths_lose_only_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    from speechmill.cli import _in_cwd

    monkeypatch.chdir("/tmp")
    assert (
        _in_cwd("cannot read /srv/tmp/x.yaml or /tmp/a/b.yaml (/tmp/c)")
        == "cannot read /srv/tmp/x.yaml or a/b.yaml (c)"
    )
