"""A dataset root: layout, runs, commit markers.

    <root>/media/<ab>/<cd>/<recording_id>.flac          write-once audio
    <root>/tables/<table>/run=<run_id>/part-*.parquet    a run's data files
    <root>/runs/<run_id>.json                           commit marker, written last
    <root>/runs/_active/<run_id>.json                   intent: a run in progress

A run is visible only once its marker exists. The marker lists every data file
of the run with its row count; readers read exactly those files. Files that no
marker lists are debris of failed runs (see `gc`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import secrets
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from speechmill import __version__
from speechmill.config import Config, StoreOptions
from speechmill.core.audio.io import read_span
from speechmill.errors import LockedError, StoreError
from speechmill.faults import fault_point
from speechmill.schemas import SCHEMA_VERSION, TABLES, RunRecord
from speechmill.store import fs

log = logging.getLogger(__name__)

MARKER_FORMAT = 1
RUN_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}(-p\d{3,})?$")
RECORDING_ID_RE = re.compile(r"^[0-9a-f]{64}$")


def manifest_dir(store: Store, run_id: str) -> str:
    """Where a run's writers list the files they wrote (read at commit)."""
    return store.path(f"tables/_manifests/run={run_id}")


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class DataFile:
    table: str
    path: str  # relative to the root, always with "/"
    rows: int


