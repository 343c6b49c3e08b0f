"""Helpers every stage's DoFns share: reject rows, counters, progress."""

from __future__ import annotations

import traceback

import apache_beam as beam
from apache_beam.metrics import Metrics

from speechmill import progress as live
from speechmill.core.text.unicode import clean, clean_opt
from speechmill.schemas import Drop, Reject

REJECTS = "rejects"
SOURCES = "sources"
HYPOTHESES = "hypotheses"


def make_reject(
    drop: Drop,
    *,
    item_id: str,
    item_kind: str,
    stage: str,
    run_id: str,
    parent_id: str | None = None,
    source_id: str | None = None,
    duration_s: float | None = None,
    counter: str | None = None,
) -> Reject:
    """The `rejects` row of a drop, counted as the Beam counter `<stage>/<category>`.

    The one place reject rows are built. Every string is made storable
    (`core.text.unicode.clean`): reasons and details often quote remote or user text.
    """
    Metrics.counter("speechmill", counter or f"{stage}/{drop.category.value}").inc()
    return Reject(
        item_id=clean(item_id),
        item_kind=item_kind,
        parent_id=clean_opt(parent_id),
        source_id=clean_opt(source_id),
        stage=stage,
        category=drop.category.value,
        reason=clean(drop.reason),
        detail=clean_opt((drop.detail or None) and drop.detail[:2000]),
        duration_s=duration_s,
        retryable=drop.retryable,
        run_id=run_id,
    )


def reject(
    drop: Drop,
    *,
    item_id: str,
    item_kind: str,
    stage: str,
    run_id: str,
    parent_id: str | None = None,
    source_id: str | None = None,
    duration_s: float | None = None,
    counter: str | None = None,
) -> beam.pvalue.TaggedOutput:
    """`make_reject` as a row on a DoFn's tagged `rejects` output."""
    return beam.pvalue.TaggedOutput(
        REJECTS,
        make_reject(
            drop,
            item_id=item_id,
            item_kind=item_kind,
            stage=stage,
            run_id=run_id,
            parent_id=parent_id,
            source_id=source_id,
            duration_s=duration_s,
            counter=counter,
        ),
    )


def internal_detail(e: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip()


class Progress:
    """Live progress of one stage on the DirectRunner (`speechmill.progress.stage`): a
    tqdm bar on a terminal, nothing in logs or CI, nothing when `enabled` is False."""

    def __init__(self, enabled: bool, label: str, total: int | None = None) -> None:
        self._stage = live.stage(label, show=enabled, total=total)

    def add(self, audio_s: float) -> None:
        self._stage.add(audio_s)
