"""The HTML report: sections as the data says, numbers as DuckDB says, text escaped, SVG valid.

Datasets are hand-built (records of every table committed through the store, in the
four pipelines' runs) or made by the corpus pipeline with the fake ASR backend.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from speechmill.config import StoreOptions
from speechmill.core.quality.pair_metrics import row_metrics
from speechmill.report_html import (
    CSP,
    Bars,
    Code,
    Col,
    Histogram,
    ReportData,
    Section,
    Table,
    Text,
    gather,
    render_report,
    write_report,
)
from speechmill.reports import metric_columns, metric_groups, pairs_table
from speechmill.schemas import (
    Attribution,
    AugParams,
    Label,
    NBestList,
    Pair,
    Recording,
    Reject,
    Segment,
    SourceItem,
    TtsParams,
    Utterance,
    Word,
)
from speechmill.store import Store, connect
from tests.pipeline.helpers import commit_records
from tests.s3_server import S3, s3, s3_server

__all__ = ["s3", "s3_server"]  # fixtures

HOSTILE_TITLE = "<script>alert(1)</script> & co"
HOSTILE_AUTHOR = '"onload="alert(2)" x=\''
HOSTILE_URL = "javascript:alert(3)"
HOSTILE_SOURCE = "</table><img src=x onerror=alert(4)>"
HOSTILE_REASON = "duration: <b>bold</b> 12.5 s > max"
HOSTILE_VOICE = "<svg onload=alert(5)>$x$"
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


# ----------------------------------------------------------------------------- datasets


def commit(store: Store, pipeline: str, tables: dict[str, list[Any]], config: dict) -> str:
    """One committed run of `pipeline` holding these records."""
    return commit_records(
        store,
        tables,
        pipeline,
        config={"pipeline": pipeline, **config},
        config_hash=f"{pipeline}-config-hash-0123456789",
        code_version="0.1.0-test",
        model_hashes={"fake-asr": "fakehash0123456789"},
        runner="DirectRunner",
    ).run_id


def rid(i: int) -> str:
    return f"{i:02d}" * 32


def source(i: int, name: str, lic: str, title: str, author: str, url: str) -> SourceItem:
    return SourceItem(
        media_id=f"local:{i}",
        source_name=name,
        kind="local",
        url=url,
        listed_url=None,
        webpage_url=None,
        extractor="local",
        title=title,
        author=author,
        channel_id=None,
        license=lic,
        license_raw=None,
        upload_date=None,
        duration_s=None,
        language="en",
        tags=[],
        size_bytes=100,
        etag="1-1",
        discovered_at=NOW,
        recording_id=rid(i),
        run_id="",
    )


def recording(
    i: int, secs: float, lic: str, att: Attribution, lang: str | None = "en"
) -> Recording:
    return Recording(
        recording_id=rid(i),
        media_id=f"local:{i}",
        audio_uri=Store.media_rel(rid(i)),
        duration_s=secs,
        num_samples=int(secs * 16000),
        sample_rate=16000,
        orig_sample_rate=16000,
        orig_channels=1,
        downmix="mono",
        orig_codec="pcm_s16le",
        orig_container="wav",
        orig_sample_format="s16",
        orig_size_bytes=100,
        rms_dbfs=-20.0,
        language=lang,
        license=lic,
        attribution=att,
        run_id="",
    )


def segment(i: int, k: int, secs: float, text: str, lic: str) -> Segment:
    start = k * 16000 * 40
    return Segment(
        segment_id=f"{rid(i)[:24]}-{start}-{start + int(secs * 16000)}",
        recording_id=rid(i),
        start_sample=start,
        end_sample=start + int(secs * 16000),
        start_s=start / 16000,
        duration_s=secs,
        text=text,
        language="en",
        language_prob=None,
        avg_logprob=-0.2,
        no_speech_prob=0.01,
        compression_ratio=1.2,
        num_tokens=5,
        model_id="fake",
        decoder_id="dec",
        license=lic,
        attribution=Attribution(),
        run_id="",
    )


def nbest(item: str, kind: str, texts: list[str], n: int = 4) -> NBestList:
    k = len(texts)
    return NBestList(
        item_id=item,
        item_kind=kind,
        decoder_id="dec",
        model_id="fake",
        language="en",
        texts=texts,
        texts_norm=[t.lower() for t in texts],
        sum_logprob=[-1.0] * k,
        num_tokens=[3] * k,
        avg_logprob=[-0.25] * k,
        method=["beam"] * k,
        temperature=[None] * k,
        seed=[None] * k,
        n_requested=n,
        n_unique=len(set(t.lower() for t in texts)),
        beam_size=n,
        normalizer="whisper-english",
        normalizer_version="0",
        run_id="",
    )


def reject(
    item: str, kind: str, stage: str, category: str, reason: str, secs: float | None
) -> Reject:
    return Reject(item, kind, None, None, stage, category, reason, None, secs, False, "")


def utterance(i: int, k: int, secs: float, text: str, score: float) -> Utterance:
    start = k * 16000 * 10
    words = text.split()
    step = secs / max(len(words), 1)
    return Utterance(
        utterance_id=f"{rid(i)[:24]}-u{start}-{start + int(secs * 16000)}",
        recording_id=rid(i),
        source_id=f"local:{i}",
        start_sample=start,
        end_sample=start + int(secs * 16000),
        start_s=start / 16000,
        duration_s=secs,
        text=text,
        words=[Word(w, j * step, (j + 1) * step, score) for j, w in enumerate(words)],
        align_score=score,
        unaligned_words=1 if score < 0.5 else 0,
        aligner="whisper-ct2:tiny.en",
        asr_text=text,
        avg_logprob=-0.3,
        no_speech_prob=0.01,
        compression_ratio=1.1,
        language="en",
        language_prob=None,
        license="cc-by-4.0",
        attribution=Attribution(),
        run_id="",
    )


def label(u: Utterance, rnd: int, text: str, decision: str, cer: float | None) -> Label:
    return Label(
        utterance_id=u.utterance_id,
        round=rnd,
        model_id="aligner" if rnd == 0 else "teacher-tiny",
        model_hash="h",
        decoder_id="d",
        text=text,
        text_norm=text.lower(),
        prev_text=None if rnd == 0 else u.text,
        cer_prev=cer,
        decision=decision,
        cer_gate=None if rnd == 0 else 0.2,
        run_id="",
    )


def pair(i: int, ref: str, hyps: list[str], voice: str, snr: float | None, split: str) -> Pair:
    m = row_metrics(ref, hyps)
    k = len(hyps)
    return Pair(
        pair_id=f"pair{i:04d}",
        text_id=f"text{i:04d}",
        source="lines",
        split=split,
        language="en",
        reference=ref,
        reference_raw=ref,
        hypotheses=hyps,
        hypotheses_raw=hyps,
        hypotheses_presub=hyps,
        substituted=[False] * k,
        sum_logprob=[-1.0] * k,
        num_tokens=[3] * k,
        avg_logprob=[-0.25] * k,
        method=["beam"] * k,
        token_logprobs=None,
        n_requested=5,
        n_unique=len(set(hyps)),
        model_id="fake",
        decoder_id="dec",
        beam_size=5,
        temperatures=[None] * k,
        seeds=[None] * k,
        tts=TtsParams(engine="espeak-ng", voice=voice, variant="m3"),
        aug=AugParams(noise_type=None if snr is None else "white", snr_db=snr),
        audio_uri=f"media/synth/{i}.flac",
        clean_audio_uri=f"media/synth/{i}.flac",
        duration_s=2.0 + i / 10,
        is_synthetic=True,
        wer_1best=m.wer_1best,
        oracle_wer=m.oracle_wer,
        oracle_index=m.oracle_index,
        normalizer="whisper-english",
        normalizer_version="0",
        run_id="",
    )


def build_dataset(
    root: Path | str | Store, *, parts: Iterable[str] = ("corpus", "refine", "relabel", "synth")
) -> Store:
    """A small dataset of every table, with hostile remote text, in up to four runs."""
    store = root if isinstance(root, Store) else Store(str(root))
    parts = set(parts)
    hostile = Attribution(HOSTILE_AUTHOR, HOSTILE_TITLE, HOSTILE_URL)
    sources = [
        source(1, "talks", "cc-by-4.0", "Talk one", "Ann", "https://example.org/1"),
        source(2, "talks", "cc-by-4.0", "Talk two", "Bob", "https://example.org/2"),
        source(3, HOSTILE_SOURCE, "unknown", HOSTILE_TITLE, HOSTILE_AUTHOR, HOSTILE_URL),
    ]
    recs = [
        recording(1, 30.0, "cc-by-4.0", Attribution("Ann", "Talk one", "https://example.org/1")),
        recording(2, 12.5, "cc-by-4.0", Attribution("Bob", "Talk two", "https://example.org/2")),
        recording(3, 61.25, "unknown", hostile, lang=None),
    ]
    segs = [
        segment(1, 0, 8.0, "the river kept its promise and flooded the fields", "cc-by-4.0"),
        segment(1, 1, 12.0, "seven violins were tuned before the hall opened", "cc-by-4.0"),
        segment(2, 0, 10.0, "a quiet engineer wrote the schedule", "cc-by-4.0"),
        segment(3, 0, 20.0, HOSTILE_TITLE, "unknown"),
        segment(3, 1, 25.5, "every lighthouse on this coast is painted red and white", "unknown"),
    ]
    hyps = [
        nbest(s.segment_id, "segment", [s.text, s.text + " a", s.text + " b"][: 1 + k % 3])
        for k, s in enumerate(segs)
    ]
    rejects = [
        reject("local:9", "source", "fetch", "undecodable", "not media PyAV can decode", None),
        reject("chunk-1", "chunk", "vad", "no_speech", "no speech found in 3.5 s", 3.5),
        reject("chunk-2", "chunk", "vad", "no_speech", "no speech found in 4.25 s", 4.25),
    ]
    if "corpus" in parts:
        commit(
            store,
            "corpus",
            {
                "sources": sources,
                "recordings": recs,
                "segments": segs,
                "hypotheses": hyps,
                "rejects": rejects,
            },
            {"sources": [{"kind": "local", "name": HOSTILE_SOURCE}]},
        )
    utts = [
        utterance(1, 0, 3.5, "the river kept its promise", 0.91),
        utterance(1, 1, 4.0, "and flooded the fields", 0.42),
        utterance(2, 0, 5.25, "a quiet engineer wrote the schedule", 0.88),
        utterance(3, 0, 6.0, "every lighthouse on this coast", 0.77),
    ]
    if "refine" in parts:
        commit(
            store,
            "refine",
            {
                "utterances": utts,
                "labels": [label(u, 0, u.text, "seed", None) for u in utts],
                "hypotheses": [nbest(u.utterance_id, "utterance", [u.text]) for u in utts],
                "rejects": [
                    reject("utt-x", "utterance", "filter", "filter", HOSTILE_REASON, 12.5),
                ],
            },
            {"filters": {"min_duration_s": 1.0}},
        )
    if "relabel" in parts:
        commit(
            store,
            "relabel",
            {
                "labels": [
                    label(utts[0], 1, utts[0].text, "keep", 0.0),
                    label(utts[1], 1, "and flooded the field", "keep", 0.05),
                    label(utts[2], 1, "the quiet engineers", "reject", 0.4),
                    label(utts[3], 1, "every lighthouse", "reject", 0.5),
                ],
                "rejects": [
                    reject(
                        utts[2].utterance_id,
                        "utterance",
                        "relabel",
                        "relabel",
                        "CER 0.4 > 0.2",
                        5.25,
                    )
                ],
            },
            {"relabel": {"cer_gate": 0.2}},
        )
    if "synth" in parts:
        ref = "bring a torch and something warm to drink"
        pairs = [
            pair(0, ref, [ref, ref + " now"], "en-us", None, "train"),
            pair(1, ref, ["bring a porch and something warm to drink", ref], "en-us", 3.0, "train"),
            pair(2, ref, ["bring torch something warm drink"], HOSTILE_VOICE, 12.0, "dev"),
            pair(
                3,
                ref,
                ["ring a torch and something warm to drink", "bring"],
                HOSTILE_VOICE,
                25.0,
                "test",
            ),
        ]
        commit(
            store,
            "synth",
            {
                "pairs": pairs,
                "rejects": [reject("t1", "text", "text", "bad_text", "no letters", None)],
            },
            {"synth": {"voices": [{"engine": "espeak", "voices": [HOSTILE_VOICE]}]}},
        )
    return store


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, str]:
    store = build_dataset(tmp_path_factory.mktemp("report") / "ds")
    path = write_report(store, progress=False)
    return store, Path(path).read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- reading the page


class Page(HTMLParser):
    """Tables (by `data-table`: header names and rows of cell values, `data-v` for numbers),
    sections (id -> text), every start tag with its attributes, and script texts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, dict[str, list[Any]]] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.sections: dict[str, str] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._value: str | None = None
        self._row: list[Any] | None = None
        self._section: str | None = None
        self._script: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section":
            self._section = a.get("id")
            self.sections[self._section or ""] = ""
        elif tag == "table":
            self._table = a.get("data-table")
            self.tables[self._table or ""] = {"headers": [], "rows": []}
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell, self._value = [], a.get("data-v")
        elif tag == "script":
            self._script = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            text = "".join(self._cell).strip()
            self._row.append(text if self._value is None else float(self._value))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            t = self.tables[self._table]
            if not t["headers"]:
                t["headers"] = self._row
            else:
                t["rows"].append(self._row)
            self._row = None
        elif tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._section is not None:
            self.sections[self._section] += data
        if self._script is not None:
            self._script.append(data)


