"""`speechmill report`: one self-contained HTML file that describes a dataset.

    from speechmill.report_html import write_report
    from speechmill.store import Store

    where = write_report(Store("./data"))            # <root>/report.html
    write_report(store, "out/report.html")           # any local path (or a URL)

API
---
- `write_report(store, out=None, *, progress=None) -> Path | str` gathers, renders and
  writes the report. Without `out` it goes to `report.html` at the dataset root,
  written through the store's filesystem layer (`speechmill.store.fs`), so `s3://` and
  `gs://` roots work; `out` is a local path (a URL is accepted too). Returns where it
  wrote: a `Path` for a local file, the URL (a `str`) for an object store. `progress`
  shows a bar (`desc="report"`, one step per section) under `speechmill.progress`'s
  rules (a terminal only; `False` never).
- `gather(store, *, progress=None) -> ReportData` runs every query: DuckDB over the
  store's views (`speechmill.store.connect`), committed rows only. No HTML.
- `render_report(data) -> str` turns a `ReportData` into the page. Pure: no I/O, no
  clock, so a test can render hand-built data.

Sections (each shows only what the dataset has; otherwise it says "no <x> in this
dataset"; an empty dataset gives a page saying it is empty): hours (per source,
licence, language and run; the funnel recordings -> segments -> utterances -> kept
utterances), durations, speech rate, alignment scores, rejects (by stage/category,
over runs, top reasons), N-best diversity, synthetic pairs (WER/CER/oracle by voice,
SNR bucket, augmentation: `reports.metric_groups`), relabelling rounds, and the
dataset card (what it is, how it was built from the run markers' configs and model
hashes, licences, an attribution summary). docs/report.md describes each.

The page is one file: plots are inline SVG drawn by matplotlib (text as SVG text,
ids made unique per figure), tables are plain HTML (a small inline script sorts
them on a click; a Content-Security-Policy allows that script only, by its hash,
and no network request at all). Every text that comes from the data (titles,
authors, URLs, reasons, names, configs) is HTML-escaped; only http(s) URLs become
links.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import html
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from speechmill import __version__
from speechmill.core.quality.pair_metrics import GroupMetrics
from speechmill.progress import bar
from speechmill.reports import REJECT_GROUPS, metric_columns, metric_groups
from speechmill.schemas import TABLES
from speechmill.store import Store, connect, fs

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

# ============================================================================ data

Cell = str | int | float | None

KINDS = ("text", "int", "hours", "seconds", "num", "pct", "url", "code")
"""How a table column shows its cells: `hours` 3 decimals, `seconds` 2, `num` 4
significant digits, `pct` a fraction as a percentage, `url` a link for http(s)."""


@dataclass(frozen=True)
class Col:
    name: str
    kind: str = "text"


@dataclass(frozen=True)
class Table:
    """Rows under named columns; numbers keep their exact value in `data-v`."""

    key: str
    columns: tuple[Col, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str = ""
    note: str = ""


@dataclass(frozen=True)
class Histogram:
    key: str
    title: str
    xlabel: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class Bars:
    """One bar per category and series (grouped, or stacked)."""

    key: str
    title: str
    categories: tuple[str, ...]
    series: tuple[tuple[str, tuple[float, ...]], ...]
    ylabel: str = ""
    stacked: bool = False
    horizontal: bool = False
    percent: bool = False


@dataclass(frozen=True)
class Text:
    text: str
    kind: str = "p"  # "p", "note" or "warn"


@dataclass(frozen=True)
class Code:
    """Preformatted text folded under a summary line (configs)."""

    summary: str
    text: str


Block = Table | Histogram | Bars | Text | Code


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    blocks: tuple[Block, ...] = ()
    absent: str = ""  # "no <x> in this dataset": the section has nothing to show


@dataclass(frozen=True)
class ReportData:
    root: str
    generated_at: dt.datetime
    version: str
    runs: int
    figures: tuple[tuple[str, str], ...] = ()  # key figures: (label, value)
    sections: tuple[Section, ...] = ()

    @property
    def empty(self) -> bool:
        return self.runs == 0


# ============================================================================ queries

LIMIT_ROWS = 25  # rows of a breakdown before the rest is folded into one "other" row
LIMIT_RUNS = 60  # runs shown in per-run tables and charts (the latest)
LIMIT_REASONS = 20
LIMIT_ATTRIBUTION = 50
LIMIT_CONFIGS = 12

# words and non-space characters of a text, for speech rates
_MACROS = (
    r"CREATE OR REPLACE TEMP MACRO sm_words(t) AS CASE WHEN t IS NULL OR trim(t) = '' THEN 0 "
    r"ELSE len(regexp_split_to_array(trim(t), '\s+')) END",
    r"CREATE OR REPLACE TEMP MACRO sm_chars(t) AS length(regexp_replace(coalesce(t, ''), "
    r"'\s', '', 'g'))",
)

DURATIONS: dict[str, str] = {
    "recordings": "SELECT duration_s AS x FROM recordings",
    "segments": "SELECT duration_s AS x FROM segments",
    "utterances": "SELECT duration_s AS x FROM utterances",
    "kept utterances": "SELECT duration_s AS x FROM kept_utterances",
    "pairs": "SELECT duration_s AS x FROM pairs",
}
"""Distributions of durations (s), each a query of one column `x`."""

RATES: dict[str, str] = {
    "segments, words/s": "SELECT sm_words(text) / duration_s AS x FROM segments "
    "WHERE duration_s > 0",
    "segments, characters/s": "SELECT sm_chars(text) / duration_s AS x FROM segments "
    "WHERE duration_s > 0",
    "utterances, words/s": "SELECT sm_words(text) / duration_s AS x FROM utterances "
    "WHERE duration_s > 0",
    "utterances, characters/s": "SELECT sm_chars(text) / duration_s AS x FROM utterances "
    "WHERE duration_s > 0",
}
"""Speech rates: words (whitespace-separated) or non-space characters per second."""

ALIGN_SCORE = "SELECT align_score AS x FROM utterances"
CER_PREV = "SELECT cer_prev AS x FROM labels WHERE round > 0"

HOURS_BY: dict[str, str] = {
    "source": "coalesce(s.source_name, '(unknown)')",
    "licence": "coalesce(r.license, '(unknown)')",
    "language": "coalesce(r.language, '(unknown)')",
}
"""Dimensions of the hours tables, each an expression over recordings `r` and their
first source item `s`."""

STATS_COLUMNS = (
    Col("items", "int"),
    Col("mean", "num"),
    Col("p5", "num"),
    Col("median", "num"),
    Col("p95", "num"),
    Col("min", "num"),
    Col("max", "num"),
)


class Query:
    """The report's queries over one connection to the views."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        for macro in _MACROS:
            con.execute(macro)

    def all(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[Any]:
        return self.con.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        rows = self.con.execute(sql, params).fetchall()  # fetched to the end: no open result
        if not rows:
            raise RuntimeError(f"no row from {sql}")
        return rows[0]

    def count(self, view: str) -> int:
        if view not in _VIEWS:
            raise ValueError(f"not a view: {view}")
        return int(self.one(f'SELECT count(*) FROM "{view}"')[0])  # noqa: S608 - declared name

    def stats(self, source: str) -> tuple[Cell, ...]:
        """(items, mean, p5, median, p95, min, max) of the finite `x` of a query."""
        n, mean, qs, lo, hi = self.one(
            f"SELECT count(x), avg(x), quantile_cont(x, [0.05, 0.5, 0.95]), min(x), max(x) "  # noqa: S608 - sources are this module's constants
            f"FROM ({source}) WHERE x IS NOT NULL AND isfinite(x)"
        )
        q = [float(v) for v in qs] if qs else [None, None, None]
        return (int(n), _f(mean), q[0], q[1], q[2], _f(lo), _f(hi))

    def histogram(self, key: str, title: str, xlabel: str, source: str) -> Histogram | None:
        """Counts of the finite `x` of a query in equal-width bins (None without any)."""
        where = f"FROM ({source}) WHERE x IS NOT NULL AND isfinite(x)"
        lo, hi, n = self.one(f"SELECT min(x), max(x), count(x) {where}")
        if not n:
            return None
        lo, hi = float(lo), float(hi)
        if hi <= lo:
            return Histogram(key, title, xlabel, (lo - 0.5, lo + 0.5), (int(n),))
        bins = min(40, max(5, round(2 * math.sqrt(n))))
        width = (hi - lo) / bins
        counts = [0] * bins
        for b, c in self.all(
            f"SELECT least(CAST(floor((x - $lo) / $w) AS BIGINT), {bins - 1}) AS b, count(*) "
            f"{where} GROUP BY b",
            {"lo": lo, "w": width},
        ):
            counts[int(b)] += int(c)
        edges = (*(lo + i * width for i in range(bins)), hi)
        return Histogram(key, title, xlabel, edges, tuple(counts))


_VIEWS = frozenset(TABLES) | {"kept_utterances", "labels_latest"}


def _f(v: Any) -> float | None:
    return None if v is None else float(v)


def _h(seconds: Any) -> float:
    return float(seconds or 0) / 3600


def _fold(rows: list[tuple[Cell, ...]], limit: int, label: int = 1) -> list[tuple[Cell, ...]]:
    """The first `limit` rows, the rest summed into one `(N others)` row."""
    if len(rows) <= limit:
        return rows
    rest = rows[limit:]
    summed: list[Cell] = [f"({len(rest)} others)", *[""] * (label - 1)]
    for i in range(label, len(rows[0])):
        vals = [r[i] for r in rest]
        nums = [v for v in vals if isinstance(v, int | float)]
        summed.append(sum(nums) if len(nums) == len(vals) else None)
    return [*rows[:limit], tuple(summed)]


def _short(text: object, limit: int = 40) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _utc(v: Any) -> str:
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc)
        return v.strftime("%Y-%m-%d %H:%M")
    return "" if v is None else str(v)


