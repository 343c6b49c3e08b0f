"""discover stage for local sources: files, folders and globs -> source items."""

from __future__ import annotations

import datetime as dt
import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass

from speechmill.config import LocalSource
from speechmill.core.audio.chunks import local_media_id, local_url
from speechmill.schemas import Category, Drop, Reject, SourceItem
from speechmill.transforms.common import make_reject

STAGE = "discover"
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Discovered:
    items: list[SourceItem]
    rejects: list[Reject]


def _walk(folder: str, exts: set[str], follow: bool) -> Iterator[str]:
    for dirpath, dirs, files in os.walk(folder, followlinks=follow):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in exts:
                yield os.path.join(dirpath, name)


def iter_paths(spec: LocalSource, base_dir: str) -> Iterator[str | tuple[str, None]]:
    """Files of a local source, streamed in a stable order (absolute paths); a configured
    path that matches nothing comes out as `(raw, None)`. Nothing is held but the walk."""
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in spec.extensions}
    for raw in spec.paths:
        p = os.path.expanduser(raw)
        if not os.path.isabs(p):
            p = os.path.join(base_dir, p)
        found = 0
        if _GLOB_CHARS & set(raw):
            for m in sorted(glob.iglob(p, recursive=True)):
                if os.path.isdir(m):
                    for f in _walk(m, exts, spec.follow_symlinks):
                        found += 1
                        yield os.path.abspath(f)
                elif os.path.isfile(m):
                    found += 1
                    yield os.path.abspath(m)
        elif os.path.isdir(p):
            for f in _walk(p, exts, spec.follow_symlinks):
                found += 1
                yield os.path.abspath(f)
        elif os.path.lexists(p):
            found += 1
            yield os.path.abspath(p)
        if not found:
            yield (raw, None)


def iter_local(
    spec: LocalSource, name: str, run_id: str, base_dir: str, now: dt.datetime
) -> Iterator[SourceItem | Reject]:
    """Source items of a local source (and rejects: over the cap, matching nothing), streamed.

    A file listed twice (overlapping paths) comes out twice; the planner keeps the first.
    """
    cap = spec.max_items
    n = 0
    for entry in iter_paths(spec, base_dir):
        if isinstance(entry, tuple):
            raw = entry[0]
            drop = Drop(Category.NOT_FOUND, f"source {name}: {raw!r} matches no file", raw, True)
            yield make_reject(
                drop,
                item_id=local_media_id(os.path.abspath(os.path.join(base_dir, raw))),
                item_kind="source",
                stage=STAGE,
                run_id=run_id,
            )
            continue
        path = entry
        n += 1
        if cap is not None and n > cap:
            drop = Drop(
                Category.POLICY_CAP, f"source {name}: over max_items ({cap})", local_url(path), True
            )
            yield make_reject(
                drop,
                item_id=local_media_id(path),
                item_kind="source",
                stage=STAGE,
                run_id=run_id,
                source_id=local_media_id(path),
            )
            continue
        yield local_item(spec, name, run_id, path, now)


def local_item(
    spec: LocalSource, name: str, run_id: str, path: str, now: dt.datetime
) -> SourceItem:
    try:
        st = os.stat(path)
        etag: str | None = f"{st.st_size}-{st.st_mtime_ns}"
        size: int | None = st.st_size
    except OSError:
        etag, size = None, None
    return SourceItem(
        media_id=local_media_id(path),
        source_name=name,
        kind="local",
        url=local_url(path),
        listed_url=None,
        webpage_url=None,
        extractor="local",
        title=None,
        author=None,
        channel_id=None,
        license=spec.license or "unknown",
        license_raw=None,
        upload_date=None,
        duration_s=None,
        language=spec.language,
        tags=[],
        size_bytes=size,
        etag=etag,
        discovered_at=now,
        recording_id=None,
        run_id=run_id,
    )
