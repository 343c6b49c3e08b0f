"""Every byte the store reads or writes: local paths through the OS, URLs through fsspec.

One layer for tables, markers, media, span reads of FLAC, the lock, the ledger,
exports and reports. Local roots use the OS (`os.replace` makes a write atomic);
`s3://` (s3fs), `gs://` (gcsfs) and any other fsspec protocol go through fsspec,
where an object is written by one PUT (or one multipart upload, completed
atomically), so readers never see half a file. Why fsspec rather than Beam's
`FileSystems`: ranged reads with a block cache (a span of a FLAC costs the bytes
of that span, not the file), conditional creates (`If-None-Match: *`, the lock),
and the same filesystem object registered in DuckDB for queries (docs/store.md).

Storage options (endpoint, region, profile, anonymous access) are per dataset root:
`Store(root, options)` registers them with `configure`, and every path under that
root is opened with them, on the driver and on workers alike. Keys never pass
through here: they come from the environment or the cloud's credential chain.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from speechmill.core.osutil import default_file_mode
from speechmill.errors import StoreError
from speechmill.faults import fault_point

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_EXTRAS = {"s3": "aws", "gs": "gcp", "gcs": "gcp"}

_lock = threading.Lock()
_OPTIONS: dict[str, dict[str, Any]] = {}  # root URL -> fsspec storage options


def is_remote(path: str) -> bool:
    return bool(_SCHEME.match(path))


def shown(path: object) -> str:
    """A path as speechmill prints it: relative to the working directory when inside it
    (`--root ./data` shows `data`), a URL or any other path as it is."""
    text = str(path)
    if is_remote(text):
        return text
    try:
        return str(Path(text).resolve().relative_to(Path.cwd()))
    except ValueError:
        return text


def configure(root: str, storage_options: Mapping[str, Any]) -> None:
    """Open every path under `root` with these fsspec storage options."""
    if is_remote(root):
        with _lock:
            _OPTIONS[root.rstrip("/")] = dict(storage_options)


def storage_options(
    root: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    anonymous: bool = False,
) -> dict[str, Any]:
    """fsspec storage options for a root's protocol from the config's `store.options`."""
    m = _SCHEME.match(root)
    protocol = m.group(1) if m else ""
    out: dict[str, Any] = {}
    if protocol == "s3":
        if endpoint_url:
            out["endpoint_url"] = endpoint_url
        if region:
            out["client_kwargs"] = {"region_name": region}
        if profile:
            out["profile"] = profile
        if anonymous:
            out["anon"] = True
    elif protocol in ("gs", "gcs"):
        if endpoint_url:
            out["endpoint_url"] = endpoint_url
        if anonymous:
            out["token"] = "anon"  # noqa: S105 - gcsfs' name for no credentials
    return out


def filesystem(path: str) -> tuple[Any, str]:
    """(fsspec filesystem, path without protocol) for a remote path."""
    import fsspec

    m = _SCHEME.match(path)
    if m is None:
        raise ValueError(f"not a URL: {path}")
    protocol = m.group(1)
    with _lock:
        roots = [r for r in _OPTIONS if path == r or path.startswith(r + "/")]
        options = _OPTIONS[max(roots, key=len)] if roots else {}
    try:
        fs = fsspec.filesystem(protocol, **options)  # instances are cached by fsspec
    except ImportError as e:
        extra = _EXTRAS.get(protocol)
        hint = f"pip install 'speechmill[{extra}]'" if extra else "install its fsspec package"
        raise StoreError(f"{protocol}:// roots need a filesystem package: {hint} ({e})") from e
    return fs, fs._strip_protocol(path)


def _url(fs: Any, path: str) -> str:
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple | list) else fs.protocol
    return f"{protocol}://{path}"


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def absolute(path: str) -> str:
    return path.rstrip("/") if is_remote(path) else os.path.abspath(os.path.expanduser(path))


def exists(path: str) -> bool:
    if is_remote(path):
        fs, p = filesystem(path)
        return bool(fs.exists(p))
    return os.path.exists(path)


def makedirs(path: str) -> None:
    if not is_remote(path):  # object stores have no directories
        os.makedirs(path, exist_ok=True)


@contextlib.contextmanager
def open_read(path: str) -> Iterator[IO[bytes]]:
    """A seekable binary file; remote files fetch only the ranges read (block cache)."""
    if is_remote(path):
        fs, p = filesystem(path)
        with fs.open(p, "rb", block_size=1 << 20, cache_type="readahead") as f:
            yield f
    else:
        with open(path, "rb") as f:
            yield f


def read_bytes(path: str) -> bytes:
    if is_remote(path):
        fs, p = filesystem(path)
        return bytes(fs.cat_file(p))
    with open(path, "rb") as f:
        return f.read()


_FILE_MODE = default_file_mode()
"""What `open(path, "w")` would give: files written atomically are not left 0600."""


def write_bytes_atomic(path: str, data: bytes, *, fault: str | None = None) -> None:
    """Write a whole file so readers see either nothing or all of it.

    `fault` names a fault point (speechmill.faults) reached after half of the data
    is in the temporary file: the fault tests use it to leave a torn write behind.
    """
    if is_remote(path):
        fs, p = filesystem(path)
        if fault is not None:
            fault_point(fault)  # an object PUT is all or nothing: nothing is left
        fs.pipe_file(p, data)
        return
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; a dataset file is the umask's
        with os.fdopen(fd, "wb") as f:
            if fault is not None:
                f.write(data[: len(data) // 2])
                f.flush()
                fault_point(fault)
                f.write(data[len(data) // 2 :])
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def upload(local: str, path: str) -> None:
    """Copy a local file to `path` atomically (streamed: never whole in memory)."""
    if is_remote(path):
        fs, p = filesystem(path)
        fs.put_file(local, p)
        return
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        shutil.copyfile(local, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def create_exclusive(path: str, data: bytes) -> bool:
    """Create `path` only if it does not exist; False if it does.

    Local: O_EXCL. Object stores: a conditional PUT (`If-None-Match: *` on S3; GCS
    `ifGenerationMatch=0` through gcsfs); where the filesystem cannot express it, a
    check then a write (a race window remains: docs/store.md).
    """
    if is_remote(path):
        fs, p = filesystem(path)
        try:
            fs.pipe_file(p, data, mode="create")
            return True
        except FileExistsError:
            return False
        except (TypeError, NotImplementedError, ValueError):
            if fs.exists(p):
                return False
            fs.pipe_file(p, data)
            return True
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    mtime: float | None


def walk(prefix: str) -> list[FileInfo]:
    """Every file under a directory prefix (recursive)."""
    if is_remote(prefix):
        fs, p = filesystem(prefix.rstrip("/"))
        try:
            found = fs.find(p, detail=True)
        except FileNotFoundError:
            return []
        out: list[FileInfo] = []
        for key, info in found.items():
            if info.get("type") == "directory":
                continue
            modified = info.get("LastModified") or info.get("mtime") or info.get("updated")
            mtime = modified.timestamp() if hasattr(modified, "timestamp") else None
            out.append(FileInfo(_url(fs, key), int(info.get("size") or 0), mtime))
        return out
    files: list[FileInfo] = []
    if not os.path.isdir(prefix):
        return files
    for dirpath, _dirs, names in os.walk(prefix):
        for n in names:
            p = os.path.join(dirpath, n)
            try:
                st = os.stat(p)
            except FileNotFoundError:
                continue
            files.append(FileInfo(p, st.st_size, st.st_mtime))
    return files


def delete(paths: list[str]) -> None:
    remote = [p for p in paths if is_remote(p)]
    if remote:
        fs, _ = filesystem(remote[0])
        fs.rm([filesystem(p)[1] for p in remote])
    for p in paths:
        if not is_remote(p):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)


def prune_empty_dirs(root: str) -> None:
    """Remove empty directories under root (local only; object stores have none)."""
    if is_remote(root) or not os.path.isdir(root):
        return
    for dirpath, dirs, files in os.walk(root, topdown=False):
        if dirpath != root and not dirs and not files:
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def relative(root: str, path: str) -> str:
    root = root.rstrip("/").rstrip(os.sep)
    if not path.startswith(root):
        raise ValueError(f"{path} is not under {root}")
    return path[len(root) :].lstrip("/").lstrip(os.sep).replace(os.sep, "/")
