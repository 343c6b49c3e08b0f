"""Live progress for long commands: tqdm bars on a terminal, nothing in logs or CI.

Every command that works through many items (discovery, fetch, ASR, export, report...)
shows its progress through `bar`, so `--no-progress`, `-q` and a non-TTY stderr
behave the same everywhere: the bar is disabled and writes nothing.
"""

from __future__ import annotations

import sys
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
    silent) unless `enabled(show)`."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled(show),
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
        **kwargs,
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
