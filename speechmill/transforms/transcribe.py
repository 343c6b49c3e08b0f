"""transcribe stage: chunks -> segments + N-best hypotheses, through RunInference."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam

from speechmill.core.asr.decoding import AsrOutput, DecodeOptions, asr_failure, no_text
from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.core.elements import ChunkRef
from speechmill.core.text.metrics import compression_ratio
from speechmill.core.text.normalize import get_normalizer
from speechmill.schemas import Category, Drop, Segment
from speechmill.store import Store, as_store
from speechmill.transforms.asr import AsrModelHandler, Decode, ItemRef, nbest_row
from speechmill.transforms.common import HYPOTHESES, REJECTS, internal_detail, reject

STAGE = "transcribe"


class LoadAudioDoFn(beam.DoFn):
    """ChunkRef -> (ChunkRef, samples); unreadable audio -> reject."""

    def __init__(self, run_id: str, store: Store | str) -> None:
        self._run_id = run_id
        self._store = as_store(store)

    def process(self, chunk: ChunkRef) -> Iterator[object]:
        try:
            audio = self._store.read_span(chunk.audio_path, chunk.start, chunk.end)
        except Exception as e:
            yield reject(
                Drop(
                    Category.IO_ERROR,
                    "cannot read the chunk's audio from the store",
                    detail=internal_detail(e),
                    retryable=True,
                ),
                item_id=chunk.segment_id,
                item_kind="chunk",
                stage=STAGE,
                run_id=self._run_id,
                parent_id=chunk.recording_id,
                source_id=chunk.source_id,
                duration_s=chunk.duration_s,
            )
            return
        yield (chunk, audio)


@dataclass
class SegmentRows:
    """Row builder of the corpus pipeline: a decoded chunk -> its segment and N-best list."""

    model_id: str
    decoder: str
    beam_size: int
    normalizer: str
    run_id: str
    stage: str = STAGE
    tags: tuple[str, ...] = (HYPOTHESES,)
    _norm: tuple[str, str] = ("", "")

    def setup(self) -> None:
        norm = get_normalizer(self.normalizer)
        self._norm = (norm.name, norm.version)

    def ref(self, chunk: ChunkRef) -> ItemRef:
        return ItemRef(
            chunk.segment_id, "chunk", chunk.recording_id, chunk.source_id, chunk.duration_s
        )

    def rows(self, chunk: ChunkRef, out: AsrOutput) -> list[object] | Drop:
        drop = asr_failure(out, "chunk")
        if drop is not None or out.nbest is None:
            return drop or Drop(Category.ASR_ERROR, "no N-best list")
        drop = no_text(out.nbest, best_only=True)
        if drop is not None:
            return drop
        best = out.nbest.hyps[0]
        segment = Segment(
            segment_id=chunk.segment_id,
            recording_id=chunk.recording_id,
            start_sample=chunk.start,
            end_sample=chunk.end,
            start_s=chunk.start / SAMPLE_RATE,
            duration_s=chunk.duration_s,
            text=best.text,
            language=out.language,
            language_prob=out.language_prob,
            avg_logprob=best.avg_logprob,
            no_speech_prob=out.no_speech_prob,
            compression_ratio=compression_ratio(best.text),
            num_tokens=best.num_tokens,
            model_id=self.model_id,
            decoder_id=self.decoder,
            license=chunk.license,
            attribution=chunk.attribution,
            run_id=self.run_id,
        )
        nbest = nbest_row(
            out,
            item_id=chunk.segment_id,
            item_kind="segment",
            decoder=self.decoder,
            model_id=self.model_id,
            beam_size=self.beam_size,
            normalizer=self._norm,
            run_id=self.run_id,
        )
        return [segment, beam.pvalue.TaggedOutput(HYPOTHESES, nbest)]


class Transcribe(beam.PTransform):
    """ChunkRef -> segments (main), `hypotheses`, `rejects`."""

    def __init__(
        self,
        handler: AsrModelHandler,
        *,
        model_id: str,
        decoder: str,
        options: DecodeOptions,
        normalizer: str,
        run_id: str,
        store: Store | str,
        progress: bool = False,
    ) -> None:
        super().__init__()
        self._handler = handler
        self._rows = SegmentRows(model_id, decoder, options.beam_size, normalizer, run_id)
        self._run_id = run_id
        self._store = as_store(store)
        self._progress = progress

    def expand(self, chunks: beam.PCollection) -> dict[str, beam.PCollection]:
        loaded = chunks | "LoadAudio" >> beam.ParDo(
            LoadAudioDoFn(self._run_id, self._store)
        ).with_outputs(REJECTS, main="audio")
        decoded = loaded.audio | "Decode" >> Decode(
            self._handler, self._rows, self._run_id, fault=STAGE, progress=self._progress
        )
        rejects = (loaded[REJECTS], decoded[REJECTS]) | "MergeRejects" >> beam.Flatten()
        return {"segments": decoded.main, HYPOTHESES: decoded[HYPOTHESES], "rejects": rejects}
