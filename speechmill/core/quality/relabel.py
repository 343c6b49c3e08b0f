"""The noisy-student gate: keep a teacher's label when it agrees with the previous round."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from speechmill.core.text.metrics import cer
from speechmill.schemas.rejects import Category, Drop


@dataclass(frozen=True)
class Gated:
    """A teacher's label for one utterance, its CER to the previous label, and the decision."""

    text: str  # the teacher's 1-best as decoded ("" when it failed)
    text_norm: str
    cer_prev: float | None  # None when the teacher failed
    drop: Drop | None  # None: keep

    @property
    def decision(self) -> str:
        return "keep" if self.drop is None else "reject"


def gate(
    prev_text: str,
    teacher_text: str | None,
    *,
    normalize: Callable[[str], str],
    threshold: float,
    round_k: int,
    error: str | None = None,
) -> Gated:
    """Keep when CER(previous label, teacher) <= `threshold` (both normalised).

    `teacher_text` None means the teacher failed on the utterance (`error` says why):
    a reject with category `asr_error`; a disagreement is a `relabel` reject.
    """
    if teacher_text is None:
        drop = Drop(
            Category.ASR_ERROR, f"round {round_k}: the teacher failed on this utterance", error
        )
        return Gated("", normalize(""), None, drop)
    norm = normalize(teacher_text)
    score = cer(normalize(prev_text), norm)
    if score <= threshold:
        return Gated(teacher_text, norm, score, None)
    drop = Drop(
        Category.RELABEL,
        f"round {round_k}: CER {score:.3f} against the round {round_k - 1} label is above "
        f"the gate {threshold}",
        f"teacher: {teacher_text[:500]}",
    )
    return Gated(teacher_text, norm, score, drop)
