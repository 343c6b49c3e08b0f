"""Tables of the corpus pipeline: sources, recordings, segments, hypotheses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

from speechmill.schemas.base import col, table

TIMESTAMP = pa.timestamp("us", tz="UTC")

ATTRIBUTION = pa.struct(
    [
        pa.field("author", pa.string()),
        pa.field("title", pa.string()),
        pa.field("url", pa.string()),
    ]
)


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who to credit for a piece of media (carried on every downstream row)."""

    author: str | None = None
    title: str | None = None
    url: str | None = None


@table(
    "sources",
    primary_key=("media_id",),
    doc="One row per source item (a media item a source spec yields), written when it is "
    "discovered; `recording_id` is set once its audio is in the store.",
)
@dataclass(frozen=True, slots=True)
class SourceItem:
    media_id: str = col(
        pa.string(),
        "Stable id: `<extractor>:<id>` for crawled media, `local:<sha256(path)[:24]>` "
        "for local files.",
    )
    source_name: str = col(pa.string(), "Name of the source spec in the config that yielded it.")
    kind: str = col(pa.string(), "Source kind: `local`, `ytdlp`, `rss` or `list`.")
    url: str = col(pa.string(), "What is fetched: a media URL, or an absolute local path.")
    listed_url: str | None = col(
        pa.string(),
        "The URL as the source listed it (list line, feed enclosure, page link) when it differs "
        "from `url` (e.g. a redirect); null otherwise.",
    )
    webpage_url: str | None = col(pa.string(), "The page the item was found on, if any.")
    extractor: str | None = col(pa.string(), "yt-dlp extractor key (`local` for files).")
    title: str | None = col(pa.string(), "Title as published (data only; never used in paths).")
    author: str | None = col(pa.string(), "Channel, uploader or feed author.")
    channel_id: str | None = col(pa.string(), "Channel or uploader id where known.")
    license: str = col(
        pa.string(), "Normalised licence (`cc-by-4.0`, `all-rights-reserved`, `unknown`, ...)."
    )
    license_raw: str | None = col(pa.string(), "The licence mark as found, before normalising.")
    upload_date: dt.date | None = col(pa.date32(), "Publication date where known.")
    duration_s: float | None = col(pa.float64(), "Duration declared by the source (not measured).")
    language: str | None = col(pa.string(), "Declared or expected language (ISO 639-1).")
    tags: list[str] = col(pa.list_(pa.string()), "Tags or keywords declared by the source.")
    size_bytes: int | None = col(pa.int64(), "Declared or observed size in bytes.")
    etag: str | None = col(
        pa.string(),
        "Version of the item: `<size>-<mtime_ns>` for local files, the HTTP ETag or "
        "Last-Modified for remote ones. A changed etag is fetched again.",
    )
    discovered_at: dt.datetime = col(TIMESTAMP, "When discovery saw the item (UTC).")
    recording_id: str | None = col(
        pa.string(), "The recording made from it; null if it was rejected or not fetched yet."
    )
    run_id: str = col(pa.string(), "Run that wrote the row.")


@table(
    "recordings",
    primary_key=("recording_id",),
    doc="One row per decoded audio file in the store (16 kHz mono FLAC, write-once).",
)
@dataclass(frozen=True, slots=True)
class Recording:
    recording_id: str = col(pa.string(), "sha256 (hex) of the source bytes.")
    media_id: str = col(pa.string(), "The source item it was first fetched from.")
    audio_uri: str = col(
        pa.string(), "FLAC path relative to the dataset root: `media/<ab>/<cd>/<id>.flac`."
    )
    duration_s: float = col(pa.float64(), "Duration measured from the decoded audio.")
    num_samples: int = col(pa.int64(), "Samples in the stored FLAC.")
    sample_rate: int = col(pa.int32(), "Sample rate of the stored FLAC (16000).")
    orig_sample_rate: int = col(pa.int32(), "Sample rate of the original.")
    orig_channels: int = col(pa.int32(), "Channel count of the original (down-mixed to mono).")
    downmix: str | None = col(
        pa.string(),
        "How channels became mono: `mono` (one channel), `mean` (FFmpeg's down-mix), or "
        "`channel<k>` (channel k alone, when the down-mix cancelled, e.g. right = -left).",
    )
    orig_codec: str = col(pa.string(), "Codec of the original (`pcm_s16le`, `mp3`, `opus`, ...).")
    orig_container: str = col(pa.string(), "Container format of the original (`wav`, `ogg`, ...).")
    orig_sample_format: str = col(
        pa.string(), "Sample format of the original (`s16`, `s32`, `flt`, `u8`, ...)."
    )
    orig_size_bytes: int = col(pa.int64(), "Size of the original file in bytes.")
    rms_dbfs: float = col(pa.float64(), "Overall RMS level in dBFS (-inf for digital silence).")
    language: str | None = col(pa.string(), "Declared or expected language of the source.")
    license: str = col(pa.string(), "Licence of the source item.")
    attribution: Attribution = col(ATTRIBUTION, "Author, title and URL to credit.")
    run_id: str = col(pa.string(), "Run that wrote the row.")


