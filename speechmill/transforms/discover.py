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


def local_paths(spec: LocalSource, base_dir: str) -> tuple[list[str], list[str]]:
    """(files found, configured paths that match nothing)."""
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in spec.extensions}
    found: list[str] = []
    missing: list[str] = []
    for raw in spec.paths:
        p = os.path.expanduser(raw)
        if not os.path.isabs(p):
            p = os.path.join(base_dir, p)
        if _GLOB_CHARS & set(raw):
            matches = sorted(glob.glob(p, recursive=True))
            files = [m for m in matches if os.path.isfile(m)]
            for m in matches:
                if os.path.isdir(m):
                    files.extend(_walk(m, exts, spec.follow_symlinks))
            if not files:
                missing.append(raw)
            found.extend(files)
        elif os.path.isdir(p):
            found.extend(_walk(p, exts, spec.follow_symlinks))
        elif os.path.lexists(p):
            found.append(p)
        else:
            missing.append(raw)
    seen: set[str] = set()
    unique = []
    for f in found:
        a = os.path.abspath(f)
        if a not in seen:
            seen.add(a)
            unique.append(a)
    return unique, missing


def discover_local(
    spec: LocalSource, name: str, run_id: str, base_dir: str, now: dt.datetime
) -> Discovered:
    files, missing = local_paths(spec, base_dir)
    items = []
    rejects = []
    cap = spec.max_items if spec.max_items is not None else len(files)
    for path in files[cap:]:
        drop = Drop(
            Category.POLICY_CAP, f"source {name}: over max_items ({cap})", local_url(path), True
        )
        rejects.append(
            make_reject(
                drop,
                item_id=local_media_id(path),
                item_kind="source",
                stage=STAGE,
                run_id=run_id,
                source_id=local_media_id(path),
            )
        )
    for path in files[:cap]:
        try:
            st = os.stat(path)
            etag = f"{st.st_size}-{st.st_mtime_ns}"
            size: int | None = st.st_size
        except OSError:
            etag, size = None, None
        items.append(
            SourceItem(
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
        )
    for raw in missing:
        drop = Drop(Category.NOT_FOUND, f"source {name}: {raw!r} matches no file", raw, True)
        rejects.append(
            make_reject(
                drop,
                item_id=local_media_id(os.path.abspath(os.path.join(base_dir, raw))),
                item_kind="source",
                stage=STAGE,
                run_id=run_id,
            )
        )
    return Discovered(items, rejects)
