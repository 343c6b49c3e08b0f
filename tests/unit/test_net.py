"""speechmill.backends.net (host scope guard) and tests/http_server.py (local test site).

Everything here is offline: an autouse tripwire fails any socket connect to an
address other than 127.0.0.1, so the metadata-address tests prove the guard
refused at resolution time, before any connection.
"""

from __future__ import annotations

import email.utils
import http.client
import pickle
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from speechmill.backends.net import (
    BlockedHostError,
    HostPolicy,
    UnsupportedUrlError,
    address_allowed,
    check_url,
    current_policy,
    guarded,
)
from tests import http_server
from tests.http_server import Site, refused_url

http_site = http_server.http_site  # the fixture, shared with other crawler tests

LOCAL = HostPolicy(allow_hosts=frozenset({"127.0.0.1"}))
METADATA_URL = "http://169.254.169.254/latest/meta-data/"


# --- helpers ----------------------------------------------------------------


@pytest.fixture(autouse=True)
def connect_tripwire(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Record every outgoing connect; fail on anything but 127.0.0.1."""
    seen: list[Any] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def check(address: Any) -> None:
        seen.append(address)
        host = address[0] if isinstance(address, tuple) else address
        if host != "127.0.0.1":
            raise AssertionError(f"test tried to connect to {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield seen


# No proxies from the environment: the guard would see the proxy, not the site.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Any:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    return _opener.open(req, timeout=10)


def blocked_cause(exc: BaseException) -> BlockedHostError:
    """The BlockedHostError behind a urllib error (reason, cause or context)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, BlockedHostError):
            return e
        reason = getattr(e, "reason", None)
        todo += [
            reason if isinstance(reason, BaseException) else None,
            e.__cause__,
            e.__context__,
        ]
    raise AssertionError(f"no BlockedHostError behind {exc!r}")


# --- address_allowed --------------------------------------------------------

BLOCKED = [
    "127.0.0.1",
    "127.1.2.3",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.1",
    "::1",
    "::",
    "fe80::1",
    "fe80::1%lo",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2001:db8::1",
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:93.184.216.34"]


@pytest.mark.parametrize("ip", BLOCKED)
def test_non_global_addresses_blocked_by_default(ip: str) -> None:
    assert not address_allowed(ip, HostPolicy())
    assert address_allowed(ip, HostPolicy(allow_private=True))


@pytest.mark.parametrize("ip", ALLOWED)
def test_public_addresses_allowed(ip: str) -> None:
    assert address_allowed(ip, HostPolicy())


def test_allow_hosts_ip_literal() -> None:
    assert address_allowed("127.0.0.1", LOCAL)
    assert address_allowed("::ffff:127.0.0.1", LOCAL)
    assert not address_allowed("127.0.0.2", LOCAL)
    assert not address_allowed("::1", LOCAL)
    assert not address_allowed("169.254.169.254", LOCAL)


def test_allow_hosts_cidr() -> None:
    policy = HostPolicy(allow_hosts=frozenset({"10.0.0.0/8", "fd00::/8", "[::1]"}))
    assert address_allowed("10.1.2.3", policy)
    assert address_allowed("10.255.0.1", policy)
    assert address_allowed("fd12::1", policy)
    assert address_allowed("::1", policy)
    assert not address_allowed("192.168.1.1", policy)
    assert not address_allowed("172.16.0.1", policy)
    assert not address_allowed("169.254.169.254", policy)


def test_allow_hosts_name() -> None:
    policy = HostPolicy(allow_hosts=frozenset({"Media.Internal."}))
    assert address_allowed("10.0.0.5", policy, host="media.internal")
    assert address_allowed("10.0.0.5", policy, host="MEDIA.internal.")
    assert not address_allowed("10.0.0.5", policy, host="other.internal")
    assert not address_allowed("10.0.0.5", policy)


def test_policy_validation_and_equality() -> None:
    with pytest.raises(ValueError, match="allow_hosts"):
        HostPolicy(allow_hosts=frozenset({"10.0.0.0/33"}))
    with pytest.raises(ValueError):
        address_allowed("not-an-ip", HostPolicy())
    assert HostPolicy(allow_hosts=frozenset({"a"})) == HostPolicy(allow_hosts=frozenset({"a"}))
    assert hash(LOCAL) == hash(HostPolicy(allow_hosts=frozenset({"127.0.0.1"})))


# --- check_url --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "ftp://example.com/a.mp3",
        "data:audio/wav;base64,UklGRg==",
        "gopher://example.com/",
        "javascript:alert(1)",
        "//example.com/a.mp3",
        "http:///no-host",
        "http://example.com:99999/",
    ],
)
def test_check_url_rejects_unsupported(url: str) -> None:
    with pytest.raises(UnsupportedUrlError):
        check_url(url, HostPolicy(allow_private=True))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "https://127.0.0.1:8443/x",
        "http://localhost:8080/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://10.0.0.1/",
        METADATA_URL,
        "http://user@169.254.169.254/",
        "http://2130706433/",  # decimal 127.0.0.1 (resolved numerically)
        "http://0x7f.1/",
    ],
)
def test_check_url_blocks_internal_hosts(url: str) -> None:
    with pytest.raises(BlockedHostError) as info:
        check_url(url, HostPolicy())
    message = str(info.value)
    assert "crawl.allow_private_networks" in message
    assert "crawl.allow_hosts" in message
    assert info.value.address


