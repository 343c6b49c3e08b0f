from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from speechmill.backends.asr import decode_with_retry
from speechmill.core.asr.decoding import AsrItem, DecodeOptions
from speechmill.core.elements import ChunkRef
from speechmill.core.text.normalize import get_normalizer
from speechmill.schemas import Attribution
from speechmill.transforms.asr import AsrModelHandler, Batching
from speechmill.transforms.transcribe import Transcribe
from tests.audio_fixtures import write_wav
from tests.fakes import FakeBackend, FakeFactory

OPTS = DecodeOptions(beam_size=6, n_best=3, top_up=False)


def transcribe(handler, tmp_path) -> Transcribe:
    """The Transcribe transform every test here uses (fake model, one run)."""
    return Transcribe(
        handler,
        model_id="fake",
        decoder="d1",
        options=OPTS,
        normalizer="whisper-english",
        run_id="run1",
        store=str(tmp_path),
    )


def chunks(tmp_path, n):
    path = tmp_path / "rec.flac"
    write_wav(path, np.zeros(16000 * 10, dtype=np.float32), 16000)
    return [
        ChunkRef(
            f"seg{i}",
            "r" * 64,
            "local:x",
            str(path),
            i * 16000,
            (i + 1) * 16000 + 800 * i,
            None,
            "cc-by-4.0",
            Attribution("a", "t", None),
        )
        for i in range(n)
    ]


def test_segments_and_nbest_lists_come_out(tmp_path):
    items = chunks(tmp_path, 3)
    handler = AsrModelHandler(FakeFactory(), OPTS, "whisper-english", language="en")
    with TestPipeline() as p:
        out = p | beam.Create(items) | transcribe(handler, tmp_path)
        assert_that(
            out["segments"] | beam.Map(lambda s: (s.segment_id, s.text, s.license, s.run_id)),
            equal_to(
                [
                    ("seg0", "Speech of 1.0 seconds alpha.", "cc-by-4.0", "run1"),
                    ("seg1", "Speech of 1.1 seconds alpha.", "cc-by-4.0", "run1"),
                    ("seg2", "Speech of 1.1 seconds alpha.", "cc-by-4.0", "run1"),
                ]
            ),
            label="segments",
        )
        assert_that(
            out["hypotheses"]
            | beam.Map(lambda h: (h.item_id, h.n_unique, h.n_requested, len(set(h.texts_norm)))),
            equal_to([("seg0", 3, 3, 3), ("seg1", 3, 3, 3), ("seg2", 3, 3, 3)]),
            label="hypotheses",
        )
        assert_that(out["rejects"], equal_to([]), label="rejects")


def test_one_poisoned_item_in_a_batch_is_one_reject(tmp_path):
    items = chunks(tmp_path, 5)
    factory = FakeFactory(poison=frozenset({"seg3"}))
    handler = AsrModelHandler(factory, OPTS, "whisper-english", language="en", batching=Batching(5))
    with TestPipeline() as p:
        out = p | beam.Create(items) | transcribe(handler, tmp_path)
        assert_that(
            out["segments"] | beam.Map(lambda s: s.segment_id),
            equal_to(["seg0", "seg1", "seg2", "seg4"]),
            label="kept",
        )
        assert_that(
            out["rejects"] | beam.Map(lambda r: (r.item_id, r.stage, r.category, r.parent_id)),
            equal_to([("seg3", "transcribe", "asr_error", "r" * 64)]),
            label="rejects",
        )


def test_retry_is_item_by_item_after_a_batch_failure():
    backend = FakeBackend(poison=frozenset({"b"}))
    items = [AsrItem(x, np.zeros(16000, np.float32)) for x in "abcd"]
    outs = decode_with_retry(backend, items, OPTS, get_normalizer("whisper-english"))
    assert [o.item_id for o in outs] == list("abcd")
    assert [o.error is None for o in outs] == [True, False, True, True]
    assert "PoisonError" in (outs[1].error or "")
    assert backend.calls == [4, 1, 1, 1, 1]


