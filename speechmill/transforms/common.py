"""Helpers every stage's DoFns share: reject rows, counters, progress."""

from __future__ import annotations

import sys
import time
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


class Progress:
    """Live progress on the DirectRunner: one line every few seconds on stderr."""

    def __init__(self, enabled: bool, label: str, interval_s: float = 3.0) -> None:
        self.enabled = enabled
        self.label = label
        self.interval_s = interval_s
        self.items = 0
        self.audio_s = 0.0
        self._t0 = time.monotonic()
        self._last = 0.0

    def add(self, audio_s: float) -> None:
        if not self.enabled:
            return
        self.items += 1
        self.audio_s += audio_s
        now = time.monotonic()
        tty = sys.stderr.isatty()
        if now - self._last >= (self.interval_s if tty else 10 * self.interval_s):
            self._last = now
            wall = max(now - self._t0, 1e-9)
            sys.stderr.write(
                f"{chr(13) if tty else ''}  {self.label}: {self.items} items, "
                f"{self.audio_s / 60:.1f} min audio, {self.audio_s / wall:.1f}x RT"
                + ("   " if tty else "\n")
            )
            sys.stderr.flush()
