"""Planning a corpus run on the driver, with memory that does not grow with the corpus.

Discovery streams every source item (and every discovery reject) into Parquet files
in a local work directory, a few thousand rows at a time. One DuckDB query then
decides, out of core, what the run does with each item: it keeps the first listing
of each `media_id`, anti-joins the committed tables (an item already settled with
the same etag is skipped; a policy reject is re-decided), applies the give-up rule
to transient rejects, and cuts what is left into parts (`runner.commit_every` items,
or `runner.commit_hours` of declared audio). Each part becomes one Parquet file in
the store, `runs/_plans/<run>/part-NNNNN.parquet`, that the part's pipeline reads on
its workers; the driver keeps only counts.

    discovery -> work dir (items-*.parquet, rejects-*.parquet)
              -> DuckDB: dedupe, anti-join committed, give-up, cut into parts
              -> <root>/runs/_plans/<run>/{part-00001,...,pre-sources,pre-rejects}.parquet
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from speechmill import progress as live
from speechmill.backends.robots import Robots
from speechmill.config import Config, LocalSource, RssSource
from speechmill.schemas import TABLES, Reject, SourceItem
from speechmill.store import Store, connect, fs
from speechmill.store.ledger import COMMITTED, SETTLED
from speechmill.store.store import utcnow
from speechmill.transforms.discover import iter_local

BATCH = 5_000
PLANS = "runs/_plans"
ITEM_EXTRA = [
    pa.field("_seq", pa.int64(), nullable=False),
    pa.field("_accepted", pa.bool_(), nullable=False),
]
PART_EXTRA = [pa.field("attempts", pa.int64(), nullable=False)]


def plan_dir(store: Store, run_id: str) -> str:
    return store.path(f"{PLANS}/{run_id}")


@dataclass
class Plan:
    """What a run will do: counts on the driver, the rows in files."""

    run_id: str
    workdir: str  # local: discovery's files and the DuckDB spill directory
    parts: list[tuple[str, str, int]] = field(default_factory=list)  # (run id, file, items)
    pre_sources: str | None = None  # sources rows of items skipped now (with rejects)
    pre_rejects: str | None = None  # rejects decided on the driver (policy, discovery)
    todo: int = 0
    skipped: int = 0  # done in committed runs
    rejected: int = 0  # skipped now, with a reject
    new_rejects: int = 0
    known: int = 0  # remote items a listing showed that committed runs hold
    watermarks: dict[str, dict[str, str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)  # feeds that answered 304
    robots: Robots | None = field(default=None, repr=False)

    @property
    def discovered(self) -> int:
        return self.todo + self.skipped + self.rejected + self.known

    @property
    def host_delays(self) -> dict[str, float]:
        return self.robots.host_delays() if self.robots is not None else {}

    def decisions(self) -> Iterator[tuple[str, SourceItem, str]]:
        """(source, item, decision) of every listed item, in listing order (streamed)."""
        import duckdb

        path = os.path.join(self.workdir, "decisions.parquet")
        if not os.path.exists(path):
            return
        spec = TABLES["sources"]
        con = duckdb.connect()
        try:
            cur = con.execute(f"SELECT * FROM read_parquet('{path}') ORDER BY _seq")
            names = [d[0] for d in cur.description]
            while rows := cur.fetchmany(1000):
                for r in rows:
                    row = dict(zip(names, r, strict=True))
                    yield row["source_name"], spec.from_row(row), row["_decision"]
        finally:
            con.close()

    def todo_items(self, store: Store) -> Iterator[SourceItem]:
        """The items to fetch, streamed from the part files (benchmarks, tests)."""
        spec = TABLES["sources"]
        for _, path, _ in self.parts:
            with store.open(path) as f:
                for batch in pq.ParquetFile(f).iter_batches():
                    yield from (spec.from_row(r) for r in batch.to_pylist())

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class _Spool:
    """Rows of one table written to Parquet in batches (items or rejects)."""

    def __init__(self, workdir: str, name: str, schema: pa.Schema) -> None:
        self._dir = workdir
        self._name = name
        self._schema = schema
        self._rows: list[dict[str, Any]] = []
        self._n = 0

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        self._n += 1
        table = pa.Table.from_pylist(self._rows, schema=self._schema)
        pq.write_table(table, os.path.join(self._dir, f"{self._name}-{self._n:05d}.parquet"))
        self._rows = []

    @property
    def glob(self) -> str:
        return os.path.join(self._dir, f"{self._name}-*.parquet")

    @property
    def written(self) -> bool:
        return self._n > 0


def _schema_with(table: str, extra: Iterable[pa.Field]) -> pa.Schema:
    base = TABLES[table].schema
    return pa.schema([*base, *extra])


def discover(
    cfg: Config,
    store: Store,
    run_id: str,
    base_dir: str | None = None,
    *,
    dry_run: bool = False,
    progress: bool | None = None,
) -> Plan:
    """Discover every source into the plan's work directory (streamed, nothing held);
    `progress` as `speechmill.progress.stage`'s `show` (a dry run shows none)."""
    from speechmill.store.ledger import Ledger
    from speechmill.transforms.discover_remote import discover_rss, discover_ytdlp, robots_for

    base = base_dir or os.getcwd()
    now = utcnow()
    out = Plan(run_id, tempfile.mkdtemp(prefix="speechmill-plan-"), robots=robots_for(cfg.crawl))
    items = _Spool(out.workdir, "items", _schema_with("sources", ITEM_EXTRA))
    rejects = _Spool(out.workdir, "rejects", _schema_with("rejects", ITEM_EXTRA[:1]))
    sources_spec, rejects_spec = TABLES["sources"], TABLES["rejects"]
    seq = 0
    found_live = live.stage("discover", show=False if dry_run else progress)

    def put(record: SourceItem | Reject, accepted: bool = True) -> None:
        nonlocal seq
        seq += 1
        found_live.add()
        if isinstance(record, Reject):
            rejects.add(rejects_spec.to_row(record) | {"_seq": seq})
        else:
            items.add(sources_spec.to_row(record) | {"_seq": seq, "_accepted": accepted})

    remote = [s for s in cfg.sources if not isinstance(s, LocalSource)]
    ledger = Ledger.remote(store) if remote else None  # committed ids for listings that stop early
    for spec, name in zip(cfg.sources, cfg.source_names(), strict=True):
        if isinstance(spec, LocalSource):
            for record in iter_local(spec, name, run_id, base, now):
                put(record)
            continue
        assert ledger is not None
        if isinstance(spec, RssSource):
            found = discover_rss(
                spec,
                name,
                run_id,
                now,
                cfg.crawl,
                ledger.is_settled,
                ledger.watermarks.get(name),
                out.robots,
            )
            if found.watermark:
                out.watermarks[name] = found.watermark
            if found.unchanged:
                out.unchanged.append(name)
        else:
            found = discover_ytdlp(
                spec, name, run_id, now, cfg.crawl, ledger.is_settled, out.robots
            )
        out.known += found.known
        for it in found.items:
            put(it)
        for it in found.skipped:
            put(it, accepted=False)
        for r in found.rejects:
            put(r)
    items.flush()
    rejects.flush()
    live.close_stage(found_live)
    _decide(cfg, store, out, items, rejects, write=not dry_run)
    return out


