"""ASR through RunInference, the one way every pipeline decodes audio.

`Decode(handler, rows, run_id)` takes `(element, samples)` examples, runs the model
handler (one backend per worker, fixed batches, per-item retry) and turns each
result into table rows with a *row builder*: a small picklable object that knows
its elements (`ref`) and builds their rows from an `AsrOutput` (`rows`). Decode owns
what every pipeline shares: the fault point, progress, and the rule that an error
building one item's rows becomes that item's reject and never stops the run.

    corpus   chunks     -> segments + hypotheses     (transforms.transcribe.SegmentRows)
    refine   utterances -> utterances + hypotheses   (transforms.refine.UtteranceRows)
    relabel  utterances -> labels (the CER gate)      (pipelines.relabel.GateRows)
    synth    TTS audio  -> pairs                      (transforms.synth.PairRows)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, cast

import apache_beam as beam
import numpy as np
import numpy.typing as npt
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from speechmill import progress as live
from speechmill.backends.asr import AsrBackend, decode_with_retry
from speechmill.backends.devices import cuda_devices
from speechmill.config import AsrConfig
from speechmill.core.asr.decoding import (
    AsrItem,
    AsrOutput,
    DecodeOptions,
    FeatureTransform,
    nbest_columns,
)
from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.core.text.normalize import get_normalizer
from speechmill.faults import fault_point
from speechmill.schemas import Category, Drop, NBestList
from speechmill.transforms.common import REJECTS, internal_detail, reject


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

    def __call__(self) -> AsrBackend:
        from speechmill.backends.faster_whisper import FasterWhisperBackend

        return FasterWhisperBackend.load(
            self.model_id, self.device, self.compute_type, self.cpu_threads
        )

    def fingerprint(self) -> str:
        from speechmill.backends.faster_whisper import model_fingerprint, resolve_model

        return model_fingerprint(resolve_model(self.model_id))


@dataclass(frozen=True)
class OpenAIWhisperFactory:
    """openai-whisper (PyTorch); `compute_type` does not apply (float16 on CUDA, else float32)."""

    model_id: str = "bundled:tiny.en"
    device: str = "cpu"
    cpu_threads: int = 0

    def __call__(self) -> AsrBackend:
        from speechmill.backends.openai_whisper import OpenAIWhisperBackend

        return OpenAIWhisperBackend.load(self.model_id, self.device, self.cpu_threads)

    def fingerprint(self) -> str:
        """sha256 of the checkpoint (a CTranslate2 model is converted here first)."""
        from speechmill.backends.openai_whisper import resolve_checkpoint

        return resolve_checkpoint(self.model_id)[1]


def backend_factory(cfg: AsrConfig, model: str | None = None) -> BackendFactory:
    """The factory `cfg.backend` names, for `model` (default: `cfg.model`)."""
    name = model or cfg.model
    if cfg.backend == "openai-whisper":
        return OpenAIWhisperFactory(name, cfg.device, cfg.cpu_threads)
    return FasterWhisperFactory(name, cfg.device, cfg.compute_type, cfg.cpu_threads)


def decoder_id(model_hash: str, options: DecodeOptions, normalizer: str) -> str:
    """Identity of a decoder: model content + decode settings + normaliser."""
    text = f"{model_hash}|{options.describe()}|{normalizer}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


Example = tuple[Any, npt.NDArray[np.float32]]
"""(element, 16 kHz float32 samples); the element names itself (`item_id`, `language`)."""


def sized_for_cuda(cfg: AsrConfig) -> bool:
    """Batches are sized on the driver: for CUDA when the config says cuda, when the ASR step
    asks for an accelerator, or when `auto` and the driver itself sees a GPU."""
    if cfg.device != "auto":
        return cfg.device == "cuda"
    return "accelerator" in cfg.resource_hints or cuda_devices() > 0


def audio_seconds(example: Example) -> int:
    """The length RunInference's bucketed batching groups by: whole seconds of audio."""
    return int(len(example[1]) // SAMPLE_RATE)


@dataclass(frozen=True)
class Batching:
    """How RunInference batches and shares the model (from `AsrConfig`, on the driver)."""

    size: int = 8
    buckets_s: tuple[float, ...] = ()
    max_wait_s: float = 10.0
    model_copies: int | None = None  # None: one model per SDK process

    @staticmethod
    def from_config(cfg: AsrConfig, batch_size: int | None = None) -> Batching:
        cuda = sized_for_cuda(cfg)
        buckets = cfg.length_buckets_s
        if buckets is None:
            buckets = [5.0, 10.0, 20.0] if cuda else []
        copies = cfg.model_copies if cfg.model_copies is not None else (1 if cuda else None)
        size = batch_size or (cfg.cuda_batch_size if cuda else cfg.batch_size)
        return Batching(size, tuple(buckets), cfg.max_batch_wait_s, copies)

    def kwargs(self) -> dict[str, Any]:
        # fixed-size batches: adaptive sizing starts at 1, which is slow for Whisper
        out: dict[str, Any] = {"min_batch_size": self.size, "max_batch_size": self.size}
        if self.buckets_s:
            # chunks of similar length share a batch (Beam's keyed, stateful batching)
            out |= {
                "length_fn": audio_seconds,
                "bucket_boundaries": [int(b) for b in self.buckets_s],
                "max_batch_duration_secs": self.max_wait_s,
            }
        return out


class AsrModelHandler(ModelHandler[Example, PredictionResult, AsrBackend]):
    """RunInference handler: one backend per worker, batches decoded with per-item retry."""

    def __init__(
        self,
        factory: Callable[[], AsrBackend],
        options: DecodeOptions,
        normalizer: str,
        *,
        language: str | None,
        batching: Batching | None = None,
        resource_hints: Mapping[str, str] | None = None,
        feature_transform: FeatureTransform | None = None,
        transform_for: Callable[[Sequence[Any]], FeatureTransform | None] | None = None,
    ) -> None:
        """`transform_for(elements)` picks a feature transform per batch (e.g. masking
        only the items whose plan says so); otherwise `feature_transform` applies to all.
        `resource_hints` go on the ASR step only (`Decode`)."""
        super().__init__()
        self._factory = factory
        self._options = options
        self._normalizer = normalizer
        self._language = language
        self.batching = batching or Batching()
        self.resource_hints = dict(resource_hints or {})
        self._feature_transform = feature_transform
        self._transform_for = transform_for

    @staticmethod
    def from_config(
        factory: Callable[[], AsrBackend],
        options: DecodeOptions,
        cfg: AsrConfig,
        *,
        language: str | None,
        batch_size: int | None = None,
        transform_for: Callable[[Sequence[Any]], FeatureTransform | None] | None = None,
    ) -> AsrModelHandler:
        return AsrModelHandler(
            factory,
            options,
            cfg.normalizer,
            language=language,
            batching=Batching.from_config(cfg, batch_size),
            resource_hints=cfg.resource_hints,
            transform_for=transform_for,
        )

    def load_model(self) -> AsrBackend:
        return self._factory()

    def run_inference(
        self,
        batch: Sequence[Example],
        model: AsrBackend,
        inference_args: dict[str, Any] | None = None,
    ) -> list[PredictionResult]:
        items = [AsrItem(c.item_id, a, c.language or self._language) for c, a in batch]
        transform = self._feature_transform
        if self._transform_for is not None:
            transform = self._transform_for([c for c, _ in batch])
        outs = decode_with_retry(
            model, items, self._options, get_normalizer(self._normalizer), transform
        )
        return [PredictionResult(ex, out) for ex, out in zip(batch, outs, strict=True)]

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return self.batching.kwargs()

    def share_model_across_processes(self) -> bool:
        return self.batching.model_copies is not None

    def model_copies(self) -> int:
        return self.batching.model_copies or 1

    def get_metrics_namespace(self) -> str:
        return "speechmill_asr"


class ItemRef(NamedTuple):
    """How a decoded element appears in a reject row."""

    item_id: str
    item_kind: str
    parent_id: str | None
    source_id: str | None
    duration_s: float | None


class RowBuilder(Protocol):
    """Turns one decoded element into table rows (main output or TaggedOutputs), or a Drop."""

    @property
    def stage(self) -> str:
        """The stage its rejects carry."""
        ...

    @property
    def tags(self) -> tuple[str, ...]:
        """Tagged outputs besides `rejects`."""
        ...

    def setup(self) -> None: ...

    def ref(self, element: Any) -> ItemRef: ...

    def rows(self, element: Any, out: AsrOutput) -> Iterable[object] | Drop: ...


class _RowsDoFn(beam.DoFn):
    def __init__(
        self, builder: RowBuilder, run_id: str, fault: str, progress: bool, label: str
    ) -> None:
        self._builder = builder
        self._run_id = run_id
        self._fault = fault
        self._progress_on = progress
        self._label = label

    def setup(self) -> None:
        self._builder.setup()
        self._progress = live.stage(self._label, show=self._progress_on)

    def process(self, result: PredictionResult) -> Iterator[object]:
        fault_point(self._fault)
        element = cast(Example, result.example)[0]
        ref = self._builder.ref(element)
        self._progress.add(ref.duration_s or 0.0)
        try:
            built = self._builder.rows(element, cast(AsrOutput, result.inference))
            out: list[object] | Drop = built if isinstance(built, Drop) else list(built)
        except Exception as e:  # one bad output never stops the run
            out = Drop(
                Category.INTERNAL,
                f"building the rows of this {ref.item_kind} failed",
                internal_detail(e),
            )
        if isinstance(out, Drop):
            yield reject(
                out,
                item_id=ref.item_id,
                item_kind=ref.item_kind,
                stage=self._builder.stage,
                run_id=self._run_id,
                parent_id=ref.parent_id,
                source_id=ref.source_id,
                duration_s=ref.duration_s,
            )
            return
        yield from out


class Decode(beam.PTransform):
    """(element, samples) -> the row builder's outputs (main, its tags) and `rejects`."""

    def __init__(
        self,
        handler: AsrModelHandler,
        rows: RowBuilder,
        run_id: str,
        *,
        fault: str,
        progress: bool = False,
        label: str = "transcribe",
    ) -> None:
        super().__init__()
        self._handler = handler
        self._rows = _RowsDoFn(rows, run_id, fault, progress, label)
        self._tags = (*rows.tags, REJECTS)

    def expand(self, examples: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        infer: beam.PTransform = RunInference(self._handler)
        hints = self._handler.resource_hints
        if hints:
            # the hinted step (e.g. on GPU workers) is a stage of its own: a Reshuffle
            # breaks fusion with the CPU stages before it
            examples = examples | "ToAsrWorkers" >> beam.Reshuffle()
            infer = infer.with_resource_hints(**hints)
        return (
            examples
            | "RunInference" >> infer
            | "Rows" >> beam.ParDo(self._rows).with_outputs(*self._tags, main="main")
        )


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
    c = nbest_columns(out.nbest)
    return NBestList(
        item_id=item_id,
        item_kind=item_kind,
        decoder_id=decoder,
        model_id=model_id,
        language=out.language,
        texts=c.texts,
        texts_norm=c.texts_norm,
        sum_logprob=c.sum_logprob,
        num_tokens=c.num_tokens,
        avg_logprob=c.avg_logprob,
        method=c.method,
        temperature=c.temperature,
        seed=c.seed,
        n_requested=c.n_requested,
        n_unique=c.n_unique,
        beam_size=beam_size,
        normalizer=normalizer[0],
        normalizer_version=normalizer[1],
        run_id=run_id,
    )
