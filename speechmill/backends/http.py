"""Small, guarded HTTP GET for pages and feeds (yt-dlp downloads the media itself)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field

from speechmill import __version__
from speechmill.net import HostPolicy, check_url, guarded

USER_AGENT = f"speechmill/{__version__} (+https://github.com/speechmill)"


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: bytes
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class TooLarge(Exception):
    pass


def get(
    url: str,
    policy: HostPolicy,
    *,
    max_bytes: int = 20_000_000,
    timeout: float = 30.0,
    etag: str | None = None,
    last_modified: str | None = None,
) -> HttpResult:
    """GET with host scope enforced on every hop; raises urllib errors or TooLarge."""
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
                return HttpResult(304, b"", url, dict(e.headers or {}))
            raise
        with resp:
            body = resp.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise TooLarge(f"{url}: more than {max_bytes} bytes")
            return HttpResult(resp.status, body, resp.geturl(), dict(resp.headers))