# ---------------------------------------------------------------------------- sections


def cols(specs: str) -> tuple[Col, ...]:
    """Columns from `name|name:kind|...` (kind from `KINDS`; text by default)."""
    out = []
    for spec in specs.split("|"):
        name, _, kind = spec.rpartition(":")
        out.append(Col(name, kind) if name and kind in KINDS else Col(spec))
    return tuple(out)


def _rows(rows: Sequence[Sequence[Cell]]) -> tuple[tuple[Cell, ...], ...]:
    return tuple(tuple(r) for r in rows)


def _tally(q: Query, view: str) -> tuple[int, float]:
    """(rows, seconds of audio) of a view with a `duration_s` column."""
    if view not in _VIEWS:
        raise ValueError(f"not a view: {view}")
    n, secs = q.one(f'SELECT count(*), coalesce(sum(duration_s), 0) FROM "{view}"')  # noqa: S608
    return int(n), float(secs)


def _overview(q: Query) -> tuple[tuple[str, str], ...]:
    figs = [("committed runs", f"{q.count('runs'):,}")]
    for view in ("recordings", "segments", "kept_utterances", "pairs"):
        n, secs = _tally(q, view)
        if n:
            figs.append((f"{n:,} {view.replace('_', ' ')}", f"{_h(secs):.2f} h"))
    rejects = q.count("rejects")
    if rejects:
        figs.append(("rejects", f"{rejects:,}"))
    return tuple(figs)


def _hours_by(q: Query, dim: str) -> list[tuple[Cell, ...]]:
    expr = HOURS_BY[dim]
    rows = q.all(
        f"""WITH seg AS (SELECT recording_id, count(*) AS n, sum(duration_s) AS d
            FROM segments GROUP BY 1),
        kept AS (SELECT recording_id, count(*) AS n, sum(duration_s) AS d
            FROM kept_utterances GROUP BY 1)
        SELECT {expr} AS k, count(*), sum(r.duration_s) / 3600,
            coalesce(sum(seg.n), 0), coalesce(sum(seg.d), 0) / 3600,
            coalesce(sum(kept.n), 0), coalesce(sum(kept.d), 0) / 3600
        FROM recordings r LEFT JOIN sources s ON s.media_id = r.media_id
        LEFT JOIN seg ON seg.recording_id = r.recording_id
        LEFT JOIN kept ON kept.recording_id = r.recording_id
        GROUP BY 1 ORDER BY 3 DESC, 1"""  # noqa: S608 - HOURS_BY's constant expressions
    )
    return _fold([tuple(r) for r in rows], LIMIT_ROWS)


