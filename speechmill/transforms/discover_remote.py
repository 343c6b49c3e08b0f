"""discover stage for crawled sources (yt-dlp URLs, RSS/Atom feeds, URL lists).

Runs on the driver: lists items without downloading media (flat extraction for
playlists and channels, one request for a feed), reads licence marks (yt-dlp's
`license`, the page's `rel=license` links and CC badges, the feed's rights
elements), applies the source's policy, and returns source items to fetch plus
one reject per item the policy skips. Remote text is data only: it goes into
table cells, never into paths, commands or SQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from speechmill.backends import http, ytdlp
from speechmill.config import CrawlConfig, ListSource, RssSource, YtdlpSource
from speechmill.net import HostPolicy, guarded
from speechmill.schemas import Category, Reject, SourceItem
from speechmill.transforms.core.feeds import FeedError, parse_feed
from speechmill.transforms.core.licenses import (
    UNKNOWN,
    normalize_license,
    resolve,
    scan_html,
)
from speechmill.transforms.core.policy import Decision, Policy, decide, parse_day

log = logging.getLogger(__name__)
STAGE = "discover"
PAGE_MAX_BYTES = 3_000_000

RemoteSpec = YtdlpSource | RssSource | ListSource


@dataclass
class Found:
    """What discovery saw for one source."""

    items: list[SourceItem] = field(default_factory=list)  # to fetch
    skipped: list[SourceItem] = field(default_factory=list)  # policy said no (with rejects)
    known: int = 0  # already committed
    rejects: list[Reject] = field(default_factory=list)
    decisions: list[tuple[SourceItem, Decision]] = field(default_factory=list)
    watermark: dict[str, str] = field(default_factory=dict)
    unchanged: bool = False  # the feed answered 304 Not Modified


def host_policy(crawl: CrawlConfig) -> HostPolicy:
    return HostPolicy(
        allow_private=crawl.allow_private_networks, allow_hosts=frozenset(crawl.allow_hosts)
    )


def policy_of(spec: RemoteSpec) -> Policy:
    return Policy(
        max_items=spec.max_items,
        allow=spec.license_policy.allow,
        deny=tuple(spec.license_policy.deny),
        min_duration_s=spec.min_duration_s,
        max_duration_s=spec.max_duration_s,
        date_after=parse_day(spec.date_after),
        date_before=parse_day(spec.date_before),
        language=spec.language,
    )


def _reject(
    item: SourceItem, category: Category, reason: str, retryable: bool, detail: str | None = None
) -> Reject:
    return Reject(
        item_id=item.media_id,
        item_kind="source",
        parent_id=None,
        source_id=item.media_id,
        stage=STAGE,
        category=category.value,
        reason=reason,
        detail=detail,
        duration_s=item.duration_s,
        retryable=retryable,
        run_id=item.run_id,
    )


def _text(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v)
    return s if s.strip() else None


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f >= 0 else None


def page_marks(url: str | None, hp: HostPolicy, timeout: float) -> tuple[list[str], dict[str, str]]:
    """Licence marks and meta of an HTML page (empty if it is not HTML or unreachable)."""
    if not url or not url.startswith(("http://", "https://")):
        return [], {}
    try:
        res = http.get(url, hp, max_bytes=PAGE_MAX_BYTES, timeout=timeout)
    except Exception as e:  # the page is only a licence hint: never fatal
        log.debug("page %s not read: %s", url, e)
        return [], {}
    ctype = res.headers.get("Content-Type", res.headers.get("content-type", ""))
    if "html" not in ctype.lower():
        return [], {}
    scan = scan_html(res.body.decode("utf-8", "replace"))
    return list(scan.marks), dict(scan.meta)


# ---------------------------------------------------------------------------- yt-dlp


def _ytdlp_item(
    entry: dict[str, Any],
    spec: RemoteSpec,
    name: str,
    run_id: str,
    now: dt.datetime,
    marks: list[str],
    meta: dict[str, str],
) -> SourceItem:
    raw = [
        m for m in [_text(entry.get("license")), _text(entry.get("playlist_license")), *marks] if m
    ]
    license_id = resolve(raw) if raw else UNKNOWN
    if license_id == UNKNOWN and spec.license:
        license_id = normalize_license(spec.license)
    tags = [str(t) for t in (entry.get("tags") or []) if t is not None][:100]
    title = _text(entry.get("title")) or _text(meta.get("og:title")) or _text(meta.get("title"))
    upload = parse_day(_text(entry.get("upload_date")))
    return SourceItem(
        media_id=ytdlp.media_id_for(entry),
        source_name=name,
        kind=spec.kind,
        url=str(entry.get("url") or entry.get("webpage_url") or entry.get("original_url")),
        listed_url=None,
        webpage_url=_text(entry.get("webpage_url")) or _text(entry.get("playlist_webpage_url")),
        extractor=_text(
            entry.get("extractor_key") or entry.get("ie_key") or entry.get("extractor")
        ),
        title=title,
        author=_text(entry.get("uploader") or entry.get("channel") or entry.get("creator"))
        or _text(meta.get("author")),
        channel_id=_text(entry.get("channel_id") or entry.get("uploader_id")),
        license=license_id,
        license_raw="; ".join(raw) if raw else None,
        upload_date=upload,
        duration_s=_float(entry.get("duration")),
        language=_text(entry.get("language")) or _text(meta.get("lang")) or spec.language,
        tags=tags,
        size_bytes=int(entry["filesize"]) if isinstance(entry.get("filesize"), int) else None,
        etag=None,
        discovered_at=now,
        recording_id=None,
        run_id=run_id,
    )


def _needs_full(entry: dict[str, Any], spec: RemoteSpec, policy: Policy) -> bool:
    if spec.full_metadata == "never":
        return False
    if spec.full_metadata == "always":
        return entry.get("_type") == "url" or "formats" not in entry
    flat = entry.get("_type") == "url"
    missing = (
        (policy.needs_license and not entry.get("license"))
        or (policy.needs_date and not entry.get("upload_date"))
        or (policy.needs_duration and entry.get("duration") is None)
    )
    return flat and missing


LOCAL_SCHEMES = ("file:", "data:", "ftp:", "gopher:", "jar:", "javascript:")


def _urls_of(spec: RemoteSpec) -> list[str]:
    if isinstance(spec, ListSource):
        with open(spec.path, encoding="utf-8") as f:
            return [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    return [spec.url]


def _take_entry(
    found: Found,
    entry: dict[str, Any],
    spec: YtdlpSource | ListSource,
    name: str,
    run_id: str,
    now: dt.datetime,
    policy: Policy,
    opts: dict[str, Any],
    crawl: CrawlConfig,
    position: int,
) -> None:
    """Complete one listed entry's metadata and licence, then apply the policy."""
    if _needs_full(entry, spec, policy):
        try:
            entry = {**entry, **ytdlp.full_info(str(entry.get("url")), opts)}
        except Exception as e:
            fe = ytdlp.classify(e)
            item = _ytdlp_item(entry, spec, name, run_id, now, [], {})
            found.skipped.append(item)
            found.rejects.append(_reject(item, fe.category, fe.reason, fe.retryable, fe.detail))
            return
    marks: list[str] = []
    meta: dict[str, str] = {}
    ek = str(entry.get("extractor_key") or entry.get("ie_key") or "").lower()
    page = _text(entry.get("webpage_url"))
    direct = entry.get("direct") or page == _text(entry.get("url"))
    if ek in ("generic", "html5mediaembed", "") and not direct:
        marks, meta = page_marks(page, host_policy(crawl), crawl.socket_timeout_s)
    _decide(found, _ytdlp_item(entry, spec, name, run_id, now, marks, meta), policy, position)


