"""What is already done, derived from committed tables (never from debris)."""

from __future__ import annotations

from dataclasses import dataclass, field

from speechmill.store.store import Store
from speechmill.store.views import connect

# Categories whose rejects depend on the config, not on the item: re-decided each run.
POLICY_PREFIX = "policy_"


@dataclass(frozen=True)
class Ledger:
    """Committed state that decides what a new run skips.

    A source item is done when a committed `sources` row has the same etag and
    either a recording or a non-retryable reject. Retryable rejects (network,
    timeouts) are tried again by the next run, at most `crawl.max_attempts` runs;
    `attempts` counts the runs that already tried. Policy rejects are re-decided
    against the current config (a relaxed policy lets the item through).
    """

    source_etags: dict[str, str | None]
    source_recording: dict[str, str]
    final_rejects: dict[str, str]  # media_id -> category of its non-retryable reject
    recordings: frozenset[str]
    run_ids: tuple[str, ...]
    attempts: dict[str, int] = field(default_factory=dict)
    watermarks: dict[str, dict[str, str]] = field(default_factory=dict)

    @staticmethod
    def empty() -> Ledger:
        return Ledger({}, {}, {}, frozenset(), ())

    @staticmethod
    def load(store: Store) -> Ledger:
        markers = store.markers()
        if not markers:
            return Ledger.empty()
        con = connect(store, markers=markers)
        try:
            etags: dict[str, str | None] = {}
            rec_of: dict[str, str] = {}
            for media_id, etag, recording_id in con.execute(
                "SELECT media_id, etag, recording_id FROM sources"
            ).fetchall():
                etags[media_id] = etag
                if recording_id is not None:
                    rec_of[media_id] = recording_id
            final = {
                str(r[0]): str(r[1])
                for r in con.execute(
                    "SELECT item_id, category FROM rejects "
                    "WHERE item_kind = 'source' AND NOT retryable"
                ).fetchall()
            }
            attempts = {
                str(r[0]): int(r[1])
                for r in con.execute(
                    "SELECT item_id, count(DISTINCT run_id) FROM rejects_history "
                    "WHERE item_kind = 'source' AND retryable GROUP BY 1"
                ).fetchall()
            }
            recs = frozenset(
                r[0] for r in con.execute("SELECT recording_id FROM recordings").fetchall()
            )
        finally:
            con.close()
        watermarks: dict[str, dict[str, str]] = {}
        for m in markers:  # later commits overwrite earlier ones
            for name, wm in dict(m.extra.get("watermarks", {})).items():
                watermarks[str(name)] = {str(k): str(v) for k, v in dict(wm).items()}
        return Ledger(
            etags, rec_of, final, recs, tuple(m.run_id for m in markers), attempts, watermarks
        )

    def is_done(self, media_id: str, etag: str | None) -> bool:
        """Committed with this etag and finished (a recording or a permanent reject)."""
        if media_id not in self.source_etags or self.source_etags[media_id] != etag:
            return False
        return media_id in self.source_recording or media_id in self.final_rejects

    def is_settled(self, media_id: str, etag: str | None = None) -> bool:
        """Done for reasons that do not depend on the config (policy rejects excluded)."""
        if not self.is_done(media_id, etag):
            return False
        category = self.final_rejects.get(media_id)
        return category is None or not category.startswith(POLICY_PREFIX)

    def policy_reject(self, media_id: str) -> str | None:
        category = self.final_rejects.get(media_id)
        if category is not None and category.startswith(POLICY_PREFIX):
            return category
        return None
