"""Per-source policy decisions made before any download (pure)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from speechmill.core.crawl.licenses import policy_decision
from speechmill.schemas.rejects import Category, Drop

POLICY_CATEGORIES = frozenset(
    {
        Category.POLICY_LICENSE.value,
        Category.POLICY_DURATION.value,
        Category.POLICY_DATE.value,
        Category.POLICY_LANGUAGE.value,
        Category.POLICY_CAP.value,
        Category.POLICY_ROBOTS.value,  # robots.txt is re-read by every run, like the others
    }
)


@dataclass(frozen=True)
class Policy:
    """The filters of one source spec, in plain values."""

    max_items: int | None = None
    allow: Sequence[str] | None = None
    deny: Sequence[str] = ()
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    date_after: dt.date | None = None
    date_before: dt.date | None = None
    language: str | None = None

    @property
    def needs_license(self) -> bool:
        return self.allow is not None or bool(self.deny)

    @property
    def needs_duration(self) -> bool:
        return self.min_duration_s is not None or self.max_duration_s is not None

    @property
    def needs_date(self) -> bool:
        return self.date_after is not None or self.date_before is not None


def parse_day(text: str | None) -> dt.date | None:
    """`YYYY-MM-DD` or yt-dlp's `YYYYMMDD`; None if absent or malformed."""
    if not text:
        return None
    t = text.strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(t, fmt).date()
        except ValueError:
            continue
    return None


def decide(
    policy: Policy,
    *,
    position: int,
    license_id: str,
    duration_s: float | None,
    upload_date: dt.date | None,
    language: str | None,
) -> Drop | None:
    """None to keep one discovered item, else why it is skipped.

    `position` counts the source's new items (0-based).

    Unknown durations, dates and languages pass (they are checked after download
    where possible: the decoded duration against audio limits); an unknown licence
    does not pass once a licence policy is set.
    """
    if policy.max_items is not None and position >= policy.max_items:
        return Drop(Category.POLICY_CAP, f"over max_items ({policy.max_items})")
    if policy.needs_license:
        ok, reason = policy_decision(license_id, policy.allow, policy.deny)
        if not ok:
            return Drop(Category.POLICY_LICENSE, reason)
    if duration_s is not None:
        if policy.min_duration_s is not None and duration_s < policy.min_duration_s:
            return Drop(
                Category.POLICY_DURATION,
                f"declared duration {duration_s:.0f} s is under min_duration_s "
                f"({policy.min_duration_s:g})",
            )
        if policy.max_duration_s is not None and duration_s > policy.max_duration_s:
            return Drop(
                Category.POLICY_DURATION,
                f"declared duration {duration_s:.0f} s is over max_duration_s "
                f"({policy.max_duration_s:g})",
            )
    if upload_date is not None:
        if policy.date_after is not None and upload_date < policy.date_after:
            return Drop(Category.POLICY_DATE, f"published {upload_date} before {policy.date_after}")
        if policy.date_before is not None and upload_date > policy.date_before:
            return Drop(Category.POLICY_DATE, f"published {upload_date} after {policy.date_before}")
    if policy.language and language and language.split("-")[0].lower() != policy.language.lower():
        return Drop(
            Category.POLICY_LANGUAGE,
            f"declared language {language!r} is not the expected {policy.language!r}",
        )
    return None


def give_up(drop: Drop, tries: int, max_attempts: int) -> Drop:
    """A transient failure seen by the `tries`-th run becomes permanent at `max_attempts`."""
    if not drop.retryable or tries < max_attempts:
        return drop
    return dataclasses.replace(
        drop,
        retryable=False,
        reason=f"{drop.reason} (gave up after {tries} runs; crawl.max_attempts)",
    )


def needs_full_metadata(
    entry: Mapping[str, Any], mode: Literal["auto", "always", "never"], policy: Policy
) -> bool:
    """Whether a listed yt-dlp entry needs its full metadata read (one more request).

    `mode` is the source's `full_metadata`: `never`; `always` (for a flat entry or
    one without formats); `auto`: a flat entry missing a field the policy decides on.
    """
    if mode == "never":
        return False
    if mode == "always":
        return entry.get("_type") == "url" or "formats" not in entry
    flat = entry.get("_type") == "url"
    missing = (
        (policy.needs_license and not entry.get("license"))
        or (policy.needs_date and not entry.get("upload_date"))
        or (policy.needs_duration and entry.get("duration") is None)
    )
    return flat and missing


LOCAL_SCHEMES = ("file:", "data:", "ftp:", "gopher:", "jar:", "javascript:")


def url_drop(url: str) -> Drop | None:
    """None if a source URL (a `ytdlp` URL, a line of a URL list) may be crawled."""
    if url.lower().startswith(LOCAL_SCHEMES):
        return Drop(Category.UNSUPPORTED, "only network URLs are crawled (use kind: local)")
    return None


def enclosure_drop(url: str) -> Drop | None:
    """None if a feed enclosure URL may be fetched (http or https only)."""
    if not url.lower().startswith(("http://", "https://")):
        return Drop(Category.UNSUPPORTED, "only http(s) enclosures are fetched")
    return None
