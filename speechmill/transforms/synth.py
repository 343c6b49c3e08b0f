"""synth stages: texts -> prepared sentences -> planned items -> speech -> pairs.

The pure logic lives in `core/textprep.py` (text), `core/synthplan.py` (ids,
splits, voices, substitution), `core/augment.py` (degradations) and
`core/pair_metrics.py` (per-row metrics); these DoFns only move data, load
models once per worker and turn failures into `rejects` rows.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import apache_beam as beam
import numpy as np
import numpy.typing as npt
import soundfile as sf

from speechmill import progress as live
from speechmill.backends.tts import TtsBackend, VoiceParams
from speechmill.config import SynthConfig, TextSource
from speechmill.core.asr.decoding import (
    AsrOutput,
    FeatureTransform,
    asr_failure,
    nbest_columns,
    no_text,
)
from speechmill.core.asr.nbest import derive_seed
from speechmill.core.audio import augment
from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.core.audio.io import resample
from speechmill.core.synth import synthplan
from speechmill.core.synth.pairs import PairSource, make_pair
from speechmill.core.synth.render import render
from speechmill.core.text.normalize import get_normalizer
from speechmill.core.text.textprep import Prepared, prepare
from speechmill.faults import fault_point
from speechmill.schemas import Category, Drop
from speechmill.schemas.synth import AugParams, TtsParams
from speechmill.store import Store, as_store, fs
from speechmill.transforms.asr import ItemRef
from speechmill.transforms.common import internal_detail, reject
from speechmill.transforms.texts import RawText, read_texts

log = logging.getLogger(__name__)

TEXT_STAGE = "text"
TTS_STAGE = "synthesize"
ASR_STAGE = "pair"
BABBLE_TALKERS = 8
MASK_SEED = 0  # masks derive from (MASK_SEED, pair_id): the pair id already holds the seed


@dataclass(frozen=True)
class PreparedText:
    """One sentence ready for synthesis, with its reference and split."""

    key: str  # "<source>:<row>#<piece>"
    source: str
    raw: str  # as read
    spoken: str  # after TTS normalisation: what the voice reads
    reference: str  # the spoken text after the ASR normaliser
    text_id: str
    split: str


@dataclass(frozen=True)
class SynthItem:
    """A planned synthetic utterance: what to say, with which voice, how to degrade it."""

    pair_id: str
    text: PreparedText
    language: str
    tts: TtsParams
    aug: AugParams
    model: str  # the piper model reference ("" for espeak)
    seed: int

    @property
    def item_id(self) -> str:
        return self.pair_id


@dataclass(frozen=True)
class Synthesized:
    """A synthesised, degraded utterance in the store, on its way to the ASR model."""

    item: SynthItem
    audio_uri: str
    clean_audio_uri: str
    duration_s: float

    @property
    def item_id(self) -> str:
        return self.item.pair_id

    @property
    def language(self) -> str:
        return self.item.language


def _text_reject(run_id: str, item_id: str, drop: Drop, parent: str | None = None) -> Any:
    return reject(
        drop,
        item_id=item_id,
        item_kind="text",
        stage=TEXT_STAGE,
        parent_id=parent,
        run_id=run_id,
    )


class ReadTextsDoFn(beam.DoFn):
    """TextSource -> RawText (main) or a reject for an unreadable row."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    def process(self, source: TextSource) -> Iterator[object]:
        for raw in read_texts(source):
            if raw.problem is not None:
                yield _text_reject(self._run_id, raw.key, raw.problem)
            else:
                yield raw


