"""discover stage for crawled sources (yt-dlp URLs, RSS/Atom feeds, URL lists).

Runs on the driver: lists items without downloading media (flat extraction for
playlists and channels, one request for a feed), reads licence marks (yt-dlp's
`license`, the page's `rel=license` links and CC badges, the feed's rights
elements, licence statements in a page's text), applies the source's policy and
the hosts' robots.txt, and returns source items to fetch plus one reject per item
it skips. Remote text is data only: it goes into table cells, never into paths,
commands or SQL, and every remote string is made storable
(`speechmill.core.text.unicode.clean`: lone surrogates and noncharacters become U+FFFD)
where the item or reject is built.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from speechmill.backends import http, ytdlp
from speechmill.backends.net import HostPolicy, guarded
from speechmill.backends.robots import Robots
from speechmill.config import CrawlConfig, ListSource, RssSource, YtdlpSource
from speechmill.core.crawl.feeds import FeedError, parse_feed
from speechmill.core.crawl.licenses import (
    UNKNOWN,
    normalize_license,
    resolve,
    scan_html,
)
from speechmill.core.crawl.policy import (
    Policy,
    decide,
    enclosure_drop,
    needs_full_metadata,
    parse_day,
    url_drop,
)
from speechmill.core.text.unicode import clean, clean_all
from speechmill.schemas import Category, Drop, Reject, SourceItem
from speechmill.transforms.common import make_reject

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
    watermark: dict[str, str] = field(default_factory=dict)
    unchanged: bool = False  # the feed answered 304 Not Modified


def host_policy(crawl: CrawlConfig) -> HostPolicy:
    return HostPolicy(
        allow_private=crawl.allow_private_networks, allow_hosts=frozenset(crawl.allow_hosts)
    )


def robots_for(crawl: CrawlConfig) -> Robots:
    """A run's robots.txt cache (one fetch per origin, through the crawl's host guard)."""
    return Robots(host_policy(crawl), enabled=crawl.respect_robots, timeout=crawl.socket_timeout_s)


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


def _reject(item: SourceItem, drop: Drop) -> Reject:
    """A discovery reject (reason and detail often quote remote text: made storable)."""
    return make_reject(
        drop,
        item_id=item.media_id,
        item_kind="source",
        stage=STAGE,
        run_id=item.run_id,
        source_id=item.media_id,
        duration_s=item.duration_s,
    )


def _skip(found: Found, item: SourceItem, fe: ytdlp.FetchError) -> None:
    """Skip one item with the reject a failure or a robots.txt refusal stands for."""
    found.skipped.append(item)
    found.rejects.append(_reject(item, fe.drop))


def _text(v: Any) -> str | None:
    """A remote value as storable text; None when absent or blank."""
    if v is None:
        return None
    s = clean(str(v))
    return s if s.strip() else None


def _texts(values: Iterable[Any], limit: int = 100) -> list[str]:
    return clean_all(str(v) for v in values if v is not None)[:limit]


def _listed(listed: str | None, url: str) -> str | None:
    """`sources.listed_url`: the URL as listed, only when it differs from the fetched one."""
    return listed if listed and listed != url else None


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
    ctype = res.headers.get("Content-Type", "")  # case-insensitive lookup
    if "html" not in ctype.lower():
        return [], {}
    scan = scan_html(res.body.decode("utf-8", "replace"))
    return list(scan.marks), dict(scan.meta)


# ---------------------------------------------------------------------------- yt-dlp


def _media_url(entry: dict[str, Any]) -> str:
    """The URL the fetch stage will hand to yt-dlp (as yt-dlp gave it)."""
    return str(entry.get("url") or entry.get("webpage_url") or entry.get("original_url"))


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
        m
        for m in [
            _text(entry.get("license")),
            _text(entry.get("playlist_license")),
            *(_text(m) for m in marks),
        ]
        if m
    ]
    license_id = resolve(raw) if raw else UNKNOWN
    if license_id == UNKNOWN and spec.license:
        license_id = normalize_license(spec.license)
    tags = _texts(entry.get("tags") or [])
    title = _text(entry.get("title")) or _text(meta.get("og:title")) or _text(meta.get("title"))
    upload = parse_day(_text(entry.get("upload_date")))
    url = clean(_media_url(entry))
    return SourceItem(
        media_id=ytdlp.media_id_for(entry),
        source_name=name,
        kind=spec.kind,
        url=url,
        listed_url=_listed(_text(entry.get(ytdlp.LISTED_URL)), url),
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


_ESCAPED = re.compile("[\udc80-\udcff]")


def _percent_escaped(line: str) -> str:
    """Bytes of a list file that are not UTF-8 (read as surrogate escapes) as %XX."""
    return _ESCAPED.sub(lambda m: f"%{ord(m.group()) - 0xDC00:02X}", line)


def _urls_of(spec: RemoteSpec) -> list[str]:
    if isinstance(spec, ListSource):
        with open(spec.path, encoding="utf-8", errors="surrogateescape") as f:
            return [
                _percent_escaped(ln.strip())
                for ln in f
                if ln.strip() and not ln.lstrip().startswith("#")
            ]
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
    robots: Robots,
) -> None:
    """Complete one listed entry's metadata and licence, then apply the policy and robots.txt.

    Discovery's own requests (an entry's full metadata, its page for licence marks)
    are made only where robots.txt allows them; the media URL is checked once the
    policy keeps the item.
    """
    if needs_full_metadata(entry, spec.full_metadata, policy):
        denied = robots.check(str(entry.get("url")))
        if denied is not None:
            _skip(found, _ytdlp_item(entry, spec, name, run_id, now, [], {}), denied)
            return
        try:
            entry = {**entry, **ytdlp.full_info(str(entry.get("url")), opts)}
        except Exception as e:
            item = _ytdlp_item(entry, spec, name, run_id, now, [], {})
            _skip(found, item, ytdlp.classify(e))
            return
    marks: list[str] = []
    meta: dict[str, str] = {}
    ek = str(entry.get("extractor_key") or entry.get("ie_key") or "").lower()
    page = entry.get("webpage_url")
    page = str(page) if page else None
    direct = entry.get("direct") or page == entry.get("url")
    if ek in ("generic", "html5mediaembed", "") and not direct:
        denied = robots.check(page)
        if denied is not None:
            _skip(found, _ytdlp_item(entry, spec, name, run_id, now, [], {}), denied)
            return
        marks, meta = page_marks(page, host_policy(crawl), crawl.socket_timeout_s)
    item = _ytdlp_item(entry, spec, name, run_id, now, marks, meta)
    _decide(found, item, policy, position, robots, _media_url(entry))


def discover_ytdlp(
    spec: YtdlpSource | ListSource,
    name: str,
    run_id: str,
    now: dt.datetime,
    crawl: CrawlConfig,
    is_known: Callable[[str], bool],
    robots: Robots | None = None,
) -> Found:
    """Entries of a yt-dlp URL or of every line of a URL list, decided (no media fetched).

    `robots` is the run's robots.txt cache (one is made from `crawl` if None).
    """
    found = Found()
    hp = host_policy(crawl)
    robots = robots or robots_for(crawl)
    policy = policy_of(spec)
    opts = ytdlp.base_options(socket_timeout=crawl.socket_timeout_s, cookies_file=spec.cookies_file)
    position = 0
    for url in _urls_of(spec):
        streak = 0
        media_id = ytdlp.url_id(url)
        unsupported = url_drop(url)
        if unsupported is not None:
            bad = _placeholder(media_id, url, spec, name, run_id, now)
            found.skipped.append(bad)
            found.rejects.append(_reject(bad, unsupported))
            continue
        denied = robots.check(url)
        if denied is not None:  # the listing itself may not be fetched
            if not is_known(media_id):
                _skip(found, _placeholder(media_id, url, spec, name, run_id, now), denied)
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
                        found, entry, spec, name, run_id, now, policy, opts, crawl, position, robots
                    )
                    position += 1
        except Exception as e:
            if not is_known(media_id):
                placeholder = _placeholder(media_id, url, spec, name, run_id, now)
                _skip(found, placeholder, ytdlp.classify(e))
    return found


def _placeholder(
    media_id: str, url: str, spec: RemoteSpec, name: str, run_id: str, now: dt.datetime
) -> SourceItem:
    return SourceItem(
        media_id=media_id,
        source_name=name,
        kind=spec.kind,
        url=clean(url),
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


def _decide(
    found: Found, item: SourceItem, policy: Policy, position: int, robots: Robots, media_url: str
) -> None:
    """The source's policy, then (for an item it keeps) robots.txt on the media URL."""
    d = decide(
        policy,
        position=position,
        license_id=item.license,
        duration_s=item.duration_s,
        upload_date=item.upload_date,
        language=item.language,
    )
    if d is None:
        denied = robots.check(media_url)
        if denied is not None:
            _skip(found, item, denied)
            return
        found.items.append(item)
    else:
        found.skipped.append(item)
        found.rejects.append(_reject(item, d))