def hours_section(q: Query) -> Section:
    title = "Hours"
    recs, rec_s = _tally(q, "recordings")
    if not recs and not q.count("pairs"):
        return Section("hours", title, absent="no recordings or pairs in this dataset")
    blocks: list[Block] = []
    if recs:
        seg_n, seg_s = _tally(q, "segments")
        utt_n, utt_s = _tally(q, "utterances")
        kept_n, kept_s = _tally(q, "kept_utterances")
        funnel = [("recordings", recs, rec_s), ("segments", seg_n, seg_s)]
        if utt_n:
            funnel += [("utterances", utt_n, utt_s), ("kept utterances", kept_n, kept_s)]
        blocks.append(
            Bars(
                "funnel",
                "Hours from raw audio to kept utterances",
                tuple(name for name, _, _ in funnel),
                (("hours", tuple(_h(s) for _, _, s in funnel)),),
                ylabel="hours",
                horizontal=True,
            )
        )
        blocks.append(
            Table(
                "funnel",
                cols("stage|items:int|hours:hours|of recording hours:pct"),
                tuple((FUNNEL[k], n, _h(s), s / rec_s if rec_s else None) for k, n, s in funnel),
                caption="The funnel: raw → refined → kept",
            )
        )
        if not utt_n:
            blocks.append(Text("No refined utterances yet: `speechmill refine` cuts them.", "note"))
        hour_cols = "recordings:int|recording h:hours|segments:int|segment h:hours"
        hour_cols += "|kept utterances:int|kept h:hours"
        for dim in HOURS_BY:
            rows = _hours_by(q, dim)
            if dim == "source" and len(rows) > 1:
                top = rows[:LIMIT_ROWS]
                series = [("recordings", 2), ("segments", 4), ("kept utterances", 6)]
                blocks.append(
                    Bars(
                        "hours-source",
                        "Hours per source",
                        tuple(_short(r[0]) for r in top),
                        tuple((n, tuple(float(r[i] or 0) for r in top)) for n, i in series),
                        ylabel="hours",
                        horizontal=True,
                    )
                )
            blocks.append(
                Table(f"hours-{dim}", cols(f"{dim}|{hour_cols}"), tuple(rows), f"Hours per {dim}")
            )
    if q.count("pairs"):
        rows = q.all(
            "SELECT source, CASE WHEN is_synthetic THEN 'synthetic' ELSE 'real' END, split, "
            "count(*), sum(duration_s) / 3600 FROM pairs GROUP BY 1, 2, 3 ORDER BY 5 DESC, 1, 2, 3"
        )
        blocks.append(
            Table(
                "hours-pairs",
                cols("text source|audio|split|pairs:int|hours:hours"),
                tuple(_fold([tuple(r) for r in rows], LIMIT_ROWS, label=3)),
                caption="Pairs: audio hours per text source and split",
            )
        )
    runs = q.all(PER_RUN)
    shown = runs[-LIMIT_RUNS:]
    blocks.append(
        Table(
            "hours-run",
            cols(
                "run:code|pipeline|committed (UTC)|recordings:int|recording h:hours|"
                "segment h:hours|utterance h:hours|labels:int|pairs:int|pair h:hours|rejects:int"
            ),
            tuple((r[0], r[1], _utc(r[2]), *r[3:]) for r in shown),
            caption="What each run added",
            note=f"The latest {len(shown)} of {len(runs)} runs." if len(runs) > len(shown) else "",
        )
    )
    return Section("hours", title, tuple(blocks))


FUNNEL = {
    "recordings": "recordings (raw audio)",
    "segments": "segments (speech found by VAD, transcribed)",
    "utterances": "utterances (aligned, resegmented: refined)",
    "kept utterances": "kept utterances (their latest label keeps them)",
}

PER_RUN = """WITH rec AS (SELECT run_id, count(*) AS n, sum(duration_s) AS d
    FROM recordings_history GROUP BY 1),
seg AS (SELECT run_id, sum(duration_s) AS d FROM segments_history GROUP BY 1),
utt AS (SELECT run_id, sum(duration_s) AS d FROM utterances_history GROUP BY 1),
lab AS (SELECT run_id, count(*) AS n FROM labels_history GROUP BY 1),
pr AS (SELECT run_id, count(*) AS n, sum(duration_s) AS d FROM pairs_history GROUP BY 1),
rj AS (SELECT run_id, count(*) AS n FROM rejects_history GROUP BY 1)
SELECT r.run_id, r.pipeline, r.committed_at, coalesce(rec.n, 0),
    coalesce(rec.d, 0) / 3600, coalesce(seg.d, 0) / 3600, coalesce(utt.d, 0) / 3600,
    coalesce(lab.n, 0), coalesce(pr.n, 0), coalesce(pr.d, 0) / 3600, coalesce(rj.n, 0)
FROM runs r LEFT JOIN rec USING (run_id) LEFT JOIN seg USING (run_id)
LEFT JOIN utt USING (run_id) LEFT JOIN lab USING (run_id) LEFT JOIN pr USING (run_id)
LEFT JOIN rj USING (run_id)
ORDER BY r.committed_at, r.run_id"""
"""What each committed run wrote (history rows: a later run's newer row does not hide it)."""


def durations_section(q: Query) -> Section:
    blocks: list[Block] = []
    rows: list[tuple[Cell, ...]] = []
    for name, source in DURATIONS.items():
        stats = q.stats(source)
        if not stats[0]:
            continue
        total = q.one(f"SELECT coalesce(sum(x), 0) FROM ({source})")[0]  # noqa: S608 - constants
        rows.append((name, stats[0], _h(total), *stats[1:]))
        if name != "kept utterances":
            title = f"{name.capitalize()}: duration"
            hist = q.histogram(f"duration-{name}", title, "seconds", source)
            blocks += [hist] if hist else []
    if not rows:
        absent = "no recordings, segments or pairs in this dataset"
        return Section("durations", "Durations", absent=absent)
    table = Table(
        "durations",
        (Col("of"), STATS_COLUMNS[0], Col("hours", "hours"), *STATS_COLUMNS[1:]),
        tuple(rows),
        caption="Durations in seconds",
    )
    return Section("durations", "Durations", (*blocks, table))


