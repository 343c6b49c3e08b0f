"""refine stages: align transcripts, resegment into utterances, decode them, filter.

SegmentRef --LoadAudio--> RunInference(align) --by recording--> resegment
  --> UtteranceDraft --LoadAudio--> RunInference(ASR) --> Utterance + N-best
  --by source--> filters --> utterances, labels (round 0), rejects
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from speechmill import progress as live
from speechmill.config import AlignConfig, FiltersConfig
from speechmill.core.align.alignment import AlignedWord, Alignment
from speechmill.core.align.resegment import resegment
from speechmill.core.asr.decoding import AsrOutput, asr_failure
from speechmill.core.audio.chunks import SAMPLE_RATE as SR
from speechmill.core.text.metrics import compression_ratio
from speechmill.core.text.normalize import get_normalizer
from speechmill.faults import fault_point
from speechmill.schemas import Attribution, Category, Drop, Label, Utterance, Word
from speechmill.store import Store, as_store
from speechmill.transforms.asr import ItemRef, nbest_row
from speechmill.transforms.common import HYPOTHESES, internal_detail, reject

ALIGN_STAGE = "align"
FILTER_STAGE = "filter"
LABELS = "labels"


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    recording_id: str
    source_id: str
    audio_path: str
    num_samples: int
    language: str
    license: str
    attribution: Attribution


def attribution_from(value: Mapping[str, Any] | None) -> Attribution:
    """An attribution struct as read back from DuckDB (a dict, or null)."""
    v = value or {}
    return Attribution(v.get("author"), v.get("title"), v.get("url"))


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """A committed segment's text and offsets: what the aligner aligns."""

    recording: RecordingInfo
    segment_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class UtteranceDraft:
    recording: RecordingInfo
    start: int
    end: int
    words: tuple[AlignedWord, ...]  # times in seconds from the recording start
    unaligned: int

    @property
    def utterance_id(self) -> str:
        return f"{self.recording.recording_id[:24]}-u{self.start}-{self.end}"

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)

    @property
    def item_id(self) -> str:
        return self.utterance_id

    @property
    def language(self) -> str:
        return self.recording.language


# ----------------------------------------------------------------------------- model handlers


class AlignModelHandler(ModelHandler[tuple[SegmentRef, Any], PredictionResult, Any]):
    """RunInference handler for an Aligner (one per worker)."""

    def __init__(self, factory: Callable[[], Any], batch_size: int = 8) -> None:
        super().__init__()
        self._factory = factory
        self._batch_size = batch_size

    def load_model(self) -> Any:
        return self._factory()

    def run_inference(
        self, batch: Sequence[tuple[SegmentRef, Any]], model: Any, inference_args: Any = None
    ) -> list[PredictionResult]:
        out = []
        for seg, audio in batch:
            try:
                result: Alignment | str = model.align(audio, seg.text, seg.recording.language)
            except Exception as e:  # one bad segment fails alone
                result = internal_detail(e)
            out.append(PredictionResult((seg, None), result))
        return out

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return {"min_batch_size": 1, "max_batch_size": self._batch_size}

    def get_metrics_namespace(self) -> str:
        return "speechmill_align"


@dataclass(frozen=True)
class WhisperAlignerFactory:
    model_id: str
    device: str = "cpu"
    compute_type: str = "int8"
    window_s: float = 30.0
    overlap_s: float = 5.0
    snap_silence: bool = True

    def __call__(self) -> Any:
        from speechmill.backends.align import WhisperAligner

        return WhisperAligner.load(
            self.model_id,
            self.device,
            self.compute_type,
            window_s=self.window_s,
            overlap_s=self.overlap_s,
            snap_silence=self.snap_silence,
        )


@dataclass(frozen=True)
class CtcAlignerFactory:
    """The optional CTC aligner (MMS_FA weights; needs `pip install 'speechmill[ctc]'`)."""

    model_id: str = "mms_fa"
    window_s: float = 30.0
    overlap_s: float = 5.0

    def __call__(self) -> Any:
        from speechmill.backends.ctc import CtcAligner

        return CtcAligner.load(self.model_id, window_s=self.window_s, overlap_s=self.overlap_s)


def aligner_factory(cfg: AlignConfig, asr_model: str, device: str, compute_type: str) -> Any:
    """The aligner the config asks for (the Whisper one shares the ASR model's weights file)."""
    if cfg.backend == "ctc":
        return CtcAlignerFactory(cfg.ctc_model, cfg.window_s, cfg.overlap_s)
    return WhisperAlignerFactory(
        asr_model, device, compute_type, cfg.window_s, cfg.overlap_s, cfg.snap_silence
    )


