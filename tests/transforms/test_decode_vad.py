from __future__ import annotations

import datetime as dt

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from speechmill.config import AudioConfig, VadConfig
from speechmill.core.audio.chunks import local_media_id
from speechmill.schemas import SourceItem
from speechmill.transforms.common import REJECTS, SOURCES
from speechmill.transforms.fetch import AcquireDoFn
from speechmill.transforms.vad import DetectSpeechDoFn
from tests.audio_fixtures import speech_clip, write_wav


def item(path) -> SourceItem:
    return SourceItem(
        media_id=local_media_id(str(path)),
        source_name="t",
        kind="local",
        url=str(path),
        listed_url=None,
        webpage_url=None,
        extractor="local",
        title=None,
        author=None,
        channel_id=None,
        license="cc0-1.0",
        license_raw=None,
        upload_date=None,
        duration_s=None,
        language="en",
        tags=[],
        size_bytes=None,
        etag="e",
        discovered_at=dt.datetime.now(dt.timezone.utc),
        recording_id=None,
        run_id="r1",
    )


def test_decode_then_vad(tmp_path):
    good = write_wav(tmp_path / "good.wav", speech_clip(sentence=2), 16000)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = write_wav(tmp_path / "silent.wav", speech_clip(sentence=2) * 0.0, 16000)
    root = str(tmp_path / "ds")
    with TestPipeline() as p:
        dec = (
            p
            | beam.Create([item(good), item(empty), item(silent)])
            | beam.ParDo(AcquireDoFn(root, AudioConfig(), "r1", frozenset())).with_outputs(
                SOURCES, REJECTS, main="recordings"
            )
        )
        assert_that(
            dec[SOURCES]
            | "linked" >> beam.Map(lambda s: (s.url.rsplit("/", 1)[1], s.recording_id is not None)),
            equal_to([("good.wav", True), ("empty.wav", False), ("silent.wav", True)]),
            label="sources",
        )
        assert_that(
            dec[REJECTS] | "cat" >> beam.Map(lambda r: (r.stage, r.category)),
            equal_to([("decode", "empty")]),
            label="decode_rejects",
        )
        vad = dec.recordings | beam.ParDo(
            DetectSpeechDoFn(root, VadConfig(), AudioConfig(), "r1")
        ).with_outputs(REJECTS, main="chunks")
        assert_that(
            vad.chunks | "n" >> beam.Map(lambda c: (c.language, c.license, c.end > c.start)),
            equal_to([("en", "cc0-1.0", True)]),
            label="chunks",
        )
        assert_that(
            vad[REJECTS] | "vcat" >> beam.Map(lambda r: (r.stage, r.category, r.item_kind)),
            equal_to([("vad", "silent", "recording")]),
            label="vad_rejects",
        )