def speech_rate_section(q: Query) -> Section:
    rows = []
    blocks: list[Block] = []
    for name, source in RATES.items():
        stats = q.stats(source)
        if not stats[0]:
            continue
        rows.append((name, *stats))
        if name.endswith("words/s"):
            kind = name.split(",")[0]
            title = f"{kind.capitalize()}: words per second"
            hist = q.histogram(f"rate-{kind}", title, "words/s", source)
            blocks += [hist] if hist else []
    if not rows:
        absent = "no transcribed segments or utterances in this dataset"
        return Section("speech-rate", "Speech rate", absent=absent)
    table = Table(
        "speech-rate",
        (Col("text per second of audio"), *STATS_COLUMNS),
        tuple(rows),
        caption="Words (split at whitespace) and non-space characters per second",
    )
    return Section("speech-rate", "Speech rate", (*blocks, table))


def alignment_section(q: Query) -> Section:
    if not q.count("utterances"):
        return Section("alignment", "Alignment", absent="no aligned utterances in this dataset")
    rows = q.all(
        "SELECT aligner, count(*), avg(align_score), quantile_cont(align_score, 0.05), "
        "median(align_score), count(*) FILTER (WHERE unaligned_words > 0), "
        "sum(unaligned_words), sum(len(words)) FROM utterances GROUP BY 1 ORDER BY 2 DESC, 1"
    )
    table = Table(
        "alignment",
        cols(
            "aligner:code|utterances:int|mean score:num|p5 score:num|"
            "median score:num|with unaligned words:int|unaligned words:int|"
            "aligned words:int"
        ),
        _rows(rows),
        caption="Alignment scores (mean word score, 0..1) per aligner",
    )
    hist = q.histogram("align-score", "Utterances: alignment score", "mean word score", ALIGN_SCORE)
    return Section("alignment", "Alignment", (*([hist] if hist else []), table))


def rejects_section(q: Query) -> Section:
    if not q.count("rejects"):
        return Section("rejects", "Rejects", absent="no rejects in this dataset")
    by_cat = q.all(
        "SELECT stage, category, count(*), coalesce(sum(duration_s), 0) / 3600, "
        "count(*) FILTER (WHERE retryable) FROM rejects GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"
    )
    top = by_cat[:LIMIT_ROWS]
    blocks: list[Block] = [
        Bars(
            "rejects-category",
            "Rejected items by stage/category",
            tuple(_short(f"{s}/{c}") for s, c, *_ in top),
            (("items", tuple(float(r[2]) for r in top)),),
            ylabel="items",
            horizontal=True,
        )
    ]
    over = _rejects_over_runs(q)
    if over is not None:
        blocks.append(over)
    blocks.append(
        Table(
            "rejects-category",
            cols("stage|category|items:int|hours:hours|retryable:int"),
            _rows(by_cat),
            caption="Rejects by stage and category (a reject a later run superseded is gone)",
        )
    )
    top_reasons = q.all(
        f"SELECT stage, category, {REJECT_GROUPS['reason']} AS why, count(*), "  # noqa: S608
        "coalesce(sum(duration_s), 0) / 3600, min(reason) FROM rejects "
        "GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3 LIMIT ?",
        [LIMIT_REASONS],
    )
    blocks.append(
        Table(
            "rejects-reasons",
            cols("stage|category|reason (numbers as #)|items:int|hours:hours|example"),
            _rows(top_reasons),
            caption=f"Top {LIMIT_REASONS} reasons",
            note="`speechmill rejects --by reason` lists them all.",
        )
    )
    return Section("rejects", "Rejects", tuple(blocks))


def _rejects_over_runs(q: Query) -> Bars | None:
    """Stacked bars: the rejects each run wrote (history), by category (top 8 + other)."""
    over = q.all(
        "SELECT r.run_id, j.category, count(*) FROM rejects_history j JOIN runs r "
        "USING (run_id) GROUP BY r.run_id, r.committed_at, j.category "
        "ORDER BY r.committed_at, r.run_id, j.category"
    )
    run_ids = list(dict.fromkeys(r for r, _, _ in over))[-LIMIT_RUNS:]
    if len(run_ids) < 2:
        return None
    totals: dict[str, int] = {}
    for _, c, n in over:
        totals[c] = totals.get(c, 0) + int(n)
    cats = sorted(totals, key=lambda c: (-totals[c], c))
    keep = set(cats[:8])
    cell: dict[tuple[str, str], float] = {}
    for r, c, n in over:
        k = c if c in keep else "other"
        cell[(r, k)] = cell.get((r, k), 0) + int(n)
    names = cats[:8] + (["other"] if len(cats) > 8 else [])
    return Bars(
        "rejects-runs",
        "Rejects each run wrote, by category",
        tuple(run_ids),
        tuple((c, tuple(cell.get((r, c), 0.0) for r in run_ids)) for c in names),
        ylabel="items",
        stacked=True,
    )


NBEST_LISTS = (
    "SELECT item_kind AS kind, n_unique, n_requested, len(texts_norm) AS n, "
    "len(list_distinct(texts_norm)) AS d FROM hypotheses UNION ALL "
    "SELECT 'pair', n_unique, n_requested, len(hypotheses), len(list_distinct(hypotheses)) "
    "FROM pairs"
)
"""Every N-best list: of segments, utterances (`hypotheses`) and pairs."""


def nbest_section(q: Query) -> Section:
    rows = q.all(
        "SELECT kind, count(*), avg(n_unique), avg(n_requested), "  # noqa: S608 - a constant
        "count(*) FILTER (WHERE n_unique <= 1), count(*) FILTER (WHERE d < n) "
        f"FROM ({NBEST_LISTS}) GROUP BY 1 ORDER BY 1"
    )
    if not rows:
        return Section("nbest", "N-best diversity", absent="no N-best lists in this dataset")
    table = Table(
        "nbest",
        cols(
            "items|lists:int|mean n_unique:num|mean n_requested:num|"
            "one distinct hypothesis:int|with a repeated hypothesis:int"
        ),
        _rows(rows),
        caption="Distinct hypotheses per N-best list (after normalisation)",
    )
    dist = q.all(
        f"SELECT kind, n_unique, count(*) FROM ({NBEST_LISTS}) GROUP BY 1, 2"  # noqa: S608
    )
    values = range(min(int(n) for _, n, _ in dist), max(int(n) for _, n, _ in dist) + 1)
    counts = {(k, int(n)): float(c) for k, n, c in dist}
    hist = Bars(
        "nbest-n-unique",
        "N-best lists by number of distinct hypotheses (n_unique)",
        tuple(str(n) for n in values),
        tuple(
            (k, tuple(counts.get((k, n), 0.0) for n in values))
            for k in sorted({k for k, _, _ in dist})
        ),
        ylabel="lists",
    )
    return Section("nbest", "N-best diversity", (hist, table))