def test_check_url_allows() -> None:
    check_url("http://93.184.216.34/a.mp3", HostPolicy())  # IP literal: no DNS, no connect
    check_url("https://[2606:4700::1111]/", HostPolicy())
    check_url("http://127.0.0.1:1234/a.wav", LOCAL)
    check_url("http://localhost/", HostPolicy(allow_hosts=frozenset({"localhost"})))
    check_url(METADATA_URL, HostPolicy(allow_private=True))
    # check_url applies its own policy even inside a stricter guard
    with guarded(HostPolicy()):
        check_url("http://127.0.0.1/", LOCAL)


def test_blocked_error_names_host_and_address_and_pickles() -> None:
    with pytest.raises(BlockedHostError) as info:
        check_url(METADATA_URL, HostPolicy())
    err = info.value
    assert isinstance(err, OSError)
    assert err.host == "169.254.169.254"
    assert err.address == "169.254.169.254"
    assert "169.254.169.254" in str(err)
    assert "link-local" in str(err)
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == str(err)
    assert clone.address == err.address


# --- the guard --------------------------------------------------------------


def test_guard_blocks_urlopen_to_local_site(http_site: Site, connect_tripwire: list[Any]) -> None:
    http_site.add_file("a.wav", b"RIFF0000")
    with guarded(HostPolicy()), pytest.raises(urllib.error.URLError) as info:
        fetch(http_site.url("a.wav"))
    err = blocked_cause(info.value)
    assert err.address == "127.0.0.1"
    assert "loopback" in str(err)
    assert http_site.hits["/a.wav"] == 0
    assert connect_tripwire == []


def test_guard_allows_listed_host(http_site: Site) -> None:
    http_site.add_file("a.wav", b"RIFF0000")
    with guarded(LOCAL), fetch(http_site.url("a.wav")) as resp:
        assert resp.read() == b"RIFF0000"
    assert http_site.hits["/a.wav"] == 1


def test_guard_blocks_redirect_to_metadata(http_site: Site, connect_tripwire: list[Any]) -> None:
    http_site.add_redirect("/go", METADATA_URL)
    with guarded(LOCAL), pytest.raises(urllib.error.URLError) as info:
        fetch(http_site.url("go"))
    err = blocked_cause(info.value)
    assert err.address == "169.254.169.254"
    assert http_site.hits["/go"] == 1
    # only the allowed site was ever connected to
    assert connect_tripwire
    assert {addr[0] for addr in connect_tripwire} == {"127.0.0.1"}


def test_guard_blocks_redirect_to_other_loopback(
    http_site: Site, connect_tripwire: list[Any]
) -> None:
    # 127.0.0.1 is allowed, ::1 is not
    http_site.add_file("a.wav", b"x")
    http_site.add_redirect("/go", f"http://[::1]:{http_site.port}/a.wav", code=301)
    with guarded(LOCAL), pytest.raises(urllib.error.URLError) as info:
        fetch(http_site.url("go"))
    assert blocked_cause(info.value).address == "::1"
    assert http_site.hits == {"/go": 1}
    assert {addr[0] for addr in connect_tripwire} == {"127.0.0.1"}


