"""Remove files no commit lists: the debris of failed or killed runs."""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass, field

import pyarrow as pa

from speechmill.faults import fault_point
from speechmill.schemas import TABLES
from speechmill.store import fs
from speechmill.store.store import Store, utcnow
from speechmill.store.views import connect


@dataclass
class GcReport:
    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept_active: list[str] = field(default_factory=list)
    dry_run: bool = False
    unreadable: list[str] = field(default_factory=list)  # runs whose marker cannot be read


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_runs(store: Store, grace: dt.timedelta) -> dict[str, dt.datetime]:
    """Runs whose intent says they may still be writing: run_id -> started_at."""
    host = socket.gethostname()
    now = utcnow()
    live: dict[str, dt.datetime] = {}
    for intent in store.active_runs():
        try:
            started = dt.datetime.fromisoformat(intent["started_at"])
            run_id = str(intent["run_id"])
        except (KeyError, ValueError):
            continue
        if intent.get("host") == host:
            alive = _pid_alive(int(intent.get("pid", -1)))
        else:
            alive = now - started < grace
        if alive:
            live[run_id] = started
    return live


def media_queries() -> list[str]:
    """SELECTs of every media URI any table references (columns named `*audio_uri`)."""
    out = []
    for name, spec in sorted(TABLES.items()):
        for f in spec.schema:
            if f.name.endswith("audio_uri") and pa.types.is_string(f.type):
                out.append(f'SELECT DISTINCT "{f.name}" FROM "{name}_history"')  # noqa: S608
    return out


def run_debris(store: Store, live: dict[str, dt.datetime]) -> list[fs.FileInfo]:
    """Under `runs/`: torn temporary files of killed commits, plans of runs that are gone."""
    out = []
    for info in fs.walk(store.path("runs")):
        rel = fs.relative(store.root, info.path)
        name = rel.rsplit("/", 1)[-1]
        if name.startswith(".tmp-") and not live:
            out.append(info)
        elif rel.startswith("runs/_plans/"):
            base = rel.split("/")[2]
            if not any(r == base or r.startswith(base + "-p") for r in live):
                out.append(info)
    return out


def collect_garbage(
    store: Store, *, dry_run: bool = False, grace: dt.timedelta = dt.timedelta(hours=24)
) -> GcReport:
    """Delete table files no marker lists and media no committed recording references.

    Files of live runs (an intent file whose process is alive on this host, or
    younger than `grace` on another host) are kept.
    """
    report = GcReport(dry_run=dry_run)
    markers = store.markers()
    listed = {f.path for m in markers for f in m.files}
    committed = {m.run_id for m in markers}
    live = live_runs(store, grace)
    for run_id in store.unreadable:  # a damaged marker's run: keep its files for a person
        live.setdefault(run_id, utcnow())
        report.unreadable.append(run_id)
    referenced_media: set[str] = set()
    if markers:
        con = connect(store, markers=markers)
        try:
            for sql in media_queries():
                referenced_media.update(r[0] for r in con.execute(sql).fetchall() if r[0])
        finally:
            con.close()
    oldest_live = min(live.values()) if live else None

    doomed: list[fs.FileInfo] = []
    for info in fs.walk(store.path("tables")):
        rel = fs.relative(store.root, info.path)
        if rel in listed:
            continue
        run = next((p[4:] for p in rel.split("/") if p.startswith("run=")), None)
        if run in live:
            report.kept_active.append(rel)
            continue
        doomed.append(info)
    for info in fs.walk(store.path("media")):
        rel = fs.relative(store.root, info.path)
        if rel in referenced_media:
            continue
        if report.unreadable:  # a damaged marker may reference it: delete no media
            report.kept_active.append(rel)
            continue
        if oldest_live is not None and (
            info.mtime is None or info.mtime >= oldest_live.timestamp() - 60
        ):
            report.kept_active.append(rel)
            continue
        doomed.append(info)
    doomed += run_debris(store, live)
    for intent in store.active_runs():
        run_id = str(intent.get("run_id", ""))
        if run_id not in live or run_id in committed:
            doomed.append(fs.FileInfo(store.active_path(run_id), 0, None))

    report.removed = sorted(fs.relative(store.root, i.path) for i in doomed)
    report.bytes_freed = sum(i.size for i in doomed)
    if not dry_run and doomed:
        step = 500 if fs.is_remote(store.root) else 1  # object stores delete in batches
        for i in range(0, len(doomed), step):
            fault_point("gc.delete")
            fs.delete([d.path for d in doomed[i : i + step]])
        fs.prune_empty_dirs(store.path("tables"))
        fs.prune_empty_dirs(store.path("media"))
        fs.prune_empty_dirs(store.path("runs/_plans"))
    return report
