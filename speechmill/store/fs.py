"""File access for a dataset root: local paths directly, remote URLs through Beam.

Local roots use the OS (atomic `os.replace`); `gs://` and `s3://` roots use
Beam's `FileSystems` (objects are written whole, so a create is atomic), which
needs `pip install 'speechmill[gcp]'` or `'speechmill[aws]'`.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from speechmill.faults import fault_point

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_remote(path: str) -> bool:
    return bool(_SCHEME.match(path))


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def absolute(path: str) -> str:
    return path if is_remote(path) else os.path.abspath(os.path.expanduser(path))


def exists(path: str) -> bool:
    if is_remote(path):
        from apache_beam.io.filesystems import FileSystems

        return bool(FileSystems.exists(path))
    return os.path.exists(path)


def makedirs(path: str) -> None:
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)


@contextlib.contextmanager
def open_read(path: str) -> Iterator[IO[bytes]]:
    if is_remote(path):
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.open(path) as f:
            yield f
    else:
        with open(path, "rb") as f:
            yield f


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def write_bytes_atomic(path: str, data: bytes, *, fault: str | None = None) -> None:
    """Write a whole file so readers see either nothing or all of it.

    `fault` names a fault point (speechmill.faults) reached after half of the data
    is in the temporary file: the fault tests use it to leave a torn write behind.
    """
    if is_remote(path):
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.create(path) as f:
            f.write(data)
        return
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
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


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    mtime: float | None


def walk(prefix: str) -> list[FileInfo]:
    """Every file under a directory prefix (recursive)."""
    if is_remote(prefix):
        from apache_beam.io.filesystems import FileSystems

        pattern = prefix.rstrip("/") + "/**"
        out: list[FileInfo] = []
        for result in FileSystems.match([pattern]):
            for m in result.metadata_list:
                out.append(FileInfo(m.path, m.size_in_bytes, m.last_updated_in_seconds or None))
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
        from apache_beam.io.filesystems import FileSystems

        FileSystems.delete(remote)
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