def test_guard_raises_from_getaddrinfo_and_is_transparent_outside() -> None:
    assert socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
    with guarded(HostPolicy()):
        assert current_policy() == HostPolicy()
        with pytest.raises(BlockedHostError):
            socket.getaddrinfo("127.0.0.1", 80)
        with pytest.raises(BlockedHostError):
            socket.create_connection(("127.0.0.1", 9))
        assert socket.getaddrinfo("93.184.216.34", 80, 0, socket.SOCK_STREAM)
    assert current_policy() is None
    assert socket.getaddrinfo("127.0.0.1", 80)


def test_install_is_idempotent() -> None:
    with guarded(HostPolicy()):
        first = socket.getaddrinfo
    with guarded(LOCAL), guarded(HostPolicy()):
        assert socket.getaddrinfo is first
    assert socket.getaddrinfo is first


def test_guards_nest_and_restore() -> None:
    with guarded(HostPolicy()):
        with guarded(LOCAL):
            assert socket.getaddrinfo("127.0.0.1", 80)
            with guarded(HostPolicy()), pytest.raises(BlockedHostError):
                socket.getaddrinfo("127.0.0.1", 80)
            assert socket.getaddrinfo("127.0.0.1", 80)
        with pytest.raises(BlockedHostError):
            socket.getaddrinfo("127.0.0.1", 80)
        with pytest.raises(RuntimeError), guarded(LOCAL):
            raise RuntimeError("boom")
        assert current_policy() == HostPolicy()
    assert current_policy() is None
    with pytest.raises(TypeError), guarded(None):  # type: ignore[arg-type]
        pass


def test_guard_is_thread_local(http_site: Site) -> None:
    http_site.add_file("a.wav", b"data")
    results: dict[str, object] = {}

    def unguarded_worker() -> None:
        with fetch(http_site.url("a.wav")) as resp:
            results["unguarded"] = resp.read()

    def guarded_worker() -> None:
        try:
            with guarded(HostPolicy()):
                fetch(http_site.url("a.wav"))
        except urllib.error.URLError as e:
            results["guarded"] = blocked_cause(e)

    with guarded(HostPolicy()):
        t = threading.Thread(target=unguarded_worker)
        t.start()
        t.join(10)
        with pytest.raises(urllib.error.URLError):
            fetch(http_site.url("a.wav"))
    assert results["unguarded"] == b"data"

    t = threading.Thread(target=guarded_worker)
    t.start()
    t.join(10)
    assert isinstance(results["guarded"], BlockedHostError)
    with fetch(http_site.url("a.wav")) as resp:  # this thread is unguarded
        assert resp.read() == b"data"


def test_yt_dlp_request_handlers_go_through_the_guard(
    http_site: Site, connect_tripwire: list[Any]
) -> None:
    yt_dlp = pytest.importorskip("yt_dlp")
    from yt_dlp.networking.exceptions import TransportError

    http_site.add_file("a.mp3", b"ID3")
    http_site.add_redirect("/go", METADATA_URL)
    for compat in ([], ["prefer-legacy-http-handler"]):  # requests, then urllib
        params = {"quiet": True, "no_warnings": True, "proxy": "", "compat_opts": compat}
        with yt_dlp.YoutubeDL(params) as ydl:
            with guarded(HostPolicy()), pytest.raises(TransportError) as info:
                ydl.urlopen(http_site.url("a.mp3"))
            assert blocked_cause(info.value).address == "127.0.0.1"
            with guarded(LOCAL):
                assert ydl.urlopen(http_site.url("a.mp3")).read() == b"ID3"
                with pytest.raises(TransportError) as info:
                    ydl.urlopen(http_site.url("go"))
            assert blocked_cause(info.value).address == "169.254.169.254"
    assert {addr[0] for addr in connect_tripwire} == {"127.0.0.1"}


# --- the test server --------------------------------------------------------


def test_site_serves_files_with_types(http_site: Site) -> None:
    assert http_site.url("a.wav") == f"http://127.0.0.1:{http_site.port}/a.wav"
    assert http_site.url("/a.wav") == http_site.url("a.wav")
    kinds = {
        "a.wav": "audio/wav",
        "b.mp3": "audio/mpeg",
        "c.ogg": "audio/ogg",
        "d.opus": "audio/ogg",
        "e.m4a": "audio/mp4",
        "index.html": "text/html",
        "feed.xml": "application/rss+xml",
        "feed.rss": "application/rss+xml",
        "sub/dir/f.bin": "application/octet-stream",
    }
    for name in kinds:
        http_site.add_file(name, name.encode() * 3)
    for name, ctype in kinds.items():
        with fetch(http_site.url(name)) as resp:
            assert resp.headers["Content-Type"].startswith(ctype)
            assert resp.headers["Content-Length"] == str(3 * len(name))
            assert resp.headers["Accept-Ranges"] == "bytes"
            assert resp.read() == name.encode() * 3
    with fetch(http_site.url("/")) as resp:  # directory index
        assert resp.read() == b"index.html" * 3
    assert (http_site.root / "a.wav").is_file()


