"""Elements that flow between stages (not tables): references, never audio."""

from __future__ import annotations

from dataclasses import dataclass

from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.schemas import Attribution


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """A VAD chunk of a stored recording, by URI and sample offsets."""

    segment_id: str
    recording_id: str
    source_id: str
    audio_path: str
    start: int
    end: int
    language: str | None
    license: str
    attribution: Attribution

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE

    @property
    def item_id(self) -> str:
        return self.segment_id
