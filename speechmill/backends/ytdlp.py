"""yt-dlp behind a small, locked-down interface: list entries, read metadata, download.

Safety (see docs/crawl.md):
  * no shell, no external downloader, no post-processors or exec hooks, no plugins,
    no cache directory, no cookies unless configured, no info/thumbnail/subtitle files;
  * files go to a per-item temporary directory under fixed names (`media.<ext>`), so
    titles and other remote text never reach a path;
  * a size cap and a wall-clock deadline are enforced *while* downloading (a progress
    hook), which also covers chunked or endless responses without Content-Length;
  * host scope is enforced below yt-dlp by `speechmill.backends.net.guarded` (every
    connection, redirects included).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from speechmill.core.text.unicode import clean
from speechmill.schemas import Category, Dropped

log = logging.getLogger(__name__)


class FetchError(Dropped):
    """A failed fetch: its `Drop` (category, reason, and whether a later run may retry)."""

    def __init__(
        self, category: Category, reason: str, retryable: bool, detail: str | None = None
    ) -> None:
        super().__init__(category, reason, detail or None, retryable)


class _Quiet:
    """yt-dlp logger that keeps messages out of the terminal (debug log only)."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        log.debug("yt-dlp warning: %s", msg)

    def error(self, msg: str) -> None:
        log.debug("yt-dlp error: %s", msg)


def _disable_plugins() -> None:
    try:
        from yt_dlp.globals import plugin_dirs

        plugin_dirs.value = []
    except ImportError:  # older yt-dlp: no plugin system to switch off
        pass
    os.environ["YTDLP_NO_PLUGINS"] = "1"


def base_options(
    *, socket_timeout: float, cookies_file: str | None = None, workdir: str | None = None
) -> dict[str, Any]:
    """Options shared by listing and downloading."""
    _disable_plugins()
    opts: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _Quiet(),
        "socket_timeout": socket_timeout,
        "cachedir": False,
        "call_home": False,
        "check_formats": False,
        "writeinfojson": False,
        "writethumbnail": False,
        "writesubtitles": False,
        "writeautomaticsub": False,
        "writedescription": False,
        "postprocessors": [],
        "restrictfilenames": True,
        "windowsfilenames": True,
        "extractor_retries": 1,
        "retries": 0,
        "fragment_retries": 0,
        "noplaylist": False,
        "color": {"stdout": "never", "stderr": "never"},
        # every request goes through yt-dlp's own HTTP stack in this thread, where
        # speechmill.backends.net.guarded sees it: no proxies from the environment, no
        # external downloaders (ffmpeg/aria2c resolve hosts themselves), no
        # fragment thread pool
        "proxy": "",
        "external_downloader": {"default": "native"},
        "concurrent_fragment_downloads": 1,
        "hls_prefer_native": True,
    }
    if cookies_file:
        opts["cookiefile"] = cookies_file
    if workdir:
        opts["paths"] = {"home": workdir, "temp": workdir}
        opts["outtmpl"] = {"default": "media.%(ext)s"}
    return opts


URL_KEYED = frozenset({"generic", "html5mediaembed"})


def media_id_for(info: Mapping[str, Any]) -> str:
    """`<extractor>:<id>`; for the generic extractors a hash of the media URL.

    The generic extractor derives ids from file names (`talk.mp3` and `talk.wav`
    would collide) and the HTML5 embed extractor from page names (`page-1` on two
    sites); their media URLs do not collide.
    """
    extractor = str(info.get("ie_key") or info.get("extractor_key") or info.get("extractor") or "")
    ident = info.get("id")
    url = str(info.get("url") or info.get("webpage_url") or info.get("original_url") or "")
    if not extractor or extractor.lower() in URL_KEYED or ident in (None, ""):
        return url_id(url)
    return clean(f"{extractor.lower()}:{ident}")  # remote text: lone surrogates can't be stored


def url_id(url: str) -> str:
    """`url:` + a hash of a URL (any string, lone surrogates included)."""
    return "url:" + hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:24]


# The key `list_entries` adds to each entry: the URL as the listing gave it.
LISTED_URL = "speechmill_listed_url"