def test_site_head(http_site: Site) -> None:
    http_site.add_file("a.mp3", b"x" * 100)
    with fetch(http_site.url("a.mp3"), method="HEAD") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == "100"
        assert resp.read() == b""
    assert http_site.requests[-1].method == "HEAD"


def test_site_range(http_site: Site) -> None:
    data = bytes(range(256)) * 4
    http_site.add_file("a.wav", data)
    with fetch(http_site.url("a.wav"), {"Range": "bytes=10-19"}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        assert resp.headers["Content-Length"] == "10"
        assert resp.read() == data[10:20]
    with fetch(http_site.url("a.wav"), {"Range": "bytes=1000-"}) as resp:
        assert resp.status == 206
        assert resp.read() == data[1000:]
    with fetch(http_site.url("a.wav"), {"Range": "bytes=-5"}) as resp:
        assert resp.read() == data[-5:]
    with fetch(http_site.url("a.wav"), {"Range": "bytes=0-99999"}) as resp:
        assert resp.status == 206
        assert resp.read() == data
    with pytest.raises(urllib.error.HTTPError) as info:
        fetch(http_site.url("a.wav"), {"Range": f"bytes={len(data)}-"})
    assert info.value.code == 416
    assert info.value.headers["Content-Range"] == f"bytes */{len(data)}"
    with fetch(http_site.url("a.wav"), {"Range": "bytes=9-3"}) as resp:
        assert resp.status == 200  # invalid range: ignored
        assert resp.read() == data
    with fetch(http_site.url("a.wav"), {"Range": "bytes=0-1,5-6"}) as resp:
        assert resp.status == 200  # multiple ranges: whole entity
        assert resp.read() == data


def test_site_conditional_get(http_site: Site) -> None:
    http_site.add_file("a.wav", b"abc")
    with fetch(http_site.url("a.wav")) as resp:
        etag = resp.headers["ETag"]
        last_modified = resp.headers["Last-Modified"]
    assert etag
    assert last_modified
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", {etag}'},
        {"If-Modified-Since": last_modified},
    ):
        with pytest.raises(urllib.error.HTTPError) as info:
            fetch(http_site.url("a.wav"), headers)
        assert info.value.code == 304
        assert info.value.read() == b""
    with fetch(http_site.url("a.wav"), {"If-None-Match": '"stale"'}) as resp:
        assert resp.status == 200
    past = email.utils.formatdate(time.time() - 86400 * 365, usegmt=True)
    with fetch(http_site.url("a.wav"), {"If-Modified-Since": past}) as resp:
        assert resp.status == 200
    assert http_site.hits["/a.wav"] == 6


def test_site_status_routes_and_redirects(http_site: Site) -> None:
    http_site.add_file("real.mp3", b"mp3")
    http_site.add_status("/gone", 410)
    http_site.add_status("/boom", 500)
    http_site.add_redirect("/old", "/real.mp3")
    http_site.add_redirect("/moved", http_site.url("real.mp3"), code=301)
    for path, code in (("/missing.wav", 404), ("/gone", 410), ("/boom", 500)):
        with pytest.raises(urllib.error.HTTPError) as info:
            fetch(http_site.url(path))
        assert info.value.code == code
    with fetch(http_site.url("old?x=1")) as resp:
        assert resp.read() == b"mp3"
    with fetch(http_site.url("moved")) as resp:
        assert resp.url == http_site.url("real.mp3")
    assert http_site.hits == {
        "/missing.wav": 1,
        "/gone": 1,
        "/boom": 1,
        "/old": 1,
        "/moved": 1,
        "/real.mp3": 2,
    }
    assert http_site.requests[3].target == "/old?x=1"


def test_site_custom_route(http_site: Site) -> None:
    def hello(h: Any) -> None:
        h.send_simple(200, b"hi " + h.headers.get("X-Name", "").encode(), "text/plain")

    http_site.route("/hello", hello)
    with fetch(http_site.url("hello"), {"X-Name": "bob"}) as resp:
        assert resp.read() == b"hi bob"


