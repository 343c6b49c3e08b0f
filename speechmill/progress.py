"""Live progress for long commands: tqdm bars on a terminal, nothing in logs or CI.

Every command that works through many items (discovery, fetch, ASR, export, report...)
shows its progress through `bar`, so `--no-progress`, `-q` and a non-TTY stderr
behave the same everywhere: the bar is disabled and writes nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

_ENABLED = True
"""Process-wide switch: the CLI turns it off for `--no-progress` and `-q`."""


def set_enabled(enabled: bool) -> None:
    """Turn every bar of this process on (on a TTY only) or off."""
    global _ENABLED  # noqa: PLW0603 - one switch for the whole CLI process
    _ENABLED = enabled


def enabled(requested: bool | None = None) -> bool:
    """Whether a bar shows: not when the caller or the CLI turned it off, or stderr is
    not a terminal (logs and CI get no carriage-return lines)."""
    if requested is False or not _ENABLED:
        return False
    return sys.stderr.isatty()


def bar(
    total: float | None = None,
    *,
    desc: str,
    unit: str = "item",
    show: bool | None = None,
    **kwargs: Any,
) -> tqdm:
    """A progress bar on stderr (items, rate, ETA when `total` is known); disabled (and
    silent) unless `enabled(show)`. It clears its line when closed unless `leave=True`."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled(show),
        file=sys.stderr,
        dynamic_ncols=True,
        **({"leave": False} | kwargs),
    )


def track(
    items: Iterable[T], *, desc: str, total: int | None = None, unit: str = "item"
) -> Iterator[T]:
    """Iterate `items` with a bar (`bar`'s rules)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(total, desc=desc, unit=unit) as b:
        for item in items:
            yield item
            b.update(1)


class Stage:
    """A live bar for one pipeline stage, shared by every DoFn instance in this process.

    Shows items, audio minutes and the real-time factor (audio seconds per wall
    second since the stage's first item); with a `total`, tqdm adds the ETA. The
    DirectRunner runs bundles on several threads, so updates take a lock. A stage
    made with `shown=False` counts and shows nothing.
    """

    def __init__(
        self, label: str, *, total: int | None = None, unit: str = "item", shown: bool = True
    ) -> None:
        self.label = label
        self.items = 0
        self.audio_s = 0.0
        self._t0: float | None = None
        self._lock = threading.Lock()
        self._bar = (
            bar(total, desc=label, unit=unit, position=len(_STAGES), leave=True) if shown else None
        )

    @property
    def shown(self) -> bool:
        return self._bar is not None and not self._bar.disable

    def add(self, audio_s: float = 0.0, items: int = 1) -> None:
        if self._bar is None:
            return
        with self._lock:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now
            self.items += items
            self.audio_s += audio_s
            if self.audio_s > 0:
                wall = max(now - self._t0, 1e-3)
                self._bar.set_postfix_str(
                    f"{_audio(self.audio_s)} audio, {self.audio_s / wall:.1f}x RT", refresh=False
                )
            self._bar.update(items)

    def close(self) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.close()


def _audio(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


_STAGES: dict[str, Stage] = {}
_STAGES_LOCK = threading.Lock()


def stage(label: str, *, show: bool | None = None, total: int | None = None) -> Stage:
    """This process's bar for `label` (made on first use), or a silent stage when
    progress is off (`enabled(show)`)."""
    if not enabled(show):
        return Stage(label, shown=False)
    with _STAGES_LOCK:
        if label not in _STAGES:
            _STAGES[label] = Stage(label, total=total)
        return _STAGES[label]


def close_stage(s: Stage) -> None:
    """Close one stage's bar and forget it (the next `stage(label)` makes a new one)."""
    s.close()
    with _STAGES_LOCK:
        if _STAGES.get(s.label) is s:
            del _STAGES[s.label]


def close_stages() -> None:
    """Close every stage's bar (the end of a pipeline run); the next run starts afresh."""
    with _STAGES_LOCK:
        for s in _STAGES.values():
            s.close()
        _STAGES.clear()
