"""Dataset roots: atomic runs, commit markers, ledger, DuckDB views, gc."""

from speechmill.store.gc import GcReport, collect_garbage
from speechmill.store.ledger import Ledger
from speechmill.store.store import DataFile, Marker, Run, RunHandle, Store, as_store, new_run_id
from speechmill.store.views import connect, view_sql

__all__ = [
    "DataFile",
    "GcReport",
    "Ledger",
    "Marker",
    "Run",
    "RunHandle",
    "Store",
    "as_store",
    "collect_garbage",
    "connect",
    "new_run_id",
    "view_sql",
]