def discover_ytdlp(
    spec: YtdlpSource | ListSource,
    name: str,
    run_id: str,
    now: dt.datetime,
    crawl: CrawlConfig,
    is_known: Callable[[str], bool],
) -> Found:
    found = Found()
    hp = host_policy(crawl)
    policy = policy_of(spec)
    opts = ytdlp.base_options(socket_timeout=crawl.socket_timeout_s, cookies_file=spec.cookies_file)
    position = 0
    for url in _urls_of(spec):
        streak = 0
        if url.lower().startswith(LOCAL_SCHEMES):
            media_id = "url:" + hashlib.sha256(url.encode()).hexdigest()[:24]
            bad = _placeholder(media_id, url, spec, name, run_id, now)
            found.skipped.append(bad)
            found.rejects.append(
                _reject(
                    bad,
                    Category.UNSUPPORTED,
                    "only network URLs are crawled (use kind: local)",
                    False,
                )
            )
            continue
        try:
            with guarded(hp):
                entries: Iterator[dict[str, Any]] = ytdlp.list_entries(url, opts, None)
                for entry in entries:
                    media_id = ytdlp.media_id_for(entry)
                    if is_known(media_id):
                        found.known += 1
                        streak += 1
                        if streak >= crawl.stop_after_known:
                            break
                        continue
                    streak = 0
                    if spec.max_items is not None and position >= spec.max_items:
                        break  # caps are not rejects for items never listed in full
                    _take_entry(
                        found, entry, spec, name, run_id, now, policy, opts, crawl, position
                    )
                    position += 1
        except Exception as e:
            fe = ytdlp.classify(e)
            media_id = "url:" + hashlib.sha256(url.encode()).hexdigest()[:24]
            placeholder = _placeholder(media_id, url, spec, name, run_id, now)
            if not is_known(media_id):
                found.skipped.append(placeholder)
                found.rejects.append(
                    _reject(placeholder, fe.category, fe.reason, fe.retryable, fe.detail)
                )
    return found


