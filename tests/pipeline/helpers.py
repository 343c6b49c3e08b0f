from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from speechmill.store import Store, connect
from speechmill.store.store import Marker


def rows(root: Path | str, sql: str) -> list[tuple]:
    con = connect(Store(str(root)))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def check_accounting(root: Path | str, run_id: str) -> None:
    """Every input item of a stage has >= 1 child row or exactly one reject."""
    q = lambda sql: rows(root, sql.replace("$RUN", f"'{run_id}'"))  # noqa: E731
    # sources -> recordings
    bad = q("""
        select s.media_id, s.recording_id, count(r.item_id) from sources_history s
        left join rejects_history r on r.item_id = s.media_id and r.run_id = s.run_id
        where s.run_id = $RUN group by 1, 2
        having (s.recording_id is null) = (count(r.item_id) = 0) or count(r.item_id) > 1
    """)
    assert bad == [], f"sources without exactly one outcome: {bad}"
    # recordings -> segments (or chunk rejects) or one recording reject
    bad = q("""
        select rec.recording_id,
          (select count(*) from segments_history g where g.recording_id = rec.recording_id
             and g.run_id = $RUN) as segs,
          (select count(*) from rejects_history j where j.parent_id = rec.recording_id
             and (j.item_kind = 'chunk' or (j.stage = 'write' and j.item_kind = 'segments'))
             and j.run_id = $RUN) as chunk_rejects,
          (select count(*) from rejects_history j where j.item_id = rec.recording_id
             and j.run_id = $RUN) as rec_rejects
        from recordings_history rec where rec.run_id = $RUN
    """)
    for rid, segs, chunk_rejects, rec_rejects in bad:
        assert (segs + chunk_rejects > 0) != (rec_rejects == 1), (
            rid,
            segs,
            chunk_rejects,
            rec_rejects,
        )
        assert rec_rejects <= 1
    # every segment has its N-best list (or a row that could not be written)
    missing = q("""select g.segment_id from segments_history g where g.run_id = $RUN and not exists
        (select 1 from hypotheses_history h where h.item_id = g.segment_id and h.run_id = $RUN)
        and not exists (select 1 from rejects_history j where j.stage = 'write'
        and split_part(j.item_id, '/', 1) = g.segment_id and j.run_id = $RUN)""")
    assert missing == []


def no_duplicates(root: Path | str) -> None:
    from speechmill.schemas import TABLES

    for name, spec in TABLES.items():
        pk = ", ".join(spec.primary_key)
        dup = rows(root, f'select {pk}, count(*) from "{name}" group by {pk} having count(*) > 1')
        assert dup == [], f"{name} has duplicate keys {dup[:3]}"


def commit_records(
    store: Store, tables: dict[str, list[Any]], pipeline: str = "test", **commit: Any
) -> Marker:
    """One committed run of `pipeline` holding these records (their run_id set to the
    run's): the store's begin -> write_parts -> manifest -> commit, without a pipeline.
    `commit` overrides the marker's fields (config, config_hash, model_hashes, ...)."""
    from speechmill.transforms.write import write_parts

    h = store.begin(pipeline)
    rows = {t: [dataclasses.replace(r, run_id=h.run_id) for r in rs] for t, rs in tables.items()}
    store.write_manifest(h.run_id, write_parts(store, h.run_id, rows))
    fields: dict[str, Any] = {
        "config": {},
        "config_hash": "h",
        "code_version": "t",
        "model_hashes": {},
        "parent_runs": [],
        "runner": "none",
    }
    marker = store.commit(h, **(fields | commit))
    store.end(h)
    return marker