def test_unreadable_audio_is_a_reject(tmp_path):
    items = chunks(tmp_path, 1)
    broken = ChunkRef(
        "segX",
        "r" * 64,
        "local:x",
        str(tmp_path / "missing.flac"),
        0,
        16000,
        None,
        "unknown",
        Attribution(),
    )
    handler = AsrModelHandler(FakeFactory(), OPTS, "whisper-english", language="en")
    with TestPipeline() as p:
        out = p | beam.Create([*items, broken]) | transcribe(handler, tmp_path)
        assert_that(
            out["rejects"] | beam.Map(lambda r: (r.item_id, r.category, r.retryable)),
            equal_to([("segX", "io_error", True)]),
            label="rejects",
        )
        assert_that(
            out["segments"] | beam.Map(lambda s: s.segment_id), equal_to(["seg0"]), label="segments"
        )


BATCHES: list[list[int]] = []  # whole seconds of each item, per model call (in-process runner)
ROWS: list[tuple[str, str]] = []


class _RecordingBackend(FakeBackend):
    def decode(self, items, options, normalizer, feature_transform=None):
        BATCHES.append(sorted(len(it.audio) // 16000 for it in items))
        return super().decode(items, options, normalizer, feature_transform)


class _RecordingFactory(FakeFactory):
    def __call__(self) -> FakeBackend:
        return _RecordingBackend()


def _keep(segment) -> None:
    ROWS.append((segment.segment_id, segment.text))


def mixed_lengths(tmp_path):
    """Six chunks of one recording, alternately 1 s and 3 s long, in that order."""
    path = tmp_path / "rec.flac"
    write_wav(path, np.zeros(16000 * 20, dtype=np.float32), 16000)
    out, start = [], 0
    for i in range(6):
        n = 16000 * (1 if i % 2 == 0 else 3)
        out.append(
            ChunkRef(
                f"seg{i}",
                "r" * 64,
                "local:x",
                str(path),
                start,
                start + n,
                None,
                "cc0",
                Attribution(),
            )
        )
        start += n
    return out


def run_batched(tmp_path, batching: Batching) -> tuple[list[list[int]], list[tuple[str, str]]]:
    BATCHES.clear()
    ROWS.clear()
    handler = AsrModelHandler(
        _RecordingFactory(), OPTS, "whisper-english", language="en", batching=batching
    )
    with TestPipeline() as p:
        out = p | beam.Create(mixed_lengths(tmp_path)) | transcribe(handler, tmp_path)
        _ = out["segments"] | beam.Map(_keep)
    return sorted(BATCHES), sorted(ROWS)


def test_length_buckets_batch_similar_chunks_across_the_input(tmp_path):
    plain, rows = run_batched(tmp_path, Batching(3))
    assert any(len(set(b)) > 1 for b in plain)  # arrival order mixes 1 s and 3 s chunks
    bucketed, rows_b = run_batched(tmp_path, Batching(3, buckets_s=(2.0,), max_wait_s=1.0))
    assert bucketed == [[1, 1, 1], [3, 3, 3]]
    assert rows_b == rows and len(rows) == 6  # batching never changes what is written


def test_resource_hints_go_on_the_asr_step_only(tmp_path):
    from apache_beam.transforms.resources import AcceleratorHint

    handler = AsrModelHandler(
        FakeFactory(),
        OPTS,
        "whisper-english",
        language="en",
        resource_hints={"accelerator": "type:nvidia-l4;count:1;install-nvidia-driver"},
    )
    p = beam.Pipeline()
    _ = p | beam.Create(chunks(tmp_path, 2)) | transcribe(handler, tmp_path)
    proto = p.to_runner_api()
    urn = AcceleratorHint.urn
    envs = proto.components.environments
    hinted = {
        t.unique_name
        for t in proto.components.transforms.values()
        if not t.subtransforms and urn in envs[t.environment_id].resource_hints
    }
    assert hinted and all("RunInference" in name for name in hinted)
    names = [t.unique_name for t in proto.components.transforms.values()]
    assert any(n.endswith("ToAsrWorkers") for n in names)  # its own stage
