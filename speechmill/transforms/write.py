"""Writing tables: typed records -> Parquet files with the declared schemas.

One writer for all of a pipeline's tables (Beam's WriteToParquet per table costs
several stages each, which dominated short runs). Each bundle writes its rows to
new part files with unique names and outputs their names; only outputs of
successful bundle attempts reach the manifest, so files of a failed or retried
attempt are never listed (gc removes them). The driver commits exactly the files
the manifest lists.

    <root>/tables/<table>/run=<run_id>/part-<uuid>.parquet
    <root>/tables/_manifests/run=<run_id>/<uuid>.json     [{table, path, rows}, ...]
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from speechmill.schemas import TABLES
from speechmill.store import DataFile, Store, fs

MAX_ROWS_PER_FILE = 50_000


def write_part(store: Store, table: str, run_id: str, records: list[Any]) -> DataFile:
    """Write one part file (atomically) and describe it for the manifest."""
    spec = TABLES[table]
    rel = f"tables/{table}/run={run_id}/part-{uuid.uuid4().hex}.parquet"
    buf = io.BytesIO()
    pq.write_table(spec.to_table(records), buf, compression="zstd")
    fs.write_bytes_atomic(store.path(rel), buf.getvalue())
    return DataFile(table, rel, len(records))


class _WriteParts(beam.DoFn):
    """(table, record) -> part files per bundle; outputs one manifest entry per file."""

    def __init__(self, root: str, run_id: str, max_rows: int) -> None:
        self._root = root
        self._run_id = run_id
        self._max_rows = max_rows

    def setup(self) -> None:
        self._store = Store(self._root)

    def start_bundle(self) -> None:
        self._buffers: dict[str, list[Any]] = {}

    def process(self, element: tuple[str, Any]) -> Iterator[DataFile]:
        table, record = element
        buf = self._buffers.setdefault(table, [])
        buf.append(record)
        if len(buf) >= self._max_rows:
            self._buffers[table] = []
            yield write_part(self._store, table, self._run_id, buf)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for table, buf in self._buffers.items():
            if buf:
                entry = write_part(self._store, table, self._run_id, buf)
                yield WindowedValue(entry, GlobalWindow().max_timestamp(), (GlobalWindow(),))
        self._buffers = {}


class _WriteManifest(beam.DoFn):
    def __init__(self, root: str, run_id: str) -> None:
        self._root = root
        self._run_id = run_id

    def process(self, files: list[DataFile]) -> Iterator[str]:
        yield Store(self._root).write_manifest(self._run_id, files)


class WriteTables(beam.PTransform):
    """{table name: PCollection of its records} -> files of this run + a manifest."""

    def __init__(self, root: str, run_id: str, max_rows: int = MAX_ROWS_PER_FILE) -> None:
        super().__init__()
        self._root = root
        self._run_id = run_id
        self._max_rows = max_rows

    def expand(self, tables: Mapping[str, beam.PCollection]) -> beam.PCollection:
        for name in tables:
            if name not in TABLES:
                raise ValueError(f"unknown table {name!r}")
        tagged = [
            pcoll | f"Tag:{name}" >> beam.Map(lambda r, n=name: (n, r))
            for name, pcoll in tables.items()
        ]
        return (
            tagged
            | "AllRows" >> beam.Flatten()
            | "WriteParts" >> beam.ParDo(_WriteParts(self._root, self._run_id, self._max_rows))
            | "CollectParts" >> beam.combiners.ToList()
            | "WriteManifest" >> beam.ParDo(_WriteManifest(self._root, self._run_id))
        )