def column(page: Page, table: str, name: str) -> list[Any]:
    t = page.tables[table]
    i = t["headers"].index(name)
    return [r[i] for r in t["rows"]]


def pairs_of(page: Page, table: str, key: str, value: str) -> dict[Any, Any]:
    return dict(zip(column(page, table, key), column(page, table, value), strict=True))


def svgs(text: str) -> list[ET.Element]:
    found = re.findall(r"<svg\b.*?</svg>", text, flags=re.DOTALL)
    return [ET.fromstring(s) for s in found]


def q(store: Store, sql: str) -> list[tuple]:
    con = connect(store)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def approx_rows(got: list[list[Any]], want: list[tuple]) -> None:
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w)
        for a, b in zip(g, w, strict=True):
            if isinstance(b, int | float) and not isinstance(b, bool):
                assert a == pytest.approx(float(b), rel=1e-12, abs=1e-12), (g, w)
            else:
                assert a == ("-" if b is None else str(b)), (g, w)


# ----------------------------------------------------------------------------- tests


def test_render_hand_built_data_shows_what_it_is_given() -> None:
    data = ReportData(
        root="/data/x",
        generated_at=NOW,
        version="9.9",
        runs=2,
        figures=(("committed runs", "2"),),
        sections=(
            Section(
                "a",
                "Alpha",
                (
                    Table(
                        "t1",
                        (Col("name"), Col("n", "int"), Col("h", "hours"), Col("r", "pct")),
                        (("x", 1234, 1.23456, 0.1234), ("y", None, 0.0, None)),
                    ),
                    Histogram("h1", "Durations", "s", (0.0, 1.0, 2.0, 3.0), (4, 0, 2)),
                    Bars(
                        "b1",
                        "By voice",
                        ("v1", "v2"),
                        (("WER", (0.1, 0.2)), ("CER", (0.05, 0.1))),
                        percent=True,
                    ),
                    Text("see `speechmill metrics`", "note"),
                    Code("config", '{"a": "<b>"}'),
                ),
            ),
            Section("b", "Beta", absent="no beta in this dataset"),
        ),
    )
    text = render_report(data)
    assert text == render_report(data)  # pure and deterministic (ids included)
    page = Page(text)
    assert set(page.sections) == {"a", "b"}
    assert "no beta in this dataset." in page.sections["b"]
    assert page.tables["t1"]["headers"] == ["name", "n", "h", "r"]
    assert page.tables["t1"]["rows"] == [["x", 1234.0, 1.23456, 0.1234], ["y", "-", 0.0, "-"]]
    assert ">1,234<" in text and ">1.235<" in text and ">12.3%<" in text
    assert "<code>speechmill metrics</code>" in text and "&lt;b&gt;" in text
    figures = svgs(text)
    assert len(figures) == 2
    for svg in figures:  # real drawings: bars/steps are paths, with their axis text
        assert svg.iter("{http://www.w3.org/2000/svg}path")
        assert any(t.text for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "ids repeat across figures"
    refs = re.findall(r'(?:href="#|url\(#)([^")]+)', text)
    assert refs and set(refs) <= set(ids) | {"a", "b"}  # every reference resolves in the page
    assert "<?xml" not in text and "<!DOCTYPE svg" not in text and "<metadata" not in text


def test_full_dataset_has_every_section_with_plots(full) -> None:
    _store, text = full
    page = Page(text)
    for key in (
        "hours",
        "durations",
        "speech-rate",
        "alignment",
        "rejects",
        "nbest",
        "pairs",
        "relabel",
        "card",
    ):
        assert key in page.sections
        assert "in this dataset" not in page.sections[key], key
    plots = {a.get("data-plot") for t, a in page.tags if t == "figure"}
    assert {
        "funnel",
        "hours-source",
        "duration-recordings",
        "duration-segments",
        "duration-utterances",
        "duration-pairs",
        "rate-segments",
        "rate-utterances",
        "align-score",
        "rejects-category",
        "rejects-runs",
        "nbest-n-unique",
        "pairs-snr",
        "pairs-voice",
        "relabel-rounds",
        "relabel-cer",
    } <= plots
    for svg in svgs(text):
        ns = "{http://www.w3.org/2000/svg}"
        assert list(svg.iter(f"{ns}path")) or list(svg.iter(f"{ns}rect"))
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids))