def _decide(
    cfg: Config, store: Store, out: Plan, items: _Spool, rejects: _Spool, *, write: bool
) -> None:
    """The one query: dedupe, anti-join the committed tables, give up, cut into parts."""
    con = connect(store)
    try:
        con.execute("SET memory_limit = '512MB'")
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"SET temp_directory = '{out.workdir}/duckdb.tmp'")
        empty_items = _empty(con, "sources", ITEM_EXTRA)
        empty_rejects = _empty(con, "rejects", ITEM_EXTRA[:1])
        disc = f"read_parquet('{items.glob}')" if items.written else empty_items
        rej = f"read_parquet('{rejects.glob}')" if rejects.written else empty_rejects
        max_attempts = int(cfg.crawl.max_attempts)
        con.execute(
            f"""
            CREATE TEMP TABLE listed AS
            SELECT * FROM {disc}
            QUALIFY row_number() OVER (PARTITION BY media_id ORDER BY _seq) = 1;
            CREATE TEMP TABLE decided AS
            WITH {COMMITTED},
                 r AS (SELECT * FROM {rej}
                       QUALIFY row_number() OVER (PARTITION BY item_id ORDER BY _seq) = 1)
            SELECT d.*, coalesce(a.n, 0) AS attempts,
                   r.category AS r_category, r.reason AS r_reason,
                   CASE
                     WHEN NOT d._accepted AND r.item_id IS NULL THEN 'none'
                     WHEN NOT d._accepted AND f.category = r.category
                          AND f.category LIKE 'policy_%' THEN 'decided'
                     WHEN NOT d._accepted THEN 'skip'
                     WHEN {SETTLED} THEN 'done'
                     ELSE 'fetch'
                   END AS _state
            FROM listed d
            LEFT JOIN c USING (media_id)
            LEFT JOIN f ON f.item_id = d.media_id
            LEFT JOIN a ON a.item_id = d.media_id
            LEFT JOIN r ON r.item_id = d.media_id;
            """
        )
        counts = dict(con.execute("SELECT _state, count(*) FROM decided GROUP BY 1").fetchall())
        out.todo = int(counts.get("fetch", 0))
        out.skipped = int(counts.get("done", 0))
        out.rejected = int(counts.get("skip", 0) + counts.get("decided", 0))
        decisions = os.path.join(out.workdir, "decisions.parquet")
        con.execute(
            f"""COPY (SELECT * EXCLUDE (_state, r_category, r_reason, attempts),
                  CASE _state WHEN 'fetch' THEN 'fetch' WHEN 'done' THEN 'done'
                       ELSE 'skip: ' || r_category || ': ' || r_reason END AS _decision
                  FROM decided WHERE _state <> 'none') TO '{decisions}' (FORMAT parquet)"""
        )
        # rejects decided now: for skipped items (unless committed already), and rejects
        # without an item (paths that match nothing); the give-up rule on transient ones
        gave_up = f"(r.retryable AND coalesce(a.n, 0) + 1 >= {max_attempts})"
        con.execute(
            f"""
            CREATE TEMP TABLE new_rejects AS
            WITH {COMMITTED},
                 r AS (SELECT * FROM {rej}
                       QUALIFY row_number() OVER (PARTITION BY item_id ORDER BY _seq) = 1)
            SELECT r.* EXCLUDE (retryable, reason, _seq),
                   CASE WHEN {gave_up} THEN r.reason || ' (gave up after '
                        || (coalesce(a.n, 0) + 1) || ' runs; crawl.max_attempts)'
                        ELSE r.reason END AS reason,
                   r.retryable AND NOT {gave_up} AS retryable, r._seq
            FROM r LEFT JOIN a USING (item_id)
            WHERE r.item_id IN (SELECT media_id FROM decided WHERE _state = 'skip')
               OR r.item_id NOT IN (SELECT media_id FROM listed WHERE NOT _accepted)
            """
        )
        out.new_rejects = _scalar(con, "SELECT count(*) FROM new_rejects")
        if write:
            _write_parts(cfg, store, out, con)
    finally:
        con.close()