def list_entries(url: str, opts: Mapping[str, Any], limit: int | None) -> Iterator[dict[str, Any]]:
    """Entries of a URL without downloading media (flat for playlists, channels, feeds).

    Each entry carries `LISTED_URL`: the URL it was listed under (`url` itself for
    a single item, the playlist's URL of the entry otherwise), so that a redirect
    or an extractor's resolution does not lose what the user or the page gave.
    """
    import yt_dlp

    o = dict(opts)
    o.update({"skip_download": True, "extract_flat": "in_playlist", "lazy_playlist": True})
    if limit is not None:
        o["playlistend"] = limit
    with yt_dlp.YoutubeDL(o) as ydl:
        info = ydl.extract_info(url, download=False)
        if info is None:
            return
        if info.get("_type") in ("playlist", "multi_video"):
            for raw in info.get("entries") or []:
                if raw:
                    entry = dict(raw)
                    entry.setdefault("playlist_webpage_url", info.get("webpage_url"))
                    entry.setdefault("playlist_license", info.get("license"))
                    entry[LISTED_URL] = raw.get("url") or raw.get("webpage_url")
                    yield entry
        else:
            yield {**info, LISTED_URL: url}


def full_info(url: str, opts: Mapping[str, Any]) -> dict[str, Any]:
    """Complete metadata of one item (formats, licence, dates) without downloading."""
    import yt_dlp

    o = dict(opts)
    o.update({"skip_download": True, "noplaylist": True})
    with yt_dlp.YoutubeDL(o) as ydl:
        info = ydl.extract_info(url, download=False)
    if info is None:
        raise FetchError(Category.UNSUPPORTED, "yt-dlp returned no information", False)
    return dict(ydl.sanitize_info(info))


def _before_first_request(
    ydl: Any, before: Callable[[], None], limits: _Limits, deadline_s: float
) -> None:
    """Call `before` as this YoutubeDL's first request goes out (every request of
    extractors and downloaders goes through `YoutubeDL.urlopen`)."""
    urlopen = ydl.urlopen
    pending = [before]

    def first_then_urlopen(req: Any) -> Any:
        if pending:
            pending.pop()()
            limits.deadline = time.monotonic() + deadline_s
        return urlopen(req)

    ydl.urlopen = first_then_urlopen


def warm_up() -> None:
    """Import yt-dlp and compile its extractors' URL patterns (once per process).

    The first `extract_info` of a process spends about a second on this; done in
    one thread first, the fetch threads' requests start when their pacing says.
    """
    from yt_dlp.extractor import gen_extractor_classes

    for ie in gen_extractor_classes():
        ie.suitable("https://warm-up.invalid/")


@dataclass(frozen=True)
class Downloaded:
    path: str
    info: dict[str, Any]
    bytes: int


class _Limits:
    def __init__(self, max_bytes: int, deadline: float) -> None:
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.tripped: FetchError | None = None

    def hook(self, d: Mapping[str, Any]) -> None:
        got = int(d.get("downloaded_bytes") or 0)
        if got > self.max_bytes:
            self.tripped = FetchError(
                Category.TOO_LARGE,
                f"download passed crawl.max_filesize_bytes ({self.max_bytes} bytes)",
                False,
            )
        elif time.monotonic() > self.deadline:
            self.tripped = FetchError(
                Category.TIMEOUT, "download passed crawl.item_deadline_s", True
            )
        if self.tripped is not None:
            raise self.tripped


