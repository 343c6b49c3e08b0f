"""A local HTTP server for offline crawler tests (127.0.0.1 only).

Use the ``http_site`` fixture (import it into the test module, or list this
module in ``pytest_plugins``), or ``with Site(root) as site:`` directly::

    def test_fetch(http_site):
        http_site.add_file("a.wav", wav_bytes)
        http_site.add_redirect("/old", "/a.wav")
        http_site.add_status("/gone", 410)
        url = http_site.url("/old")
        ...
        assert http_site.hits["/a.wav"] == 1

Files under ``site.root`` are served for GET and HEAD with Content-Type by
extension, Content-Length, single-range ``Range`` requests (206 / 416),
``ETag`` and ``Last-Modified`` with conditional GET (304). Routes registered
on the site take precedence over files. ``site.hits`` counts requests per URL
path (query string dropped, 304s included); ``site.requests`` logs each with
its arrival time (``time.monotonic()``), ``site.spans`` each answered request's
(path, arrival, end), and ``site.max_in_flight`` is the most requests the site
was answering at once. ``site.spell_headers("Content-type",
"etag")`` sends those response header names with that exact casing (servers
differ: Python's ``http.server`` sends ``Content-type``). The server speaks
HTTP/1.1 (keep-alive, chunked encoding) and closes every connection, including
endless and stalled streams, on teardown.
"""

from __future__ import annotations

import collections
import contextlib
import email.utils
import hashlib
import http.server
import mimetypes
import posixpath
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

__all__ = ["Handler", "RequestRecord", "Site", "http_site", "refused_url"]

CONTENT_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
    ".flac": "audio/flac",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".xml": "application/rss+xml",
    ".rss": "application/rss+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".vtt": "text/vtt",
    ".m3u8": "application/vnd.apple.mpegurl",
}
_BLOCK = 64 * 1024
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


