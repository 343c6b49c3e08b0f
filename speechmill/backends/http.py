"""Small, guarded HTTP GET for pages, feeds and robots.txt (yt-dlp downloads the media itself)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from speechmill import __version__
from speechmill.backends.net import HostPolicy, check_url, guarded

USER_AGENT = f"speechmill/{__version__} (+https://github.com/speechmill)"
# The product token robots.txt `User-agent:` lines are matched against.
ROBOTS_AGENT = "speechmill"


class Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively (`Content-type` = `content-type`).

    HTTP field names are case-insensitive (RFC 9110, 5.1) and servers spell them
    every way (Python's own `http.server` sends `Content-type`). Iteration yields
    the names as the server sent them; a repeated field keeps its first value, as
    `email.message.Message.get` does. Immutable and picklable.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        folded: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            folded.setdefault(str(name).lower(), (str(name), str(value)))
        self._items = folded

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (orig for orig, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"

    def __getstate__(self) -> dict[str, tuple[str, str]]:
        return self._items

    def __setstate__(self, state: dict[str, tuple[str, str]]) -> None:
        self._items = state


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: bytes
    url: str
    headers: Headers = field(default_factory=Headers)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class TooLarge(Exception):
    pass


def _headers(msg: object) -> Headers:
    items = getattr(msg, "items", None)
    return Headers(items() if callable(items) else ())


def get(
    url: str,
    policy: HostPolicy,
    *,
    max_bytes: int = 20_000_000,
    timeout: float = 30.0,
    etag: str | None = None,
    last_modified: str | None = None,
    truncate: bool = False,
) -> HttpResult:
    """GET with host scope enforced on every hop; raises urllib errors or TooLarge.

    With `truncate`, a body over `max_bytes` is cut to its first `max_bytes`
    instead of raising `TooLarge` (robots.txt: only the head of a huge file is read).
    """
    check_url(url, policy)
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    req = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked above
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no env proxies
    with guarded(policy):
        try:
            resp = opener.open(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 304:
                return HttpResult(304, b"", url, _headers(e.headers))
            raise
        with resp:
            body = resp.read(max_bytes + 1)
            if len(body) > max_bytes:
                if not truncate:
                    raise TooLarge(f"{url}: more than {max_bytes} bytes")
                body = body[:max_bytes]
            return HttpResult(resp.status, body, resp.geturl(), _headers(resp.headers))