# ---------------------------------------------------------------------------- RSS


def rss_media_id(feed_url: str, key: str) -> str:
    data = f"{feed_url}\n{key}".encode("utf-8", "surrogatepass")
    return "rss:" + hashlib.sha256(data).hexdigest()[:24]


def discover_rss(
    spec: RssSource,
    name: str,
    run_id: str,
    now: dt.datetime,
    crawl: CrawlConfig,
    is_known: Callable[[str], bool],
    watermark: dict[str, str] | None = None,
    robots: Robots | None = None,
) -> Found:
    """The items of one feed (one conditional GET), decided; enclosures are not fetched.

    `robots` is the run's robots.txt cache (one is made from `crawl` if None).
    """
    found = Found()
    hp = host_policy(crawl)
    robots = robots or robots_for(crawl)
    policy = policy_of(spec)
    wm = watermark or {}
    placeholder = _placeholder(rss_media_id(spec.url, "feed"), spec.url, spec, name, run_id, now)
    denied = robots.check(spec.url)
    if denied is not None:  # the feed itself may not be fetched: one reject
        _skip(found, placeholder, denied)
        found.watermark = dict(wm)
        return found
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
        _skip(
            found,
            placeholder,
            ytdlp.FetchError(fe.category, f"feed: {fe.reason}", fe.retryable, fe.detail),
        )
        found.watermark = dict(wm)
        return found
    if res.not_modified:
        found.watermark = dict(wm)
        found.unchanged = True
        return found
    found.watermark = {
        k: res.headers[h]
        for k, h in (("etag", "ETag"), ("last_modified", "Last-Modified"))
        if h in res.headers  # case-insensitive: `etag`, `Etag`, `ETag` are one header
    }
    try:
        feed = parse_feed(res.body, res.url)
    except FeedError as e:
        found.skipped.append(placeholder)
        found.rejects.append(
            _reject(placeholder, Drop(Category.UNSUPPORTED, f"feed could not be parsed: {e}"))
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
        unsupported = enclosure_drop(entry.enclosure_url)
        if unsupported is not None:
            bad = _placeholder(media_id, entry.enclosure_url, spec, name, run_id, now)
            found.skipped.append(bad)
            found.rejects.append(_reject(bad, unsupported))
            continue
        raw = clean_all(entry.license_marks) or clean_all(feed.license_marks)
        license_id = resolve(raw) if raw else UNKNOWN
        if license_id == UNKNOWN and spec.license:
            license_id = normalize_license(spec.license)
        item = SourceItem(
            media_id=media_id,
            source_name=name,
            kind="rss",
            url=clean(entry.enclosure_url),  # as listed: the item's identity is feed + guid
            listed_url=None,
            webpage_url=_text(entry.link or feed.link),
            extractor="rss",
            title=_text(entry.title),
            author=_text(entry.author or feed.author),
            channel_id=clean(spec.url),
            license=license_id,
            license_raw="; ".join(raw) if raw else None,
            upload_date=entry.published,
            duration_s=entry.duration_s,
            language=_text(entry.language or feed.language) or spec.language,
            tags=_texts(entry.keywords),
            size_bytes=entry.enclosure_length,
            etag=None,
            discovered_at=now,
            recording_id=None,
            run_id=run_id,
        )
        _decide(found, item, policy, position, robots, entry.enclosure_url)
        position += 1
    return found
