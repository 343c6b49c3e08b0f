"""What is already done, derived from committed tables (never from debris)."""

from __future__ import annotations

from dataclasses import dataclass

from speechmill.store.store import Store
from speechmill.store.views import connect


@dataclass(frozen=True)
class Ledger:
    """Committed state that decides what a new run skips.

    A source item is done when a committed `sources` row has the same etag and
    either a recording or a non-retryable reject. Retryable rejects (network,
    timeouts) are tried again by the next run.
    """

    source_etags: dict[str, str | None]
    source_recording: dict[str, str]
    final_rejects: frozenset[str]
    recordings: frozenset[str]
    run_ids: tuple[str, ...]

    @staticmethod
    def empty() -> Ledger:
        return Ledger({}, {}, frozenset(), frozenset(), ())

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
            final = frozenset(
                r[0]
                for r in con.execute(
                    "SELECT item_id FROM rejects WHERE item_kind = 'source' AND NOT retryable"
                ).fetchall()
            )
            recs = frozenset(
                r[0] for r in con.execute("SELECT recording_id FROM recordings").fetchall()
            )
        finally:
            con.close()
        return Ledger(etags, rec_of, final, recs, tuple(m.run_id for m in markers))

    def is_done(self, media_id: str, etag: str | None) -> bool:
        if media_id not in self.source_etags or self.source_etags[media_id] != etag:
            return False
        return media_id in self.source_recording or media_id in self.final_rejects
