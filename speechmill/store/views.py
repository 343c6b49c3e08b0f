"""DuckDB views over committed files only.

`view_sql(store)` renders CREATE VIEW statements that read exactly the files
the commit markers list; the same text opens the views from Python
(`connect(root)`), from `speechmill query`, and from the `duckdb` CLI
(`speechmill views --root R > views.sql; duckdb -init views.sql`).

For each table `t`:
  * `t`          the latest committed row per primary key (later commits win); in
                 `rejects`, a source item's reject disappears once a later run
                 committed a recording for it;
  * `t_history`  every committed row of every run.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from speechmill.schemas import DERIVED_VIEWS, TABLES, TableSpec
from speechmill.store import fs
from speechmill.store.store import Marker, Store


def duckdb_type(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_date32(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_binary(t):
        return "BLOB"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return duckdb_type(t.value_type) + "[]"
    if pa.types.is_struct(t):
        inner = ", ".join(f"{_ident(f.name)} {duckdb_type(f.type)}" for f in t)
        return f"STRUCT({inner})"
    raise TypeError(f"no DuckDB type for {t}")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _empty_select(spec: TableSpec) -> str:
    cols = ", ".join(
        f"CAST(NULL AS {duckdb_type(c.type)}) AS {_ident(c.name)}" for c in spec.columns
    )
    return f"SELECT {cols} WHERE false"


def _table_sql(store: Store, spec: TableSpec, markers: Sequence[Marker]) -> list[str]:
    """The views of one table over exactly the committed files.

    A run whose marker says `exact_dirs` (every run since schema 5) is read with one
    glob of its directory, so the SQL grows with the number of runs, not of files;
    older runs by their listed files. Files of one SCHEMA_VERSION share a schema, so
    each version is one `read_parquet` (no per-file schema union) and versions are
    combined by column name.
    """
    by_version: dict[int, list[str]] = {}
    seq: list[tuple[str, int]] = []
    for i, m in enumerate(markers):
        mine = [f.path for f in m.files if f.table == spec.name]
        if not mine:
            continue
        seq.append((m.run_id, i))
        sources = by_version.setdefault(m.schema_version, [])
        if m.exact_dirs:
            sources.append(store.path(f"tables/{spec.name}/run={m.run_id}") + "/*.parquet")
        else:
            sources.extend(store.path(p) for p in mine)
    name = _ident(spec.name)
    history = _ident(spec.name + "_history")
    if not seq:
        empty = _empty_select(spec)
        return [
            f"CREATE OR REPLACE VIEW {history} AS {empty};",
            f"CREATE OR REPLACE VIEW {name} AS {empty};",
        ]
    reads = [
        f"SELECT * FROM read_parquet([{', '.join(_lit(p) for p in paths)}], "
        "hive_partitioning = false)"
        for _, paths in sorted(by_version.items())
    ]
    union = " UNION ALL BY NAME ".join(reads)
    runs = ", ".join(f"({_lit(r)}, {i})" for r, i in seq)
    pk = ", ".join(f"d.{_ident(k)}" for k in spec.primary_key)
    latest = "_sm_rank = 1"
    if spec.name == "rejects" and "sources" in TABLES:
        # a source item rejected once (a policy, a transient error) and fetched by a
        # later run is no longer rejected: its later recording supersedes the reject
        latest += (
            " AND NOT (_sm.item_kind = 'source' AND EXISTS (SELECT 1 FROM sources_history s"
            " WHERE s.media_id = _sm.item_id AND s.recording_id IS NOT NULL"
            " AND s.run_id > _sm.run_id))"
        )
    return [
        f"CREATE OR REPLACE VIEW {history} AS {union};",
        f"CREATE OR REPLACE VIEW {name} AS SELECT * EXCLUDE (_sm_seq, _sm_rank) FROM ("
        f"SELECT d.*, r._sm_seq, row_number() OVER (PARTITION BY {pk} ORDER BY r._sm_seq DESC)"
        f" AS _sm_rank FROM {history} AS d JOIN (VALUES {runs}) AS r(_sm_run, _sm_seq)"
        f" ON d.run_id = r._sm_run) AS _sm WHERE {latest};",
    ]


def view_sql(store: Store, markers: Sequence[Marker] | None = None) -> str:
    """CREATE VIEW statements for every declared table (and its history)."""
    markers = store.markers() if markers is None else markers
    lines = [f"-- speechmill views over {store.root} ({len(markers)} committed runs)"]
    for spec in TABLES.values():
        lines.extend(_table_sql(store, spec, markers))
    for name, sql in DERIVED_VIEWS.items():
        lines.append(f"CREATE OR REPLACE VIEW {_ident(name)} AS {sql};")
    return "\n".join(lines) + "\n"


def connect(
    root: str | Store, database: str = ":memory:", markers: Sequence[Marker] | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the views of a dataset root."""
    store = root if isinstance(root, Store) else Store(root)
    con = duckdb.connect(database)
    if store.is_remote:
        # the store's own fsspec filesystem serves DuckDB's reads of s3://, gs:// paths
        # (no httpfs extension to download; the same endpoint and credentials)
        remote, _ = fs.filesystem(store.root)
        con.register_filesystem(remote)
    con.execute(view_sql(store, markers))
    return con