PAIR_GROUPS: tuple[tuple[str, str], ...] = (
    ("snr", "SNR bucket (dB)"),
    ("voice", "voice"),
    ("aug", "augmentation"),
    ("split", "split"),
    ("is_synthetic", "audio"),
)
PAIR_COLUMNS = cols(
    "pairs:int|words:int|WER:pct|sub:pct|del:pct|ins:pct|CER:pct|"
    "oracle WER:pct|comp. oracle:pct|mean n_unique:num"
)


def _metrics_table(dim: str, label: str, groups: Sequence[GroupMetrics]) -> Table:
    rows = tuple(
        (
            g.key.get(dim, "all"),
            g.pairs,
            g.ref_words,
            g.wer,
            g.sub_rate,
            g.del_rate,
            g.ins_rate,
            g.cer,
            g.oracle_wer,
            g.compositional_oracle_wer,
            g.mean_n_unique,
        )
        for g in groups
    )
    caption = f"Error rates of the 1-best and the N-best oracle by {label}"
    return Table(f"pairs-{dim}", (Col(label), *PAIR_COLUMNS), rows, caption)


def pairs_section(q: Query) -> Section:
    title = "Synthetic pairs"
    if not q.count("pairs"):
        return Section("pairs", title, absent="no pairs in this dataset")
    select = f"SELECT {', '.join(metric_columns())} FROM pairs ORDER BY pair_id"  # noqa: S608
    table = q.con.sql(select).to_arrow_table()
    blocks: list[Block] = []
    tables: list[Block] = [_metrics_table("all", "all pairs", metric_groups(table, []))]
    for dim, label in PAIR_GROUPS:
        groups = metric_groups(table, [dim])
        if dim == "is_synthetic" and len(groups) < 2:
            continue
        if dim in ("snr", "voice", "aug") and len(groups) > 1:
            shown = groups[:LIMIT_ROWS]
            blocks.append(
                Bars(
                    f"pairs-{dim}",
                    f"WER, CER and oracle WER by {label}",
                    tuple(_short(g.key[dim]) for g in shown),
                    (
                        ("WER", tuple(g.wer for g in shown)),
                        ("CER", tuple(g.cer for g in shown)),
                        ("oracle WER", tuple(g.oracle_wer for g in shown)),
                    ),
                    horizontal=dim == "voice" and len(shown) > 6,
                    percent=True,
                )
            )
        tables.append(_metrics_table(dim, label, groups))
    note = (
        "Corpus rates (errors / reference words or characters) after the normaliser, as "
        "`speechmill metrics --by ...` prints them; oracle: the best hypothesis of each list."
    )
    return Section("pairs", title, (*blocks, *tables, Text(note, "note")))


def relabel_section(q: Query) -> Section:
    title = "Relabelling rounds"
    rounds = q.all(
        "SELECT round, count(*), count(*) FILTER (WHERE decision IN ('seed', 'keep')), "
        "count(*) FILTER (WHERE decision = 'reject'), avg(cer_prev), median(cer_prev), "
        "max(cer_gate), string_agg(DISTINCT model_id, ', ' ORDER BY model_id) "
        "FROM labels GROUP BY 1 ORDER BY 1"
    )
    if not any(r[0] > 0 for r in rounds):
        seeds = sum(int(r[1]) for r in rounds)
        extra = f" (only the {seeds:,} round-0 labels of refine)" if seeds else ""
        return Section("relabel", title, absent=f"no relabelling rounds in this dataset{extra}")
    bars = Bars(
        "relabel-rounds",
        "Labels kept and rejected per round",
        tuple(f"round {r[0]}" for r in rounds),
        (
            ("kept", tuple(float(r[2]) for r in rounds)),
            ("rejected", tuple(float(r[3]) for r in rounds)),
        ),
        ylabel="utterances",
        stacked=True,
    )
    table = Table(
        "relabel",
        cols(
            "round:int|labels:int|kept:int|rejected:int|mean CER to previous:pct|"
            "median CER to previous:pct|CER gate:pct|teacher:code"
        ),
        _rows(rounds),
        caption="Noisy-student rounds (round 0: the aligned transcripts)",
    )
    hist = q.histogram("relabel-cer", "Rounds ≥ 1: CER to the previous label", "CER", CER_PREV)
    return Section("relabel", title, (bars, *([hist] if hist else []), table))


def card_section(q: Query, root: str, unreadable: Sequence[str]) -> Section:
    title = "Dataset card"
    runs = q.all(
        "SELECT run_id, pipeline, committed_at, code_version, config_hash, config_json, "
        "model_hashes_json, runner FROM runs ORDER BY committed_at, run_id"
    )
    if not runs:
        return Section("card", title, absent="no committed runs in this dataset")
    blocks: list[Block] = [Text(_card_text(q, root, runs))]
    if unreadable:
        warn = f"{len(unreadable)} commit markers could not be read; their runs are left out: "
        blocks.append(Text(warn + ", ".join(unreadable) + ".", "warn"))
    blocks.append(
        Table(
            "card-tables",
            cols("table:code|rows:int"),
            tuple((name, q.count(name)) for name in TABLES),
            caption="Tables (the latest committed row per primary key)",
        )
    )
    blocks += _card_builds(runs)
    rec_n, authors = q.one(f"SELECT count(*), count(DISTINCT author) FROM ({CREDITS})")  # noqa: S608
    if not rec_n:
        return Section("card", title, tuple(blocks))
    lic = q.all(
        "SELECT license, count(*), sum(duration_s) / 3600, "  # noqa: S608 - a constant
        "sum(duration_s) / (SELECT sum(duration_s) FROM recordings), "
        f"count(DISTINCT author) FROM ({CREDITS}) GROUP BY 1 ORDER BY 3 DESC, 1"
    )
    blocks.append(
        Table(
            "card-licences",
            cols("licence:code|recordings:int|hours:hours|share of hours:pct|authors:int"),
            _rows(lic),
            caption="Licences",
        )
    )
    unclear = sum(int(r[1]) for r in lic if r[0] in ("unknown", "all-rights-reserved"))
    if unclear:
        blocks.append(
            Text(
                f"{unclear:,} recordings have no known open licence (`unknown` or "
                "`all-rights-reserved`): check their terms before redistributing them.",
                "warn",
            )
        )
    attrib = q.all(
        f"SELECT title, author, license, url FROM ({CREDITS}) "  # noqa: S608 - a constant
        "ORDER BY license, author NULLS LAST, title NULLS LAST, "
        "recording_id LIMIT ?",
        [LIMIT_ATTRIBUTION],
    )
    blocks.append(
        Table(
            "card-attribution",
            cols("title|author|licence:code|URL:url"),
            _rows(attrib),
            caption=f"Attribution: {int(rec_n):,} recordings by {int(authors):,} authors",
            note=f"The first {len(attrib)} of {int(rec_n):,} recordings. `speechmill export` "
            "writes the full ATTRIBUTION.md (title, author, licence and URL of every "
            "recording) with every export.",
        )
    )
    return Section("card", title, tuple(blocks))


