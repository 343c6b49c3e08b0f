"""transcribe stage: chunks -> segments + N-best hypotheses, through RunInference."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import apache_beam as beam
import numpy as np
import numpy.typing as npt
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from speechmill.backends.asr import (
    AsrBackend,
    AsrItem,
    AsrOutput,
    DecodeOptions,
    FeatureTransform,
    decode_with_retry,
)
from speechmill.config import AsrConfig
from speechmill.core.audio.io import read_span
from speechmill.core.elements import ChunkRef
from speechmill.core.text.metrics import compression_ratio
from speechmill.core.text.normalize import get_normalizer
from speechmill.faults import fault_point
from speechmill.schemas import Category, NBestList, Segment
from speechmill.transforms.common import HYPOTHESES, Progress, internal_detail, reject

STAGE = "transcribe"


class BackendFactory(Protocol):
    """Builds the backend on the worker; cheap to pickle; knows the model's identity."""

    @property
    def model_id(self) -> str: ...

    def __call__(self) -> AsrBackend: ...

    def fingerprint(self) -> str: ...


@dataclass(frozen=True)
class FasterWhisperFactory:
    model_id: str = "bundled:tiny.en"
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0

    @staticmethod
    def from_config(cfg: AsrConfig) -> FasterWhisperFactory:
        return FasterWhisperFactory(cfg.model, cfg.device, cfg.compute_type, cfg.cpu_threads)

    def __call__(self) -> AsrBackend:
        from speechmill.backends.faster_whisper import FasterWhisperBackend

        return FasterWhisperBackend.load(
            self.model_id, self.device, self.compute_type, self.cpu_threads
        )

    def fingerprint(self) -> str:
        from speechmill.backends.faster_whisper import model_fingerprint, resolve_model

        return model_fingerprint(resolve_model(self.model_id))


def decode_options(cfg: AsrConfig) -> DecodeOptions:
    return DecodeOptions(
        beam_size=cfg.beam_size,
        n_best=cfg.n_best,
        top_up=cfg.top_up,
        temperatures=tuple(cfg.sample_temperatures),
        sample_budget=cfg.sample_budget,
        sample_max_tokens=cfg.sample_max_tokens,
        topk=cfg.sample_topk,
        max_new_tokens=cfg.max_new_tokens,
        min_context_s=cfg.min_context_s,
    )


def decoder_id(model_hash: str, options: DecodeOptions, normalizer: str) -> str:
    """Identity of a decoder: model content + decode settings + normaliser."""
    text = f"{model_hash}|{options.describe()}|{normalizer}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


Example = tuple[ChunkRef, npt.NDArray[np.float32]]


class AsrModelHandler(ModelHandler[Example, PredictionResult, AsrBackend]):
    """RunInference handler: one backend per worker, batches decoded with per-item retry."""

    def __init__(
        self,
        factory: Callable[[], AsrBackend],
        options: DecodeOptions,
        normalizer: str,
        *,
        language: str | None,
        batch_size: int = 8,
        share_across_processes: bool = False,
        feature_transform: FeatureTransform | None = None,
        transform_for: Callable[[Sequence[Any]], FeatureTransform | None] | None = None,
    ) -> None:
        """`transform_for(elements)` picks a feature transform per batch (e.g. masking
        only the items whose plan says so); otherwise `feature_transform` applies to all."""
        super().__init__()
        self._factory = factory
        self._options = options
        self._normalizer = normalizer
        self._language = language
        self._batch_size = batch_size
        self._share = share_across_processes
        self._feature_transform = feature_transform
        self._transform_for = transform_for

    def load_model(self) -> AsrBackend:
        return self._factory()

    def run_inference(
        self,
        batch: Sequence[Example],
        model: AsrBackend,
        inference_args: dict[str, Any] | None = None,
    ) -> list[PredictionResult]:
        # examples are (element, samples); elements name themselves (`item_id`, `language`)
        items = [AsrItem(c.item_id, a, c.language or self._language) for c, a in batch]
        transform = self._feature_transform
        if self._transform_for is not None:
            transform = self._transform_for([c for c, _ in batch])
        outs = decode_with_retry(
            model, items, self._options, get_normalizer(self._normalizer), transform
        )
        return [PredictionResult(ex, out) for ex, out in zip(batch, outs, strict=True)]

    def batch_elements_kwargs(self) -> dict[str, Any]:
        # fixed-size batches: adaptive sizing starts at 1, which is slow for Whisper
        return {"min_batch_size": self._batch_size, "max_batch_size": self._batch_size}

    def share_model_across_processes(self) -> bool:
        return self._share

    def get_metrics_namespace(self) -> str:
        return "speechmill_asr"


