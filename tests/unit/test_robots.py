"""speechmill.backends.robots against robots.txt files served by a local site (127.0.0.1)."""

from __future__ import annotations

from typing import Any

import pytest

from speechmill.backends.net import HostPolicy
from speechmill.backends.robots import MAX_CRAWL_DELAY_S, Robots, origin_of
from speechmill.schemas import Category
from tests import http_server
from tests.http_server import Site, refused_url

http_site = http_server.http_site
LOCAL = HostPolicy(allow_hosts=frozenset({"127.0.0.1"}))


def robots(**kw: Any) -> Robots:
    return Robots(LOCAL, timeout=5, **kw)


def test_rules_for_our_agent_and_for_everyone(http_site: Site) -> None:
    http_site.add_file(
        "robots.txt",
        "User-agent: speechmill\nAllow: /private/ok\nDisallow: /private/\n\n"
        "User-agent: *\nDisallow: /\n",
    )
    r = robots()
    assert r.check(http_site.url("/media/a.mp3")) is None  # our group allows it
    assert r.check(http_site.url("/private/ok.mp3")) is None  # the first matching rule wins
    denied = r.check(http_site.url("/private/x.mp3?y=1"))
    assert denied is not None
    assert (denied.category, denied.retryable) == (Category.POLICY_ROBOTS, False)
    assert "robots.txt of http://127.0.0.1:" in denied.reason
    assert denied.detail == http_site.url("/private/x.mp3?y=1")
    other = robots(agent="otherbot")  # everyone else is shut out
    assert other.check(http_site.url("/media/a.mp3")) is not None
    assert http_site.hits["/robots.txt"] == 2  # once per Robots (one per run)


def test_fetched_once_per_origin(http_site: Site) -> None:
    http_site.add_file("robots.txt", "User-agent: *\nDisallow: /x/\n")
    r = robots()
    for i in range(20):
        r.check(http_site.url(f"/media/{i}.mp3"))
        r.crawl_delay(http_site.url(f"/x/{i}"))
    assert http_site.hits["/robots.txt"] == 1
    assert r.fetched == [http_site.base_url]


@pytest.mark.parametrize("code", [404, 410, 400])
def test_missing_robots_txt_allows_everything(http_site: Site, code: int) -> None:
    http_site.add_status("/robots.txt", code)
    assert robots().check(http_site.url("/anything")) is None


@pytest.mark.parametrize("code", [401, 403])
def test_forbidden_robots_txt_disallows_everything(http_site: Site, code: int) -> None:
    http_site.add_status("/robots.txt", code)
    denied = robots().check(http_site.url("/media/a.mp3"))
    assert denied is not None and denied.category == Category.POLICY_ROBOTS
    assert f"HTTP {code}" in denied.reason and not denied.retryable


@pytest.mark.parametrize("code", [429, 500, 503])
def test_unavailable_robots_txt_is_a_transient_refusal(http_site: Site, code: int) -> None:
    http_site.add_status("/robots.txt", code)
    r = robots()
    for _ in range(3):
        denied = r.check(http_site.url("/media/a.mp3"))
        assert denied is not None
        assert (denied.category, denied.retryable) == (Category.NETWORK, True)
        assert f"HTTP {code}" in denied.reason
    assert http_site.hits["/robots.txt"] == 1  # the failure is remembered for the run


def test_unreachable_host_is_a_transient_refusal() -> None:
    denied = robots().check(refused_url())
    assert denied is not None and denied.retryable
    assert denied.category == Category.NETWORK
    assert "robots.txt of http://127.0.0.1:" in denied.reason


def test_robots_txt_goes_through_the_host_guard(http_site: Site) -> None:
    http_site.add_file("robots.txt", "User-agent: *\nDisallow:\n")
    denied = Robots(HostPolicy(), timeout=5).check(http_site.url("/a.mp3"))  # no allow_hosts
    assert denied is not None
    assert (denied.category, denied.retryable) == (Category.BLOCKED_HOST, False)
    assert http_site.hits["/robots.txt"] == 0
    # a redirect of robots.txt to the metadata address is refused too
    http_site.add_redirect("/robots.txt", "http://169.254.169.254/robots.txt")
    denied = robots().check(http_site.url("/a.mp3"))
    assert denied is not None and denied.category == Category.BLOCKED_HOST


def test_crawl_delay_and_request_rate(http_site: Site) -> None:
    http_site.add_file(
        "robots.txt",
        "User-agent: speechmill\nCrawl-delay: 2\nRequest-rate: 1/5\nDisallow:\n\n"
        "User-agent: *\nCrawl-delay: 30\n",
    )
    r = robots()
    assert r.crawl_delay(http_site.url("/a")) == 5.0  # the stricter of the two
    assert r.host_delays() == {"127.0.0.1": 5.0}
    assert robots(agent="otherbot").crawl_delay(http_site.url("/a")) == 30.0


def test_crawl_delay_is_capped(http_site: Site) -> None:
    http_site.add_file("robots.txt", "User-agent: *\nCrawl-delay: 86400\n")
    r = robots()
    assert r.check(http_site.url("/a")) is None
    assert r.host_delays() == {"127.0.0.1": MAX_CRAWL_DELAY_S}


def test_a_huge_robots_txt_is_read_from_its_head(http_site: Site) -> None:
    http_site.add_file("robots.txt", "User-agent: *\nDisallow: /x/\n" + "# pad\n" * 200_000)
    r = robots()
    assert r.check(http_site.url("/x/1")) is not None
    assert r.check(http_site.url("/y/1")) is None


def test_off_non_http_and_empty_urls_are_allowed_without_a_request(http_site: Site) -> None:
    http_site.add_file("robots.txt", "User-agent: *\nDisallow: /\n")
    assert robots(enabled=False).check(http_site.url("/a")) is None
    assert robots(enabled=False).crawl_delay(http_site.url("/a")) is None
    r = robots()
    for url in ("ytsearch5:rivers", "file:///etc/passwd", "", None, "http://"):
        assert r.check(url) is None
    assert http_site.hits["/robots.txt"] == 0


def test_origins() -> None:
    assert origin_of("HTTP://Example.COM:80/a?b") == ("http://example.com", "example.com")
    assert origin_of("https://example.com:443/") == ("https://example.com", "example.com")
    assert origin_of("https://example.com:8443/x") == ("https://example.com:8443", "example.com")
    assert origin_of("http://user:pw@[::1]:8080/x") == ("http://[::1]:8080", "::1")
    assert origin_of("http://example.com:99999/") is None
    assert origin_of("ftp://example.com/") is None