def test_tables_match_duckdb(full) -> None:
    store, text = full
    page = Page(text)
    hours = q(
        store,
        "SELECT coalesce(s.source_name, '(unknown)'), count(*), sum(r.duration_s) / 3600 "
        "FROM recordings r LEFT JOIN sources s USING (media_id) GROUP BY 1 ORDER BY 3 DESC",
    )
    got = [r[:3] for r in page.tables["hours-source"]["rows"]]
    approx_rows(got, hours)
    seg_h = q(
        store,
        "SELECT r.license, sum(g.duration_s) / 3600 FROM segments g "
        "JOIN recordings r USING (recording_id) GROUP BY 1 ORDER BY 1",
    )
    lic = page.tables["hours-licence"]
    approx_rows(sorted([[r[0], r[4]] for r in lic["rows"]]), seg_h)
    kept = q(store, "SELECT sum(duration_s) / 3600 FROM kept_utterances")[0][0]
    assert sum(column(page, "hours-licence", "kept h")) == pytest.approx(kept)
    # the funnel
    funnel = column(page, "funnel", "hours")
    want = [
        q(store, f"SELECT sum(duration_s) / 3600 FROM {v}")[0][0]
        for v in ("recordings", "segments", "utterances", "kept_utterances")
    ]
    assert funnel == pytest.approx(want)
    # durations: items and quantiles
    rows = {r[0]: r for r in page.tables["durations"]["rows"]}
    for name, view in (("recordings", "recordings"), ("segments", "segments"), ("pairs", "pairs")):
        n, med, hi = q(store, f"SELECT count(*), median(duration_s), max(duration_s) FROM {view}")[
            0
        ]
        headers = page.tables["durations"]["headers"]
        assert rows[name][headers.index("items")] == n
        assert rows[name][headers.index("median")] == pytest.approx(med)
        assert rows[name][headers.index("max")] == pytest.approx(hi)
    # rejects by stage/category (the view: the latest row per key)
    approx_rows(
        page.tables["rejects-category"]["rows"],
        q(
            store,
            "SELECT stage, category, count(*), coalesce(sum(duration_s), 0) / 3600, "
            "count(*) FILTER (WHERE retryable) FROM rejects GROUP BY 1, 2 "
            "ORDER BY 3 DESC, 1, 2",
        ),
    )
    reasons = column(page, "rejects-reasons", "reason (numbers as #)")
    assert "no speech found in # s" in reasons  # numbers masked, both rows in one group
    # N-best lists per kind
    lists = dict(q(store, "SELECT item_kind, count(*) FROM hypotheses GROUP BY 1"))
    lists["pair"] = q(store, "SELECT count(*) FROM pairs")[0][0]
    assert pairs_of(page, "nbest", "items", "lists") == lists
    # relabelling rounds
    approx_rows(
        [r[:5] for r in page.tables["relabel"]["rows"]],
        q(
            store,
            "SELECT round, count(*), count(*) FILTER (WHERE decision IN ('seed', 'keep')), "
            "count(*) FILTER (WHERE decision = 'reject'), avg(cer_prev) FROM labels "
            "GROUP BY 1 ORDER BY 1",
        ),
    )
    # pairs: the same figures as `speechmill metrics --by snr`
    groups = metric_groups(pairs_table(store, columns=metric_columns()), ["snr"])
    t = page.tables["pairs-snr"]
    assert column(page, "pairs-snr", "SNR bucket (dB)") == [g.key["snr"] for g in groups]
    assert column(page, "pairs-snr", "WER") == pytest.approx([g.wer for g in groups])
    assert column(page, "pairs-snr", "oracle WER") == pytest.approx([g.oracle_wer for g in groups])
    assert column(page, "pairs-snr", "CER") == pytest.approx([g.cer for g in groups])
    assert len(t["rows"]) == 4
    # the card: licences, table counts, attribution
    approx_rows(
        [r[:3] for r in page.tables["card-licences"]["rows"]],
        q(
            store,
            "SELECT license, count(*), sum(duration_s) / 3600 FROM recordings "
            "GROUP BY 1 ORDER BY 3 DESC",
        ),
    )
    counts = pairs_of(page, "card-tables", "table", "rows")
    assert counts["pairs"] == 4 and counts["runs"] == 4 and counts["labels"] == 8
    assert len(page.tables["card-attribution"]["rows"]) == 3
    assert "4 committed runs" in page.sections["card"]
    assert (
        "speechmill export" in page.sections["card"] and "ATTRIBUTION.md" in page.sections["card"]
    )
    builds = column(page, "card-builds", "pipeline")
    assert builds == ["corpus", "refine", "relabel", "synth"]
    assert "fakehash0123" in column(page, "card-builds", "models (content hash)")[0]