class LoadAudioDoFn(beam.DoFn):
    """ChunkRef -> (ChunkRef, samples); unreadable audio -> reject."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    def process(self, chunk: ChunkRef) -> Iterator[object]:
        try:
            audio = read_span(chunk.audio_path, chunk.start, chunk.end)
        except Exception as e:
            yield reject(
                item_id=chunk.segment_id,
                item_kind="chunk",
                stage=STAGE,
                category=Category.IO_ERROR,
                reason="cannot read the chunk's audio from the store",
                run_id=self._run_id,
                parent_id=chunk.recording_id,
                source_id=chunk.source_id,
                detail=internal_detail(e),
                duration_s=chunk.duration_s,
                retryable=True,
            )
            return
        yield (chunk, audio)


def nbest_row(
    out: AsrOutput,
    *,
    item_id: str,
    item_kind: str,
    decoder: str,
    model_id: str,
    beam_size: int,
    normalizer: tuple[str, str],
    run_id: str,
) -> NBestList:
    """Pure: the `hypotheses` row of one decoded item (its N-best list must exist)."""
    if out.nbest is None:
        raise ValueError(f"{item_id}: no N-best list to write ({out.error})")
    hyps = out.nbest.hyps
    return NBestList(
        item_id=item_id,
        item_kind=item_kind,
        decoder_id=decoder,
        model_id=model_id,
        language=out.language,
        texts=[h.text for h in hyps],
        texts_norm=list(out.nbest.norms),
        sum_logprob=[h.sum_logprob for h in hyps],
        num_tokens=[h.num_tokens for h in hyps],
        avg_logprob=[h.avg_logprob for h in hyps],
        method=[h.method for h in hyps],
        temperature=[h.temperature for h in hyps],
        seed=[h.seed for h in hyps],
        n_requested=out.nbest.n_requested,
        n_unique=out.nbest.n_unique,
        beam_size=beam_size,
        normalizer=normalizer[0],
        normalizer_version=normalizer[1],
        run_id=run_id,
    )


def to_rows(
    chunk: ChunkRef,
    out: AsrOutput,
    *,
    model_id: str,
    decoder: str,
    options: DecodeOptions,
    normalizer_name: str,
    normalizer_version: str,
    run_id: str,
) -> tuple[Segment, NBestList] | tuple[Category, str, str | None]:
    """Pure: one ASR output -> (segment, N-best list) or (category, reason, detail)."""
    if out.error is not None or out.nbest is None:
        return Category.ASR_ERROR, "the ASR model failed on this chunk", out.error
    hyps = out.nbest.hyps
    if not hyps or not out.nbest.norms[0].strip():
        return Category.EMPTY_TRANSCRIPT, "ASR produced no text", None
    best = hyps[0]
    segment = Segment(
        segment_id=chunk.segment_id,
        recording_id=chunk.recording_id,
        start_sample=chunk.start,
        end_sample=chunk.end,
        start_s=chunk.start / 16000.0,
        duration_s=chunk.duration_s,
        text=best.text,
        language=out.language,
        language_prob=out.language_prob,
        avg_logprob=best.avg_logprob,
        no_speech_prob=out.no_speech_prob,
        compression_ratio=compression_ratio(best.text),
        num_tokens=best.num_tokens,
        model_id=model_id,
        decoder_id=decoder,
        license=chunk.license,
        attribution=chunk.attribution,
        run_id=run_id,
    )
    nbest = nbest_row(
        out,
        item_id=chunk.segment_id,
        item_kind="segment",
        decoder=decoder,
        model_id=model_id,
        beam_size=options.beam_size,
        normalizer=(normalizer_name, normalizer_version),
        run_id=run_id,
    )
    return segment, nbest


class SplitAsrDoFn(beam.DoFn):
    """PredictionResult -> Segment (main), NBestList (`hypotheses`) or reject."""

    def __init__(
        self,
        *,
        model_id: str,
        decoder: str,
        options: DecodeOptions,
        normalizer: str,
        run_id: str,
        progress: bool,
    ) -> None:
        self._model_id = model_id
        self._decoder = decoder
        self._options = options
        self._normalizer = normalizer
        self._run_id = run_id
        self._progress_on = progress

    def setup(self) -> None:
        self._norm = get_normalizer(self._normalizer)
        self._progress = Progress(self._progress_on, "transcribe")

    def process(self, result: PredictionResult) -> Iterator[object]:
        fault_point(STAGE)
        chunk = cast(Example, result.example)[0]
        out = cast(AsrOutput, result.inference)
        try:
            rows = to_rows(
                chunk,
                out,
                model_id=self._model_id,
                decoder=self._decoder,
                options=self._options,
                normalizer_name=self._norm.name,
                normalizer_version=self._norm.version,
                run_id=self._run_id,
            )
        except Exception as e:  # one bad output never stops the run
            rows = (Category.INTERNAL, "building the rows of this chunk failed", internal_detail(e))
        self._progress.add(chunk.duration_s)
        if isinstance(rows[0], Category):
            category, reason, detail = rows
            yield reject(
                item_id=chunk.segment_id,
                item_kind="chunk",
                stage=STAGE,
                category=category,
                reason=reason,
                run_id=self._run_id,
                parent_id=chunk.recording_id,
                source_id=chunk.source_id,
                detail=detail,
                duration_s=chunk.duration_s,
            )
            return
        segment, nbest = rows
        yield segment
        yield beam.pvalue.TaggedOutput(HYPOTHESES, nbest)


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
        progress: bool = False,
    ) -> None:
        super().__init__()
        self._handler = handler
        self._split = SplitAsrDoFn(
            model_id=model_id,
            decoder=decoder,
            options=options,
            normalizer=normalizer,
            run_id=run_id,
            progress=progress,
        )
        self._run_id = run_id

    def expand(self, chunks: beam.PCollection) -> dict[str, beam.PCollection]:
        loaded = chunks | "LoadAudio" >> beam.ParDo(LoadAudioDoFn(self._run_id)).with_outputs(
            "rejects", main="audio"
        )
        split = (
            loaded.audio
            | "RunInference" >> RunInference(self._handler)
            | "ToRows"
            >> beam.ParDo(self._split).with_outputs(HYPOTHESES, "rejects", main="segments")
        )
        rejects = (loaded.rejects, split.rejects) | "MergeRejects" >> beam.Flatten()
        return {"segments": split.segments, HYPOTHESES: split[HYPOTHESES], "rejects": rejects}
