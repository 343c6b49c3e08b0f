"""Inputs that broke runs when speechmill was tried from the outside (issue 10).

Each test would fail on the code before the fix: a string that is not valid Unicode
crashed the table write and lost the whole run; a file name that is not UTF-8 could
not be stored; stereo whose channels cancel became a `silent` reject; a truncated
marker stopped every command.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechmill.cli import build_parser, main
from speechmill.config import load_config
from speechmill.pipelines.corpus import run_corpus
from speechmill.pipelines.synth import run_synth
from speechmill.schemas import TABLES
from speechmill.store import Store
from speechmill.store.gc import collect_garbage
from speechmill.transforms.write import write_parts
from tests.audio_fixtures import speech_clip, write_wav
from tests.conftest import make_config
from tests.fakes import FakeBackend, FakeFactory
from tests.pipeline.helpers import check_accounting, no_duplicates, rows


def test_a_lone_surrogate_in_a_synth_text_is_a_bad_text_reject_and_the_run_commits(
    tmp_path: Path,
) -> None:
    texts = tmp_path / "texts.jsonl"
    lines = [
        {"t": "The ferry leaves the harbour early on weekdays."},
        {"t": "Bad \ud800 text that Python decoded from JSON."},  # json.dumps writes \\ud800
        {"t": "A broken \udcff name from a surrogateescape decode."},
        {"t": "Noncharacters \ufdd0 mark broken input too."},
        {"t": "Our library opened a reading room in the spring."},
    ]
    texts.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    assert "\\ud800" in texts.read_text()
    root = tmp_path / "ds"
    cfg = load_config(
        text=f"""
store: {{root: {root}}}
asr: {{beam_size: 5, n_best: 5, batch_size: 4}}
synth:
  texts: [{{kind: jsonl, path: {texts}, column: t, name: j}}]
  voices: [{{engine: espeak, voices: [en-us]}}]
  augment: {{noise_p: 0, reverb_p: 0, speed_p: 0, telephone_p: 0, codec_p: 0, masking_p: 0}}
