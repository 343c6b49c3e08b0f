"""robots.txt: fetched once per origin per run, through the host guard, read by urllib.robotparser.

A crawl honours each host's robots.txt unless `crawl.respect_robots` is off:

* the file is fetched with `backends.http.get` under the run's `HostPolicy`
  (so a robots.txt redirect cannot reach an internal address either), at most
  once per origin (`scheme://host:port`) per run, and its first 500 KiB are
  read (the size Google reads);
* rules are matched with the standard library's `RobotFileParser` for the
  product token `speechmill` (`User-agent: speechmill` or `*`): the first
  matching `Allow`/`Disallow` prefix wins, and `*`/`$` inside paths are not
  wildcards (stdlib semantics);
* `404`/`410` and other 4xx answers mean no rules (allow all); `401`/`403`
  mean disallow all (robotparser's convention);
* `429`, `5xx` and network failures mean the rules are unknown: every URL of
  that origin is refused for this run with a *transient* reject (`network`,
  `timeout`, or `blocked_host` when the guard refused the address), as Google
  treats an unreachable robots.txt as a temporary disallow-all; the next run
  asks again;
* `Crawl-delay` (whole seconds, stdlib) and `Request-rate` (n/seconds) of the
  matching group are a lower bound on that host's pacing in the fetch stage,
  capped at `MAX_CRAWL_DELAY_S`.

URLs that are not http(s) (`ytsearch5:...`) have no robots.txt and are allowed.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from speechmill.backends import http
from speechmill.backends.net import HostPolicy
from speechmill.backends.ytdlp import FetchError, classify
from speechmill.schemas import Category

__all__ = ["MAX_BYTES", "MAX_CRAWL_DELAY_S", "Robots", "origin_of"]

MAX_BYTES = 500 * 1024
# A robots.txt cannot stall a crawl for hours: longer delays are read as this.
MAX_CRAWL_DELAY_S = 60.0

Fetch = Callable[[str], http.HttpResult]


def origin_of(url: str) -> tuple[str, str] | None:
    """(`scheme://host[:port]`, lowercase host name) of an http(s) URL; None otherwise."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return None
    shown = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[scheme]
    netloc = shown if port in (None, default) else f"{shown}:{port}"
    return f"{scheme}://{netloc}", host


@dataclass(frozen=True)
class _Rules:
    parser: urllib.robotparser.RobotFileParser | None  # None: the file could not be read
    failure: FetchError | None = None
    why: str = "disallows this URL"


class Robots:
    """The robots.txt rules of every origin a run touches (one fetch per origin).

    `check(url)` is None when the URL may be fetched, else a `FetchError` to turn
    into the item's reject: `policy_robots` (permanent, re-decided by every run)
    when the rules disallow it, or the transient failure that kept the rules from
    being read. `host_delays()` maps host names to their crawl delays.
    """

    def __init__(
        self,
        policy: HostPolicy,
        *,
        enabled: bool = True,
        timeout: float = 30.0,
        agent: str = http.ROBOTS_AGENT,
        fetch: Fetch | None = None,
    ) -> None:
        self.enabled = enabled
        self._policy = policy
        self._timeout = timeout
        self._agent = agent
        self._fetch = fetch or self._get
        self._rules: dict[str, _Rules] = {}
        self._hosts: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def _get(self, url: str) -> http.HttpResult:
        return http.get(
            url, self._policy, max_bytes=MAX_BYTES, timeout=self._timeout, truncate=True
        )

    @property
    def fetched(self) -> list[str]:
        """Origins whose robots.txt was asked for, in order."""
        return list(self._rules)

    def _load(self, origin: str) -> _Rules:
        robots_url = f"{origin}/robots.txt"
        parser = urllib.robotparser.RobotFileParser(robots_url)
        try:
            res = self._fetch(robots_url)
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                parser.parse(["User-agent: *", "Disallow: /"])
                return _Rules(parser, why=f"answered HTTP {e.code}: every URL is disallowed")
            if e.code == 429 or e.code >= 500:
                return _Rules(
                    None,
                    FetchError(
                        Category.NETWORK,
                        f"robots.txt of {origin} unavailable (HTTP {e.code}); "
                        "asked again by the next run",
                        True,
                    ),
                )
            parser.parse([])  # 404, 410, other 4xx, unfollowed redirects: no rules
            return _Rules(parser)
        except Exception as e:
            fe = classify(e)
            return _Rules(
                None,
                FetchError(
                    fe.category,
                    f"robots.txt of {origin} could not be read: {fe.reason}",
                    fe.retryable,
                    fe.detail,
                ),
            )
        parser.parse(res.body.decode("utf-8", "replace").splitlines())
        return _Rules(parser)

    def _rules_for(self, url: str) -> tuple[str, _Rules] | None:
        found = origin_of(url)
        if found is None:
            return None
        origin, host = found
        with self._lock:
            rules = self._rules.get(origin)
            if rules is None:
                rules = self._rules[origin] = self._load(origin)
                self._hosts.setdefault(host, []).append(origin)
        return origin, rules

    def check(self, url: str | None) -> FetchError | None:
        """None if `url` may be fetched; else why not (the reject to write)."""
        if not self.enabled or not url:
            return None
        got = self._rules_for(url)
        if got is None:
            return None
        origin, rules = got
        if rules.parser is None:
            return rules.failure
        if rules.parser.can_fetch(self._agent, url):
            return None
        return FetchError(
            Category.POLICY_ROBOTS,
            f"robots.txt of {origin} {rules.why} for {self._agent} (crawl.respect_robots)",
            False,
            url,
        )

    def crawl_delay(self, url: str) -> float | None:
        """The crawl delay robots.txt asks of this URL's origin (seconds), if any."""
        if not self.enabled:
            return None
        got = self._rules_for(url)
        if got is None or got[1].parser is None:
            return None
        return self._delay(got[1].parser)

    def _delay(self, parser: urllib.robotparser.RobotFileParser) -> float | None:
        delays: list[float] = []
        delay = parser.crawl_delay(self._agent)
        if delay is not None:
            delays.append(float(delay))
        rate = parser.request_rate(self._agent)
        if rate is not None and rate.requests > 0:
            delays.append(rate.seconds / rate.requests)
        return min(max(delays), MAX_CRAWL_DELAY_S) if delays else None

    def host_delays(self) -> dict[str, float]:
        """Host name -> the longest crawl delay of its origins read so far (fetch pacing)."""
        out: dict[str, float] = {}
        with self._lock:
            for host, origins in self._hosts.items():
                for origin in origins:
                    parser = self._rules[origin].parser
                    delay = self._delay(parser) if parser is not None else None
                    if delay:
                        out[host] = max(out.get(host, 0.0), delay)
        return out