def _placeholder(
    media_id: str, url: str, spec: RemoteSpec, name: str, run_id: str, now: dt.datetime
) -> SourceItem:
    return SourceItem(
        media_id=media_id,
        source_name=name,
        kind=spec.kind,
        url=url,
        listed_url=None,
        webpage_url=None,
        extractor=None,
        title=None,
        author=None,
        channel_id=None,
        license=normalize_license(spec.license) if spec.license else UNKNOWN,
        license_raw=None,
        upload_date=None,
        duration_s=None,
        language=spec.language,
        tags=[],
        size_bytes=None,
        etag=None,
        discovered_at=now,
        recording_id=None,
        run_id=run_id,
    )


def _decide(found: Found, item: SourceItem, policy: Policy, position: int) -> None:
    d = decide(
        policy,
        position=position,
        license_id=item.license,
        duration_s=item.duration_s,
        upload_date=item.upload_date,
        language=item.language,
    )
    found.decisions.append((item, d))
    if d.ok:
        found.items.append(item)
    else:
        found.skipped.append(item)
        found.rejects.append(_reject(item, d.category or Category.FILTER, d.reason, False))


# ---------------------------------------------------------------------------- RSS


def rss_media_id(feed_url: str, key: str) -> str:
    return "rss:" + hashlib.sha256(f"{feed_url}\n{key}".encode()).hexdigest()[:24]


def discover_rss(
    spec: RssSource,
    name: str,
    run_id: str,
    now: dt.datetime,
    crawl: CrawlConfig,
    is_known: Callable[[str], bool],
    watermark: dict[str, str] | None = None,
) -> Found:
    found = Found()
    hp = host_policy(crawl)
    policy = policy_of(spec)
    wm = watermark or {}
    placeholder = _placeholder(rss_media_id(spec.url, "feed"), spec.url, spec, name, run_id, now)
    try:
        res = http.get(
            spec.url,
            hp,
            timeout=crawl.socket_timeout_s,
            etag=wm.get("etag"),
            last_modified=wm.get("last_modified"),
        )
    except Exception as e:
        fe = ytdlp.classify(e)
        found.skipped.append(placeholder)
        found.rejects.append(
            _reject(placeholder, fe.category, f"feed: {fe.reason}", fe.retryable, fe.detail)
        )
        found.watermark = dict(wm)
        return found
    if res.not_modified:
        found.watermark = dict(wm)
        found.unchanged = True
        return found
    lower = {k.lower(): v for k, v in res.headers.items()}
    found.watermark = {
        k: lower[h] for k, h in (("etag", "etag"), ("last_modified", "last-modified")) if h in lower
    }
    try:
        feed = parse_feed(res.body, res.url)
    except FeedError as e:
        found.skipped.append(placeholder)
        found.rejects.append(
            _reject(placeholder, Category.UNSUPPORTED, f"feed could not be parsed: {e}", False)
        )
        found.watermark = {}
        return found
    position = 0
    for entry in feed.entries:
        if not entry.enclosure_url:
            continue
        media_id = rss_media_id(spec.url, entry.guid or entry.enclosure_url)
        if is_known(media_id):
            found.known += 1
            continue
        if not entry.enclosure_url.lower().startswith(("http://", "https://")):
            bad = _placeholder(media_id, entry.enclosure_url, spec, name, run_id, now)
            found.skipped.append(bad)
            found.rejects.append(
                _reject(bad, Category.UNSUPPORTED, "only http(s) enclosures are fetched", False)
            )
            continue
        raw = list(entry.license_marks) or list(feed.license_marks)
        license_id = resolve(raw) if raw else UNKNOWN
        if license_id == UNKNOWN and spec.license:
            license_id = normalize_license(spec.license)
        item = SourceItem(
            media_id=media_id,
            source_name=name,
            kind="rss",
            url=entry.enclosure_url,
            listed_url=None,
            webpage_url=entry.link or feed.link,
            extractor="rss",
            title=entry.title,
            author=entry.author or feed.author,
            channel_id=spec.url,
            license=license_id,
            license_raw="; ".join(raw) if raw else None,
            upload_date=entry.published,
            duration_s=entry.duration_s,
            language=entry.language or feed.language or spec.language,
            tags=list(entry.keywords)[:100],
            size_bytes=entry.enclosure_length,
            etag=None,
            discovered_at=now,
            recording_id=None,
            run_id=run_id,
        )
        _decide(found, item, policy, position)
        position += 1
    return found


def with_run(items: list[SourceItem], run_id: str) -> list[SourceItem]:
    return [dataclasses.replace(i, run_id=run_id) for i in items]
