"""Helpers every stage's DoFns share: reject rows and counters (progress: speechmill.progress)."""

from __future__ import annotations

import traceback

import apache_beam as beam
from apache_beam.metrics import Metrics

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