CREDITS = """SELECT r.recording_id, r.license, r.duration_s,
    coalesce(r.attribution.title, s.title) AS title,
    coalesce(r.attribution.author, s.author) AS author,
    coalesce(r.attribution.url, s.webpage_url) AS url
FROM recordings r LEFT JOIN sources s ON s.media_id = r.media_id"""
"""Each recording's credit as the exports' ATTRIBUTION.md gives it (the recording's
attribution, else its source item's title, author and page)."""


def _card_text(q: Query, root: str, runs: Sequence[Sequence[Any]]) -> str:
    """What the dataset is, in a few sentences."""
    pipelines: dict[str, int] = {}
    for r in runs:
        pipelines[r[1]] = pipelines.get(r[1], 0) + 1
    kinds = ", ".join(f"{n} {p}" for p, n in pipelines.items())
    versions = ", ".join(sorted({str(r[3]) for r in runs}))
    parts = [
        f"The dataset at {root} holds {len(runs):,} committed runs ({kinds}), committed "
        f"from {_utc(runs[0][2])} to {_utc(runs[-1][2])} UTC by speechmill {versions}."
    ]
    rec_n, rec_s = _tally(q, "recordings")
    if rec_n:
        srcs = q.one("SELECT count(DISTINCT source_name) FROM sources")[0]
        parts.append(
            f"It has {_h(rec_s):.2f} h of audio in {rec_n:,} recordings (16 kHz mono FLAC) "
            f"from {int(srcs):,} source specs, transcribed into segments with N-best lists."
        )
    kept_n, kept_s = _tally(q, "kept_utterances")
    if kept_n:
        parts.append(
            f"{kept_n:,} aligned utterances ({_h(kept_s):.2f} h) are kept for training "
            "under their latest label."
        )
    pair_n, synth_n = q.one("SELECT count(*), count(*) FILTER (WHERE is_synthetic) FROM pairs")
    if pair_n:
        parts.append(
            f"It has {int(pair_n):,} (N-best, reference) pairs for error correction, "
            f"{int(synth_n):,} of them from synthetic speech."
        )
    return " ".join(parts)


def _card_builds(runs: Sequence[Sequence[Any]]) -> list[Block]:
    """How it was built: one row per (pipeline, effective config), and those configs."""
    builds: dict[tuple[str, str], dict[str, Any]] = {}
    for run_id, pipeline, committed, code, chash, cjson, mjson, runner in runs:
        b = builds.setdefault(
            (pipeline, chash),
            {"runs": 0, "first": committed, "code": set(), "models": {}, "runners": set()},
        )
        b["runs"] += 1
        b["last"], b["config"], b["run"] = committed, cjson, run_id
        b["code"].add(str(code))
        b["runners"].add(str(runner))
        with contextlib.suppress(ValueError, TypeError):
            b["models"].update(json.loads(mjson or "{}"))
    rows = tuple(
        (
            pipeline,
            b["runs"],
            _utc(b["first"]),
            _utc(b["last"]),
            ", ".join(sorted(b["code"])),
            str(chash)[:12],
            ", ".join(sorted(b["runners"])),
            "; ".join(f"{m} {str(h)[:12]}" for m, h in sorted(b["models"].items())) or "-",
        )
        for (pipeline, chash), b in builds.items()
    )
    out: list[Block] = [
        Table(
            "card-builds",
            cols(
                "pipeline|runs:int|first (UTC)|last (UTC)|speechmill|"
                "config sha256:code|runner|models (content hash):code"
            ),
            rows,
            caption="How it was built: each pipeline's effective configs and models",
            note="From the commit markers (the `runs` table): the config hash, effective config "
            "and model content hashes every run recorded.",
        )
    ]
    for (pipeline, chash), b in list(builds.items())[-LIMIT_CONFIGS:]:
        try:
            pretty = json.dumps(json.loads(b["config"]), indent=2, sort_keys=True)
        except (TypeError, ValueError):
            pretty = str(b["config"])
        summary = f"effective config of {pipeline} {str(chash)[:12]} (latest run {b['run']})"
        out.append(Code(summary, pretty))
    return out


def gather(store: Store, *, progress: bool | None = None) -> ReportData:
    """Every figure of the report, queried from the store's committed tables."""
    markers = store.markers()
    now = dt.datetime.now(dt.timezone.utc)
    con = connect(store, markers=markers)
    try:
        q = Query(con)
        steps: list[Callable[[], Section]] = [
            lambda: hours_section(q),
            lambda: durations_section(q),
            lambda: speech_rate_section(q),
            lambda: alignment_section(q),
            lambda: rejects_section(q),
            lambda: nbest_section(q),
            lambda: pairs_section(q),
            lambda: relabel_section(q),
            lambda: card_section(q, fs.shown(store.root), store.unreadable),
        ]
        sections = []
        with bar(len(steps), desc="report", unit="section", show=progress) as b:
            figures = _overview(q)
            for step in steps:
                sections.append(step())
                b.update(1)
    finally:
        con.close()
    return ReportData(
        fs.shown(store.root), now, __version__, len(markers), figures, tuple(sections)
    )


# ============================================================================ rendering