def test_remote_text_is_escaped_and_no_data_script_runs(full) -> None:
    _store, text = full
    page = Page(text)
    # the hostile strings are there, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in text
    assert "&quot;onload=&quot;alert(2)&quot; x=&#x27;" in text
    assert "&lt;/table&gt;&lt;img src=x onerror=alert(4)&gt;" in text
    assert "&lt;b&gt;bold&lt;/b&gt;" in text
    assert HOSTILE_TITLE in page.sections["card"]  # decoded back: shown as typed
    # ... and nothing of them became markup
    assert "<script>alert" not in text and "<img" not in text and "<b>bold" not in text
    assert [t for t, _ in page.tags].count("script") == 1
    assert len(page.scripts) == 1 and "alert" not in page.scripts[0]
    for tag, attrs in page.tags:
        assert tag not in ("img", "iframe", "object", "embed", "link") or (
            tag == "link" and attrs.get("href") == "data:,"
        )
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        if tag == "a":
            href = attrs.get("href") or ""
            assert href.startswith(("#", "https://", "http://")), href
    assert "javascript:" not in re.sub(r">[^<]*<", "><", text)  # only in text, never a tag
    # the page allows its own script only, and no request anywhere
    csp = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert csp == [CSP] and "default-src 'none'" in CSP and "script-src 'sha256-" in CSP
    assert not re.search(
        r"""(src|href)=["']?(https?:)?//""", re.sub(r'<a href="https?://', "", text)
    )
    assert "@import" not in text and "url(http" not in text