# ----------------------------------------------------------------------------- DoFns


class LoadSpanDoFn(beam.DoFn):
    """(element with .recording.audio_path, start, end) -> (element, samples)."""

    def __init__(self, run_id: str, stage: str, store: Store | str) -> None:
        self._run_id = run_id
        self._stage = stage
        self._store = as_store(store)

    def process(self, el: Any) -> Iterator[Any]:
        try:
            yield (el, self._store.read_span(el.recording.audio_path, el.start, el.end))
        except Exception as e:
            yield reject(
                Drop(
                    Category.IO_ERROR,
                    "cannot read the audio from the store",
                    detail=internal_detail(e),
                    retryable=True,
                ),
                item_id=getattr(el, "segment_id", None) or el.utterance_id,
                item_kind="chunk" if isinstance(el, SegmentRef) else "utterance",
                stage=self._stage,
                run_id=self._run_id,
                parent_id=el.recording.recording_id,
                source_id=el.recording.source_id,
            )


def shift(words: Iterable[AlignedWord], offset_s: float) -> list[AlignedWord]:
    return [AlignedWord(w.word, w.start_s + offset_s, w.end_s + offset_s, w.score) for w in words]


class AlignedWordsDoFn(beam.DoFn):
    """PredictionResult -> (recording_id, (segment start, words in recording time)) or reject."""

    def __init__(self, run_id: str, progress: bool = False, total: int | None = None) -> None:
        self._run_id = run_id
        self._progress_on = progress
        self._total = total

    def setup(self) -> None:
        self._live = live.stage("align", show=self._progress_on, total=self._total)

    def process(self, result: PredictionResult) -> Iterator[Any]:
        fault_point("align")
        seg = cast(SegmentRef, cast(tuple[Any, Any], result.example)[0])
        self._live.add((seg.end - seg.start) / SR)
        al = cast(Alignment | str, result.inference)  # an error message when it failed
        if isinstance(al, str):
            yield reject(
                Drop(Category.ALIGN_ERROR, "forced alignment failed on this segment", detail=al),
                item_id=seg.segment_id,
                item_kind="chunk",
                stage=ALIGN_STAGE,
                run_id=self._run_id,
                parent_id=seg.recording.recording_id,
                source_id=seg.recording.source_id,
                duration_s=(seg.end - seg.start) / SR,
            )
            return
        yield (
            seg.recording.recording_id,
            (seg.recording, seg.start, shift(al.words, seg.start / SR), al.unaligned),
        )


class ResegmentDoFn(beam.DoFn):
    """(recording_id, [(recording, start, words, unaligned)]) -> UtteranceDraft per cut."""

    def __init__(self, cfg: AlignConfig, run_id: str) -> None:
        self._cfg = cfg
        self._run_id = run_id

    def process(self, element: tuple[str, Iterable[Any]]) -> Iterator[Any]:
        rid, parts = element
        ordered = sorted(parts, key=lambda p: p[1])
        rec: RecordingInfo = ordered[0][0]
        words = [w for p in ordered for w in p[2]]
        if not words:
            yield reject(
                Drop(Category.ALIGN_ERROR, "no words to align (every segment empty)"),
                item_id=rid,
                item_kind="recording",
                stage=ALIGN_STAGE,
                run_id=self._run_id,
                parent_id=rec.source_id,
                source_id=rec.source_id,
                duration_s=rec.num_samples / SR,
            )
            return
        total_s = rec.num_samples / SR
        unplaced = {id(w) for w in words if w.score <= 0.0}
        cuts = resegment(
            words,
            total_s=total_s,
            min_s=self._cfg.min_utterance_s,
            max_s=self._cfg.max_utterance_s,
            min_pause_s=self._cfg.min_pause_s,
            pad_s=self._cfg.pad_s,
        )
        for cut in cuts:
            ws = tuple(words[cut.first_word : cut.last_word + 1])
            start = max(0, round(cut.start_s * SR))
            end = min(rec.num_samples, round(cut.end_s * SR))
            draft = UtteranceDraft(rec, start, end, ws, sum(id(w) in unplaced for w in ws))
            if end <= start:  # words placed outside the audio: their cut has no samples
                yield reject(
                    Drop(
                        Category.ALIGN_ERROR,
                        "a cut with no audio (its words lie past the recording's end)",
                        draft.text[:200],
                    ),
                    item_id=draft.utterance_id,
                    item_kind="utterance",
                    stage=ALIGN_STAGE,
                    run_id=self._run_id,
                    parent_id=rid,
                    source_id=rec.source_id,
                )
                continue
            yield draft