def download(
    url: str,
    opts: Mapping[str, Any],
    workdir: str,
    *,
    max_bytes: int,
    deadline_s: float,
    before_start: Callable[[], None] | None = None,
) -> Downloaded:
    """Best audio of one item into `workdir/media.<ext>`; raises FetchError.

    `before_start` runs right before yt-dlp's first request for the item (pacing
    waits there, so the spacing it keeps is the spacing of the requests, not of
    yt-dlp's set-up); the deadline counts from then.
    """
    import yt_dlp

    limits = _Limits(max_bytes, time.monotonic() + deadline_s)
    o = base_options(socket_timeout=float(opts.get("socket_timeout", 30)), workdir=workdir)
    o.update({k: v for k, v in opts.items() if k in ("cookiefile",)})
    o.update(
        {
            # formats yt-dlp downloads natively (http(s) or native HLS), audio first
            "format": "bestaudio[protocol^=http]/bestaudio[protocol=m3u8_native]"
            "/best[protocol^=http]/best[protocol=m3u8_native]",
            "noplaylist": True,
            "max_filesize": max_bytes,
            "progress_hooks": [limits.hook],
            "overwrites": True,
            "continuedl": False,
        }
    )
    try:
        with yt_dlp.YoutubeDL(o) as ydl:
            if before_start is not None:
                _before_first_request(ydl, before_start, limits, deadline_s)
            info = ydl.extract_info(url, download=True)
            if info is None:
                raise FetchError(Category.UNSUPPORTED, "yt-dlp returned no information", False)
            info = dict(ydl.sanitize_info(info))
    except FetchError:
        raise
    except Exception as e:
        if limits.tripped is not None:
            raise limits.tripped from None
        raise classify(e) from None
    files = [f for f in os.listdir(workdir) if f.startswith("media.") and not f.endswith(".part")]
    if not files:
        if info.get("filesize") and int(info["filesize"]) > max_bytes:
            raise FetchError(
                Category.TOO_LARGE, "declared size is over crawl.max_filesize_bytes", False
            )
        raise FetchError(Category.UNSUPPORTED, "yt-dlp downloaded no media file", False)
    path = os.path.join(workdir, sorted(files)[0])
    return Downloaded(path, info, os.path.getsize(path))


_PERMANENT = [
    (
        re.compile(r"did not get any data blocks|content-length: 0\b|empty (file|response)", re.I),
        Category.EMPTY,
    ),
    (re.compile(r"HTTP Error (404|410)|\b404\b.*not found|Not Found", re.I), Category.NOT_FOUND),
    (re.compile(r"HTTP Error (401|403|451)", re.I), Category.UNAVAILABLE),
    (
        re.compile(
            r"private video|video unavailable|has been removed|not available|"
            r"members-only|copyright|account .* terminated|geo.?restrict",
            re.I,
        ),
        Category.UNAVAILABLE,
    ),
    (
        re.compile(r"unsupported url|no video formats|no suitable|requested format", re.I),
        Category.UNSUPPORTED,
    ),
]
_TRANSIENT = [
    (re.compile(r"timed? ?out|timeout", re.I), Category.TIMEOUT),
    (
        re.compile(
            r"HTTP Error (429|5\d\d)|connection (refused|reset|aborted)|temporar|"
            r"name or service not known|nodename nor servname|network is unreachable|"
            r"incompleteread|remote end closed|ssl",
            re.I,
        ),
        Category.NETWORK,
    ),
]


def classify(error: BaseException) -> FetchError:
    """Map a yt-dlp / network exception to a reject category and retryability.

    Permanent: 404/410 (not_found), 401/403/451, private, removed, geo-blocked
    (unavailable), unsupported URLs or formats (unsupported), blocked hosts.
    Transient: timeouts, 429, 5xx, refused or reset connections, DNS failures.
    Anything else is treated as transient (a later run may succeed) and is given
    up after `crawl.max_attempts` runs.
    """
    from speechmill.backends.net import BlockedHostError

    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, BlockedHostError):
            return FetchError(Category.BLOCKED_HOST, str(cause), False, str(error)[:500])
        cause = cause.__cause__ or cause.__context__
    text = f"{type(error).__name__}: {error}"
    if "BlockedHostError" in text or "crawl.allow_private_networks" in text:
        return FetchError(
            Category.BLOCKED_HOST, "address not allowed by crawl settings", False, text[:500]
        )
    for pattern, category in _PERMANENT:
        if pattern.search(text):
            return FetchError(category, _short(text), False, text[:2000])
    for pattern, category in _TRANSIENT:
        if pattern.search(text):
            return FetchError(category, _short(text), True, text[:2000])
    return FetchError(Category.NETWORK, _short(text), True, text[:2000])


def _short(text: str) -> str:
    """One readable line: no colour codes, exception class or `[extractor] id:` prefix."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = re.sub(r"^\w+(Error|Exception): ", "", text)
    text = text.replace("ERROR: ", "")
    text = re.sub(r"^\[[\w:.-]+\] [^:]*: ", "", text)
    text = re.sub(r" \(caused by .*$", "", text)
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return line[:300] or "fetch failed"