def _scalar(con: Any, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _empty(con: Any, table: str, extra: list[pa.Field]) -> str:
    """A SELECT of no rows with the spool's columns (for a run that spooled none)."""
    from speechmill.store.views import duckdb_type

    cols = [f'CAST(NULL AS {duckdb_type(f.type)}) AS "{f.name}"' for f in TABLES[table].schema]
    cols += [f'CAST(NULL AS {duckdb_type(f.type)}) AS "{f.name}"' for f in extra]
    return f"(SELECT {', '.join(cols)} WHERE false)"


def _write_parts(cfg: Config, store: Store, out: Plan, con: Any) -> None:
    every = cfg.runner.commit_every or max(out.todo, 1)
    hours = cfg.runner.commit_hours
    # a part closes at `every` items, or once its declared audio reaches `hours`
    con.execute(
        """
        CREATE TEMP TABLE todo AS
        SELECT *, row_number() OVER (ORDER BY _seq) - 1 AS _rn,
               sum(coalesce(duration_s, 0)) OVER (ORDER BY _seq) AS _secs
        FROM decided WHERE _state = 'fetch'
        """
    )
    if hours:
        con.execute(
            f"""CREATE TEMP TABLE cut AS SELECT *, greatest(floor(_rn / {every}),
                floor(_secs / {hours * 3600.0})) AS _part0 FROM todo"""
        )
        con.execute(
            "CREATE TEMP TABLE parted AS SELECT *, dense_rank() OVER (ORDER BY _part0) - 1 "
            "AS _part FROM cut"
        )
    else:
        con.execute(
            f"CREATE TEMP TABLE parted AS SELECT *, floor(_rn / {every}) AS _part FROM todo"
        )
    n_parts = _scalar(con, "SELECT coalesce(max(_part) + 1, 0) FROM parted")
    if n_parts == 0 and out.new_rejects == 0:
        return
    n_parts = max(n_parts, 1)  # rejects alone still make one (empty) part
    target = plan_dir(store, out.run_id)
    fs.makedirs(target)
    cols = ", ".join(f'"{c.name}"' for c in TABLES["sources"].columns if c.name != "run_id")
    for k in range(n_parts):
        run_id = out.run_id if n_parts == 1 else f"{out.run_id}-p{k + 1:03d}"
        path = _copy(
            con,
            f"SELECT {cols}, '{run_id}' AS run_id, attempts FROM parted "
            f"WHERE _part = {k} ORDER BY _seq",
            store,
            target,
            f"part-{k + 1:05d}.parquet",
            out.workdir,
        )
        n = _scalar(con, f"SELECT count(*) FROM parted WHERE _part = {k}")
        out.parts.append((run_id, path, n))
    first = out.parts[0][0]
    out.pre_sources = _copy(
        con,
        f"SELECT {cols}, '{first}' AS run_id FROM decided WHERE _state = 'skip' ORDER BY _seq",
        store,
        target,
        "pre-sources.parquet",
        out.workdir,
    )
    rcols = ", ".join(f'"{c.name}"' for c in TABLES["rejects"].columns if c.name != "run_id")
    out.pre_rejects = _copy(
        con,
        f"SELECT {rcols}, '{first}' AS run_id FROM new_rejects ORDER BY _seq",
        store,
        target,
        "pre-rejects.parquet",
        out.workdir,
    )


def _copy(con: Any, sql: str, store: Store, target: str, name: str, workdir: str) -> str:
    """COPY a query to Parquet in the plan directory of the store (uploaded if remote)."""
    if not store.is_remote:
        path = os.path.join(target, name)
        con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
        return path
    local = os.path.join(workdir, name)
    con.execute(f"COPY ({sql}) TO '{local}' (FORMAT parquet)")
    path = fs.join(target, name)
    fs.upload(local, path)
    os.unlink(local)
    return path


def remove_plan(store: Store, run_id: str) -> None:
    """Delete a finished run's plan files (gc removes those of dead runs)."""
    fs.delete([i.path for i in fs.walk(plan_dir(store, run_id))])
    fs.prune_empty_dirs(store.path(PLANS))