@dataclass(frozen=True)
class Marker:
    """A commit marker: the proof that a run (or a part of one) is committed."""

    run_id: str
    pipeline: str
    started_at: dt.datetime
    committed_at: dt.datetime
    code_version: str
    schema_version: int
    config_hash: str
    config: Mapping[str, Any]
    model_hashes: Mapping[str, str]
    parent_runs: tuple[str, ...]
    runner: str
    files: tuple[DataFile, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)
    exact_dirs: bool = False  # the run's table directories hold exactly `files` (readers glob)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": MARKER_FORMAT,
                "run_id": self.run_id,
                "pipeline": self.pipeline,
                "started_at": self.started_at.isoformat(),
                "committed_at": self.committed_at.isoformat(),
                "code_version": self.code_version,
                "schema_version": self.schema_version,
                "config_hash": self.config_hash,
                "config": self.config,
                "model_hashes": dict(self.model_hashes),
                "parent_runs": list(self.parent_runs),
                "runner": self.runner,
                "files": [{"table": f.table, "path": f.path, "rows": f.rows} for f in self.files],
                "extra": dict(self.extra),
                "exact_dirs": self.exact_dirs,
            },
            indent=1,
            sort_keys=True,
        )

    @staticmethod
    def from_json(text: str, origin: str) -> Marker:
        try:
            d = json.loads(text)
            if d.get("format") != MARKER_FORMAT:
                raise StoreError(f"{origin}: unknown marker format {d.get('format')!r}")
            run_id = str(d["run_id"])
            if not RUN_ID_RE.match(run_id):
                raise StoreError(f"{origin}: malformed run id {run_id!r}")
            files = tuple(
                DataFile(str(f["table"]), _safe_rel(str(f["path"]), origin), int(f["rows"]))
                for f in d["files"]
            )
            return Marker(
                run_id=run_id,
                pipeline=str(d["pipeline"]),
                started_at=dt.datetime.fromisoformat(d["started_at"]),
                committed_at=dt.datetime.fromisoformat(d["committed_at"]),
                code_version=str(d["code_version"]),
                schema_version=int(d["schema_version"]),
                config_hash=str(d["config_hash"]),
                config=d["config"],
                model_hashes={str(k): str(v) for k, v in d["model_hashes"].items()},
                parent_runs=tuple(str(x) for x in d["parent_runs"]),
                runner=str(d["runner"]),
                files=files,
                extra=d.get("extra", {}),
                exact_dirs=bool(d.get("exact_dirs", False)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{origin}: unreadable commit marker ({e})") from None


def _safe_rel(path: str, origin: str) -> str:
    parts = path.split("/")
    if path.startswith("/") or ".." in parts or not path.startswith("tables/"):
        raise StoreError(f"{origin}: file path {path!r} escapes the dataset root")
    return path


@dataclass(frozen=True)
class RunHandle:
    """A run in progress: its id, when it started, what it builds on."""

    run_id: str
    pipeline: str
    started_at: dt.datetime


@dataclass
class Run:
    """A run in progress (see `Store.run`)."""

    store: Store
    handle: RunHandle
    cfg: Config
    parent_runs: list[str]
    marker: Marker | None = None

    @property
    def run_id(self) -> str:
        return self.handle.run_id

    def commit(
        self, *, model_hashes: Mapping[str, str], extra: Mapping[str, Any] | None = None
    ) -> Marker:
        """Commit what the run's writers listed; the marker records config, code and models."""
        self.marker = self.store.commit(
            self.handle,
            config=self.cfg.model_dump(mode="json"),
            config_hash=self.cfg.config_hash(),
            code_version=__version__,
            model_hashes=dict(model_hashes),
            parent_runs=self.parent_runs,
            runner=self.cfg.runner.name,
            extra=dict(extra or {}),
        )
        return self.marker


class Store:
    """One dataset root."""

    def __init__(self, root: str, options: StoreOptions | None = None) -> None:
        if not root:
            raise StoreError("the dataset root is empty: pass --root or set store.root")
        self.root = fs.absolute(root)
        self.options = options or StoreOptions()
        self.unreadable: list[str] = []
        fs.configure(self.root, self.storage_options)

    @staticmethod
    def from_config(cfg: Config, root: str | None = None) -> Store:
        """The config's dataset root (or `root`), with its object-store options."""
        return Store(root or cfg.store.root, cfg.store.options)

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec storage options of this root (endpoint, region, profile; never keys)."""
        return fs.storage_options(self.root, **self.options.model_dump())

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt through __init__ on a worker, so the root's options are registered there
        return (Store, (self.root, self.options))

    @property
    def is_remote(self) -> bool:
        return fs.is_remote(self.root)

    def open(self, path: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """A file of this root (absolute path or URL), opened for reading."""
        return fs.open_read(path)

    def read_span(self, path: str, start: int = 0, stop: int | None = None) -> Any:
        """Samples [start, stop) of a stored FLAC (absolute path or URL): float32 mono."""
        if not fs.is_remote(path):
            return read_span(path, start, stop)
        with fs.open_read(path) as f:
            return read_span(f, start, stop)

    # ------------------------------------------------------------------ layout
    def path(self, rel: str) -> str:
        return fs.join(self.root, *rel.split("/"))

    @staticmethod
    def media_rel(recording_id: str) -> str:
        if not RECORDING_ID_RE.match(recording_id):
            raise StoreError(f"not a recording id: {recording_id!r}")
        return f"media/{recording_id[:2]}/{recording_id[2:4]}/{recording_id}.flac"

    def run_table_dir(self, table: str, run_id: str) -> str:
        if table not in TABLES:
            raise StoreError(f"unknown table {table!r}")
        return self.path(f"tables/{table}/run={run_id}")

    def marker_path(self, run_id: str) -> str:
        return self.path(f"runs/{run_id}.json")

    def active_path(self, run_id: str) -> str:
        return self.path(f"runs/_active/{run_id}.json")

    # ------------------------------------------------------------------ lock
    def lock_path(self) -> str:
        return self.path("runs/_lock.json")

    def lock_holder(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(fs.read_bytes(self.lock_path()))
            return data
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"unreadable": True}

    def _lock_is_stale(self, holder: dict[str, Any], stale_after: dt.timedelta) -> bool:
        if holder.get("unreadable"):
            return False
        if holder.get("host") == socket.gethostname():
            pid = int(holder.get("pid", -1))
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return False
        try:
            started = dt.datetime.fromisoformat(str(holder["started_at"]))
        except (KeyError, ValueError):
            return False
        return utcnow() - started > stale_after

    @contextlib.contextmanager
    def lock(
        self,
        pipeline: str,
        *,
        stale_after: dt.timedelta = dt.timedelta(hours=24),
        break_lock: bool = False,
    ) -> Iterator[None]:
        """Hold the dataset lock (two refreshes never overlap).

        A lock left by a killed process on this host is taken over at once; one
        from another host after `stale_after`; `break_lock` removes any lock. The
        lock file is created only if absent: O_EXCL on local roots, a conditional
        PUT on object stores that offer one (S3 `If-None-Match`, GCS generation 0);
        see docs/store.md.
        """
        path = self.lock_path()
        mine = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pipeline": pipeline,
            "started_at": utcnow().isoformat(),
            "token": secrets.token_hex(8),
        }
        data = json.dumps(mine).encode()
        for _ in range(2):
            holder = self.lock_holder()
            if holder is not None and (break_lock or self._lock_is_stale(holder, stale_after)):
                fs.delete([path])
                holder = None
            if holder is not None:
                raise LockedError(
                    f"{self.root} is locked by {holder.get('pipeline', '?')} "
                    f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started "
                    f"{holder.get('started_at', '?')}). Two refreshes never overlap; if that "
                    "process is gone, run again with --break-lock."
                )
            if fs.create_exclusive(path, data):
                break
        else:
            raise LockedError(f"{self.root}: could not take the lock")
        try:
            yield
        finally:
            now = self.lock_holder()
            if now is not None and now.get("token") == mine["token"]:
                fs.delete([path])

    # ------------------------------------------------------------------ runs
    def begin(self, pipeline: str, run_id: str | None = None) -> RunHandle:
        """Record the intent to run (gc leaves a live run's files alone)."""
        handle = RunHandle(run_id or new_run_id(), pipeline, utcnow())
        intent = {
            "run_id": handle.run_id,
            "pipeline": pipeline,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": handle.started_at.isoformat(),
        }
        fs.makedirs(self.path("runs/_active"))
        fs.write_bytes_atomic(self.active_path(handle.run_id), json.dumps(intent).encode())
        try:
            fault_point("store.begin")
        except BaseException:
            self.end(handle)
            raise
        return handle

    @contextlib.contextmanager
    def run(
        self,
        pipeline: str,
        cfg: Config,
        *,
        run_id: str | None = None,
        parents: Sequence[str] | None = None,
    ) -> Iterator[Run]:
        """The lifecycle of one run (or one part of one), for every pipeline::

            with store.run("refine", cfg) as run:
                ...  # the Beam pipeline writes into run.run_id's directories
                run.commit(model_hashes={...}, extra={...})

        Begins (records the intent), names the parent runs (by default the latest
        committed run), commits with the config, code and model identity every marker
        records, and always ends (drops the intent). Leaving without `commit` commits
        nothing.
        """
        handle = self.begin(pipeline, run_id)
        try:
            if parents is None:
                parents = [m.run_id for m in self.markers()[-1:]]
            yield Run(self, handle, cfg, list(parents))
        finally:
            self.end(handle)

    def end(self, handle: RunHandle) -> None:
        """Drop the intent (after commit or failure)."""
        fs.delete([self.active_path(handle.run_id)])

    def active_runs(self) -> list[dict[str, Any]]:
        out = []
        for info in fs.walk(self.path("runs/_active")):
            try:
                out.append(json.loads(fs.read_bytes(info.path)) | {"_mtime": info.mtime})
            except (OSError, ValueError):
                continue
        return out

    def write_manifest(self, run_id: str, files: Sequence[DataFile]) -> str:
        """Record data files a run wrote (called by the pipeline's writer)."""
        path = fs.join(manifest_dir(self, run_id), f"{secrets.token_hex(8)}.json")
        fault_point("write.manifest")
        entries = [{"table": f.table, "path": f.path, "rows": f.rows} for f in files]
        fs.write_bytes_atomic(path, json.dumps(sorted(entries, key=lambda e: e["path"])).encode())
        return path

    def run_files(self, run_id: str) -> list[DataFile]:
        """The data files the run's manifests list (written by successful bundles only).

        Each file must exist, lie in the run's own directory of its table, and hold
        the row count the manifest says.
        """
        entries: dict[str, DataFile] = {}
        for info in fs.walk(manifest_dir(self, run_id)):
            if not info.path.endswith(".json"):
                continue
            for e in json.loads(fs.read_bytes(info.path)):
                df = DataFile(str(e["table"]), str(e["path"]), int(e["rows"]))
                prefix = f"tables/{df.table}/run={run_id}/"
                if df.table not in TABLES or not df.path.startswith(prefix) or ".." in df.path:
                    raise StoreError(f"manifest of run {run_id} lists a foreign file {df.path!r}")
                entries[df.path] = df
        for df in entries.values():
            with fs.open_read(self.path(df.path)) as f:
                rows = pq.ParquetFile(f).metadata.num_rows
            if rows != df.rows:
                raise StoreError(f"{df.path}: {rows} rows, manifest says {df.rows}")
        return sorted(entries.values(), key=lambda d: d.path)

    def commit(
        self,
        handle: RunHandle,
        *,
        config: Mapping[str, Any],
        config_hash: str,
        code_version: str,
        model_hashes: Mapping[str, str],
        parent_runs: Sequence[str],
        runner: str,
        extra: Mapping[str, Any] | None = None,
    ) -> Marker:
        """Write the run's `runs` row, then its marker (last). Returns the marker."""
        fault_point("commit.begin")
        if fs.exists(self.marker_path(handle.run_id)):
            raise StoreError(f"run {handle.run_id} is already committed")
        files = [f for f in self.run_files(handle.run_id) if f.table != "runs"]
        # files a retried bundle left in the run's directories: gone before the marker, so
        # each directory holds exactly what the marker lists (readers may glob it)
        listed = {f.path for f in files}
        for table in TABLES:
            stray = [
                i.path
                for i in fs.walk(self.run_table_dir(table, handle.run_id))
                if fs.relative(self.root, i.path) not in listed and table != "runs"
            ]
            if stray:
                fs.delete(stray)
        committed_at = utcnow()
        rows: dict[str, int] = {}
        for f in files:
            rows[f.table] = rows.get(f.table, 0) + f.rows
        record = RunRecord(
            run_id=handle.run_id,
            pipeline=handle.pipeline,
            started_at=handle.started_at,
            committed_at=committed_at,
            wall_s=(committed_at - handle.started_at).total_seconds(),
            code_version=code_version,
            schema_version=SCHEMA_VERSION,
            config_hash=config_hash,
            config_json=json.dumps(config, sort_keys=True),
            model_hashes_json=json.dumps(dict(model_hashes), sort_keys=True),
            parent_runs=list(parent_runs),
            runner=runner,
            num_files=len(files) + 1,
            rows_json=json.dumps(rows, sort_keys=True),
        )
        spec = TABLES["runs"]
        runs_rel = f"tables/runs/run={handle.run_id}/part-00000-of-00001.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(spec.to_table([record]), sink)
        fs.write_bytes_atomic(self.path(runs_rel), sink.getvalue().to_pybytes())
        files.append(DataFile("runs", runs_rel, 1))
        fault_point("commit.runs_row")
        marker = Marker(
            run_id=handle.run_id,
            pipeline=handle.pipeline,
            started_at=handle.started_at,
            committed_at=committed_at,
            code_version=code_version,
            schema_version=SCHEMA_VERSION,
            config_hash=config_hash,
            config=config,
            model_hashes=dict(model_hashes),
            parent_runs=tuple(parent_runs),
            runner=runner,
            files=tuple(files),
            extra=dict(extra or {}),
            exact_dirs=True,
        )
        fs.write_bytes_atomic(
            self.marker_path(handle.run_id), marker.to_json().encode(), fault="commit.marker"
        )
        fault_point("commit.done")
        # the manifests have served their purpose (gc removes them if this is interrupted)
        fs.delete([i.path for i in fs.walk(manifest_dir(self, handle.run_id))])
        return marker

    def markers(self) -> list[Marker]:
        """Committed runs in commit order.

        A marker that cannot be read (truncated, edited by hand, or naming a path
        outside the root; speechmill writes markers atomically) is skipped with a
        warning: its run stays invisible, and `unreadable` names it, so that gc
        keeps its files for a person to look at.
        """
        out = []
        self.unreadable = []
        for info in fs.walk(self.path("runs")):
            rel = fs.relative(self.root, info.path)
            name = rel.split("/")[-1]
            if rel.count("/") != 1 or not name.endswith(".json"):
                continue
            if not RUN_ID_RE.match(name[: -len(".json")]):
                continue
            try:
                text = fs.read_bytes(info.path).decode("utf-8")
                out.append(Marker.from_json(text, rel))
            except (StoreError, UnicodeDecodeError) as e:
                log.warning("ignoring commit marker %s: %s", rel, e)
                self.unreadable.append(name[: -len(".json")])
        out.sort(key=lambda m: (m.committed_at, m.run_id))
        return out


def as_store(store: Store | str) -> Store:
    """A Store from a Store or a root (DoFns take either; a Store keeps its options)."""
    return store if isinstance(store, Store) else Store(store)
