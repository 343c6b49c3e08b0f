"""Host scope guard: keep crawl workers away from internal addresses.

A crawled page can name any URL, and a redirect can point anywhere. A crawl
worker in a cloud VPC must not be steerable to internal services (the
169.254.169.254 metadata endpoint, a database on 10.x, a sidecar on
localhost). By default the guard refuses private, loopback, link-local,
multicast, reserved, unspecified, carrier-grade-NAT (100.64.0.0/10) and other
non-global addresses, for IPv4 and IPv6, including IPv6 forms that embed an
IPv4 address (IPv4-mapped ``::ffff:127.0.0.1``, NAT64 ``64:ff9b::/96``, 6to4,
Teredo). ``crawl.allow_private_networks`` lifts the default;
``crawl.allow_hosts`` lists host names, IP literals or CIDR networks to allow.

How it works: yt-dlp (both its ``requests`` and ``urllib`` handlers, and its
websocket handler), urllib3, ``http.client`` and ``socket.create_connection``
all look the host up through ``socket.getaddrinfo`` right before they
connect, and every redirect hop opens a new connection. :func:`guarded`
wraps ``socket.getaddrinfo`` once per process and, only while a guard is
active on the *current thread*, checks every address the lookup returns:
if any of them is not allowed, the lookup raises :class:`BlockedHostError`
(an ``OSError``, so HTTP clients report it as a connection error). Outside a
guard the wrapper is transparent. Because the check runs on the very list
handed to the connecting code, the connection goes to an address that was
checked: a DNS answer that changes between a pre-flight :func:`check_url`
and the connect (rebinding) is checked again at connect time.

Limits (what the guard does not cover):

* Proxies. With an HTTP(S) proxy, or a SOCKS proxy doing remote DNS, the
  destination is resolved by the proxy; the guard only sees the proxy's own
  address (and refuses it if it is private, unless allowed). urllib and
  requests honour ``HTTP(S)_PROXY`` from the environment.
* Code that does not resolve through ``socket.getaddrinfo`` in this thread:
  curl_cffi / libcurl (yt-dlp's impersonation handler; the crawler must not
  enable ``impersonate``), external downloaders and subprocesses (ffmpeg,
  aria2c), C extensions with their own resolver, raw ``sock.connect((ip,
  port))`` calls, and modules that did ``from socket import getaddrinfo``
  before the wrapper was installed.
* Other threads. Activation is thread-local: work handed to another thread
  is unguarded unless that thread enters ``guarded(policy)`` itself (see
  :func:`current_policy`); the fetch stage's download pool
  (``speechmill.transforms.fetch``) does so in every thread, around each
  download. yt-dlp downloads HLS/DASH fragments in a thread
  pool when ``concurrent_fragment_downloads`` > 1, and asyncio's
  ``loop.getaddrinfo`` resolves in an executor thread; keep
  ``concurrent_fragment_downloads`` at 1 inside a guard.
* DNS itself. The lookup runs before the check, so a crawled page can still
  make the worker send DNS queries for names of its choosing; only the
  connection is refused.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "BlockedHostError",
    "HostPolicy",
    "UnsupportedUrlError",
    "address_allowed",
    "check_url",
    "current_policy",
    "guarded",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")

_ALLOW_HINT = (
    "set crawl.allow_private_networks: true, or add the host, address or network "
    "to crawl.allow_hosts, to allow it"
)


class BlockedHostError(OSError):
    """A connection to a host outside the crawl scope was refused.

    Raised from ``socket.getaddrinfo`` inside :func:`guarded`, so HTTP clients
    surface it as the cause of their connection error.
    """

    def __init__(self, message: str, *, host: str = "", address: str = "") -> None:
        super().__init__(message)
        self.host = host
        self.address = address


class UnsupportedUrlError(ValueError):
    """The URL's scheme is not http or https, or it has no usable host."""


def _normalize_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def _parse_ip(ip: str) -> IPAddress:
    # getaddrinfo returns link-local IPv6 addresses with a "%scope" suffix.
    return ipaddress.ip_address(ip.split("%", 1)[0])


@dataclass(frozen=True)
class HostPolicy:
    """Which destinations a guarded thread may connect to.

    ``allow_hosts`` entries are host names (matched exactly, case-insensitive,
    against the name being looked up), IP literals, or CIDR networks
    (``"127.0.0.1"``, ``"10.0.0.0/8"``, ``"media.internal"``). An allowed host
    name allows whatever it resolves to.
    """

    allow_private: bool = False
    allow_hosts: frozenset[str] = frozenset()
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entries = frozenset(self.allow_hosts)
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = _normalize_host(str(raw))
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if "/" in entry or "%" in entry:
                    raise ValueError(
                        f"crawl.allow_hosts: {raw!r} is neither a host name, an IP address "
                        "nor a CIDR network"
                    ) from None
                names.add(entry)
        object.__setattr__(self, "allow_hosts", entries)
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_networks", tuple(networks))


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    return None