"""
    )
    result = run_synth(cfg, asr=FakeFactory(), progress=False)
    assert len(result.run_ids) == 1
    assert rows(root, "select count(*) from pairs") == [(2,)]
    got = rows(root, "select item_id, category, reason, detail from rejects order by item_id")
    assert [(i, c) for i, c, _, _ in got] == [
        ("j:2", "bad_text"),
        ("j:3", "bad_text"),
        ("j:4", "bad_text"),
    ]
    assert "lone surrogate (U+D800" in got[0][2] and "\ufffd" in got[0][3]
    assert "noncharacter (U+FDD0" in got[2][2]


@dataclass(frozen=True)
class _SurrogateFactory(FakeFactory):
    """A fake model whose hypotheses for 2.x-second chunks hold a lone surrogate."""

    def __call__(self) -> FakeBackend:
        return _SurrogateBackend(self.poison)


class _SurrogateBackend(FakeBackend):
    def decode(self, items, options, normalizer, feature_transform=None):
        outs = super().decode(items, options, normalizer, feature_transform)
        fixed = []
        for it, out in zip(items, outs, strict=True):
            if out.nbest is not None and it.item_id.endswith(self.bad_suffix(items)):
                hyps = [dataclasses.replace(h, text=h.text + " \udcff") for h in out.nbest.hyps]
                fixed.append(
                    dataclasses.replace(out, nbest=dataclasses.replace(out.nbest, hyps=hyps))
                )
            else:
                fixed.append(out)
        return fixed

    @staticmethod
    def bad_suffix(items) -> str:
        return min(it.item_id for it in items)[-6:]


def test_a_row_that_does_not_fit_its_schema_is_a_write_reject_not_a_lost_run(
    tmp_path: Path, speech_dir: Path
) -> None:
    root = tmp_path / "ds"
    cfg = make_config(speech_dir, "asr: {batch_size: 1}\n")
    result = run_corpus(cfg, root=str(root), factory=_SurrogateFactory(), progress=False)
    (run_id,) = result.run_ids
    bad = rows(
        root,
        "select item_kind, stage, category, reason, detail, parent_id from rejects "
        "order by item_kind",
    )
    kinds = [b[0] for b in bad]
    assert kinds == ["hypotheses", "hypotheses", "hypotheses", "segments", "segments", "segments"]
    for _kind, stage, category, reason, detail, _parent in bad:
        assert (stage, category) == ("write", "unwritable")
        assert "surrogate" in reason and detail.isascii() and "\\udcff" in detail
    assert all(b[5] is not None for b in bad if b[0] == "segments")
    assert rows(root, "select count(*) from recordings") == [(3,)]
    check_accounting(root, run_id)
    no_duplicates(root)


def test_write_parts_keeps_the_good_rows_of_a_batch(tmp_path: Path) -> None:
    spec = TABLES["sources"]
    good = _source("local:a", "fine title")
    bad = _source("local:b", "title \ud83d broken")
    store = Store(str(tmp_path))
    files = write_parts(store, "r1", {"sources": [good, bad]})
    tables = sorted(f.table for f in files)
    assert tables == ["rejects", "sources"]
    by_table = {f.table: f for f in files}
    assert by_table["sources"].rows == 1
    import pyarrow.parquet as pq

    rejects = pq.read_table(store.path(by_table["rejects"].path)).to_pylist()
    assert len(rejects) == 1
    assert rejects[0]["item_id"] == "local:b" and rejects[0]["category"] == "unwritable"
    assert "title" in rejects[0]["reason"] and "\\ud83d" in rejects[0]["detail"]
    assert spec.row_problem(spec.to_row(good)) is None


def test_a_reject_quoting_bad_text_is_stored_in_a_safe_form(tmp_path: Path) -> None:
    from speechmill.schemas import Reject

    r = Reject(
        "x\ud800", "source", None, None, "discover", "not_found", "r", "d\udfff", None, False, "r1"
    )
    store = Store(str(tmp_path))
    (f,) = write_parts(store, "r1", {"rejects": [r]})
    import pyarrow.parquet as pq

    (row,) = pq.read_table(store.path(f.path)).to_pylist()
    assert (row["item_id"], row["detail"], row["category"]) == ("x\ufffd", "d\ufffd", "not_found")


def _source(media_id: str, title: str):
    import datetime as dt

    from speechmill.schemas import SourceItem

    return SourceItem(
        media_id=media_id,
        source_name="s",
        kind="local",
        url="/x",
        listed_url=None,
        webpage_url=None,
        extractor="local",
        title=title,
        author=None,
        channel_id=None,
        license="unknown",
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


def test_a_file_name_that_is_not_utf8_is_ingested_and_stored(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_wav(folder / "tmp.wav", speech_clip(sentence=1), 16000)
    os.rename(bytes(folder / "tmp.wav"), bytes(folder) + b"/caf\xe9 \xff.wav")  # not UTF-8
    write_wav(folder / "plain.wav", speech_clip(sentence=2), 16000)
    root = tmp_path / "ds"
    cfg = make_config(folder)
    (run_id,) = run_corpus(cfg, root=str(root), factory=FakeFactory(), progress=False).run_ids
    check_accounting(root, run_id)
    urls = sorted(
        r[0] for r in rows(root, "select url from sources where recording_id is not null")
    )
    assert len(urls) == 2
    assert urls[1].startswith("file://") and urls[1].endswith("/in/caf%E9%20%FF.wav")
    assert not urls[0].startswith("file://")
    again = run_corpus(cfg, root=str(root), factory=FakeFactory(), progress=False)
    assert again.run_ids == [] and again.skipped == 2


def _cancelling_stereo(path: Path) -> None:
    x = speech_clip(sentence=3)
    sf.write(path, np.stack([x, -x], axis=1), 16000, subtype="PCM_16")


def test_stereo_whose_channels_cancel_is_decoded_from_one_channel(
    tmp_path: Path, speech_dir: Path
) -> None:
    _cancelling_stereo(speech_dir / "phase.wav")
    root = tmp_path / "ds"
    (run_id,) = run_corpus(
        make_config(speech_dir), root=str(root), factory=FakeFactory(), progress=False
    ).run_ids
    check_accounting(root, run_id)
    got = rows(
        root,
        "select r.downmix, r.orig_channels, r.rms_dbfs > -40, "
        "(select count(*) from segments g where g.recording_id = r.recording_id) "
        "from recordings r order by r.downmix",
    )
    assert got == [
        ("channel1", 2, True, 1),  # -x is a hair louder than x in int16
        ("mono", 1, True, 1),
        ("mono", 1, True, 1),
        ("mono", 1, True, 1),
    ]
    assert rows(root, "select count(*) from rejects") == [(0,)]


def test_a_truncated_marker_is_ignored_with_a_warning(
    tmp_path: Path, speech_dir: Path, caplog: pytest.LogCaptureFixture, capsys
) -> None:
    root = tmp_path / "ds"
    (run_id,) = run_corpus(
        make_config(speech_dir), root=str(root), factory=FakeFactory(), progress=False
    ).run_ids
    good = (root / "runs" / f"{run_id}.json").read_text()
    torn = root / "runs" / "20990101T000000Z-abcdef.json"
    torn.write_text(good[: len(good) // 2])
    (root / "runs" / "20990101T000001Z-abcdef.json").write_bytes(b"\xff\xfe\x00junk")
    with caplog.at_level(logging.WARNING, logger="speechmill.store.store"):
        markers = Store(str(root)).markers()
    assert [m.run_id for m in markers] == [run_id]
    assert sum("ignoring commit marker" in r.message for r in caplog.records) == 2
    assert main(["tables", "--root", str(root)]) == 0
    assert "1 committed runs" in capsys.readouterr().out
    assert collect_garbage(Store(str(root))).removed == []


@pytest.mark.parametrize(
    "argv",
    [
        ["refine", "c.yaml"],
        ["relabel", "c.yaml", "--teacher", "t", "--round", "1"],
        ["nst", "c.yaml", "--rounds", "1", "--train-cmd", "true"],
        ["demo"],
        ["run", "c.yaml"],
        ["refresh", "c.yaml"],
        ["synth", "c.yaml"],
    ],
)
def test_every_command_that_shows_progress_accepts_no_progress(argv: list[str]) -> None:
    args = build_parser().parse_args([*argv, "--no-progress"])
    assert args.no_progress is True
