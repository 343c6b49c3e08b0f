"""Tables of the refinement stages: aligned utterances and their labels per round."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from speechmill.schemas.base import col, table
from speechmill.schemas.corpus import ATTRIBUTION, Attribution

WORD = pa.struct(
    [
        pa.field("word", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("score", pa.float64()),
    ]
)


@dataclass(frozen=True, slots=True)
class Word:
    """One aligned word; times are seconds from the start of the recording."""

    word: str
    start_s: float
    end_s: float
    score: float


@table(
    "utterances",
    primary_key=("utterance_id",),
    doc="One row per utterance cut from a recording by forced alignment and resegmentation "
    "(sentence ends and pauses, within min/max durations). Audio is referenced by sample "
    "offsets into the stored FLAC and cut only on export. Its own ASR decode (hallucination "
    "signals) is on the row; its N-best list is in `hypotheses` (item_kind `utterance`).",
)
@dataclass(frozen=True, slots=True)
class Utterance:
    utterance_id: str = col(
        pa.string(), "`<recording_id[:24]>-u<start_sample>-<end_sample>` (deterministic)."
    )
    recording_id: str = col(pa.string(), "Recording it was cut from.")
    source_id: str = col(pa.string(), "`media_id` of the source item.")
    start_sample: int = col(pa.int64(), "First sample (16 kHz) in the stored FLAC.")
    end_sample: int = col(pa.int64(), "One past the last sample.")
    start_s: float = col(pa.float64(), "`start_sample / 16000`.")
    duration_s: float = col(pa.float64(), "`(end_sample - start_sample) / 16000`.")
    text: str = col(pa.string(), "The aligned text (the round-0 label).")
    words: list[Word] = col(pa.list_(WORD), "Aligned words with start/end (s) and score.")
    align_score: float = col(pa.float64(), "Mean word score (0..1).")
    unaligned_words: int = col(pa.int32(), "Words the aligner could not place.")
    aligner: str = col(pa.string(), "Alignment backend and model.")
    asr_text: str = col(pa.string(), "1-best of decoding the utterance's own audio.")
    avg_logprob: float = col(pa.float64(), "Of that decode (see docs/nbest.md).")
    no_speech_prob: float = col(pa.float64(), "Of that decode.")
    compression_ratio: float = col(pa.float64(), "zlib ratio of asr_text.")
    language: str = col(pa.string(), "Language decoded in.")
    language_prob: float | None = col(pa.float64(), "Whisper's audio language probability.")
    license: str = col(pa.string(), "Licence of the source item.")
    attribution: Attribution = col(ATTRIBUTION, "Author, title and URL to credit.")
    run_id: str = col(pa.string(), "Run that wrote the row.")


@table(
    "labels",
    primary_key=("utterance_id", "round"),
    doc="The label of an utterance in each noisy-student round. Round 0 is the aligned "
    "transcript; round k keeps the teacher's hypothesis when its CER against the round k-1 "
    "label is within the gate, else the utterance is rejected for that round and leaves the "
    "pool.",
)
@dataclass(frozen=True, slots=True)
class Label:
    utterance_id: str = col(pa.string(), "The utterance.")
    round: int = col(pa.int32(), "0 for the aligned transcript, k for relabelling round k.")
    model_id: str = col(pa.string(), "Model that produced the text (teacher).")
    model_hash: str = col(pa.string(), "Content hash of that model.")
    decoder_id: str = col(pa.string(), "Hash of model content and decode settings.")
    text: str = col(pa.string(), "The label (as decoded).")
    text_norm: str = col(pa.string(), "After the normaliser.")
    prev_text: str | None = col(pa.string(), "The round k-1 label it was compared with.")
    cer_prev: float | None = col(pa.float64(), "CER(previous label, this text); null in round 0.")
    decision: str = col(pa.string(), "`seed` (round 0), `keep` or `reject`.")
    cer_gate: float | None = col(pa.float64(), "The CER threshold of the round.")
    run_id: str = col(pa.string(), "Run that wrote the row.")


DERIVED_VIEWS: dict[str, str] = {
    # the newest round of each utterance's label
    "labels_latest": "SELECT * EXCLUDE (_rn) FROM (SELECT *, row_number() OVER "
    "(PARTITION BY utterance_id ORDER BY round DESC) AS _rn FROM labels) WHERE _rn = 1",
    # the training pool: utterances whose latest label keeps them, with that label
    "kept_utterances": "SELECT u.*, l.round AS label_round, l.text AS label, "
    "l.model_id AS label_model FROM utterances u JOIN labels_latest l USING (utterance_id) "
    "WHERE l.decision IN ('seed', 'keep')",
}
