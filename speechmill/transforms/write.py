"""Writing tables: typed records -> Parquet files with the declared schemas.

One writer for all of a pipeline's tables (Beam's WriteToParquet per table costs
several stages each, which dominated short runs). Each bundle writes its rows to
new part files with unique names and outputs their names; only outputs of
successful bundle attempts reach the manifest, so files of a failed or retried
attempt are never listed (gc removes them). The driver commits exactly the files
the manifest lists.

A row that does not fit its table's schema (a string that is not valid Unicode,
a value of the wrong type) is not written: it becomes a `rejects` row (stage
`write`, category `unwritable`, a safe repr of the offending value), and the run
commits everything else.

    <root>/tables/<table>/run=<run_id>/part-<uuid>.parquet
    <root>/tables/_manifests/run=<run_id>/<uuid>.json     [{table, path, rows}, ...]
"""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from speechmill.core.text.unicode import clean
from speechmill.faults import fault_point
from speechmill.schemas import TABLES, Category, Drop, Reject
from speechmill.schemas.base import BadRow
from speechmill.store import DataFile, Store, as_store, fs
from speechmill.transforms.common import REJECTS, make_reject

STAGE = "write"

MAX_ROWS_PER_FILE = 50_000


def unwritable(bad: BadRow, run_id: str) -> Reject:
    """The `rejects` row for a row that does not fit its table (stage `write`)."""
    return make_reject(
        Drop(
            Category.UNWRITABLE,
            f"a {bad.table} row cannot be written: column {bad.column or '?'}: {bad.error}"[:500],
            detail=bad.value_repr,
        ),
        item_id=bad.key,
        item_kind=bad.table,
        stage=STAGE,
        parent_id=bad.parent,
        source_id=bad.source,
        run_id=run_id,
    )


def storable(r: Reject) -> Reject:
    """A reject with every string made storable (rejects quote remote and user text)."""
    strings: dict[str, Any] = {
        f.name: clean(getattr(r, f.name))
        for f in dataclasses.fields(r)
        if isinstance(getattr(r, f.name), str) and not getattr(r, f.name).isascii()
    }
    return dataclasses.replace(r, **strings) if strings else r


def encode(table: str, run_id: str, records: list[Any]) -> tuple[pa.Table, list[Reject]]:
    """Records -> an Arrow table of the declared schema, and a reject per row that won't fit."""
    data, bad = TABLES[table].to_table_checked(records)
    return data, [unwritable(b, run_id) for b in bad]


def write_part(
    store: Store, table: str, run_id: str, records: list[Any]
) -> tuple[DataFile | None, list[Reject]]:
    """Write one part file (atomically) and describe it for the manifest.

    Rows that do not fit the schema are not written; each comes back as a reject
    (category `unwritable`), so one bad string never fails a run. No file is
    written when no row fits.
    """
    data, rejects = encode(table, run_id, records)
    if data.num_rows == 0:
        return None, rejects
    rel = f"tables/{table}/run={run_id}/part-{uuid.uuid4().hex}.parquet"
    buf = io.BytesIO()
    pq.write_table(data, buf, compression="zstd")
    fault_point("write.part")
    fs.write_bytes_atomic(store.path(rel), buf.getvalue())
    return DataFile(table, rel, data.num_rows), rejects


def write_parts(store: Store, run_id: str, buffers: dict[str, list[Any]]) -> list[DataFile]:
    """Write every buffered table (rejects last, with the rows other tables set aside)."""
    out: list[DataFile] = []
    pending = list(buffers.get(REJECTS, []))
    for table, records in buffers.items():
        if table == REJECTS or not records:
            continue
        entry, rejects = write_part(store, table, run_id, records)
        pending.extend(rejects)
        if entry is not None:
            out.append(entry)
    pending = [storable(r) for r in pending]
    while pending:  # a reject that still will not fit comes back as an `unwritable` one
        entry, pending = write_part(store, REJECTS, run_id, pending)
        if entry is not None:
            out.append(entry)
    return out


class _WriteParts(beam.DoFn):
    """Records -> part files per bundle; outputs (None, manifest entry) per file.

    A record's table is the one declared for its type (each table has its own record
    type), so the inputs need no tagging step; `tables` are the names the writer was
    given, and a record of any other table is an error in the pipeline's wiring.
    """

    def __init__(self, store: Store | str, run_id: str, max_rows: int, tables: Sequence[str]):
        self._store = as_store(store)
        self._run_id = run_id
        self._max_rows = max_rows
        self._tables = {TABLES[name].record: name for name in tables}

    def start_bundle(self) -> None:
        self._buffers: dict[str, list[Any]] = {}

    def process(self, record: Any) -> Iterator[tuple[None, DataFile]]:
        table = self._tables.get(type(record))
        if table is None:
            raise TypeError(
                f"WriteTables got a {type(record).__name__} record; it writes "
                + ", ".join(f"{n} ({t.__name__})" for t, n in self._tables.items())
            )
        buf = self._buffers.setdefault(table, [])
        buf.append(record)
        if len(buf) >= self._max_rows and table != REJECTS:
            self._buffers[table] = []
            entry, rejects = write_part(self._store, table, self._run_id, buf)
            self._buffers.setdefault(REJECTS, []).extend(rejects)
            if entry is not None:
                yield None, entry

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for entry in write_parts(self._store, self._run_id, self._buffers):
            yield WindowedValue((None, entry), GlobalWindow().max_timestamp(), (GlobalWindow(),))
        self._buffers = {}


class _WriteManifest(beam.DoFn):
    def __init__(self, store: Store | str, run_id: str) -> None:
        self._store = as_store(store)
        self._run_id = run_id

    def process(self, keyed: tuple[None, Iterable[DataFile]]) -> Iterator[str]:
        yield self._store.write_manifest(self._run_id, list(keyed[1]))


class WriteTables(beam.PTransform):
    """{table name: PCollection of its records} -> files of this run + a manifest.

    Few steps on purpose: every Beam step costs each run start-up time, which is most
    of a short run's overhead (docs/performance.md).
    """

    def __init__(self, store: Store | str, run_id: str, max_rows: int = MAX_ROWS_PER_FILE) -> None:
        super().__init__()
        self._store = as_store(store)
        self._run_id = run_id
        self._max_rows = max_rows

    def expand(self, tables: Mapping[str, beam.PCollection]) -> beam.PCollection:
        for name in tables:
            if name not in TABLES:
                raise ValueError(f"unknown table {name!r}")
        names = [*tables, *([] if REJECTS in tables else [REJECTS])]  # unwritable rows
        return (
            tuple(tables.values())
            | "AllRows" >> beam.Flatten()
            | "WriteParts"
            >> beam.ParDo(_WriteParts(self._store, self._run_id, self._max_rows, names))
            # one group, so one manifest (none when nothing was written: the run then
            # commits no files, as an empty manifest would say)
            | "CollectParts" >> beam.GroupByKey()
            | "WriteManifest" >> beam.ParDo(_WriteManifest(self._store, self._run_id))
        )