class PrepareTextDoFn(beam.DoFn):
    """RawText -> (text_id, PreparedText) per sentence, or a reject per bad piece."""

    def __init__(self, cfg: SynthConfig, normalizer: str, run_id: str) -> None:
        self._cfg = cfg
        self._normalizer = normalizer
        self._run_id = run_id

    def setup(self) -> None:
        self._norm = get_normalizer(self._normalizer)

    def process(self, raw: RawText) -> Iterator[object]:
        fault_point("synth.text")
        pieces = prepare(raw.text or "", self._cfg)
        for i, piece in enumerate(pieces):
            key = raw.key if len(pieces) == 1 else f"{raw.key}#{i + 1}"
            if isinstance(piece, Drop):
                yield _text_reject(self._run_id, key, piece, parent=raw.key)
                continue
            yield self.prepared(raw, key, piece)

    def prepared(self, raw: RawText, key: str, piece: Prepared) -> object:
        reference = self._norm(piece.spoken)
        if not reference:
            return _text_reject(
                self._run_id,
                key,
                Drop(Category.BAD_TEXT, "nothing left after the ASR normaliser", piece.spoken),
                parent=raw.key,
            )
        tid = synthplan.text_id(reference)
        split = synthplan.split_of(reference, self._cfg.dev_fraction, self._cfg.test_fraction)
        return tid, PreparedText(key, raw.source, piece.raw, piece.spoken, reference, tid, split)