def test_sections_follow_the_data(tmp_path: Path) -> None:
    store = build_dataset(tmp_path / "corpus-only", parts=["corpus"])
    page = Page(render_report(gather(store)))
    for key, says in (
        ("alignment", "no aligned utterances in this dataset"),
        ("pairs", "no pairs in this dataset"),
        ("relabel", "no relabelling rounds in this dataset"),
    ):
        assert says in page.sections[key]
    for key in ("hours", "durations", "speech-rate", "rejects", "nbest", "card"):
        assert "in this dataset" not in page.sections[key], key
    assert "No refined utterances yet" in page.sections["hours"]
    # a synth-only dataset: pairs, N-best diversity, no corpus figures
    synth = build_dataset(tmp_path / "synth-only", parts=["synth"])
    page = Page(render_report(gather(synth)))
    assert "in this dataset" not in page.sections["pairs"]
    assert "hours-pairs" in page.tables and "hours-source" not in page.tables
    assert "no aligned utterances in this dataset" in page.sections["alignment"]
    assert "no transcribed segments or utterances" in page.sections["speech-rate"]
    # refined without a relabelling round
    refined = build_dataset(tmp_path / "refined", parts=["corpus", "refine"])
    page = Page(render_report(gather(refined)))
    assert "only the 4 round-0 labels of refine" in page.sections["relabel"]
    assert "in this dataset" not in page.sections["alignment"]