def content_type_for(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(str(path))
    return guessed or "application/octet-stream"


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # URL path without the query string
    target: str  # the raw request target, query included
    headers: dict[str, str]
    at: float = 0.0  # time.monotonic() when the request arrived


class _Unsatisfiable(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    """Request handler; route functions receive it and write the response."""

    protocol_version = "HTTP/1.1"
    server_version = "speechmill-test"
    sys_version = ""
    timeout = 30  # idle keep-alive connections give up eventually
    site: Site  # set on the per-site subclass

    # --- plumbing ---------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.site._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.site._track(self.connection, add=False)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def send_header(self, keyword: str, value: str) -> None:
        super().send_header(self.site._header_case.get(keyword.lower(), keyword), value)

    @property
    def url_path(self) -> str:
        return urlsplit(self.path).path or "/"

    @property
    def stopping(self) -> bool:
        return self.site._stop.is_set()

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path = self.url_path
        record = RequestRecord(
            self.command, path, self.path, {k: v for k, v in self.headers.items()}, time.monotonic()
        )
        self.site._record(record)
        route = self.site._routes.get(path)
        try:
            if route is not None:
                route(self)
            else:
                self._serve_file(path)
        except _DISCONNECTS:
            self.close_connection = True
        finally:
            self.site._done(record)

    # --- response helpers (usable from route functions) -------------------

    def send_simple(
        self,
        code: int,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """A complete response with Content-Length (no body for HEAD/304)."""
        self.send_response(code)
        for key, value in headers:
            self.send_header(key, value)
        if code != 304:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code != 304 and body:
            self.wfile.write(body)

    def client_gone(self) -> bool:
        """True once the client has closed its end (a read would return EOF)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def write_chunk(self, data: bytes) -> None:
        """One chunk of a ``Transfer-Encoding: chunked`` body (b"" ends it)."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def send_entity(
        self,
        data: bytes,
        content_type: str,
        etag: str | None = None,
        last_modified: float | None = None,
    ) -> None:
        """``data`` with ETag/Last-Modified, conditional GET and Range."""
        validators: list[tuple[str, str]] = [("Accept-Ranges", "bytes")]
        if etag is not None:
            validators.append(("ETag", etag))
        if last_modified is not None:
            validators.append(("Last-Modified", email.utils.formatdate(last_modified, usegmt=True)))
        if self._not_modified(etag, last_modified):
            self.send_simple(304, headers=validators)
            return
        size = len(data)
        try:
            byte_range = self._byte_range(size, etag, last_modified)
        except _Unsatisfiable:
            self.send_simple(
                416,
                b"range not satisfiable\n",
                headers=[("Content-Range", f"bytes */{size}")],
            )
            return
        if byte_range is None:
            self.send_simple(200, data, content_type, validators)
        else:
            start, end = byte_range
            self.send_simple(
                206,
                data[start : end + 1],
                content_type,
                [*validators, ("Content-Range", f"bytes {start}-{end}/{size}")],
            )

    # --- files ------------------------------------------------------------

    def _serve_file(self, url_path: str) -> None:
        file = self.site._file_for(url_path)
        if file is None:
            self.send_simple(404, b"not found\n")
            return
        stat = file.stat()
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        self.send_entity(file.read_bytes(), content_type_for(file), etag, stat.st_mtime)

    def _not_modified(self, etag: str | None, last_modified: float | None) -> bool:
        if self.command not in ("GET", "HEAD"):
            return False
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            if etag is None:
                return False
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            return "*" in tags or etag.removeprefix("W/") in tags
        ims = self.headers.get("If-Modified-Since")
        if ims is not None and last_modified is not None:
            try:
                since = email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                return False
            return int(last_modified) <= since
        return False

    def _byte_range(
        self, size: int, etag: str | None, last_modified: float | None
    ) -> tuple[int, int] | None:
        """The single byte range asked for; None for the whole entity."""
        header = self.headers.get("Range")
        if header is None or not header.strip().lower().startswith("bytes="):
            return None
        if_range = self.headers.get("If-Range")
        if if_range is not None:
            current = {etag} if etag else set()
            if last_modified is not None:
                current.add(email.utils.formatdate(last_modified, usegmt=True))
            if if_range.strip() not in current:
                return None
        spec = header.strip()[len("bytes=") :].strip()
        if "," in spec or "-" not in spec:
            return None  # multiple or malformed ranges: serve the whole entity
        first, last = (part.strip() for part in spec.split("-", 1))
        try:
            if not first:  # suffix range: the last N bytes
                count = int(last)
                if count <= 0:
                    raise _Unsatisfiable
                return max(0, size - count), size - 1
            start = int(first)
            end = int(last) if last else size - 1
        except ValueError:
            return None
        if end < start and last:
            return None  # invalid range-spec: ignore the header
        if start >= size:
            raise _Unsatisfiable
        return start, min(end, size - 1)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    errors: list[str]

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, _DISCONNECTS):
            return
        self.errors.append(f"{type(exc).__name__}: {exc}")


RouteFn = Callable[[Handler], None]


class Site:
    """A threaded HTTP server on 127.0.0.1:<ephemeral port> serving ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits: collections.Counter[str] = collections.Counter()
        self.requests: list[RequestRecord] = []
        self.max_in_flight = 0
        self.spans: list[tuple[str, float, float]] = []  # (path, arrived, answered)
        self._in_flight = 0
        self._routes: dict[str, RouteFn] = {}
        self._header_case: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connections: set[socket.socket] = set()
        handler = type("SiteHandler", (Handler,), {"site": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.errors = []
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"http-site-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    # --- addresses --------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    @property
    def errors(self) -> list[str]:
        """Unexpected server-side exceptions (client disconnects excluded)."""
        return self._server.errors

    # --- content ----------------------------------------------------------

    def add_file(self, path: str, data: bytes | str) -> Path:
        """Write ``data`` to ``root/path`` (served as a file); returns the file."""
        file = self.root / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            file.write_text(data, encoding="utf-8")
        else:
            file.write_bytes(data)
        return file

    def spell_headers(self, *names: str) -> None:
        """Send these response header names spelled exactly so (``"Content-type"``)."""
        self._header_case.update({n.lower(): n for n in names})

    def route(self, path: str, handler_fn: RouteFn) -> None:
        """Serve ``path`` (GET and HEAD) by calling ``handler_fn(handler)``."""
        self._routes[_norm(path)] = handler_fn

    def add_redirect(self, path: str, location: str, code: int = 302) -> None:
        def redirect(h: Handler) -> None:
            h.send_simple(code, b"", headers=[("Location", location)])

        self.route(path, redirect)

    def add_status(self, path: str, code: int, body: bytes | None = None) -> None:
        text = body if body is not None else f"{code} {_reason(code)}\n".encode()

        def status(h: Handler) -> None:
            h.send_simple(code, text)

        self.route(path, status)

    def add_bytes(
        self,
        path: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        chunked: bool = False,
    ) -> None:
        """Fixed bytes; with ``chunked`` sent as chunks without Content-Length."""
        etag = f'"{hashlib.sha1(data).hexdigest()[:16]}"'

        def serve(h: Handler) -> None:
            if not chunked:
                h.send_entity(data, content_type, etag)
                return
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            if h.command == "HEAD":
                return
            for i in range(0, len(data), 4096):
                h.write_chunk(data[i : i + 4096])
            h.write_chunk(b"")

        self.route(path, serve)

    def add_chunked_endless(
        self,
        path: str,
        content_type: str = "audio/mpeg",
        chunk: bytes = b"\xff\xfb\x90\x00" + bytes(4092),
    ) -> None:
        """A chunked stream that never ends until the client (or teardown) closes."""

        def endless(h: Handler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            if h.command == "HEAD":
                return
            h.wfile.flush()
            while not h.stopping:
                h.write_chunk(chunk)
            h.close_connection = True

        self.route(path, endless)

    def add_slow(
        self,
        path: str,
        bytes_per_s: int,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> None:
        """Serve ``data`` (default: the file at ``root/path``) at ``bytes_per_s``."""
        if bytes_per_s <= 0:
            raise ValueError("bytes_per_s must be positive")
        step = max(1, bytes_per_s // 20)
        interval = step / bytes_per_s

        def slow(h: Handler) -> None:
            body = data
            ctype = content_type
            if body is None:
                file = self._file_for(_norm(path))
                if file is None:
                    h.send_simple(404, b"not found\n")
                    return
                body = file.read_bytes()
                ctype = ctype or content_type_for(file)
            h.send_response(200)
            h.send_header("Content-Type", ctype or "application/octet-stream")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if h.command == "HEAD":
                return
            h.wfile.flush()
            for i in range(0, len(body), step):
                if self._stop.wait(interval):
                    h.close_connection = True
                    return
                h.wfile.write(body[i : i + step])
                h.wfile.flush()

        self.route(path, slow)

    def add_stall(
        self,
        path: str,
        head: bytes = b"\xff\xfb\x90\x00" * 64,
        content_type: str = "audio/mpeg",
        length: int = 1_000_000,
    ) -> None:
        """Answer at once with headers and ``head``, then send nothing more.

        Discovery (which reads headers) sees a normal media file; a download stalls
        until the client gives up (its socket timeout or deadline) or teardown.
        """

        def stall(h: Handler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(length))
            h.end_headers()
            if h.command == "HEAD":
                return
            h.wfile.write(head)
            h.wfile.flush()
            while not self._stop.wait(0.05) and not h.client_gone():
                pass
            h.close_connection = True

        self.route(path, stall)

    def first_requests(self, paths: Iterable[str]) -> list[float]:
        """Arrival times of the first request for each of ``paths`` (sorted)."""
        wanted = set(paths)
        with self._lock:
            firsts: dict[str, float] = {}
            for r in self.requests:
                if r.path in wanted:
                    firsts.setdefault(r.path, r.at)
        return sorted(firsts.values())

    # --- lifecycle --------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, cut every open connection and close the socket."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._connections:
                    break
            time.sleep(0.01)

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals --------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.hits[record.path] += 1
            self.requests.append(record)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _done(self, record: RequestRecord) -> None:
        now = time.monotonic()
        with self._lock:
            self._in_flight -= 1
            self.spans.append((record.path, record.at, now))

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _file_for(self, url_path: str) -> Path | None:
        rel = posixpath.normpath(unquote(url_path)).lstrip("/")
        if rel.startswith("..") or "\x00" in rel:
            return None
        root = self.root.resolve()
        file = (root / rel).resolve()
        if file != root and root not in file.parents:
            return None
        if file.is_dir():
            file = file / "index.html"
        return file if file.is_file() else None


def _norm(path: str) -> str:
    return "/" + urlsplit(path).path.lstrip("/")


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Status"


def refused_url() -> str:
    """An http://127.0.0.1:<port>/x URL where (almost surely) nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/x"


@pytest.fixture
def http_site(tmp_path: Path) -> Iterator[Site]:
    """A started :class:`Site` serving ``tmp_path / "site"``; closed on teardown."""
    with Site(tmp_path / "site") as site:
        yield site
