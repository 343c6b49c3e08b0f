from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from speechmill.errors import StoreError
from speechmill.schemas import TABLES, Reject
from speechmill.store import Store, collect_garbage, connect, view_sql
from speechmill.store.store import Marker
from tests.pipeline.helpers import commit_records


def rej(item: str, run: str, reason: str = "r") -> Reject:
    return Reject(item, "source", None, None, "decode", "empty", reason, None, None, False, run)


def write_run(store: Store, rows: list[Reject], pipeline: str = "test") -> Marker:
    return commit_records(store, {"rejects": rows}, pipeline)


def test_uncommitted_files_are_invisible_and_gc_removes_them(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    write_run(store, [rej("a", "")])
    # a run that wrote data but never committed (crashed)
    h = store.begin("test")
    d = Path(store.run_table_dir("rejects", h.run_id))
    d.mkdir(parents=True)
    pq.write_table(TABLES["rejects"].to_table([rej("b", h.run_id)]), d / "part-0.parquet")
    debris_media = tmp_path / "media" / "ab" / "cd" / ("ab" * 32 + ".flac")
    debris_media.parent.mkdir(parents=True)
    debris_media.write_bytes(b"x")
    con = connect(store)
    assert con.execute("select item_id from rejects").fetchall() == [("a",)]
    # the crashed run's process (this one) is alive: gc keeps its files
    report = collect_garbage(store)
    assert d.exists() and report.kept_active
    # once the intent is gone (the process died / ended), gc removes the debris
    store.end(h)
    report = collect_garbage(store)
    assert not d.exists() and not debris_media.exists()
    assert any("run=" + h.run_id in r for r in report.removed)
    assert connect(store).execute("select count(*) from rejects").fetchone() == (1,)


def test_dead_process_intent_is_debris(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    h = store.begin("test")
    intent = Path(store.active_path(h.run_id))
    data = json.loads(intent.read_text())
    data["pid"] = 2**22 + 12345  # no such process
    intent.write_text(json.dumps(data))
    report = collect_garbage(store, dry_run=True)
    assert f"runs/_active/{h.run_id}.json" in report.removed
    assert intent.exists()  # dry run


def test_latest_commit_wins_per_primary_key(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    write_run(store, [rej("a", "", "first"), rej("b", "", "only")])
    write_run(store, [rej("a", "", "second")])
    con = connect(store)
    assert sorted(con.execute("select item_id, reason from rejects").fetchall()) == [
        ("a", "second"),
        ("b", "only"),
    ]
    assert con.execute("select count(*) from rejects_history").fetchone() == (3,)
    assert con.execute("select count(*) from runs").fetchone() == (2,)


def test_empty_store_has_typed_empty_views(tmp_path: Path) -> None:
    con = connect(Store(str(tmp_path)))
    for name, spec in TABLES.items():
        cur = con.execute(f'select * from "{name}"')
        assert [d[0] for d in cur.description] == spec.schema.names
        assert cur.fetchall() == []


def test_views_sql_works_in_a_fresh_duckdb(tmp_path: Path) -> None:
    import duckdb

    store = Store(str(tmp_path))
    write_run(store, [rej("x", "")])
    con = duckdb.connect()
    con.execute(view_sql(store))
    assert con.execute("select item_id from rejects").fetchall() == [("x",)]


def test_marker_lists_files_with_row_counts_and_is_last(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    m = write_run(store, [rej("a", ""), rej("b", "")])
    tables = {f.table: f.rows for f in m.files}
    assert tables == {"rejects": 2, "runs": 1}
    again = store.markers()[0]
    assert again.run_id == m.run_id and again.files == m.files
    with pytest.raises(StoreError, match="already committed"):
        store.commit(
            store.begin("x", m.run_id),
            config={},
            config_hash="",
            code_version="",
            model_hashes={},
            parent_runs=[],
            runner="",
        )


def test_markers_cannot_point_outside_the_root(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    m = write_run(store, [rej("a", "")])
    p = Path(store.marker_path(m.run_id))
    d = json.loads(p.read_text())
    d["files"][0]["path"] = "tables/../../etc/passwd"
    p.write_text(json.dumps(d))
    assert store.markers() == []  # never followed: ignored with a warning
    assert store.unreadable == [m.run_id]
    report = collect_garbage(store)
    assert report.unreadable == [m.run_id] and report.removed == []


def test_media_paths_come_from_ids_only() -> None:
    assert Store.media_rel("ab" * 32).startswith("media/ab/ab/")
    with pytest.raises(StoreError):
        Store.media_rel("../../x")


def test_gc_keeps_live_remote_host_runs_within_grace(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    h = store.begin("test")
    intent = Path(store.active_path(h.run_id))
    data = json.loads(intent.read_text())
    data["host"] = "another-host"
    intent.write_text(json.dumps(data))
    d = Path(store.run_table_dir("rejects", h.run_id))
    d.mkdir(parents=True)
    (d / "part-0.parquet").write_bytes(b"x")
    assert collect_garbage(store, grace=dt.timedelta(hours=1)).kept_active
    assert d.exists()
    collect_garbage(store, grace=dt.timedelta(0))
    assert not d.exists()
    assert not os.path.exists(store.active_path(h.run_id))


def test_a_source_reject_is_superseded_by_a_later_recording(tmp_path: Path) -> None:
    import time

    from tests.pipeline.test_hostile_input import _source

    store = Store(str(tmp_path))
    write_run(store, [rej("item-a", ""), rej("item-b", "")])
    time.sleep(1.1)  # run ids order by their start second
    fetched = dataclasses.replace(_source("item-a", "t"), recording_id="f" * 64)
    commit_records(store, {"sources": [fetched]})
    con = connect(store)
    assert con.execute("select item_id from rejects").fetchall() == [("item-b",)]
    assert len(con.execute("select * from rejects_history").fetchall()) == 2


def test_files_written_atomically_get_the_umasks_mode_not_0600(tmp_path: Path) -> None:
    """A dataset is shared (a team, a web server for report.html): mkstemp's 0600 would
    lock everyone else out."""
    import stat

    from speechmill.store import fs

    old = os.umask(0o022)
    os.umask(old)
    expected = 0o666 & ~old
    fs.write_bytes_atomic(str(tmp_path / "a" / "report.html"), b"<html></html>")
    src = tmp_path / "local.bin"
    src.write_bytes(b"x")
    fs.upload(str(src), str(tmp_path / "b" / "copy.bin"))
    for p in (tmp_path / "a" / "report.html", tmp_path / "b" / "copy.bin"):
        assert stat.S_IMODE(p.stat().st_mode) == expected
