"""The `pairs` table: (N-best hypotheses, reference) for GER and denoising-LM training."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from speechmill.schemas.base import col, table

TTS = pa.struct(
    [
        pa.field("engine", pa.string()),
        pa.field("voice", pa.string()),
        pa.field("speaker", pa.int32()),
        pa.field("variant", pa.string()),
        pa.field("length_scale", pa.float64()),
        pa.field("noise_scale", pa.float64()),
        pa.field("noise_w_scale", pa.float64()),
        pa.field("seed", pa.int64()),
    ]
)

AUG = pa.struct(
    [
        pa.field("noise_type", pa.string()),
        pa.field("noise_source", pa.string()),
        pa.field("snr_db", pa.float64()),
        pa.field("reverb_rt60_s", pa.float64()),
        pa.field("speed", pa.float64()),
        pa.field("codec", pa.string()),
        pa.field("telephone", pa.bool_()),
        pa.field("freq_masks", pa.int32()),
        pa.field("freq_mask_width", pa.int32()),
        pa.field("substitution_rate", pa.float64()),
        pa.field("seed", pa.int64()),
    ]
)


@dataclass(frozen=True, slots=True)
class TtsParams:
    """How a synthetic utterance was spoken (all sampled from the run's seed)."""

    engine: str | None = None
    voice: str | None = None
    speaker: int | None = None
    variant: str | None = None
    length_scale: float | None = None
    noise_scale: float | None = None
    noise_w_scale: float | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class AugParams:
    """How its audio was degraded (null fields: that augmentation was not applied)."""

    noise_type: str | None = None
    noise_source: str | None = None
    snr_db: float | None = None
    reverb_rt60_s: float | None = None
    speed: float | None = None
    codec: str | None = None
    telephone: bool | None = None
    freq_masks: int | None = None
    freq_mask_width: int | None = None
    substitution_rate: float | None = None
    seed: int | None = None


@table(
    "pairs",
    primary_key=("pair_id",),
    doc="One row per (N-best list, reference) pair for generative error correction (GER, "
    "HyPoradise style) and denoising-LM training. List columns are aligned index by index. "
    "docs/synth.md documents every column and how it is made.",
)
@dataclass(frozen=True, slots=True)
class Pair:
    pair_id: str = col(
        pa.string(), "sha256 of (text id, voice, synthesis and augmentation parameters, seed)."
    )
    text_id: str = col(pa.string(), "sha256 of the normalised reference (first 24 hex).")
    source: str = col(pa.string(), "Name of the text source (or `corpus:<root>` for real speech).")
    split: str = col(pa.string(), "`train`, `dev` or `test`, by hash of the normalised reference.")
    language: str = col(pa.string(), "Language of the reference.")
    reference: str = col(pa.string(), "Reference after the normaliser.")
    reference_raw: str = col(pa.string(), "Reference as spoken (after TTS text normalisation).")
    hypotheses: list[str] = col(
        pa.list_(pa.string()), "N-best after the normaliser (and character substitution)."
    )
    hypotheses_raw: list[str] = col(pa.list_(pa.string()), "N-best as decoded.")
    hypotheses_presub: list[str] = col(
        pa.list_(pa.string()), "Normalised N-best before character substitution."
    )
    substituted: list[bool] = col(pa.list_(pa.bool_()), "Whether substitution changed it.")
    sum_logprob: list[float] = col(pa.list_(pa.float64()), "See docs/nbest.md.")
    num_tokens: list[int] = col(pa.list_(pa.int32()), "Text tokens per hypothesis.")
    avg_logprob: list[float] = col(pa.list_(pa.float64()), "sum_logprob / (num_tokens + 1).")
    method: list[str] = col(pa.list_(pa.string()), "`beam` or `sample`.")
    token_logprobs: list[list[float]] | None = col(
        pa.list_(pa.list_(pa.float64())),
        "Per hypothesis: log-prob at T=1 of each text token, then of end-of-text (they sum to "
        "`sum_logprob`); null unless `synth.token_logprobs`.",
    )
    n_requested: int = col(pa.int32(), "N asked for.")
    n_unique: int = col(pa.int32(), "Distinct hypotheses after normalisation.")
    model_id: str = col(pa.string(), "ASR model.")
    decoder_id: str = col(pa.string(), "Hash of model content and decode settings.")
    beam_size: int = col(pa.int32(), "Beam size.")
    temperatures: list[float | None] = col(
        pa.list_(pa.float64()), "Sampling temperature per hypothesis (null for beam)."
    )
    seeds: list[int | None] = col(pa.list_(pa.int64()), "Sampling seed per hypothesis.")
    tts: TtsParams = col(TTS, "Engine, voice, speaker/variant, scales and seed.")
    aug: AugParams = col(AUG, "Noise (type, source, SNR), reverb, speed, codec, masking, ...")
    audio_uri: str = col(
        pa.string(),
        "The degraded audio the ASR heard: FLAC, 16 kHz, path relative to the dataset root "
        "(`media/synth/...`).",
    )
    clean_audio_uri: str = col(
        pa.string(),
        "The un-degraded audio (for noise-robust GER); equals `audio_uri` when nothing "
        "degraded it.",
    )
    duration_s: float = col(pa.float64(), "Duration of the audio.")
    is_synthetic: bool = col(pa.bool_(), "False for pairs mixed in from real speech.")
    wer_1best: float = col(pa.float64(), "WER of hypotheses[0] against the reference.")
    oracle_wer: float = col(pa.float64(), "Lowest WER in the list.")
    oracle_index: int = col(pa.int32(), "Index of that hypothesis.")
    normalizer: str = col(pa.string(), "Normaliser name.")
    normalizer_version: str = col(pa.string(), "Its package version.")
    run_id: str = col(pa.string(), "Run that wrote the row.")