def test_site_rejects_path_traversal(http_site: Site, tmp_path: Any) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    conn = http.client.HTTPConnection("127.0.0.1", http_site.port, timeout=10)
    try:
        for target in ("/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt"):
            conn.request("GET", target)
            resp = conn.getresponse()
            assert resp.status == 404
            assert b"secret" not in resp.read()
    finally:
        conn.close()


def test_site_bytes_plain_and_chunked(http_site: Site) -> None:
    data = bytes(range(256)) * 50
    http_site.add_bytes("/plain", data, "audio/mpeg")
    http_site.add_bytes("/chunked", data, "audio/ogg", chunked=True)
    with fetch(http_site.url("plain"), {"Range": "bytes=0-3"}) as resp:
        assert resp.status == 206
        assert resp.read() == data[:4]
    with fetch(http_site.url("chunked")) as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.headers["Content-Length"] is None
        assert resp.headers["Content-Type"] == "audio/ogg"
        assert resp.read() == data


def test_site_chunked_endless(http_site: Site) -> None:
    http_site.add_chunked_endless("/live.mp3")
    with fetch(http_site.url("live.mp3")) as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.headers["Content-Length"] is None
        assert resp.headers["Content-Type"] == "audio/mpeg"
        got = resp.read(20_000)
        assert len(got) == 20_000
    assert http_site.hits["/live.mp3"] == 1
    assert http_site.errors == []


def test_site_close_cuts_idle_endless_stream(tmp_path: Any) -> None:
    site = Site(tmp_path / "s")
    site.add_chunked_endless("/live")
    resp = fetch(site.url("live"))  # never read, never closed before teardown
    try:
        start = time.monotonic()
        site.close()
        assert time.monotonic() - start < 3
    finally:
        resp.close()
    with pytest.raises(urllib.error.URLError):
        fetch(site.url("live"))


def test_site_slow(http_site: Site) -> None:
    data = b"s" * 4000
    http_site.add_slow("/slow.wav", bytes_per_s=20_000, data=data, content_type="audio/wav")
    start = time.monotonic()
    with fetch(http_site.url("slow.wav")) as resp:
        assert resp.headers["Content-Length"] == "4000"
        assert resp.read() == data
    assert time.monotonic() - start >= 0.15
    http_site.add_file("f.mp3", b"m" * 100)
    http_site.add_slow("/f.mp3", bytes_per_s=10_000)
    with fetch(http_site.url("f.mp3")) as resp:
        assert resp.headers["Content-Type"] == "audio/mpeg"
        assert resp.read() == b"m" * 100


def test_refused_url() -> None:
    url = refused_url()
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(urllib.error.URLError) as info:
        fetch(url)
    assert isinstance(info.value.reason, ConnectionRefusedError)


def test_site_spells_header_names_as_asked(http_site: Site) -> None:
    http_site.add_file("p.html", "<p>x</p>")
    http_site.spell_headers("CONTENT-TYPE", "etag")
    with fetch(http_site.url("p.html")) as resp:
        raw = [k for k, _ in resp.headers.items()]
    assert "CONTENT-TYPE" in raw and "etag" in raw and "Content-Type" not in raw


def test_http_get_headers_are_case_insensitive(http_site: Site) -> None:
    from speechmill.backends import http

    http_site.add_file("p.html", "<p>x</p>")
    http_site.spell_headers("CONTENT-TYPE", "etag", "last-MODIFIED")
    res = http.get(http_site.url("p.html"), LOCAL)
    assert res.headers["Content-Type"].startswith("text/html")
    assert res.headers.get("content-type") == res.headers["CONTENT-TYPE"]
    etag = res.headers["ETag"]
    again = http.get(http_site.url("p.html"), LOCAL, etag=etag)
    assert again.not_modified and again.headers["ETag"] == etag
    assert "Last-Modified" in again.headers


def test_http_get_truncates_on_request(http_site: Site) -> None:
    from speechmill.backends import http

    http_site.add_file("big.txt", "x" * 5000)
    with pytest.raises(http.TooLarge):
        http.get(http_site.url("big.txt"), LOCAL, max_bytes=1000)
    assert http.get(http_site.url("big.txt"), LOCAL, max_bytes=1000, truncate=True).body == (
        b"x" * 1000
    )