_SORT_JS = (
    "document.querySelectorAll('table.sortable th').forEach(function(th){"
    "th.addEventListener('click',function(){"
    "var t=th.closest('table'),b=t.tBodies[0],i=Array.prototype.indexOf.call("
    "th.parentNode.children,th),d=th.getAttribute('aria-sort')==='ascending'?-1:1;"
    "t.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort');});"
    "th.setAttribute('aria-sort',d>0?'ascending':'descending');"
    "var rows=Array.prototype.slice.call(b.rows);rows.sort(function(x,y){"
    "var a=x.cells[i],c=y.cells[i],va=a.getAttribute('data-v'),vc=c.getAttribute('data-v');"
    "var r=(va!==null&&vc!==null)?parseFloat(va)-parseFloat(vc):"
    "a.textContent.localeCompare(c.textContent);return d*r;});"
    "rows.forEach(function(r){b.appendChild(r);});});});"
)
_SORT_HASH = base64.b64encode(hashlib.sha256(_SORT_JS.encode()).digest()).decode()
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    f"script-src 'sha256-{_SORT_HASH}'; base-uri 'none'; form-action 'none'"
)
"""The page may run its own sorting script only, load nothing and send nothing."""

_CSS = """
:root{--fg:#1d2330;--muted:#5b6474;--line:#dde2ea;--bg:#fff;--soft:#f5f7fa;--accent:#2f6db5}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--fg);background:var(--bg)}
header{padding:24px 32px 12px;border-bottom:1px solid var(--line);background:var(--soft)}
header h1{margin:0 0 4px;font-size:24px}
header p{margin:2px 0;color:var(--muted)}
nav{padding:8px 32px;border-bottom:1px solid var(--line);font-size:14px}
nav a{margin-right:14px;color:var(--accent);text-decoration:none}
nav a.absent{color:var(--muted)}
main{padding:8px 32px 40px;max-width:1280px}
section{margin:28px 0;padding-top:4px;border-top:1px solid var(--line)}
h2{font-size:20px;margin:12px 0}
.figures{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.figure{border:1px solid var(--line);border-radius:6px;padding:10px 14px;min-width:150px;
background:var(--soft)}
.figure b{display:block;font-size:18px}
.figure span{color:var(--muted);font-size:13px}
.absent{color:var(--muted);font-style:italic}
.empty{padding:16px;border:1px solid #e6c36a;background:#fff8e1;border-radius:6px}
.plots{display:flex;flex-wrap:wrap;gap:16px}
figure.plot{margin:8px 0;flex:0 1 540px;min-width:320px}
figure.plot svg{width:100%;height:auto}
figcaption{font-size:13px;color:var(--muted)}
.tw{overflow-x:auto;margin:12px 0}
table{border-collapse:collapse;font-size:13px}
caption{text-align:left;font-weight:600;padding:4px 0;font-size:14px;white-space:nowrap}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
th{background:var(--soft);cursor:pointer;white-space:nowrap}
td.na{color:var(--muted)}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.c,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
td{max-width:420px;overflow-wrap:anywhere}
p.note,.tnote{color:var(--muted);font-size:13px}
p.warn{border-left:4px solid #d9822b;padding:4px 10px;background:#fff6ec}
details{margin:6px 0}
summary{cursor:pointer;color:var(--accent)}
pre{background:var(--soft);padding:10px;overflow:auto;max-height:420px;font-size:12px}
footer{padding:16px 32px;color:var(--muted);font-size:13px;border-top:1px solid var(--line)}
"""


def esc(value: object) -> str:
    """Text for HTML content or a quoted attribute: &, <, >, " and ' escaped."""
    return html.escape("" if value is None else str(value), quote=True)


def _md(text: str) -> str:
    """Escaped text with `code` spans (the only markup a block's text may use)."""
    parts = esc(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _cell(value: Cell, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        shown = "-" if value is None else str(value)
        return f'<td class="na">{esc(shown)}</td>'
    if kind in ("int", "hours", "seconds", "num", "pct") and isinstance(value, int | float):
        v = float(value)
        if kind == "int":
            shown = f"{int(value):,}"
        elif kind == "hours":
            shown = f"{v:,.3f}"
        elif kind == "seconds":
            shown = f"{v:,.2f}"
        elif kind == "pct":
            shown = f"{100 * v:.1f}%"
        else:
            shown = f"{v:.4g}"
        return f'<td class="n" data-v="{value!r}">{shown}</td>'
    if kind == "url":
        text = str(value)
        if re.match(r"^https?://", text, re.IGNORECASE):
            return (
                f'<td><a href="{esc(text)}" rel="noopener noreferrer nofollow">{esc(text)}</a></td>'
            )
        return f"<td>{esc(text)}</td>"
    if kind == "code":
        return f'<td class="c">{esc(value)}</td>'
    return f"<td>{esc(value)}</td>"


def _table(t: Table) -> str:
    head = "".join(f'<th scope="col">{esc(c.name)}</th>' for c in t.columns)
    body = "".join(
        "<tr>" + "".join(_cell(v, c.kind) for v, c in zip(r, t.columns, strict=True)) + "</tr>"
        for r in t.rows
    )
    if not t.rows:
        body = f'<tr><td colspan="{len(t.columns)}" class="absent">no rows</td></tr>'
    caption = f"<caption>{_md(t.caption)}</caption>" if t.caption else ""
    note = f'<div class="tnote">{_md(t.note)}</div>' if t.note else ""
    return (
        f'<div class="tw"><table class="sortable" data-table="{esc(t.key)}">{caption}'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}</div>"
    )


def _block(b: Block, plot: Callable[[Histogram | Bars], str]) -> str:
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Histogram | Bars):
        return (
            f'<figure class="plot" data-plot="{esc(b.key)}">{plot(b)}'
            f"<figcaption>{esc(b.title)}</figcaption></figure>"
        )
    if isinstance(b, Code):
        return f"<details><summary>{esc(b.summary)}</summary><pre>{esc(b.text)}</pre></details>"
    return f'<p class="{esc(b.kind)}">{_md(b.text)}</p>'


