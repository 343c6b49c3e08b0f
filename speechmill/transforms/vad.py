"""vad stage: recordings -> chunks of <= 30 s (ChunkRef), or a reject per recording."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import numpy.typing as npt

from speechmill import progress as live
from speechmill.backends.vad import Detector, silero_detector, windowed_regions
from speechmill.config import AudioConfig, VadConfig
from speechmill.core.audio.chunks import (
    SAMPLE_RATE,
    frame_energy,
    no_speech,
    plan_chunks,
    segment_id,
    silent,
)
from speechmill.core.audio.io import read_span
from speechmill.core.elements import ChunkRef
from speechmill.faults import fault_point
from speechmill.schemas import Category, Drop, Recording
from speechmill.store import Store, as_store
from speechmill.transforms.common import internal_detail, reject

STAGE = "vad"


def make_detector(vad: VadConfig) -> Detector:
    return silero_detector(
        vad.threshold, vad.min_speech_ms, vad.min_silence_ms, vad.speech_pad_ms, vad.max_chunk_s
    )


class DetectSpeechDoFn(beam.DoFn):
    """Recording -> ChunkRef per chunk; silent or speechless recordings -> one reject."""

    def __init__(
        self,
        store: Store | str,
        vad: VadConfig,
        audio: AudioConfig,
        run_id: str,
        progress: bool = False,
    ) -> None:
        self._store = as_store(store)
        self._vad = vad
        self._audio = audio
        self._run_id = run_id
        self._progress_on = progress

    def setup(self) -> None:
        self._detect = make_detector(self._vad)
        self._live = live.stage("VAD", show=self._progress_on)

    def _reject(self, rec: Recording, drop: Drop) -> beam.pvalue.TaggedOutput:
        return reject(
            drop,
            item_id=rec.recording_id,
            item_kind="recording",
            stage=STAGE,
            run_id=self._run_id,
            parent_id=rec.media_id,
            source_id=rec.media_id,
            duration_s=rec.duration_s,
        )

    def process(self, rec: Recording) -> Iterator[object]:
        fault_point(STAGE)
        try:
            yield from self._chunks(rec)
        except Exception as e:
            yield self._reject(rec, Drop(Category.INTERNAL, "VAD failed", internal_detail(e)))
        self._live.add(rec.duration_s)

    def _chunks(self, rec: Recording) -> Iterator[object]:
        drop = silent(rec.rms_dbfs, self._audio.silence_dbfs)
        if drop is not None:
            yield self._reject(rec, drop)
            return
        path = self._store.path(rec.audio_uri)
        with self._store.open(path) as f:  # one open per recording

            def read(start: int, stop: int) -> npt.NDArray[np.float32]:
                return read_span(f, start, stop)

            regions = windowed_regions(read, rec.num_samples, self._detect)
            kept, short = plan_chunks(
                regions,
                total=rec.num_samples,
                max_len=int(self._vad.max_chunk_s * SAMPLE_RATE),
                merge_gap=int(self._vad.merge_gap_s * SAMPLE_RATE),
                min_len=int(self._vad.min_chunk_s * SAMPLE_RATE),
                energy=lambda r: frame_energy(read(r.start, r.end)),
                search=int(self._vad.split_search_s * SAMPLE_RATE),
            )
        drop = no_speech(kept, short)
        if drop is not None:
            yield self._reject(rec, drop)
            return
        for span in short:
            yield reject(
                Drop(
                    Category.TOO_SHORT,
                    f"speech region under vad.min_chunk_s ({self._vad.min_chunk_s} s)",
                ),
                item_id=segment_id(rec.recording_id, span),
                item_kind="chunk",
                stage=STAGE,
                run_id=self._run_id,
                parent_id=rec.recording_id,
                source_id=rec.media_id,
                duration_s=span.length / SAMPLE_RATE,
            )
        for span in kept:
            yield ChunkRef(
                segment_id=segment_id(rec.recording_id, span),
                recording_id=rec.recording_id,
                source_id=rec.media_id,
                audio_path=path,
                start=span.start,
                end=span.end,
                language=rec.language,
                license=rec.license,
                attribution=rec.attribution,
            )
