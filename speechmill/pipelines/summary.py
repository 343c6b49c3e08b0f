"""Run summaries computed from the committed tables (never from runner metrics)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from speechmill.store import Store, connect


@dataclass
class Summary:
    run_ids: list[str]
    items_in: int = 0
    items_out: int = 0
    recordings_new: int = 0
    audio_s: float = 0.0
    segments: int = 0
    speech_s: float = 0.0
    nbest_lists: int = 0
    mean_n_unique: float | None = None
    rejects: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def xrt(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0

    def format(self) -> str:
        lines = [
            f"run            {', '.join(self.run_ids) or '(nothing new)'}",
            f"items in       {self.items_in}",
            f"items out      {self.items_out}  ({self.recordings_new} new recordings)",
            f"audio          {self.audio_s / 3600:.3f} h  ({self.audio_s:.1f} s)",
            f"segments       {self.segments}  ({self.speech_s:.1f} s of speech)",
        ]
        if self.nbest_lists:
            lines.append(
                f"N-best lists   {self.nbest_lists}  (mean n_unique {self.mean_n_unique:.2f})"
            )
        total = sum(self.rejects.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(self.rejects.items()))
        lines.append(f"rejects        {total}" + (f"  ({detail})" if detail else ""))
        lines.append(f"wall time      {self.wall_s:.1f} s  ({self.xrt:.1f}x RT)")
        return "\n".join(lines)


def summarize(store: Store, run_ids: Sequence[str]) -> Summary:
    s = Summary(list(run_ids))
    if not run_ids:
        return s
    con = connect(store)
    try:
        con.execute("CREATE TEMP TABLE _these(run_id VARCHAR)")
        con.executemany("INSERT INTO _these VALUES (?)", [(r,) for r in run_ids])
        where = "run_id IN (SELECT run_id FROM _these)"
        s.items_in, s.items_out = con.execute(
            f"SELECT count(*), count(recording_id) FROM sources_history WHERE {where}"
        ).fetchone() or (0, 0)
        s.recordings_new, audio = con.execute(
            f"SELECT count(*), coalesce(sum(duration_s), 0) FROM recordings_history WHERE {where}"
        ).fetchone() or (0, 0.0)
        s.audio_s = float(audio)
        s.segments, speech = con.execute(
            f"SELECT count(*), coalesce(sum(duration_s), 0) FROM segments_history WHERE {where}"
        ).fetchone() or (0, 0.0)
        s.speech_s = float(speech)
        s.nbest_lists, mean = con.execute(
            f"SELECT count(*), avg(n_unique) FROM hypotheses_history WHERE {where}"
        ).fetchone() or (0, None)
        s.mean_n_unique = float(mean) if mean is not None else None
        s.rejects = {
            str(c): int(n)
            for c, n in con.execute(
                f"SELECT category, count(*) FROM rejects_history WHERE {where} GROUP BY 1"
            ).fetchall()
        }
        walls = con.execute(f"SELECT wall_s FROM runs_history WHERE {where}").fetchall()
        s.wall_s = float(sum(w for (w,) in walls))
    finally:
        con.close()
    return s