class DedupeTextsDoFn(beam.DoFn):
    """(text_id, [PreparedText]) -> the first by key; the others become `duplicate` rejects."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    def process(self, element: tuple[str, Iterable[PreparedText]]) -> Iterator[object]:
        _, texts = element
        ordered = sorted(texts, key=lambda t: t.key)
        keep = ordered[0]
        yield keep
        for dup in ordered[1:]:
            yield reject(
                Drop(
                    Category.DUPLICATE,
                    f"same normalised text as {keep.key}",
                    detail=dup.reference[:200],
                ),
                item_id=dup.key,
                item_kind="text",
                stage=TEXT_STAGE,
                parent_id=keep.key,
                run_id=self._run_id,
            )


class PlanDoFn(beam.DoFn):
    """PreparedText -> (pair_id, SynthItem) for each variant (all choices seeded)."""

    def __init__(
        self,
        cfg: SynthConfig,
        voices: Sequence[synthplan.VoiceOption],
        *,
        babble_available: bool,
    ) -> None:
        self._cfg = cfg
        self._voices = list(voices)
        self._babble = babble_available
        self._ranges = synthplan.ScaleRanges(
            (cfg.length_scale.low, cfg.length_scale.high),
            (cfg.noise_scale.low, cfg.noise_scale.high),
            (cfg.noise_w_scale.low, cfg.noise_w_scale.high),
        )

    def process(self, text: PreparedText) -> Iterator[tuple[str, SynthItem]]:
        for item in plan_items(text, self._cfg, self._voices, self._ranges, self._babble):
            yield item.pair_id, item


def plan_items(
    text: PreparedText,
    cfg: SynthConfig,
    voices: Sequence[synthplan.VoiceOption],
    ranges: synthplan.ScaleRanges,
    babble_available: bool,
) -> list[SynthItem]:
    out = []
    for variant in range(cfg.variants_per_text):
        seed = synthplan.item_seed(cfg.seed, text.text_id, variant)
        rng = np.random.default_rng(derive_seed(seed, "tts"))
        option = synthplan.choose_voice(voices, rng)
        tts = synthplan.plan_tts(option, ranges, rng, seed)
        aug = augment.plan(cfg.augment, derive_seed(seed, "aug"), babble_available=babble_available)
        if cfg.substitution_share > 0:
            aug = dataclasses.replace(aug, substitution_rate=cfg.substitution_rate)
        pid = synthplan.pair_id(text.text_id, tts, aug, seed)
        out.append(SynthItem(pid, text, cfg.language, tts, aug, option.model, seed))
    return out


class SkipDoneDoFn(beam.DoFn):
    """(pair_id, {"plan": [item], "done": [...]}) -> the item unless a commit has it."""

    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[SynthItem]:
        _, groups = element
        if groups["done"]:
            beam.metrics.Metrics.counter("speechmill", "synth/already_committed").inc()
            return
        items = groups["plan"]
        if items:
            yield items[0]


def voice_params(tts: TtsParams) -> VoiceParams:
    return VoiceParams(
        voice=tts.voice or "",
        speaker=tts.speaker,
        length_scale=tts.length_scale or 1.0,
        noise_scale=tts.noise_scale,
        noise_w_scale=tts.noise_w_scale,
        variant=tts.variant,
    )


@functools.cache
def load_tts(engine: str, model: str) -> TtsBackend:
    """A TTS backend, loaded once per process (backends are thread-safe) and shared by
    the voice check on the driver and every DoFn instance in the same process."""
    from speechmill.backends.tts import EspeakTts, PiperTts

    if engine == "piper":
        if model in ("", "bundled:joe"):
            return PiperTts()
        return PiperTts(model, model + ".json")
    if engine == "espeak-ng":
        return EspeakTts()
    return load_plugin(model)


def load_plugin(ref: str) -> TtsBackend:
    """`package.module:ClassName` -> an instance of that TtsBackend (built with no args)."""
    import importlib

    module, _, name = ref.partition(":")
    if not module or not name:
        raise ValueError(f"a TTS plugin is `package.module:ClassName`, not {ref!r}")
    cls = getattr(importlib.import_module(module), name)
    backend = cls()
    if not callable(getattr(backend, "synthesize", None)):
        raise TypeError(f"{ref} has no synthesize(text, params) method")
    return cast(TtsBackend, backend)


def flac_bytes(audio: npt.NDArray[np.float32]) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def media_rel(pair_id: str, kind: str) -> str:
    return f"media/synth/{kind}/{pair_id[:2]}/{pair_id}.flac"


class SynthesizeDoFn(beam.DoFn):
    """SynthItem -> (Synthesized, degraded 16 kHz audio); writes clean and degraded FLAC."""

    def __init__(
        self,
        store: Store | str,
        cfg: SynthConfig,
        voices: Sequence[synthplan.VoiceOption],
        babble_sentences: Sequence[str],
        run_id: str,
        progress: bool = False,
    ) -> None:
        self._store = as_store(store)
        self._cfg = cfg
        self._voices = list(voices)
        self._babble_sentences = list(babble_sentences)
        self._run_id = run_id
        self._progress_on = progress

    def setup(self) -> None:
        self._noise: augment.NoiseFn | None = None
        self._files: dict[str, npt.NDArray[np.float32]] = {}
        self._progress = live.stage("synth", show=self._progress_on)

    def speak(self, text: str, params: VoiceParams, engine: str, model: str) -> Any:
        speech = load_tts(engine, model).synthesize(text, params)
        return resample(speech.audio, speech.sample_rate, SAMPLE_RATE)

    def _noise_file(self, path: str) -> npt.NDArray[np.float32]:
        if path not in self._files:
            from speechmill.core.audio.io import load_audio

            self._files[path] = load_audio(path)
        return self._files[path]

    def _noise_on_demand(
        self, source: str, n: int, rng: np.random.Generator
    ) -> npt.NDArray[np.floating]:
        """Babble or file noise; the babble bank is only synthesised when first needed."""
        return self.noise()(source, n, rng)

    def noise(self) -> augment.NoiseFn:
        """Babble talkers: deterministic (piper noise off) so augmentation is reproducible."""
        if self._noise is None:
            talkers = []
            for i, sentence in enumerate(self._babble_sentences[:BABBLE_TALKERS]):
                option = self._voices[i % len(self._voices)]
                params = VoiceParams(
                    voice=option.voice,
                    speaker=option.speaker,
                    variant=option.variant,
                    noise_scale=0.0 if option.engine == "piper" else None,
                    noise_w_scale=0.0 if option.engine == "piper" else None,
                )
                talkers.append(self.speak(sentence, params, option.engine, option.model))
            self._noise = augment.noise_provider(talkers, self._noise_file)
        return self._noise

    def process(self, item: SynthItem) -> Iterator[object]:
        fault_point("synth.tts")
        from speechmill.backends.codec import codec_roundtrip

        out = render(
            lambda: self.speak(
                item.text.spoken, voice_params(item.tts), item.tts.engine or "", item.model
            ),
            lambda clean: augment.apply(
                clean, SAMPLE_RATE, item.aug, noise=self._noise_on_demand, codec=codec_roundtrip
            ),
            error_detail=internal_detail,
        )
        if isinstance(out, Drop):
            yield self._reject(item, out)
            return
        clean, noisy, duration = out.clean, out.noisy, out.duration_s
        clean_rel = media_rel(item.pair_id, "clean")
        degraded = _degraded(item.aug)
        noisy_rel = media_rel(item.pair_id, "degraded") if degraded else clean_rel
        try:
            fs.write_bytes_atomic(self._store.path(clean_rel), flac_bytes(clean))
            if degraded:
                fs.write_bytes_atomic(self._store.path(noisy_rel), flac_bytes(noisy))
        except Exception as e:
            drop = Drop(Category.IO_ERROR, "cannot write audio to the store", internal_detail(e))
            yield self._reject(item, drop)
            return
        self._progress.add(duration)
        yield Synthesized(item, noisy_rel, clean_rel, duration), noisy.astype(np.float32)

    def _reject(self, item: SynthItem, drop: Drop, duration: float | None = None) -> Any:
        return reject(
            drop,
            item_id=item.pair_id,
            item_kind="synth_item",
            stage=TTS_STAGE,
            parent_id=item.text.key,
            duration_s=duration,
            run_id=self._run_id,
        )


def _degraded(aug: AugParams) -> bool:
    """Whether the waveform differs from the clean one (masking acts on features)."""
    return bool(aug.noise_type or aug.reverb_rt60_s or aug.speed or aug.telephone or aug.codec)


@dataclass(frozen=True)
class MaskingPlan:
    """Picks, per ASR batch, a masking transform for the items whose plan asks for it."""

    def __call__(self, elements: Sequence[Any]) -> FeatureTransform | None:
        plans = {}
        for e in elements:
            aug = e.item.aug
            if aug.freq_masks:
                plans[e.item_id] = (aug.freq_masks, aug.freq_mask_width or 1)
        return augment.masking_for(plans, MASK_SEED) if plans else None


@dataclass
class PairRows:
    """Row builder of synth: a decoded synthetic utterance -> its `pairs` row."""

    cfg: SynthConfig
    model_id: str
    decoder: str
    beam_size: int
    normalizer: str
    run_id: str
    stage: str = ASR_STAGE
    tags: tuple[str, ...] = ()
    _norm: tuple[str, str] = ("", "")

    def setup(self) -> None:
        norm = get_normalizer(self.normalizer)
        self._norm = (norm.name, norm.version)

    def ref(self, element: Synthesized) -> ItemRef:
        return ItemRef(
            element.item_id, "synth_item", element.item.text.key, None, element.duration_s
        )

    def rows(self, element: Synthesized, out: AsrOutput) -> list[object] | Drop:
        drop = asr_failure(out, "item")
        if drop is not None or out.nbest is None:
            return drop or Drop(Category.ASR_ERROR, "no N-best list")
        drop = no_text(out.nbest, best_only=False)
        if drop is not None:
            return drop
        item = element.item
        src = PairSource(
            pair_id=item.pair_id,
            text_id=item.text.text_id,
            source=item.text.source,
            split=item.text.split,
            language=item.language,
            reference=item.text.reference,
            reference_raw=item.text.spoken,
            tts=item.tts,
            aug=item.aug,
            audio_uri=element.audio_uri,
            clean_audio_uri=element.clean_audio_uri,
            duration_s=element.duration_s,
            is_synthetic=True,
        )
        sub = (
            self.cfg.substitution_share,
            self.cfg.substitution_rate,
            derive_seed(item.seed, "substitution"),
        )
        pair = make_pair(
            src,
            nbest_columns(out.nbest),
            model_id=self.model_id,
            decoder_id=self.decoder,
            beam_size=self.beam_size,
            normalizer=self._norm,
            substitution=sub,
            run_id=self.run_id,
        )
        return [pair]