def to_utterance(draft: UtteranceDraft, out: Any, run_id: str) -> Utterance:
    """An utterance row from its draft and its own ASR output (an AsrOutput)."""
    nb = out.nbest
    best = nb.hyps[0] if nb is not None and nb.hyps else None
    asr_text = best.text if best is not None else ""
    ws = draft.words
    return Utterance(
        utterance_id=draft.utterance_id,
        recording_id=draft.recording.recording_id,
        source_id=draft.recording.source_id,
        start_sample=draft.start,
        end_sample=draft.end,
        start_s=draft.start / SR,
        duration_s=(draft.end - draft.start) / SR,
        text=draft.text,
        words=[Word(w.word, w.start_s, w.end_s, w.score) for w in ws],
        align_score=float(np.mean([w.score for w in ws])) if ws else 0.0,
        unaligned_words=draft.unaligned,
        aligner="",
        asr_text=asr_text,
        avg_logprob=best.avg_logprob if best is not None else float("-inf"),
        no_speech_prob=float(out.no_speech_prob),
        compression_ratio=compression_ratio(asr_text),
        language=out.language or draft.recording.language,
        language_prob=out.language_prob,
        license=draft.recording.license,
        attribution=draft.recording.attribution,
        run_id=run_id,
    )


@dataclass
class UtteranceRows:
    """Row builder of refine: a decoded utterance -> (source_id, Utterance) and its N-best."""

    aligner: str
    model_id: str
    decoder: str
    normalizer: str
    beam_size: int
    run_id: str
    stage: str = "transcribe"
    tags: tuple[str, ...] = (HYPOTHESES,)
    _norm: tuple[str, str] = ("", "")

    def setup(self) -> None:
        norm = get_normalizer(self.normalizer)
        self._norm = (norm.name, norm.version)

    def ref(self, draft: UtteranceDraft) -> ItemRef:
        rec = draft.recording
        duration = (draft.end - draft.start) / SR
        return ItemRef(draft.utterance_id, "utterance", rec.recording_id, rec.source_id, duration)

    def rows(self, draft: UtteranceDraft, out: AsrOutput) -> list[object] | Drop:
        drop = asr_failure(out, "utterance")
        if drop is not None:
            return drop
        utt = dataclasses.replace(to_utterance(draft, out, self.run_id), aligner=self.aligner)
        nbest = nbest_row(
            out,
            item_id=utt.utterance_id,
            item_kind="utterance",
            decoder=self.decoder,
            model_id=self.model_id,
            beam_size=self.beam_size,
            normalizer=self._norm,
            run_id=self.run_id,
        )
        return [(utt.source_id, utt), beam.pvalue.TaggedOutput(HYPOTHESES, nbest)]


class FilterDoFn(beam.DoFn):
    """(source_id, [Utterance]) -> Utterance rows, round-0 labels, and a reject per drop."""

    def __init__(
        self,
        cfg: FiltersConfig,
        *,
        language: str,
        model_id: str,
        model_hash: str,
        decoder: str,
        normalizer: str,
        run_id: str,
    ) -> None:
        self._cfg = cfg
        self._language = language
        self._model_id = model_id
        self._model_hash = model_hash
        self._decoder = decoder
        self._normalizer = normalizer
        self._run_id = run_id

    def setup(self) -> None:
        self._norm = get_normalizer(self._normalizer)

    def process(self, element: tuple[str, Iterable[Utterance]]) -> Iterator[Any]:
        fault_point("filter")
        from speechmill.core.quality.filters import apply

        _source, group = element
        utts = sorted(group, key=lambda u: u.utterance_id)
        verdicts = apply(utts, self._cfg, target_language=self._language)
        for u, v in zip(utts, verdicts, strict=True):
            yield u
            yield beam.pvalue.TaggedOutput(
                LABELS,
                Label(
                    utterance_id=u.utterance_id,
                    round=0,
                    model_id=self._model_id,
                    model_hash=self._model_hash,
                    decoder_id=self._decoder,
                    text=u.text,
                    text_norm=self._norm(u.text),
                    prev_text=None,
                    cer_prev=None,
                    decision="seed" if v.keep else "reject",
                    cer_gate=None,
                    run_id=self._run_id,
                ),
            )
            if not v.keep:
                yield reject(
                    Drop(Category.FILTER, v.reason, detail=v.filter),
                    item_id=u.utterance_id,
                    item_kind="utterance",
                    stage=FILTER_STAGE,
                    run_id=self._run_id,
                    parent_id=u.recording_id,
                    source_id=u.source_id,
                    duration_s=u.duration_s,
                    counter=f"filter/{v.filter}",
                )