def render_report(data: ReportData) -> str:
    """The report as one HTML document (pure: the same data gives the same page)."""
    plots = _Plotter()
    title = f"speechmill report: {data.root}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="speechmill">',
        '<link rel="icon" href="data:,">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        "<header><h1>speechmill report</h1>",
        f'<p>dataset <code class="root">{esc(data.root)}</code></p>',
        f"<p>{data.runs:,} committed runs · generated {_utc(data.generated_at)} UTC by "
        f"speechmill {esc(data.version)}</p></header>",
        "<nav>",
    ]
    out += [
        f'<a href="#{esc(s.key)}"{" class=absent" if s.absent else ""}>{esc(s.title)}</a>'
        for s in data.sections
    ]
    out.append("</nav><main>")
    if data.empty:
        out.append(
            f'<p class="empty">This dataset is empty: no committed runs in '
            f"<code>{esc(data.root)}</code>. Run a pipeline (`speechmill run`, "
            "`speechmill synth`) and write the report again.</p>"
        )
    if data.figures:
        out.append('<div class="figures">')
        out += [
            f'<div class="figure"><b>{esc(v)}</b><span>{esc(k)}</span></div>'
            for k, v in data.figures
        ]
        out.append("</div>")
    for s in data.sections:
        out.append(f'<section id="{esc(s.key)}"><h2>{esc(s.title)}</h2>')
        if s.absent:
            out.append(f'<p class="absent">{_md(s.absent)}.</p>')
        figs = [b for b in s.blocks if isinstance(b, Histogram | Bars)]
        if figs:
            out.append('<div class="plots">')
            out += [_block(b, plots) for b in figs]
            out.append("</div>")
        out += [_block(b, plots) for b in s.blocks if not isinstance(b, Histogram | Bars)]
        out.append("</section>")
    out.append(
        "</main><footer>One self-contained file: every plot is inline SVG, nothing is "
        "loaded from the network. Click a column heading to sort a table. "
        "docs/report.md explains each section.</footer>"
    )
    out.append(f"<script>{_SORT_JS}</script></body></html>")
    return "\n".join(out) + "\n"


class _Plotter:
    """Draws figures as inline SVG with ids unique in the page (`p<n>-...`)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, block: Histogram | Bars) -> str:
        import matplotlib as mpl
        from matplotlib.figure import Figure

        self.n += 1
        with mpl.rc_context(_rc()):
            if isinstance(block, Histogram):
                fig = Figure(figsize=(6.4, 2.8))
                ax = fig.subplots()
                ax.stairs(block.counts, block.edges, fill=True, alpha=0.85)
                ax.set_xlabel(block.xlabel)
                ax.set_ylabel("count")
            else:
                fig = self._bars(block, Figure)
            buf = io.StringIO()
            fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
        return _inline_svg(buf.getvalue(), f"p{self.n}-", block.title)

    @staticmethod
    def _bars(b: Bars, figure: Any) -> Any:
        import numpy as np

        n_cat, n_ser = len(b.categories), len(b.series)
        if b.horizontal:
            fig = figure(figsize=(6.4, max(1.6, 0.5 + n_cat * (0.22 + 0.1 * n_ser))))
        else:
            fig = figure(figsize=(6.4, 3.0))
        ax = fig.subplots()
        pos = np.arange(n_cat)
        width = 0.8 if b.stacked else 0.8 / max(n_ser, 1)
        base = np.zeros(n_cat)
        scale = 100.0 if b.percent else 1.0
        for i, (name, values) in enumerate(b.series):
            vals = np.array(values, dtype=float) * scale
            offset = 0.0 if b.stacked else (i - (n_ser - 1) / 2) * width
            if b.horizontal:
                ax.barh(pos + offset, vals, height=width, left=base, label=name)
            else:
                ax.bar(pos + offset, vals, width=width, bottom=base, label=name)
            if b.stacked:
                base = base + vals
        labels = list(b.categories)
        if b.horizontal:
            ax.set_yticks(pos, labels)
            ax.invert_yaxis()
            ax.set_xlabel("%" if b.percent else b.ylabel)
            ax.grid(axis="y", visible=False)
        else:
            rotate = n_cat > 6 or max((len(c) for c in labels), default=0) > 12
            ax.set_xticks(
                pos, labels, rotation=30 if rotate else 0, ha="right" if rotate else "center"
            )
            ax.set_ylabel("%" if b.percent else b.ylabel)
            ax.grid(axis="x", visible=False)
        if n_ser > 1:
            ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return fig


def _rc() -> dict[RcKeyType, Any]:
    from cycler import cycler

    palette = ["#2f6db5", "#e07b39", "#3f9e5a", "#c2434b", "#8467bd", "#8c6d31", "#d16fb1"]
    return {
        "svg.fonttype": "none",  # text stays text: no glyph paths, smaller, selectable
        "svg.hashsalt": "speechmill-report",  # stable ids: the same data, the same page
        "text.parse_math": False,  # a `$` in a name is a dollar sign, not TeX
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#e3e7ee",
        "axes.axisbelow": True,
        "axes.prop_cycle": cycler(color=palette),
    }


_TAG = re.compile(r"<[^>]+>")


def _inline_svg(svg: str, prefix: str, title: str) -> str:
    """matplotlib's SVG for inline use: no XML prolog, doctype or metadata, and every id
    (and reference to one) prefixed, since several figures share one document."""
    start = svg.find("<svg")
    if start < 0:
        raise ValueError("not an SVG document")
    svg = svg[start:]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)

    def fix(m: re.Match[str]) -> str:
        tag = m.group(0)
        tag = re.sub(r'(\sid=")([^"]+)"', lambda t: f'{t[1]}{prefix}{t[2]}"', tag)
        tag = re.sub(r'(href="#)([^"]+)"', lambda t: f'{t[1]}{prefix}{t[2]}"', tag)
        return re.sub(r"url\(#([^)]+)\)", lambda t: f"url(#{prefix}{t[1]})", tag)

    svg = _TAG.sub(fix, svg)
    return svg.replace("<svg", f'<svg role="img" aria-label="{esc(title)}"', 1).strip()


# ============================================================================ writing


def write_report(
    store: Store, out: str | Path | None = None, *, progress: bool | None = None
) -> Path | str:
    """Write the report; returns the local path written (or the URL on an object store).

    Default: `report.html` at the dataset root, through the store's filesystem layer.
    """
    text = render_report(gather(store, progress=progress))
    target = store.path("report.html") if out is None else str(out)
    if not fs.is_remote(target):
        target = str(Path(target).expanduser().resolve())
    fs.write_bytes_atomic(target, text.encode("utf-8"))
    return target if fs.is_remote(target) else Path(target)


__all__ = [
    "Bars",
    "Code",
    "Col",
    "Histogram",
    "ReportData",
    "Section",
    "Table",
    "Text",
    "esc",
    "gather",
    "render_report",
    "write_report",
]