def test_an_empty_dataset_gives_a_report_that_says_so(tmp_path: Path) -> None:
    root = tmp_path / "nothing"
    out = write_report(Store(str(root)), tmp_path / "out" / "r.html", progress=False)
    text = Path(out).read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "This dataset is empty" in text and "<svg" not in text
    page = Page(text)
    assert len(page.sections) == 9
    assert all("in this dataset" in body for body in page.sections.values())
    assert not (root / "report.html").exists()  # `out` given: written there only


def test_default_output_is_report_html_at_the_root(tmp_path: Path) -> None:
    store = build_dataset(tmp_path / "ds", parts=["relabel"])  # labels without utterances
    path = write_report(store)
    assert path == tmp_path / "ds" / "report.html" and Path(path).exists()
    assert "Relabelling rounds" in Path(path).read_text(encoding="utf-8")


def test_a_report_of_a_pipeline_built_corpus(speech_dir: Path, tmp_path: Path) -> None:
    """The corpus pipeline (fake ASR) on three espeak clips plus a file that is not audio."""
    from speechmill.pipelines.corpus import run_corpus
    from tests.conftest import make_config
    from tests.fakes import FakeFactory

    (speech_dir / "broken.wav").write_bytes(b"not audio at all")
    root = tmp_path / "ds"
    cfg = make_config(speech_dir, f"store: {{root: {root}}}\nasr: {{beam_size: 3, n_best: 3}}\n")
    run_corpus(cfg, factory=FakeFactory(), progress=False)
    store = Store(str(root))
    page = Page(Path(write_report(store, progress=False)).read_text(encoding="utf-8"))
    rec_n, rec_h = q(store, "SELECT count(*), sum(duration_s) / 3600 FROM recordings")[0]
    assert rec_n == 3
    src = page.tables["hours-source"]["rows"]
    assert src[0][:3] == ["test", 3.0, pytest.approx(rec_h)]
    seg = q(store, "SELECT count(*), sum(duration_s) / 3600 FROM segments")[0]
    assert src[0][3:5] == [seg[0], pytest.approx(seg[1])]
    assert column(page, "nbest", "lists") == [q(store, "SELECT count(*) FROM hypotheses")[0][0]]
    assert column(page, "rejects-category", "category") == ["undecodable"]
    runs = q(store, "SELECT run_id, config_hash FROM runs")
    assert column(page, "hours-run", "run") == [runs[0][0]]
    assert column(page, "card-builds", "config sha256") == [runs[0][1][:12]]
    assert "in this dataset" in page.sections["alignment"]


def test_the_report_of_an_s3_root_is_written_into_the_bucket(s3: S3) -> None:
    store = Store(s3.root("ds"), StoreOptions(**s3.options))
    build_dataset(store, parts=["corpus", "synth"])
    where = write_report(store, progress=False)
    assert where == f"{s3.root('ds')}/report.html"
    body = s3.client().get_object(Bucket=s3.bucket, Key="ds/report.html")["Body"].read()
    page = Page(body.decode("utf-8"))
    assert [r[:3] for r in page.tables["hours-source"]["rows"]] == [
        [HOSTILE_SOURCE, 1.0, pytest.approx(61.25 / 3600)],
        ["talks", 2.0, pytest.approx(42.5 / 3600)],
    ]
    counts = pairs_of(page, "card-tables", "table", "rows")
    assert counts["pairs"] == 4 and counts["runs"] == 2
