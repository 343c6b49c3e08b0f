"""Every command's report, computed from the committed tables (never from runner metrics).

Functions here return text, rows or tables and print nothing; `speechmill.cli` prints
them. What a report needs from a pipeline (a plan's decisions, round-trip WERs) is
passed in as data, so this module reads only the store (tests/unit/test_layers.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from speechmill.core.quality.pair_metrics import (
    METRIC_COLUMNS,
    GroupMetrics,
    aggregate,
    format_table,
    to_records,
)
from speechmill.core.text.metrics import corpus_counts
from speechmill.core.text.normalize import get_normalizer
from speechmill.errors import SpeechmillError
from speechmill.schemas import TABLES
from speechmill.schemas.corpus import SourceItem
from speechmill.store import GcReport, Store, connect

# ----------------------------------------------------------------------------- text


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Aligned columns under a dashed rule; long cells cut at 80 characters, None as NULL."""

    def fmt(v: Any) -> str:
        if v is None:
            return "NULL"
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.6g}"
        s = str(v)
        return s if len(s) <= 80 else s[:77] + "..."

    cells = [[fmt(v) for v in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def safe_text(value: object, limit: int = 60) -> str:
    """Remote text for a terminal: control and bidi characters escaped, length capped."""
    text = "" if value is None else str(value)
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode())
        else:
            out.append(ch)
    s = "".join(out)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def json_default(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return str(v)


# ----------------------------------------------------------------------------- run reports


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
    """What corpus runs committed: items, recordings, audio, segments, N-best lists, rejects."""
    s = Summary(list(run_ids))
    if not run_ids:
        return s
    con = connect(store)
    try:
        con.execute("CREATE TEMP TABLE _these(run_id VARCHAR)")
        con.executemany("INSERT INTO _these VALUES (?)", [(r,) for r in run_ids])
        s.items_in, s.items_out = con.execute(
            "SELECT count(*), count(recording_id) FROM sources_history"
            " WHERE run_id IN (SELECT run_id FROM _these)"
        ).fetchone() or (0, 0)
        s.recordings_new, audio = con.execute(
            "SELECT count(*), coalesce(sum(duration_s), 0) FROM recordings_history"
            " WHERE run_id IN (SELECT run_id FROM _these)"
        ).fetchone() or (0, 0.0)
        s.audio_s = float(audio)
        s.segments, speech = con.execute(
            "SELECT count(*), coalesce(sum(duration_s), 0) FROM segments_history"
            " WHERE run_id IN (SELECT run_id FROM _these)"
        ).fetchone() or (0, 0.0)
        s.speech_s = float(speech)
        s.nbest_lists, mean = con.execute(
            "SELECT count(*), avg(n_unique) FROM hypotheses_history"
            " WHERE run_id IN (SELECT run_id FROM _these)"
        ).fetchone() or (0, None)
        s.mean_n_unique = float(mean) if mean is not None else None
        s.rejects = {
            str(c): int(n)
            for c, n in con.execute(
                "SELECT category, count(*) FROM rejects_history"
                " WHERE run_id IN (SELECT run_id FROM _these) GROUP BY 1"
            ).fetchall()
        }
        walls = con.execute(
            "SELECT wall_s FROM runs_history WHERE run_id IN (SELECT run_id FROM _these)"
        ).fetchall()
        s.wall_s = float(sum(w for (w,) in walls))
    finally:
        con.close()
    return s


def summary(store: Store, run_ids: Sequence[str] = ()) -> str:
    """`speechmill summary`: the summary of these runs (default: the latest committed)."""
    runs = list(run_ids) or [m.run_id for m in store.markers()[-1:]]
    return summarize(store, runs).format()


def refine_report(store: Store, run_id: str) -> str:
    """What a refine run committed: utterances, round-0 labels, rejects by reason, N-best."""
    con = connect(store)
    q = con.execute
    try:
        n, hours, recs = q(
            "SELECT count(*), coalesce(sum(duration_s), 0) / 3600, count(DISTINCT recording_id) "
            "FROM utterances_history WHERE run_id = ?",
            [run_id],
        ).fetchone() or (0, 0.0, 0)
        kept = q(
            "SELECT count(*) FROM labels_history WHERE run_id = ? AND decision = 'seed'", [run_id]
        ).fetchone()
        drops = q(
            "SELECT split_part(reason, ':', 1), count(*) FROM rejects_history WHERE run_id = ? "
            "GROUP BY 1 ORDER BY 2 DESC, 1",
            [run_id],
        ).fetchall()
        lists = q(
            "SELECT count(*), avg(n_unique) FROM hypotheses_history WHERE run_id = ?", [run_id]
        ).fetchone() or (0, None)
        wall = q("SELECT wall_s FROM runs WHERE run_id = ?", [run_id]).fetchone()
        audio = q(
            "SELECT coalesce(sum(duration_s), 0) FROM recordings WHERE recording_id IN "
            "(SELECT recording_id FROM utterances_history WHERE run_id = ?)",
            [run_id],
        ).fetchone()
    finally:
        con.close()
    audio_s = audio[0] if audio else 0
    lines = [
        f"run            {run_id}",
        f"recordings     {recs} refined ({audio_s / 3600:.3f} h)",
        f"utterances     {n}  ({hours:.3f} h)",
        f"kept           {kept[0] if kept else 0}  (round-0 labels: seed)",
        f"rejects        {sum(c for _, c in drops)}"
        + (f"  ({', '.join(f'{r} {c}' for r, c in drops)})" if drops else ""),
    ]
    if lists[0]:
        lines.append(f"N-best lists   {lists[0]}  (mean n_unique {lists[1]:.2f})")
    if wall:
        xrt = audio_s / wall[0] if wall[0] else 0
        lines.append(f"wall time      {wall[0]:.1f} s  ({xrt:.1f}x RT)")
    return "\n".join(lines)


def synth_report(store: Store, run_id: str, *, already: int = 0, real: int = 0) -> str:
    """What a synth run committed (figures as `speechmill metrics`).

    `already`: pairs committed before the run; `real`: pairs from real speech it added.
    """
    con = connect(store)
    q = con.execute
    try:
        cols = ", ".join(f'"{c}"' for c in (*METRIC_COLUMNS, "duration_s"))
        rows = (
            con.sql(f"SELECT {cols} FROM pairs_history WHERE run_id = $run", params={"run": run_id})
            .to_arrow_table()
            .to_pylist()
        )
        drops = q(
            "SELECT stage, category, count(*) FROM rejects_history WHERE run_id = ? "
            "GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
            [run_id],
        ).fetchall()
        wall = q("SELECT wall_s FROM runs WHERE run_id = ?", [run_id]).fetchone()
    finally:
        con.close()
    n = len(rows)
    audio = sum(r["duration_s"] for r in rows)
    splits = aggregate(rows, ["split"])
    voices = sorted(aggregate(rows, ["voice"]), key=lambda g: (-g.pairs, g.key["voice"]))
    lines = [
        f"run            {run_id}",
        f"pairs          {n} new ({already} committed before; {real} from real "
        f"speech), {audio / 60:.1f} min of audio",
        "splits         " + (", ".join(f"{g.key['split']} {g.pairs}" for g in splits) or "-"),
        "voices         " + (", ".join(f"{g.key['voice']} {g.pairs}" for g in voices) or "-"),
    ]
    if n:
        (total,) = aggregate(rows, [])
        lines.append(
            f"N-best         mean n_unique {total.mean_n_unique:.2f}; 1-best WER "
            f"{100 * total.wer:.1f}%, oracle WER {100 * total.oracle_wer:.1f}%"
        )
    lines.append("rejects        " + (", ".join(f"{s}/{c} {k}" for s, c, k in drops) or "none"))
    if wall:
        lines.append(
            f"wall           {wall[0]:.1f} s ({60 * n / max(wall[0], 1e-9):.0f} pairs/min)"
        )
    lines.append(f"dataset        {store.root}  (tables: pairs, rejects; media/synth/)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- dataset reports


def runs(store: Store) -> str:
    """`speechmill runs`: every committed run and part, with what each did and skipped.

    A long corpus run commits a part every `runner.commit_every` items (run ids
    `<run>-pNNN`); after a crash the parts committed so far stay, and the next run
    skips their items (`skipped`: the items the run found already committed).
    """
    rows = []
    for m in store.markers():
        x = m.extra
        part = f"{x['part']}/{x['parts']}" if "part" in x and "parts" in x else ""
        counts = {f.table: 0 for f in m.files}
        for f in m.files:
            counts[f.table] += f.rows
        rows.append(
            (
                m.run_id,
                m.pipeline,
                m.committed_at.strftime("%Y-%m-%d %H:%M:%S"),
                part,
                x.get("items", ""),
                x.get("skipped", ""),
                counts.get("recordings", 0),
                counts.get("rejects", 0),
            )
        )
    if not rows:
        return f"no committed runs in {store.root}"
    headers = ["run", "pipeline", "committed (UTC)", "part", "items", "skipped", "recordings"]
    return text_table([*headers, "rejects"], rows)


def tables(store: Store, *, as_json: bool = False) -> str:
    """`speechmill tables`: row counts per table and the committed runs."""
    markers = store.markers()
    con = connect(store, markers=markers)
    counts = {}
    try:
        for name in TABLES:
            row = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            counts[name] = int(row[0]) if row else 0
    finally:
        con.close()
    if as_json:
        runs = [m.run_id for m in markers]
        return json.dumps({"root": store.root, "tables": counts, "runs": runs}, indent=1)
    parts = [
        f"dataset {store.root}: {len(markers)} committed runs",
        text_table(
            ["table", "rows", "primary key"],
            [(n, counts[n], ", ".join(TABLES[n].primary_key)) for n in TABLES],
        ),
    ]
    if markers:
        rows = [
            (
                m.run_id,
                m.pipeline,
                m.committed_at.strftime("%Y-%m-%d %H:%M:%S"),
                sum(f.rows for f in m.files if f.table == "segments"),
                sum(f.rows for f in m.files if f.table == "rejects"),
            )
            for m in markers
        ]
        headers = ["run", "pipeline", "committed (UTC)", "segments", "rejects"]
        parts += ["", text_table(headers, rows)]
    return "\n".join(parts)


def query(store: Store, sql: str, fmt: str = "table") -> str:
    """`speechmill query`: the result of SQL over the views as a table, CSV or JSON (one line).

    The text ends with its newline (CSV rows end in CRLF, as `csv` writes them).
    """
    con = connect(store)
    try:
        try:
            cur = con.execute(sql)
        except duckdb.Error as e:
            raise SpeechmillError(f"query failed: {e}") from None
        headers = [d[0] for d in cur.description] if cur.description else []
        rows = cur.fetchall()
    finally:
        con.close()
    if fmt == "json":
        records = [dict(zip(headers, r, strict=True)) for r in rows]
        return json.dumps(records, default=json_default) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(headers)
        w.writerows(rows)
        return buf.getvalue()
    return text_table(headers, rows) + "\n"


# reasons carry measured values: group them by their wording with numbers masked
REJECT_GROUPS = {
    "category": "category",
    "reason": "regexp_replace(reason, '(^|[^A-Za-z0-9_.])[0-9]+([.][0-9]+)*', '\\1#', 'g')",
    "stage": "stage",
    "source": "source_id",
}


def rejects(store: Store, by: str = "category") -> str:
    """`speechmill rejects`: items, hours and retryable items per category/reason/stage/source."""
    con = connect(store)
    try:
        rows = con.execute(
            f"SELECT {REJECT_GROUPS[by]}, count(*) AS items,"
            " round(coalesce(sum(duration_s), 0) / 3600, 4) AS hours,"
            " count(*) FILTER (WHERE retryable) AS retryable"
            " FROM rejects GROUP BY 1 ORDER BY 2 DESC, 3 DESC, 1"
        ).fetchall()
    finally:
        con.close()
    return text_table([by, "items", "hours", "retryable"], rows)


def sources(
    decisions: Iterable[tuple[str, SourceItem, str]],
    *,
    todo: int,
    rejected: int,
    committed: int,
    as_json: bool = False,
) -> str:
    """`speechmill sources`: each discovered item with its policy decision (one plan's data).

    The text ends with its newline; with `as_json`, one JSON object a line (none, no text).
    """
    if as_json:
        return "".join(
            json.dumps(
                {
                    "source": source,
                    "media_id": item.media_id,
                    "url": item.url,
                    "title": item.title,
                    "license": item.license,
                    "duration_s": item.duration_s,
                    "decision": decision,
                },
                default=json_default,
            )
            + "\n"
            for source, item, decision in decisions
        )
    rows = [
        (
            source,
            item.media_id,
            safe_text(item.title, 40),
            item.license,
            item.duration_s,
            safe_text(decision, 70),
        )
        for source, item, decision in decisions
    ]
    headers = ["source", "media_id", "title", "licence", "duration_s", "decision"]
    return (
        f"{text_table(headers, rows)}\n\n{todo} to fetch, {rejected} skipped by policy or errors, "
        f"{committed} already committed (dry run: nothing fetched)\n"
    )


def gc(report: GcReport, root: str) -> tuple[str, list[str]]:
    """`speechmill gc`: (what was removed, warnings about runs whose files were kept)."""
    verb = "would remove" if report.dry_run else "removed"
    warnings = [
        f"kept the files of run {run_id}: its marker runs/{run_id}.json cannot be read "
        "(repair or delete it, then run gc again)"
        for run_id in report.unreadable
    ]
    lines = [f"{verb} {rel}" for rel in report.removed]
    lines.append(
        f"{verb} {len(report.removed)} files ({report.bytes_freed / 1e6:.1f} MB) from {root}"
        + (
            f"; kept {len(report.kept_active)} files of runs in progress"
            if report.kept_active
            else ""
        )
    )
    return "\n".join(lines), warnings


# ----------------------------------------------------------------------------- pairs


def pairs_table(store: Store, where: str | None = None, columns: Sequence[str] = ()) -> pa.Table:
    """The committed `pairs` (optionally filtered by SQL and cut to columns), by pair_id."""
    con = connect(store)
    cols = ", ".join(columns) if columns else "*"
    try:
        sql = (
            f"SELECT {cols} FROM pairs" + (f" WHERE {where}" if where else "") + " ORDER BY pair_id"
        )
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def metric_columns(*, before_substitution: bool = False, roundtrip: bool = False) -> list[str]:
    """The `pairs` columns `speechmill metrics` reads (hypotheses as decoded if asked)."""
    extra = ("pair_id", "language", "clean_audio_uri") if roundtrip else ()
    scored = "hypotheses_presub AS hypotheses" if before_substitution else "hypotheses"
    return [scored if c == "hypotheses" else c for c in (*METRIC_COLUMNS, *extra)]


def metric_groups(table: pa.Table, by: Sequence[str]) -> list[GroupMetrics]:
    return aggregate(table.to_pylist(), by)


def metrics(
    groups: Sequence[GroupMetrics],
    by: Sequence[str],
    *,
    roundtrip: Mapping[str, Mapping[str, float]] | None = None,
    as_json: bool = False,
) -> str:
    """`speechmill metrics`: the grouped figures, and per-voice round-trip WER if measured."""
    roundtrip = roundtrip or {}
    if as_json:
        return json.dumps({"groups": to_records(groups), "roundtrip": roundtrip}, indent=2)
    text = format_table(groups, by)
    if roundtrip:
        rows = [(v, r["pairs"], f"{100 * r['wer']:.1f}%") for v, r in sorted(roundtrip.items())]
        text += "\n\n" + text_table(["voice", "pairs", "round-trip WER"], rows)
    return text


def text_rejects(store: Store) -> list[tuple[str, int]]:
    """Texts the synth text stage rejected: (reason, count), most frequent first."""
    con = connect(store)
    try:
        return [
            (str(reason), int(n))
            for reason, n in con.execute(
                "SELECT reason, count(*) FROM rejects WHERE stage = 'text' "
                "GROUP BY 1 ORDER BY 2 DESC, 1"
            ).fetchall()
        ]
    finally:
        con.close()


# ----------------------------------------------------------------------------- demo


def label_wer(root: str | Store, texts: Sequence[tuple[str, str]]) -> tuple[float, int]:
    """Corpus WER (normalised) of the segments of each (source URL, known text) against the text.

    Each recording's segments are joined in order; returns (WER, reference words).
    """
    norm = get_normalizer("whisper-english")
    con = connect(root)
    try:
        hyp = dict(
            con.execute(
                "SELECT s.url, string_agg(g.text, ' ' ORDER BY g.start_sample) FROM sources s "
                "LEFT JOIN segments g USING (recording_id) GROUP BY 1"
            ).fetchall()
        )
    finally:
        con.close()
    counts = corpus_counts([(norm(text), norm(hyp.get(url) or "")) for url, text in texts])
    return counts.rate, counts.ref_len


def nbest_diversity(store: Store) -> tuple[float, int, int]:
    """(mean n_unique, N-best lists, lists with a repeated hypothesis) over `hypotheses`."""
    con = connect(store)
    try:
        n_unique, lists, dup = con.execute(
            "SELECT avg(n_unique), count(*), count(*) FILTER (WHERE len(list_distinct(texts_norm)) "
            "< len(texts_norm)) FROM hypotheses"
        ).fetchone() or (0.0, 0, 0)
    finally:
        con.close()
    return n_unique, lists, dup
