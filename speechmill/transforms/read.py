"""Reading rows back on the workers: a run's plan files and committed tables' columns.

The driver passes file names only (a handful per part); workers open them through
the store's filesystem layer and stream record batches, so no list of items, and no
set of committed ids, is ever built on the driver or pickled into a DoFn.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq

from speechmill.schemas import TABLES
from speechmill.store import Store, as_store

BATCH = 4096


class ReadRowsDoFn(beam.DoFn):
    """A Parquet file of `table` rows -> records (with `extra` columns: (record, *values))."""

    def __init__(self, store: Store | str, table: str, extra: Sequence[str] = ()) -> None:
        self._store = as_store(store)
        self._table = table
        self._extra = tuple(extra)

    def process(self, path: str) -> Iterator[Any]:
        spec = TABLES[self._table]
        with self._store.open(path) as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH):
                for row in batch.to_pylist():
                    record = spec.from_row(row)
                    yield (record, *(row[c] for c in self._extra)) if self._extra else record


class ReadColumnDoFn(beam.DoFn):
    """A committed data file -> (value, None) for each row's `column` (a join key)."""

    def __init__(self, store: Store | str, column: str) -> None:
        self._store = as_store(store)
        self._column = column

    def process(self, path: str) -> Iterator[tuple[Any, None]]:
        with self._store.open(path) as f:
            for batch in pq.ParquetFile(f).iter_batches(
                batch_size=BATCH * 4, columns=[self._column]
            ):
                for value in batch.column(0).to_pylist():
                    yield value, None


def committed_files(store: Store, table: str) -> list[str]:
    """Paths of every committed data file of `table` (one per part and bundle, not per row)."""
    return [store.path(f.path) for m in store.markers() for f in m.files if f.table == table]


def has_rows(store: Store, path: str | None) -> bool:
    """Whether a plan file holds a row (read from its footer, on the driver)."""
    if not path:
        return False
    with store.open(path) as f:
        return bool(pq.ParquetFile(f).metadata.num_rows)