def _block_reason(addr: IPAddress) -> str | None:
    """Why ``addr`` is outside the default scope, or None if it is public."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr in _NAT64_LOCAL:
            return "NAT64 local-use"
        inner = _embedded_ipv4(addr)
        if inner is not None:
            reason = _block_reason(inner)
            if reason is not None:
                return f"{reason} (IPv4 {inner} embedded in IPv6)"
            if addr.ipv4_mapped is not None or addr in _NAT64:
                return None  # a plain translation of a public IPv4 address
        if addr.is_site_local:
            return "site-local"
    checks: tuple[tuple[bool, str], ...] = (
        (addr.is_unspecified, "unspecified"),
        (addr.is_loopback, "loopback"),
        (addr.is_link_local, "link-local"),
        (addr.is_multicast, "multicast"),
        (isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT, "carrier-grade NAT"),
        (addr.is_private, "private"),
        (addr.is_reserved, "reserved"),
        (not addr.is_global, "non-global"),
    )
    for hit, reason in checks:
        if hit:
            return reason
    return None


def _allowed_by_policy(addr: IPAddress, policy: HostPolicy, host: str | None) -> bool:
    if policy.allow_private:
        return True
    if host is not None and _normalize_host(host) in policy._names:
        return True
    candidates: list[IPAddress] = [addr]
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        candidates.append(addr.ipv4_mapped)
    return any(c in net for c in candidates for net in policy._networks if c.version == net.version)


def address_allowed(ip: str, policy: HostPolicy, host: str | None = None) -> bool:
    """True if ``policy`` lets a guarded thread connect to ``ip``.

    ``host`` is the name that resolved to ``ip`` (matched against host-name
    entries of ``allow_hosts``). Raises ``ValueError`` if ``ip`` is not an IP
    address.
    """
    addr = _parse_ip(ip)
    return _allowed_by_policy(addr, policy, host) or _block_reason(addr) is None


def _check_address(ip: str, policy: HostPolicy, host: str) -> None:
    try:
        addr = _parse_ip(ip)
    except ValueError:
        raise BlockedHostError(
            f"refused to connect to {host!r}: unrecognised address {ip!r}",
            host=host,
            address=ip,
        ) from None
    if _allowed_by_policy(addr, policy, host):
        return
    reason = _block_reason(addr)
    if reason is None:
        return
    shown = host if host == ip else f"{host!r} ({ip})"
    raise BlockedHostError(
        f"refused to connect to {shown}: {reason} address outside the crawl scope; {_ALLOW_HINT}",
        host=host,
        address=ip,
    )


def _check_results(host: object, results: Iterable[tuple[Any, ...]], policy: HostPolicy) -> None:
    if isinstance(host, bytes | bytearray):
        name = bytes(host).decode("ascii", "replace")
    else:
        name = "" if host is None else str(host)
    for family, _type, _proto, _canon, sockaddr in results:
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise BlockedHostError(
                f"refused to connect to {name!r}: unexpected address family {family!r}",
                host=name,
            )
        _check_address(str(sockaddr[0]), policy, name)


# --- the getaddrinfo wrapper ------------------------------------------------


class _GuardState(threading.local):
    def __init__(self) -> None:
        self.stack: list[HostPolicy] = []


_state = _GuardState()
_install_lock = threading.Lock()
_GUARD_MARK = "_speechmill_host_guard"


def current_policy() -> HostPolicy | None:
    """The policy active on this thread (innermost :func:`guarded`), or None.

    Use it to carry a guard into a worker thread:
    ``policy = current_policy()`` here, ``with guarded(policy): ...`` there.
    """
    stack = _state.stack
    return stack[-1] if stack else None


def _make_wrapper(inner: Callable[..., Any]) -> Callable[..., Any]:
    # Same signature as socket.getaddrinfo (callers pass these positionally).
    def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        results = inner(host, port, family, type, proto, flags)
        policy = current_policy()
        if policy is not None:
            _check_results(host, results, policy)
        return results

    getaddrinfo.__doc__ = inner.__doc__
    getaddrinfo.__wrapped__ = inner  # type: ignore[attr-defined]
    setattr(getaddrinfo, _GUARD_MARK, True)
    return getaddrinfo


def _install() -> None:
    """Wrap ``socket.getaddrinfo`` unless the current one is already ours."""
    with _install_lock:
        current = socket.getaddrinfo
        if getattr(current, _GUARD_MARK, False):
            return
        socket.getaddrinfo = _make_wrapper(current)


def _resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    fn: Callable[..., list[tuple[Any, ...]]] = socket.getaddrinfo
    while getattr(fn, _GUARD_MARK, False):  # check_url applies its own policy
        fn = fn.__wrapped__  # type: ignore[attr-defined]
    return fn(host, port, 0, socket.SOCK_STREAM)


def check_url(url: str, policy: HostPolicy) -> None:
    """Pre-flight check of one URL: scheme http/https and an allowed host.

    Resolves the host now; raises :class:`UnsupportedUrlError` for other
    schemes (file:, ftp:, data:, ...) or a missing host,
    :class:`BlockedHostError` if any address is outside the scope, and
    ``socket.gaierror`` if the host does not resolve. This alone does not
    protect the later connection (DNS can change); run that inside
    :func:`guarded`.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise UnsupportedUrlError(f"invalid URL {url!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"{scheme}:" if scheme else "no scheme"
        raise UnsupportedUrlError(
            f"unsupported URL scheme ({shown}) in {url!r}; only http and https are crawled"
        )
    host = parts.hostname
    if not host:
        raise UnsupportedUrlError(f"URL {url!r} has no host")
    results = _resolve(host, port or _DEFAULT_PORTS[scheme])
    _check_results(host, results, policy)


@contextlib.contextmanager
def guarded(policy: HostPolicy) -> Iterator[None]:
    """Refuse out-of-scope connections made by this thread inside the block.

    Installs the ``socket.getaddrinfo`` wrapper if needed. Guards nest: the
    innermost policy applies, and leaving a block restores the outer one.
    """
    if not isinstance(policy, HostPolicy):
        raise TypeError(f"guarded() needs a HostPolicy, got {type(policy).__name__}")
    _install()
    stack = _state.stack
    depth = len(stack)
    stack.append(policy)
    try:
        yield
    finally:
        del stack[depth:]