@table(
    "segments",
    primary_key=("segment_id",),
    doc="One row per VAD chunk decoded by ASR (<= 30 s, no timestamps inside). `text` is the "
    "1-best; the N-best list is in `hypotheses` under the same id.",
)
@dataclass(frozen=True, slots=True)
class Segment:
    segment_id: str = col(
        pa.string(), "`<recording_id[:24]>-<start_sample>-<end_sample>` (deterministic)."
    )
    recording_id: str = col(pa.string(), "Recording the chunk was cut from.")
    start_sample: int = col(pa.int64(), "First sample (16 kHz) in the stored FLAC.")
    end_sample: int = col(pa.int64(), "One past the last sample.")
    start_s: float = col(pa.float64(), "`start_sample / 16000`.")
    duration_s: float = col(pa.float64(), "`(end_sample - start_sample) / 16000`.")
    text: str = col(pa.string(), "1-best transcript as decoded (not normalised).")
    language: str = col(pa.string(), "Language of the decode (ISO 639-1).")
    language_prob: float | None = col(
        pa.float64(), "Whisper language probability; null for English-only models."
    )
    avg_logprob: float = col(pa.float64(), "Sum of token log-probs of the 1-best / its tokens.")
    no_speech_prob: float = col(pa.float64(), "Probability of Whisper's no-speech token.")
    compression_ratio: float = col(
        pa.float64(), "zlib compression ratio of the 1-best text (high = repetitive)."
    )
    num_tokens: int = col(pa.int32(), "Tokens in the 1-best (without special tokens).")
    model_id: str = col(pa.string(), "ASR model name or path as configured.")
    decoder_id: str = col(pa.string(), "Hash of model content and decode settings.")
    license: str = col(pa.string(), "Licence of the source item.")
    attribution: Attribution = col(ATTRIBUTION, "Author, title and URL to credit.")
    run_id: str = col(pa.string(), "Run that wrote the row.")


@table(
    "hypotheses",
    primary_key=("item_id", "decoder_id"),
    doc="One N-best list per decoded item and decoder: up to N hypotheses, distinct after "
    "normalisation, best first. List columns are aligned index by index. Scores are defined "
    "in docs/nbest.md.",
)
@dataclass(frozen=True, slots=True)
class NBestList:
    item_id: str = col(pa.string(), "Segment, utterance or synthetic item id.")
    item_kind: str = col(pa.string(), "`segment`, `utterance` or `synth`.")
    decoder_id: str = col(pa.string(), "Hash of model content and decode settings.")
    model_id: str = col(pa.string(), "ASR model name or path as configured.")
    language: str = col(pa.string(), "Language decoded in.")
    texts: list[str] = col(pa.list_(pa.string()), "Hypotheses as decoded (raw).")
    texts_norm: list[str] = col(pa.list_(pa.string()), "Hypotheses after the normaliser.")
    sum_logprob: list[float] = col(
        pa.list_(pa.float64()),
        "Sum of natural-log token probabilities at temperature 1, end-of-text included.",
    )
    num_tokens: list[int] = col(pa.list_(pa.int32()), "Text tokens (end-of-text excluded).")
    avg_logprob: list[float] = col(pa.list_(pa.float64()), "`sum_logprob / (num_tokens + 1)`.")
    method: list[str] = col(pa.list_(pa.string()), "`beam` or `sample` per hypothesis.")
    temperature: list[float | None] = col(
        pa.list_(pa.float64()), "Sampling temperature (null for beam hypotheses)."
    )
    seed: list[int | None] = col(pa.list_(pa.int64()), "Sampling seed (null for beam hypotheses).")
    n_requested: int = col(pa.int32(), "N asked for.")
    n_unique: int = col(pa.int32(), "Distinct hypotheses after normalisation (= list length).")
    beam_size: int = col(pa.int32(), "Beam size of the beam search.")
    normalizer: str = col(pa.string(), "Normaliser name, e.g. `whisper-english`.")
    normalizer_version: str = col(pa.string(), "Version of the package providing it.")
    run_id: str = col(pa.string(), "Run that wrote the row.")
