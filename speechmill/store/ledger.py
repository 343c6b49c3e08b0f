"""What is already done, derived from committed tables (never from debris), in DuckDB.

A source item is *done* when the latest committed `sources` row has the same etag
and either a recording or a non-retryable reject; it is *settled* when it is done
for reasons that do not depend on the config (a policy reject is re-decided each
run, so a relaxed policy lets the item through). Retryable rejects (network,
timeouts) are tried again by the next run, at most `crawl.max_attempts` runs;
`attempts` counts the runs that already tried.

The rules are SQL over the store's views (`COMMITTED` and `DONE` below), so the
planner applies them to millions of listed items as one out-of-core anti-join
(pipelines/plan.py), and nothing proportional to the corpus is loaded into Python.
"""

from __future__ import annotations

import functools
from typing import Any

from speechmill.store.store import Store
from speechmill.store.views import connect

POLICY_PREFIX = "policy_"
"""Categories whose rejects depend on the config, not on the item: re-decided each run."""

COMMITTED = """
    c AS (SELECT media_id, etag, recording_id FROM sources),
    f AS (SELECT item_id, any_value(category) AS category FROM rejects
          WHERE item_kind = 'source' AND NOT retryable GROUP BY 1),
    a AS (SELECT item_id, count(DISTINCT run_id) AS n FROM rejects_history
          WHERE item_kind = 'source' AND retryable GROUP BY 1)
"""
"""CTEs of committed state: `c` latest source rows, `f` final source rejects, `a` attempts."""


def done(d: str) -> str:
    """SQL: the item aliased `d` (media_id, etag) is done (joined to `c` and `f`)."""
    return (
        f"(c.media_id IS NOT NULL AND c.etag IS NOT DISTINCT FROM {d}.etag "
        "AND (c.recording_id IS NOT NULL OR f.item_id IS NOT NULL))"
    )


SETTLED = f"{done('d')} AND (f.category IS NULL OR f.category NOT LIKE '{POLICY_PREFIX}%')"
"""SQL: done, and not by a policy reject (which the current config decides again)."""


class Ledger:
    """Point questions about committed state, for discovery of remote listings (which stop
    scanning a channel after `crawl.stop_after_known` known entries)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        markers = store.markers()
        self.run_ids = tuple(m.run_id for m in markers)
        self.watermarks: dict[str, dict[str, str]] = {}
        for m in markers:  # later commits overwrite earlier ones
            for name, wm in dict(m.extra.get("watermarks", {})).items():
                self.watermarks[str(name)] = {str(k): str(v) for k, v in dict(wm).items()}
        self._con: Any = connect(store, markers=markers) if markers else None

    @staticmethod
    def remote(store: Store) -> Ledger:
        return Ledger(store)

    @functools.lru_cache(maxsize=100_000)  # noqa: B019 - one ledger per run, bounded
    def is_settled(self, media_id: str, etag: str | None = None) -> bool:
        """Done in a committed run for reasons that do not depend on the config."""
        if self._con is None:
            return False
        row = self._con.execute(
            f"""WITH {COMMITTED}, d AS (SELECT ?::VARCHAR AS media_id, ?::VARCHAR AS etag)
                SELECT {SETTLED} FROM d LEFT JOIN c USING (media_id)
                LEFT JOIN f ON f.item_id = d.media_id""",
            [media_id, etag],
        ).fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
