"""The `rejects` table: every item that yields nothing gets exactly one row here."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pyarrow as pa

from speechmill.schemas.base import col, table


class Category(str, enum.Enum):
    """The closed vocabulary of reject categories (docs/schema.md lists them)."""

    # reading and decoding
    NOT_FOUND = "not_found"
    IO_ERROR = "io_error"
    EMPTY = "empty"
    UNDECODABLE = "undecodable"
    NO_AUDIO = "no_audio"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    TOO_LARGE = "too_large"
    SILENT = "silent"
    NO_SPEECH = "no_speech"
    # models
    ASR_ERROR = "asr_error"
    EMPTY_TRANSCRIPT = "empty_transcript"
    # crawling and policy
    NETWORK = "network"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    UNSUPPORTED = "unsupported"
    BLOCKED_HOST = "blocked_host"
    POLICY_LICENSE = "policy_license"
    POLICY_DURATION = "policy_duration"
    POLICY_DATE = "policy_date"
    POLICY_LANGUAGE = "policy_language"
    POLICY_CAP = "policy_cap"
    POLICY_ROBOTS = "policy_robots"
    DUPLICATE = "duplicate"
    # filters and relabelling
    FILTER = "filter"
    RELABEL = "relabel"
    ALIGN_ERROR = "align_error"
    # text and synthesis
    BAD_TEXT = "bad_text"
    TTS_ERROR = "tts_error"
    # writing
    UNWRITABLE = "unwritable"
    # anything else that crashed on one item
    INTERNAL = "internal"


CATEGORY_DOCS: dict[Category, str] = {
    Category.NOT_FOUND: "the file or URL does not exist (404, missing path)",
    Category.IO_ERROR: "reading or writing failed (permissions, disk, broken stream)",
    Category.EMPTY: "zero bytes",
    Category.UNDECODABLE: "not media PyAV can decode (corrupt, truncated, text named .wav)",
    Category.NO_AUDIO: "media without an audio stream",
    Category.TOO_SHORT: "shorter than the configured minimum duration",
    Category.TOO_LONG: "longer than the configured maximum duration",
    Category.TOO_LARGE: "larger than the configured size cap",
    Category.SILENT: "digital silence or near-silence (RMS below the floor)",
    Category.NO_SPEECH: "audio without speech according to VAD",
    Category.ASR_ERROR: "the ASR model failed on this item (after a per-item retry)",
    Category.EMPTY_TRANSCRIPT: "ASR produced no text",
    Category.NETWORK: "transient network failure (retried on the next run)",
    Category.TIMEOUT: "the per-item deadline passed",
    Category.UNAVAILABLE: "removed, private or geo-blocked media",
    Category.UNSUPPORTED: "no extractor or no downloadable audio",
    Category.BLOCKED_HOST: "private, loopback or link-local address not allowed by the config",
    Category.POLICY_LICENSE: "licence not allowed by the source's policy",
    Category.POLICY_DURATION: "declared duration outside the source's bounds",
    Category.POLICY_DATE: "upload date outside the source's range",
    Category.POLICY_LANGUAGE: "declared language not the expected one",
    Category.POLICY_CAP: "over the source's max_items cap",
    Category.POLICY_ROBOTS: "the host's robots.txt disallows the URL (crawl.respect_robots)",
    Category.DUPLICATE: "same content or text as an item already kept",
    Category.FILTER: "dropped by a corpus filter (the reason names which)",
    Category.RELABEL: "rejected by a relabelling round (label disagreement)",
    Category.ALIGN_ERROR: "forced alignment failed",
    Category.BAD_TEXT: "text unusable for synthesis or as a label",
    Category.TTS_ERROR: "the TTS engine failed on this text",
    Category.UNWRITABLE: "a row that does not fit its table's schema (e.g. a string that is "
    "not valid Unicode); `detail` holds a safe repr of the offending value",
    Category.INTERNAL: "an unexpected error in speechmill on this item (please report)",
}


@dataclass(frozen=True, slots=True)
class Drop:
    """Why an item yields nothing: the one shape every stage's pure core returns.

    A `Drop` becomes one `rejects` row, and one Beam counter `<stage>/<category>`,
    through `speechmill.transforms.common.reject` (nothing else builds reject rows).
    """

    category: Category
    reason: str  # one line a user can act on
    detail: str | None = None  # exception text or measured value, for debugging
    retryable: bool = False  # a later run may succeed (transient)


class Dropped(Exception):
    """An exception carrying a `Drop`, for code that unwinds (decoders, downloads)."""

    def __init__(
        self, category: Category, reason: str, detail: str | None = None, retryable: bool = False
    ) -> None:
        super().__init__(reason)
        self.drop = Drop(category, reason, detail or None, retryable)

    @property
    def category(self) -> Category:
        return self.drop.category

    @property
    def reason(self) -> str:
        return self.drop.reason

    @property
    def detail(self) -> str | None:
        return self.drop.detail

    @property
    def retryable(self) -> bool:
        return self.drop.retryable


@table(
    "rejects",
    primary_key=("item_id", "stage"),
    doc="Every item that yields nothing, with why. Accounting is by parent id: every input "
    "item of a stage has at least one child row or exactly one reject.",
)
@dataclass(frozen=True, slots=True)
class Reject:
    item_id: str = col(pa.string(), "Id of the item that yielded nothing.")
    item_kind: str = col(
        pa.string(), "`source`, `recording`, `chunk`, `utterance`, `text`, `synth`, ..."
    )
    parent_id: str | None = col(pa.string(), "Id of the item it came from.")
    source_id: str | None = col(pa.string(), "`media_id` of the source item it descends from.")
    stage: str = col(pa.string(), "Stage that rejected it (`fetch`, `vad`, `transcribe`, ...).")
    category: str = col(pa.string(), "One of the closed vocabulary in docs/schema.md.")
    reason: str = col(pa.string(), "One line a user can act on.")
    detail: str | None = col(pa.string(), "Exception text or measured value, for debugging.")
    duration_s: float | None = col(pa.float64(), "Audio duration of the item where known.")
    retryable: bool = col(pa.bool_(), "True if a later run should try again (transient).")
    run_id: str = col(pa.string(), "Run that wrote the row.")
