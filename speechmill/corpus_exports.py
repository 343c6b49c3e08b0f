"""Trainer exports of the ASR corpus (Lhotse, NeMo, Kaldi, WebDataset, HF audio), with attribution.

The API the command line calls (docs/exports.md is the user guide)::

    export_corpus(store, fmt, out, *, round=None, source="auto", splits=(), licenses=(),
                  languages=(), min_duration_s=None, max_duration_s=None,
                  dev_fraction=0.05, test_fraction=0.05, shard_size=1000,
                  progress=None) -> ExportResult
    export_pairs(store, table, fmt, out, **opts) -> list[Path]     # GER exports + attribution
    attribution_for_pairs(store, table) -> list[Credit]
    write_attribution(out_dir, credits, *, unit="utterances", notes=()) -> list[Path]

`export_corpus` options:

* `fmt`: one of `CORPUS_FORMATS`: `lhotse`, `nemo`, `kaldi`, `webdataset`, `hf-audio`.
* `out`: a local folder. It must be new, empty, or hold an earlier export of this
  function (its `speechmill-export.json`): that export's files are then replaced, and
  those the new one does not write again are deleted. Any other non-empty folder is
  refused (nothing is written).
* `source`: `utterances` exports the kept set of a refined dataset (the
  `kept_utterances` view: utterances whose latest label is `seed` or `keep`) with
  that latest label; `segments` exports the committed `segments` (1-best text, no
  filter ran); `auto` (default) takes utterances when the dataset has any, else
  segments.
* `round`: a relabelling round K (0 = refine's labels): the utterances that round K
  kept, with their round-K labels. Default: each utterance's latest label. Needs
  utterances; a round with no committed labels is an error.
* `splits`: keep only these of `train`, `dev`, `test`. A recording is in one split,
  drawn from a hash of its `recording_id` with `dev_fraction` / `test_fraction`
  (the synth pipeline's rule), so no recording is cut across splits.
* `licenses`: keep only rows whose recording's licence matches an entry (the crawl
  policy's rules: a family `cc-by` matches every `cc-by-<version>`, a full id
  `cc-by-4.0` matches itself, `pd` matches cc0 and pdm). A recording whose licence
  is missing or `unknown` is excluded (counted as `unknown_license`) unless
  `unknown` is listed. Entries nothing can match (typos) are an error.
* `languages`: keep only these language codes (of the decode); a code no row has is
  an error.
* `min_duration_s`, `max_duration_s`: inclusive bounds on the utterance duration.
* `shard_size`: utterances per WebDataset tar and per HF Parquet file.
* `progress`: the per-utterance bar (`speechmill.progress`; None: on a terminal).

Rows are sorted by id in every file, so the same rows give byte-identical files.
Every file is written to a temporary name and renamed into place. Bad options, an
empty dataset, or filters that leave no row raise one `SpeechmillError` before
anything is written. Every export also writes `ATTRIBUTION.md` and
`attribution.jsonl` (each recording used: title, author, URL, licence, grouped by
licence). Licences that forbid redistribution are not refused here: the store
records licences but no redistribution policy (the crawl's `license_policy`
decides what is fetched), so what a crawl let in can be exported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import math
import os
import re
import shlex
import tarfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.core.audio.io import read_span
from speechmill.core.crawl.licenses import (
    ALL_RIGHTS_RESERVED,
    UNKNOWN,
    is_policy_entry,
    license_family,
    normalize_license,
    policy_decision,
    restrictiveness,
)
from speechmill.core.synth.synthplan import split_of
from speechmill.errors import SpeechmillError, StoreError
from speechmill.exports import FORMATS as PAIR_FORMATS
from speechmill.exports import ExportFormat, as_table, export, export_dir
from speechmill.progress import bar
from speechmill.store import Store, connect, fs

CorpusFormat: TypeAlias = Literal["lhotse", "nemo", "kaldi", "webdataset", "hf-audio"]
CORPUS_FORMATS: tuple[str, ...] = ("lhotse", "nemo", "kaldi", "webdataset", "hf-audio")
SOURCES: tuple[str, ...] = ("auto", "utterances", "segments")
SPLITS: tuple[str, ...] = ("train", "dev", "test")
SKIP_REASONS: tuple[str, ...] = (
    "no_recording",
    "empty_text",
    "split",
    "language",
    "license",
    "unknown_license",
    "min_duration",
    "max_duration",
)
"""Why a candidate row was left out, in the order the checks run (a row counts once)."""

MANIFEST = "speechmill-export.json"
ATTRIBUTION_MD = "ATTRIBUTION.md"
ATTRIBUTION_JSONL = "attribution.jsonl"
LHOTSE_PREFIX = "speechmill"

PathLike: TypeAlias = str | os.PathLike[str]
T = TypeVar("T")


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Credit:
    """One work to credit: a recording, or a text source of synthetic pairs."""

    kind: Literal["recording", "text-source"]
    id: str
    license: str
    title: str | None = None
    author: str | None = None
    url: str | None = None
    items: int = 0
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One utterance (or segment) to export, with its recording's credit fields."""

    id: str
    recording_id: str
    start_sample: int
    end_sample: int
    text: str
    language: str
    label_round: int | None
    split: str
    audio: str
    """The stored FLAC: an absolute path, or a URL for a remote root."""
    recording_samples: int
    """Samples in the whole stored FLAC."""
    license: str
    title: str | None
    author: str | None
    url: str | None

    @property
    def num_samples(self) -> int:
        return self.end_sample - self.start_sample

    @property
    def start_s(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return self.num_samples / SAMPLE_RATE

    @property
    def speaker(self) -> str:
        """The recording stands for the speaker (speechmill does not diarise)."""
        return self.recording_id[:24]


@dataclass
class ExportResult:
    format: str
    source: str
    """`utterances` or `segments`: what `auto` resolved to."""
    round: int | None
    """The round asked for (None: each utterance's latest label)."""
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    utterances: int = 0
    seconds: float = 0.0
    recordings: int = 0
    """Recordings credited (those with at least one exported utterance)."""
    splits: dict[str, int] = field(default_factory=dict)
    licenses: dict[str, int] = field(default_factory=dict)
    """Exported utterances per licence id."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Rows left out, by `SKIP_REASONS`."""
    unrefined_recordings: int = 0
    """With source `utterances`: recordings with segments but no utterances (not refined)."""
    replaced: int = 0
    """Files of an earlier export in `out` that this one did not write again (deleted)."""


@dataclass(frozen=True)
class _Filters:
    splits: frozenset[str]
    licenses: tuple[str, ...]
    languages: frozenset[str]
    min_duration_s: float | None
    max_duration_s: float | None


@dataclass(frozen=True)
class _Job:
    """One output file: its path relative to the export folder and what writes it."""

    rel: str
    write: Callable[[IO[bytes]], None]


# --------------------------------------------------------------------------- licences


_CC_NAMES = {"cc0": "CC0", "pdm": "Public Domain Mark"}


def _family_version(license_id: str) -> tuple[str, str | None]:
    family = license_family(license_id)
    if family == license_id:
        return family, None
    return family, license_id[len(family) + 1 :]


def license_name(license_id: str) -> str:
    """`cc-by-sa-4.0` -> `CC BY-SA 4.0`; `cc0-1.0` -> `CC0 1.0`; others readable."""
    if license_id == UNKNOWN:
        return "Unknown licence"
    if license_id == ALL_RIGHTS_RESERVED:
        return "All rights reserved"
    if license_id == "pdm":
        return "Public domain"
    family, version = _family_version(license_id)
    if family in _CC_NAMES:
        base = _CC_NAMES[family]
    elif family.startswith("cc-by"):
        base = "CC " + family[3:].upper()
    else:
        return license_id
    return f"{base} {version}" if version else base


def license_url(license_id: str) -> str | None:
    """The licence's deed on creativecommons.org; the licence list for a CC licence
    whose version the source did not state; None for the rest."""
    family, version = _family_version(license_id)
    if family == "cc0":
        return "https://creativecommons.org/publicdomain/zero/1.0/"
    if family == "pdm" and version:
        return "https://creativecommons.org/publicdomain/mark/1.0/"
    if family.startswith("cc-by"):
        slug = family[3:]
        if version:
            return f"https://creativecommons.org/licenses/{slug}/{version}/"
        return "https://creativecommons.org/licenses/"
    return None


def _terms(license_id: str) -> str:
    """What a licence asks of someone who shares the material (the licence's own terms)."""
    family, version = _family_version(license_id)
    if family in ("cc0", "pdm"):
        return "No credit required (given here as a courtesy)."
    if family.startswith("cc-by"):
        parts = [
            "Credit required: give the title, author and source of each work, link the "
            "licence, and say that the audio was cut into utterances and transcribed."
        ]
        if "-sa" in family:
            parts.append("Share-alike: adaptations must be shared under the same licence.")
        if "-nc" in family:
            parts.append("Non-commercial use only.")
        if "-nd" in family:
            parts.append("No derivatives: adapted material may not be shared.")
        if not version:
            parts.append("The source did not state the licence version.")
        return " ".join(parts)
    if family == ALL_RIGHTS_RESERVED:
        return "No licence grants reuse: sharing needs the rights holder's permission."
    return "Licence not known: check each source's terms before sharing."


def _requires_credit(license_id: str) -> bool:
    return license_family(license_id).startswith("cc-by")


def _clean_license(value: object) -> str:
    text = str(value).strip() if value is not None else ""
    return text or UNKNOWN


# --------------------------------------------------------------------------- attribution


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~!])")
_WS = re.compile(r"\s+")


def _md(text: str, limit: int = 300) -> str:
    """Remote text as one line of inert Markdown (no links, markup or HTML)."""
    plain = "".join(ch if ch.isprintable() else " " for ch in text)
    plain = _WS.sub(" ", plain).strip()
    if len(plain) > limit:
        plain = plain[: limit - 3] + "..."
    return _MD_SPECIAL.sub(r"\\\1", plain)


def _md_url(url: str | None) -> str | None:
    """An http(s) URL as a Markdown autolink; anything else is not linked."""
    if not url or not re.match(r"^https?://[^\s]+$", url):
        return None
    return "<" + url.replace("<", "%3C").replace(">", "%3E") + ">"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min {int(seconds % 60)} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _count_of(n: int, unit: str) -> str:
    """`1 utterance`, `2 utterances` (`unit` is the plural)."""
    return f"{n} {unit[:-1] if n == 1 and unit.endswith('s') else unit}"


def _credit_key(c: Credit) -> tuple[int, str, str]:
    """Least restrictive licence first, `unknown` (and anything unrecognised) last."""
    rank = restrictiveness(c.license)
    return (rank if rank >= 0 else 99, c.license, c.id)


def _credit_line(c: Credit, unit: str) -> str:
    if c.title:
        what = f'"{_md(c.title)}"'
    elif c.kind == "recording":
        what = f"Untitled recording `{c.id[:16]}`"
    else:
        what = f"Text source `{_md(c.id, 120)}`"
    if c.author:
        what += f" by {_md(c.author)}"
    link = _md_url(c.url)
    if link:
        what += f", {link}"
    what += f" ({_count_of(c.items, unit)}"
    if c.seconds:
        what += f", {_duration(c.seconds)}"
    return "- " + what + ")"


def attribution_markdown(
    credits: Sequence[Credit], *, unit: str = "utterances", notes: Sequence[str] = ()
) -> str:
    """ATTRIBUTION.md: a header naming the licences that ask for credit, then the
    credited works grouped by licence (least restrictive first)."""
    ordered = sorted(credits, key=_credit_key)
    by_license: dict[str, list[Credit]] = {}
    for c in ordered:
        by_license.setdefault(c.license, []).append(c)
    items = sum(c.items for c in credits)
    seconds = sum(c.seconds for c in credits)
    recordings = sum(1 for c in credits if c.kind == "recording")
    lines = ["# Attribution", ""]
    summary = f"This export holds {_count_of(items, unit)}"
    if seconds:
        summary += f" ({_duration(seconds)} of audio)"
    summary += f" from {_count_of(recordings, 'recordings')}" if recordings else ""
    lines += [summary + f", under {_count_of(len(by_license), 'licences')}.", ""]
    credit = [lic for lic in by_license if _requires_credit(lic)]
    if credit:
        lines.append(
            "- Licences that require credit: "
            + ", ".join(f"{license_name(lic)} (`{lic}`)" for lic in credit)
            + ". When you share this data, or a model card or paper that uses it, credit "
            "each work listed under them with its title, author and source, and link its "
            "licence."
        )
    sharealike = [lic for lic in credit if "-sa" in license_family(lic)]
    if sharealike:
        lines.append(
            "- Share-alike: adaptations of "
            + ", ".join(f"`{lic}`" for lic in sharealike)
            + " material must be shared under the same licence."
        )
    free = [lic for lic in by_license if license_family(lic) in ("cc0", "pdm")]
    if free:
        lines.append("- No credit required: " + ", ".join(f"`{lic}`" for lic in free) + ".")
    unclear = [lic for lic in by_license if restrictiveness(lic) < 0 or lic == ALL_RIGHTS_RESERVED]
    if unclear:
        lines.append(
            "- No known licence permits sharing the material under "
            + ", ".join(f"`{lic}`" for lic in unclear)
            + ": check its terms first."
        )
    lines += [f"- Note: {n}" for n in notes]
    lines += ["", "`attribution.jsonl` holds the same list, one JSON object per work."]
    for lic, group in by_license.items():
        lines += ["", f"## {license_name(lic)} (`{lic}`)", ""]
        link = license_url(lic)
        if link:
            lines += [f"Licence: <{link}>", ""]
        lines += [_terms(lic), ""]
        lines += [_credit_line(c, unit) for c in group]
    return "\n".join(lines) + "\n"


def attribution_jsonl(credits: Sequence[Credit]) -> str:
    out = []
    for c in sorted(credits, key=_credit_key):
        obj = {
            "kind": c.kind,
            "id": c.id,
            "title": c.title,
            "author": c.author,
            "url": c.url,
            "license": c.license,
            "license_name": license_name(c.license),
            "license_url": license_url(c.license),
            "items": c.items,
            "seconds": round(c.seconds, 4),
        }
        out.append(json.dumps(obj, ensure_ascii=False) + "\n")
    return "".join(out)


def _attribution_jobs(
    credits: Sequence[Credit], unit: str, notes: Sequence[str] = (), prefix: str = ""
) -> list[_Job]:
    md = attribution_markdown(credits, unit=unit, notes=notes).encode("utf-8")
    jl = attribution_jsonl(credits).encode("utf-8")
    return [
        _Job(prefix + ATTRIBUTION_MD, _bytes(md)),
        _Job(prefix + ATTRIBUTION_JSONL, _bytes(jl)),
    ]


def write_attribution(
    out_dir: PathLike,
    credits: Sequence[Credit],
    *,
    unit: str = "utterances",
    notes: Sequence[str] = (),
    prefix: str = "",
) -> list[Path]:
    """Write `ATTRIBUTION.md` and `attribution.jsonl` into `out_dir` (atomically each),
    their names prefixed with `prefix` (`sft.jsonl.` for an export written to a file)."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for job in _attribution_jobs(credits, unit, notes, prefix):
        written.append(_write_job(root, job))
    return written


def credits_of(rows: Iterable[ExportRow]) -> list[Credit]:
    """One credit per recording used, with its utterance count and seconds."""
    items: Counter[str] = Counter()
    samples: Counter[str] = Counter()
    first: dict[str, ExportRow] = {}
    for r in rows:
        items[r.recording_id] += 1
        samples[r.recording_id] += r.num_samples
        first.setdefault(r.recording_id, r)
    return [
        Credit(
            kind="recording",
            id=rid,
            license=r.license,
            title=r.title,
            author=r.author,
            url=r.url,
            items=items[rid],
            seconds=samples[rid] / SAMPLE_RATE,
        )
        for rid, r in sorted(first.items())
    ]


# --------------------------------------------------------------------------- GER pairs


def _real_pair_id(utterance_id: str, decoder: str) -> str:
    """The id the synth pipeline gives a real-speech pair (transforms/real_pairs.py)."""
    return hashlib.sha256(f"real|{utterance_id}|{decoder}".encode()).hexdigest()


_REAL_CREDITS_SQL = """
SELECT h.item_id, h.decoder_id, u.recording_id, coalesce(r.license, u.license) AS license,
       coalesce(struct_extract(r.attribution, 'title'), s.title) AS title,
       coalesce(struct_extract(r.attribution, 'author'), s.author) AS author,
       coalesce(struct_extract(r.attribution, 'url'), s.webpage_url) AS url
FROM hypotheses h
JOIN utterances u ON u.utterance_id = h.item_id
LEFT JOIN recordings r ON r.recording_id = u.recording_id
LEFT JOIN sources s ON s.media_id = r.media_id
WHERE h.item_kind = 'utterance'
"""


def _real_credits(store: Store, root: str, pair_ids: set[str]) -> dict[str, Credit] | None:
    """pair_id -> the credit of the recording a real-speech pair was cut from, read from
    the dataset it came from; None when that dataset cannot be read."""
    try:
        real = Store(root, store.options)
        con = connect(real)
    except Exception:  # a moved or unreachable real_root: its pairs are credited by name
        return None
    try:
        found = con.execute(_REAL_CREDITS_SQL).fetchall()
    except Exception:  # an older or foreign root without these tables
        return None
    finally:
        con.close()
    out: dict[str, Credit] = {}
    for uid, decoder, rid, lic, title, author, url in found:
        pid = _real_pair_id(str(uid), str(decoder))
        if pid in pair_ids:
            out[pid] = Credit("recording", str(rid), _clean_license(lic), title, author, url)
    return out


def _traced_pairs(store: Store, t: pa.Table) -> dict[str, Credit]:
    """pair_id -> the credit of the recording each real-speech pair (`source` =
    `corpus:<root>`) was cut from, for the pairs whose dataset can be read."""
    missing = [
        c for c in ("pair_id", "source", "is_synthetic", "duration_s") if c not in t.schema.names
    ]
    if missing:
        raise SpeechmillError(f"the pairs table lacks columns {missing}")
    by_root: dict[str, set[str]] = {}
    for r in t.select(["pair_id", "source", "is_synthetic"]).to_pylist():
        source = str(r["source"])
        if r["is_synthetic"] is False and source.startswith("corpus:"):
            by_root.setdefault(source[len("corpus:") :], set()).add(str(r["pair_id"]))
    traced: dict[str, Credit] = {}
    for root, ids in sorted(by_root.items()):
        traced.update(_real_credits(store, root, ids) or {})
    return traced


def pair_licenses(store: Store, table: pa.Table | pa.RecordBatchReader) -> dict[str, str]:
    """pair_id -> the licence a pair is under: its recording's for a real-speech pair the
    dataset it came from can trace, else `unknown` (the synth tables record no licence
    for text sources or voices)."""
    t = as_table(table)
    return _licenses_of(t, _traced_pairs(store, t))


def _licenses_of(t: pa.Table, traced: Mapping[str, Credit]) -> dict[str, str]:
    return {
        str(pid): traced[str(pid)].license if str(pid) in traced else UNKNOWN
        for pid in t.column("pair_id").to_pylist()
    }


def filter_pairs_by_license(
    store: Store, table: pa.Table | pa.RecordBatchReader, licenses: Sequence[str]
) -> tuple[pa.Table, dict[str, int]]:
    """The pairs whose licence matches an entry of `licenses` (the crawl policy's rules,
    as for corpus exports), and how many were left out: `license` (another licence) and
    `unknown_license` (synthetic pairs, and real ones whose dataset cannot be read,
    unless `unknown` is listed). Bad entries, or no pair left, raise `SpeechmillError`."""
    t = as_table(table)
    return _filter_pairs(t, licenses, _traced_pairs(store, t))


def _filter_pairs(
    t: pa.Table, licenses: Sequence[str], traced: Mapping[str, Credit]
) -> tuple[pa.Table, dict[str, int]]:
    entries = [e.strip() for e in licenses if e.strip()]
    if not entries:
        raise SpeechmillError("--license names no licence (an empty list would export every one)")
    _check_licenses(entries)
    of = _licenses_of(t, traced)
    keep: list[bool] = []
    skipped = {"license": 0, "unknown_license": 0}
    for pid in t.column("pair_id").to_pylist():
        why = _license_skip(of[str(pid)], entries)
        keep.append(why is None)
        if why is not None:
            skipped[why] += 1
    kept = t.filter(pa.array(keep, type=pa.bool_()))
    if kept.num_rows == 0:
        raise SpeechmillError(
            f"nothing to export: none of the {t.num_rows} pairs is under "
            f"{', '.join(entries)} (left out: "
            + ", ".join(f"{k} {v}" for k, v in skipped.items() if v)
            + "; synthetic pairs carry licence `unknown`: list it to keep them)"
        )
    return kept, skipped


def attribution_for_pairs(store: Store, table: pa.Table | pa.RecordBatchReader) -> list[Credit]:
    """Credits for exported `pairs` rows.

    The synth tables record no licence for a text source or TTS voice: synthetic pairs
    are credited per text source (`pairs.source`) with licence `unknown`. Real-speech
    pairs (`source` = `corpus:<root>`) are traced back to their recordings in that
    dataset (licence, title, author, URL); if it cannot be read, they are credited
    per source like synthetic ones.
    """
    t = as_table(table)
    return _pair_credits(t, _traced_pairs(store, t))


def _pair_credits(t: pa.Table, traced: Mapping[str, Credit]) -> list[Credit]:
    credits: dict[tuple[str, str], Credit] = {}

    def add(key: tuple[str, str], base: Credit, seconds: float) -> None:
        old = credits.get(key, base)
        credits[key] = dataclasses.replace(old, items=old.items + 1, seconds=old.seconds + seconds)

    rows = t.select(["pair_id", "source", "duration_s"]).to_pylist()
    for r in sorted(rows, key=lambda r: str(r["source"])):
        source, secs = str(r["source"]), float(r["duration_s"] or 0.0)
        credit = traced.get(str(r["pair_id"]))
        if credit is not None:
            add(("recording", credit.id), credit, secs)
        else:
            add(("text-source", source), Credit("text-source", source, UNKNOWN), secs)
    return sorted(credits.values(), key=_credit_key)


PAIRS_NOTE = (
    "the synth tables record no licence for text sources or TTS voices; synthetic pairs "
    "are listed by text source with licence `unknown`: check the texts' and voices' terms."
)


def export_pairs(
    store: Store,
    table: pa.Table | pa.RecordBatchReader,
    fmt: ExportFormat,
    out: PathLike,
    *,
    licenses: Sequence[str] = (),
    **opts: Any,
) -> list[Path]:
    """`speechmill.exports.export`, then `ATTRIBUTION.md` and `attribution.jsonl` beside
    the files it wrote. No rows: nothing is written and [] is returned.

    `licenses`: keep only the pairs under these licences (`filter_pairs_by_license`).
    Written to a folder (hyporadise, hf, or a folder path), the attribution files are
    `ATTRIBUTION.md` and `attribution.jsonl` in it; written to a file (`sft.jsonl`,
    `dlm.tsv`), they are `sft.jsonl.ATTRIBUTION.md` and `sft.jsonl.attribution.jsonl`
    beside it, so they never overwrite a folder's own ATTRIBUTION.md or another
    export's credits."""
    if fmt not in PAIR_FORMATS:
        raise SpeechmillError(
            f"unknown export format {fmt!r} (choose from {', '.join(PAIR_FORMATS)})"
        )
    t = as_table(table)
    traced = _traced_pairs(store, t)  # read the real datasets once for both uses
    if licenses:
        t, _ = _filter_pairs(t, licenses, traced)
    written = export(t, fmt, out, **opts)
    if not written:
        return written
    credits = _pair_credits(t, traced)
    folder = export_dir(fmt, out)
    prefix = "" if folder == Path(out) else Path(out).name + "."
    return written + write_attribution(
        folder, credits, unit="pairs", notes=[PAIRS_NOTE], prefix=prefix
    )


# --------------------------------------------------------------------------- reading the store


_KEPT_LATEST = (
    "SELECT utterance_id AS id, recording_id, start_sample, end_sample, label AS text, "
    "language, label_round FROM kept_utterances"
)
_KEPT_ROUND = (
    "SELECT u.utterance_id AS id, u.recording_id, u.start_sample, u.end_sample, l.text, "
    "u.language, l.round AS label_round FROM utterances u JOIN labels l "
    "ON l.utterance_id = u.utterance_id AND l.round = $round "
    "WHERE l.decision IN ('seed', 'keep')"
)
_SEGMENTS = (
    "SELECT segment_id AS id, recording_id, start_sample, end_sample, text, language, "
    "CAST(NULL AS INTEGER) AS label_round FROM segments"
)
_ROWS = """
SELECT x.id, x.recording_id, x.start_sample, x.end_sample, x.text,
       coalesce(x.language, r.language) AS language, x.label_round, r.audio_uri,
       r.num_samples, r.license,
       coalesce(struct_extract(r.attribution, 'title'), s.title) AS title,
       coalesce(struct_extract(r.attribution, 'author'), s.author) AS author,
       coalesce(struct_extract(r.attribution, 'url'), s.webpage_url) AS url
FROM ({inner}) x
LEFT JOIN recordings r ON r.recording_id = x.recording_id
LEFT JOIN sources s ON s.media_id = r.media_id
ORDER BY x.id
"""


def _count(con: Any, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _resolve_source(con: Any, store: Store, source: str, round_k: int | None) -> tuple[str, int]:
    """(`utterances` or `segments`, recordings with segments but no utterances)."""
    n_utts = _count(con, "SELECT count(*) FROM utterances")
    n_segs = _count(con, "SELECT count(*) FROM segments")
    if source == "auto":
        if not n_utts and not n_segs:
            raise SpeechmillError(
                f"nothing to export: {store.root} has no committed utterances or segments "
                "(run `speechmill run`, then `speechmill refine`)"
            )
        source = "utterances" if n_utts else "segments"
    if source == "utterances" and not n_utts:
        raise SpeechmillError(
            f"{store.root} has no refined utterances: run `speechmill refine`, or export "
            "its segments (source `segments`)"
        )
    if source == "segments" and not n_segs:
        raise SpeechmillError(f"{store.root} has no committed segments to export")
    if round_k is not None:
        if source != "utterances":
            raise SpeechmillError(
                f"round {round_k} needs refined utterances; {store.root} is exported from "
                "its segments"
            )
        rounds = [
            int(r[0])
            for r in con.execute("SELECT DISTINCT round FROM labels ORDER BY 1").fetchall()
        ]
        if round_k not in rounds:
            have = ", ".join(str(r) for r in rounds) or "none"
            raise SpeechmillError(
                f"round {round_k} has no committed labels in {store.root} (rounds: {have})"
            )
    unrefined = 0
    if source == "utterances":
        unrefined = _count(
            con,
            "SELECT count(DISTINCT recording_id) FROM segments "
            "WHERE recording_id NOT IN (SELECT recording_id FROM utterances)",
        )
    return source, unrefined


def _candidates(
    con: Any,
    store: Store,
    source: str,
    round_k: int | None,
    dev_fraction: float,
    test_fraction: float,
) -> tuple[list[ExportRow], int]:
    """(rows with their recording's fields, rows whose recording is not committed)."""
    params: dict[str, int] = {}
    if source == "segments":
        inner = _SEGMENTS
    elif round_k is None:
        inner = _KEPT_LATEST
    else:
        inner, params = _KEPT_ROUND, {"round": round_k}
    cur = con.execute(_ROWS.format(inner=inner), params)
    rows: list[ExportRow] = []
    orphans = 0
    splits: dict[str, str] = {}
    while batch := cur.fetchmany(10_000):
        for rid, rec_id, a, b, text, lang, rnd, uri, n, lic, title, author, url in batch:
            if uri is None:
                orphans += 1
                continue
            rec = str(rec_id)
            split = splits.get(rec)
            if split is None:
                split = splits[rec] = split_of(rec, dev_fraction, test_fraction)
            rows.append(
                ExportRow(
                    id=str(rid),
                    recording_id=rec,
                    start_sample=int(a),
                    end_sample=int(b),
                    text=str(text or ""),
                    language=str(lang or ""),
                    label_round=None if rnd is None else int(rnd),
                    split=split,
                    audio=store.path(str(uri)),
                    recording_samples=int(n),
                    license=_clean_license(lic),
                    title=title,
                    author=author,
                    url=url,
                )
            )
    return rows, orphans


# --------------------------------------------------------------------------- filters


def _check_options(
    fmt: str,
    source: str,
    round_k: int | None,
    splits: Sequence[str],
    licenses: Sequence[str],
    languages: Sequence[str],
    min_duration_s: float | None,
    max_duration_s: float | None,
    dev_fraction: float,
    test_fraction: float,
    shard_size: int,
) -> _Filters:
    if fmt not in CORPUS_FORMATS:
        raise SpeechmillError(
            f"unknown corpus export format {fmt!r} (choose from {', '.join(CORPUS_FORMATS)})"
        )
    if source not in SOURCES:
        raise SpeechmillError(f"unknown source {source!r} (choose from {', '.join(SOURCES)})")
    if round_k is not None and (isinstance(round_k, bool) or round_k < 0):
        raise SpeechmillError(f"round must be 0 or more, got {round_k}")
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise SpeechmillError(f"unknown split {bad[0]!r} (choose from {', '.join(SPLITS)})")
    _check_licenses(licenses)
    for name, value in (("min_duration_s", min_duration_s), ("max_duration_s", max_duration_s)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise SpeechmillError(f"{name} must be a number >= 0, got {value}")
    if (
        min_duration_s is not None
        and max_duration_s is not None
        and min_duration_s > max_duration_s
    ):
        raise SpeechmillError(
            f"min_duration_s {min_duration_s} is larger than max_duration_s {max_duration_s}"
        )
    for name, value in (("dev_fraction", dev_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value <= 1:
            raise SpeechmillError(f"{name} must be within [0, 1], got {value}")
    if dev_fraction + test_fraction > 1:
        raise SpeechmillError("dev_fraction + test_fraction must be at most 1")
    if isinstance(shard_size, bool) or shard_size < 1:
        raise SpeechmillError(f"shard_size must be at least 1, got {shard_size}")
    return _Filters(
        splits=frozenset(splits),
        licenses=tuple(e.strip() for e in licenses),
        languages=frozenset(languages),
        min_duration_s=min_duration_s,
        max_duration_s=max_duration_s,
    )


def _check_licenses(entries: Iterable[str]) -> None:
    """Licence filter entries nothing could match (typos) are an error."""
    bad = [e for e in entries if not is_policy_entry(e)]
    if bad:
        raise SpeechmillError(
            f"unknown licence {bad[0]!r}: use a family (cc-by, cc-by-sa, cc0, pd, ...), a "
            "full id (cc-by-4.0) or unknown"
        )


def _license_skip(license_id: str, entries: Sequence[str]) -> str | None:
    """Why a row under `license_id` is left out by the licence filter `entries`
    (`license`, or `unknown_license` for a missing or unknown one), or None to keep it."""
    allowed, _ = policy_decision(license_id, list(entries), ())
    if allowed:
        return None
    return "unknown_license" if normalize_license(license_id) == UNKNOWN else "license"


def skip_reason(row: ExportRow, f: _Filters) -> str | None:
    """The first of `SKIP_REASONS` that leaves `row` out, or None to keep it."""
    if not row.text.strip():
        return "empty_text"
    if f.splits and row.split not in f.splits:
        return "split"
    if f.languages and row.language not in f.languages:
        return "language"
    if f.licenses and (why := _license_skip(row.license, f.licenses)):
        return why
    if f.min_duration_s is not None and row.duration_s < f.min_duration_s:
        return "min_duration"
    if f.max_duration_s is not None and row.duration_s > f.max_duration_s:
        return "max_duration"
    return None


def select(rows: Iterable[ExportRow], f: _Filters) -> tuple[list[ExportRow], dict[str, int]]:
    """(kept rows, rows left out per reason)."""
    kept: list[ExportRow] = []
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    for r in rows:
        why = skip_reason(r, f)
        if why is None:
            kept.append(r)
        else:
            skipped[why] += 1
    return kept, skipped


def _by_split(rows: Sequence[ExportRow]) -> list[tuple[str, list[ExportRow]]]:
    """(split, its rows sorted by id) for each split present, train, dev, test."""
    out = []
    for split in SPLITS:
        part = sorted((r for r in rows if r.split == split), key=lambda r: r.id.encode("utf-8"))
        if part:
            out.append((split, part))
    return out


# --------------------------------------------------------------------------- audio


class _Spans:
    """Reads utterance spans, keeping the current recording's file open (rows come
    grouped by recording: ids start with the recording id)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._stack = contextlib.ExitStack()
        self._path: str | None = None
        self._file: IO[bytes] | None = None

    def read(self, row: ExportRow) -> npt.NDArray[np.float32]:
        if row.audio != self._path or self._file is None:
            self.close()
            self._stack = contextlib.ExitStack()
            try:
                self._file = self._stack.enter_context(self._store.open(row.audio))
            except FileNotFoundError:
                raise StoreError(
                    f"the audio of recording {row.recording_id} is missing: {row.audio}"
                ) from None
            self._path = row.audio
        audio = read_span(self._file, row.start_sample, row.end_sample)
        if audio.size != row.num_samples:
            raise StoreError(
                f"{row.audio} holds {audio.size} of the {row.num_samples} samples of {row.id} "
                "(the stored audio is shorter than its utterances)"
            )
        return audio

    def close(self) -> None:
        self._stack.close()
        self._path, self._file = None, None


def flac_bytes(audio: npt.NDArray[np.float32]) -> bytes:
    """16 kHz mono 16-bit FLAC of float samples read from a stored (16-bit) FLAC: the
    same samples, bit for bit."""
    import soundfile as sf

    pcm = np.clip(np.rint(audio.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


# --------------------------------------------------------------------------- writing


def _bytes(data: bytes) -> Callable[[IO[bytes]], None]:
    def write(f: IO[bytes]) -> None:
        f.write(data)

    return write


def _lines(make: Callable[[list[T]], Iterable[str]], rows: list[T]) -> Callable[[IO[bytes]], None]:
    """Write the lines `make(rows)` yields (made while writing), each ending in LF."""

    def write(f: IO[bytes]) -> None:
        for line in make(rows):
            f.write(line.encode("utf-8") + b"\n")

    return write


def _fixed_lines(lines: list[str]) -> Callable[[IO[bytes]], None]:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    return _bytes(data)


def _gzip_lines(
    make: Callable[[list[ExportRow]], Iterable[str]], rows: list[ExportRow]
) -> Callable[[IO[bytes]], None]:
    def write(f: IO[bytes]) -> None:
        # no file name and mtime 0 in the header: the same lines give the same bytes
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=6) as gz:
            for line in make(rows):
                gz.write(line.encode("utf-8") + b"\n")

    return write


def _write_job(root: Path, job: _Job) -> Path:
    path = root / job.rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            job.write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _json(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _seconds(samples: int) -> str:
    """Exact decimal seconds of a sample count at 16 kHz (at most 7 decimals)."""
    text = f"{samples / SAMPLE_RATE:.7f}".rstrip("0")
    return text[:-1] if text.endswith(".") else text


def _one_line(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _check_out(out: PathLike) -> Path:
    if fs.is_remote(os.fspath(out)):
        raise SpeechmillError(f"exports are written to a local folder, not {os.fspath(out)}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SpeechmillError(f"{path} is a file; the export needs a folder")
    return path


def _previous_files(out_dir: Path) -> list[str]:
    """Files of an earlier export in `out_dir` (its manifest); [] for a new or empty
    folder; an error for any other non-empty folder."""
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return []
    manifest = out_dir / MANIFEST
    if not manifest.is_file():
        raise SpeechmillError(
            f"{out_dir} is not empty and holds no speechmill export ({MANIFEST}): export into "
            "a new or empty folder"
        )
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        files = [str(p) for p in data["files"]]
    except (ValueError, KeyError, TypeError) as e:
        raise SpeechmillError(
            f"{manifest} cannot be read ({e}): export into a new folder"
        ) from None
    for rel in files:
        p = Path(rel)
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise SpeechmillError(f"{manifest} lists a path outside the export: {rel!r}")
    return files


def _manifest(meta: Mapping[str, Any], files: Sequence[str], complete: bool) -> bytes:
    body = {**meta, "complete": complete, "files": list(files)}
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _run_jobs(
    out_dir: Path, jobs: Sequence[_Job], previous: Sequence[str], meta: Mapping[str, Any]
) -> tuple[list[Path], int]:
    """Write every job; replace an earlier export. Returns (files, stale files deleted).

    The manifest is written first (marked incomplete, listing the earlier export's
    files and this one's), so an export killed half-way leaves a folder the next export
    recognises and cleans; it is rewritten last with this export's files only.
    """
    rels = [j.rel for j in jobs]
    if len(set(rels)) != len(rels) or MANIFEST in rels:
        raise SpeechmillError("internal error: an export planned one file twice")
    out_dir.mkdir(parents=True, exist_ok=True)
    pending = sorted(set(previous) | set(rels))
    _write_job(out_dir, _Job(MANIFEST, _bytes(_manifest(meta, pending, complete=False))))
    written = [_write_job(out_dir, j) for j in jobs]
    for rel in pending:  # temporary files of an export killed outright (SIGKILL)
        (out_dir / (rel + ".tmp")).unlink(missing_ok=True)
    stale = sorted(set(previous) - set(rels) - {MANIFEST})
    removed = 0
    for rel in stale:
        path = out_dir / rel
        if path.is_file():
            path.unlink()
            removed += 1
        for parent in path.parents:  # folders the stale files leave empty
            if parent == out_dir or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()
    written.append(
        _write_job(out_dir, _Job(MANIFEST, _bytes(_manifest(meta, rels, complete=True))))
    )
    return written, removed


# --------------------------------------------------------------------------- formats


@dataclass
class _Context:
    store: Store
    out_dir: Path
    spans: _Spans
    tick: Callable[[], None]
    shard_size: int


def _lhotse_jobs(parts: Sequence[tuple[str, list[ExportRow]]], ctx: _Context) -> list[_Job]:
    """`speechmill_{recordings,supervisions}_<split>.jsonl.gz`: audio by path/URL + offsets."""
    source_type = "url" if ctx.store.is_remote else "file"

    def recordings(rows: list[ExportRow]) -> Iterator[str]:
        seen: dict[str, ExportRow] = {}
        for r in rows:
            seen.setdefault(r.recording_id, r)
        for rid in sorted(seen):
            r = seen[rid]
            yield _json(
                {
                    "id": rid,
                    "sources": [{"type": source_type, "channels": [0], "source": r.audio}],
                    "sampling_rate": SAMPLE_RATE,
                    "num_samples": r.recording_samples,
                    "duration": r.recording_samples / SAMPLE_RATE,
                    "channel_ids": [0],
                }
            )

    def supervisions(rows: list[ExportRow]) -> Iterator[str]:
        for r in rows:
            ctx.tick()
            yield _json(
                {
                    "id": r.id,
                    "recording_id": r.recording_id,
                    "start": r.start_s,
                    "duration": r.duration_s,
                    "channel": 0,
                    "text": r.text,
                    "language": r.language,
                    "speaker": r.speaker,
                    "custom": {
                        "split": r.split,
                        "license": r.license,
                        "label_round": r.label_round,
                    },
                }
            )

    jobs = []
    for split, rows in parts:
        name = f"{LHOTSE_PREFIX}_{{}}_{split}.jsonl.gz"
        jobs.append(_Job(name.format("recordings"), _gzip_lines(recordings, rows)))
        jobs.append(_Job(name.format("supervisions"), _gzip_lines(supervisions, rows)))
    return jobs


def _nemo_jobs(parts: Sequence[tuple[str, list[ExportRow]]], ctx: _Context) -> list[_Job]:
    """`<split>_manifest.jsonl`: audio_filepath, offset, duration, text (audio not cut)."""

    def lines(rows: list[ExportRow]) -> Iterator[str]:
        for r in rows:
            ctx.tick()
            yield _json(
                {
                    "audio_filepath": r.audio,
                    "offset": r.start_s,
                    "duration": r.duration_s,
                    "text": r.text,
                    "lang": r.language,
                    "id": r.id,
                }
            )

    return [_Job(f"{split}_manifest.jsonl", _lines(lines, rows)) for split, rows in parts]


_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""What an id must look like to become a file name, a tar key or a Kaldi id: the
store's ids (hex hashes, `<recording>-u<start>-<end>`) always do; anything else (a
foreign or damaged table) could escape the export folder or break Kaldi's files."""


def _check_ids(rows: Sequence[ExportRow]) -> None:
    for r in rows:
        for what, value in (("utterance", r.id), ("recording", r.recording_id)):
            if not _SAFE_ID.fullmatch(value) or ".." in value:
                raise SpeechmillError(
                    f"{what} id {value[:80]!r} cannot name an exported file (letters, digits, "
                    "'_', '.' and '-' only); the dataset's tables are not speechmill's own"
                )


def _kaldi_audio_rel(recording_id: str) -> str:
    return f"audio/{recording_id}.flac"


def _c_sorted(items: Iterable[str]) -> list[str]:
    """Sorted in C-locale (byte) order, as Kaldi's `sort` expects."""
    return sorted(items, key=lambda s: s.encode("utf-8"))


def _kaldi_jobs(parts: Sequence[tuple[str, list[ExportRow]]], ctx: _Context) -> list[_Job]:
    """A data dir per split: wav.scp (a `flac -d` pipe per recording), segments, text,
    utt2spk, spk2utt, utt2dur, utt2lang, reco2dur; sorted in C-locale byte order.
    Utterance ids start with their speaker id (the recording's), so utt2spk sorted by
    utterance is sorted by speaker too.

    Remote roots: Kaldi reads local files, so each recording used is copied whole into
    `audio/` (its utterances stay offsets into it)."""
    jobs: list[_Job] = []
    copied: set[str] = set()
    for split, rows in parts:
        by_utt: dict[str, ExportRow] = {}
        for r in rows:
            by_utt[r.id if r.id.startswith(r.speaker + "-") else f"{r.speaker}-{r.id}"] = r
        utts = _c_sorted(by_utt)
        wav: dict[str, tuple[str, int]] = {}
        spk: dict[str, list[str]] = {}
        for u in utts:
            r = by_utt[u]
            spk.setdefault(r.speaker, []).append(u)
            path = r.audio
            if ctx.store.is_remote:
                path = str((ctx.out_dir / _kaldi_audio_rel(r.recording_id)).resolve())
                if r.recording_id not in copied:
                    copied.add(r.recording_id)
                    jobs.append(_Job(_kaldi_audio_rel(r.recording_id), _copy(ctx.store, r.audio)))
            wav[r.recording_id] = (path, r.recording_samples)
        recs = _c_sorted(wav)

        def segments(utts: list[str], by_utt: dict[str, ExportRow] = by_utt) -> Iterator[str]:
            for u in utts:
                r = by_utt[u]
                ctx.tick()
                yield f"{u} {r.recording_id} {_seconds(r.start_sample)} {_seconds(r.end_sample)}"

        d = f"{split}/"
        jobs += [
            _Job(
                d + "wav.scp",
                _fixed_lines([f"{k} flac -c -d -s {shlex.quote(wav[k][0])} |" for k in recs]),
            ),
            _Job(d + "segments", _lines(segments, utts)),
            _Job(d + "text", _fixed_lines([f"{u} {_one_line(by_utt[u].text)}" for u in utts])),
            _Job(d + "utt2spk", _fixed_lines([f"{u} {by_utt[u].speaker}" for u in utts])),
            _Job(d + "spk2utt", _fixed_lines([f"{s} {' '.join(spk[s])}" for s in _c_sorted(spk)])),
            _Job(
                d + "utt2dur",
                _fixed_lines([f"{u} {_seconds(by_utt[u].num_samples)}" for u in utts]),
            ),
            _Job(d + "utt2lang", _fixed_lines([f"{u} {by_utt[u].language}" for u in utts])),
            _Job(d + "reco2dur", _fixed_lines([f"{k} {_seconds(wav[k][1])}" for k in recs])),
        ]
    return jobs


def _copy(store: Store, path: str) -> Callable[[IO[bytes]], None]:
    def write(f: IO[bytes]) -> None:
        with store.open(path) as src:
            while chunk := src.read(1 << 20):
                f.write(chunk)

    return write


def _sample_json(r: ExportRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "text": r.text,
        "duration": r.duration_s,
        "language": r.language,
        "split": r.split,
        "recording_id": r.recording_id,
        "start": r.start_s,
        "label_round": r.label_round,
        "license": r.license,
        "license_url": license_url(r.license),
        "attribution": {"title": r.title, "author": r.author, "url": r.url},
    }


def _shards(rows: list[ExportRow], size: int) -> list[list[ExportRow]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _webdataset_jobs(parts: Sequence[tuple[str, list[ExportRow]]], ctx: _Context) -> list[_Job]:
    """`<split>/shard-NNNNNN.tar`: per utterance `<id>.flac` (the cut audio) and `<id>.json`."""

    def write_shard(shard: list[ExportRow]) -> Callable[[IO[bytes]], None]:
        def write(f: IO[bytes]) -> None:
            with tarfile.open(fileobj=f, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for r in shard:
                    if "." in r.id or "/" in r.id:
                        raise SpeechmillError(f"id {r.id!r} cannot be a WebDataset key")
                    _tar_member(tar, f"{r.id}.flac", flac_bytes(ctx.spans.read(r)))
                    _tar_member(tar, f"{r.id}.json", (_json(_sample_json(r)) + "\n").encode())
                    ctx.tick()

        return write

    return [
        _Job(f"{split}/shard-{i:06d}.tar", write_shard(shard))
        for split, rows in parts
        for i, shard in enumerate(_shards(rows, ctx.shard_size))
    ]


HF_AUDIO_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("id", pa.string(), "Utterance (or segment) id."),
    ("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
     "The cut audio: 16 kHz mono FLAC (`datasets` `Audio`)."),
    ("text", pa.string(), "The label (segments: the 1-best)."),
    ("duration", pa.float64(), "Seconds."),
    ("language", pa.string(), "Language code of the decode."),
    ("split", pa.string(), "`train`, `dev` or `test` (by recording)."),
    ("recording_id", pa.string(), "Recording it was cut from."),
    ("start", pa.float64(), "Start in that recording (s)."),
    ("label_round", pa.int64(), "Relabelling round of the label (null for segments)."),
    ("license", pa.string(), "Licence id of the recording."),
    ("title", pa.string(), "Title to credit."),
    ("author", pa.string(), "Author to credit."),
    ("source_url", pa.string(), "Source URL to credit."),
)  # fmt: skip
"""(column, Arrow type, meaning) of the HF audio export."""


def _hf_schema() -> pa.Schema:
    """The columns, with the `datasets` features in the schema metadata (`audio` is an
    `Audio` feature; `load_dataset` and `Dataset.from_parquet` read them)."""
    features: dict[str, dict[str, Any]] = {}
    for name, t, _doc in HF_AUDIO_COLUMNS:
        if name == "audio":
            features[name] = {"sampling_rate": SAMPLE_RATE, "_type": "Audio"}
        else:
            features[name] = {"dtype": str(t).replace("double", "float64"), "_type": "Value"}
    meta = json.dumps({"info": {"features": features}}, separators=(",", ":"))
    return pa.schema(
        [pa.field(n, t) for n, t, _d in HF_AUDIO_COLUMNS], metadata={"huggingface": meta}
    )


def _hf_table(rows: list[ExportRow], ctx: _Context, schema: pa.Schema) -> pa.Table:
    cols: dict[str, list[Any]] = {n: [] for n in schema.names}
    for r in rows:
        values = {
            "id": r.id,
            "audio": {"bytes": flac_bytes(ctx.spans.read(r)), "path": f"{r.id}.flac"},
            "text": r.text,
            "duration": r.duration_s,
            "language": r.language,
            "split": r.split,
            "recording_id": r.recording_id,
            "start": r.start_s,
            "label_round": r.label_round,
            "license": r.license,
            "title": r.title,
            "author": r.author,
            "source_url": r.url,
        }
        for name, value in values.items():
            cols[name].append(value)
        ctx.tick()
    return pa.table([pa.array(cols[f.name], f.type) for f in schema], schema=schema)


def _hf_jobs(parts: Sequence[tuple[str, list[ExportRow]]], ctx: _Context) -> list[_Job]:
    """`data/<split>-NNNNN-of-MMMMM.parquet` with an `Audio` column, and a README.md whose
    YAML maps each split to its files (so `load_dataset(folder)` keeps the names)."""
    schema = _hf_schema()

    def write_shard(shard: list[ExportRow]) -> Callable[[IO[bytes]], None]:
        def write(f: IO[bytes]) -> None:
            pq.write_table(_hf_table(shard, ctx, schema), f, row_group_size=100)

        return write

    jobs = []
    files: dict[str, list[str]] = {}
    for split, rows in parts:
        shards = _shards(rows, ctx.shard_size)
        for i, shard in enumerate(shards):
            rel = f"data/{split}-{i:05d}-of-{len(shards):05d}.parquet"
            files.setdefault(split, []).append(rel)
            jobs.append(_Job(rel, write_shard(shard)))
    counts = {split: len(rows) for split, rows in parts}
    licenses = sorted({r.license for _, rows in parts for r in rows})
    jobs.append(_Job("README.md", _bytes(_hf_card(files, counts, licenses).encode("utf-8"))))
    return jobs


def _hub_license(licenses: list[str]) -> str:
    """The card's `license:`: a versioned CC id when every recording has it, else other."""
    if len(licenses) == 1:
        family, version = _family_version(licenses[0])
        if version and (family == "cc0" or family.startswith("cc-by")):
            return licenses[0]
    return "other"


def _hf_card(files: Mapping[str, list[str]], counts: Mapping[str, int], licenses: list[str]) -> str:
    data_files = "".join(
        f"  - split: {s}\n    path:\n" + "".join(f"    - {p}\n" for p in paths)
        for s, paths in files.items()
    )
    rows = "".join(f"| {s} | {n} |\n" for s, n in counts.items())
    cols = "".join(f"| `{n}` | {d} |\n" for n, _t, d in HF_AUDIO_COLUMNS)
    return (
        "---\n"
        f"license: {_hub_license(licenses)}\n"
        "configs:\n"
        "- config_name: default\n"
        "  data_files:\n"
        f"{data_files}"
        "task_categories:\n"
        "- automatic-speech-recognition\n"
        "tags:\n"
        "- speechmill\n"
        "---\n\n"
        "# Speech corpus\n\n"
        "Utterances exported by speechmill: the cut audio (16 kHz mono FLAC in the `audio` "
        "column) with its label. Licences: "
        + ", ".join(f"`{lic}`" for lic in licenses)
        + ". Credit the recordings as ATTRIBUTION.md says.\n\n"
        "```python\n"
        "from datasets import load_dataset\n\n"
        'ds = load_dataset("path/to/this/folder")\n'
        "```\n\n"
        "| split | utterances |\n|---|---|\n"
        f"{rows}\n"
        "| column | meaning |\n|---|---|\n"
        f"{cols}"
    )


_WRITERS: dict[str, Callable[[Sequence[tuple[str, list[ExportRow]]], _Context], list[_Job]]] = {
    "lhotse": _lhotse_jobs,
    "nemo": _nemo_jobs,
    "kaldi": _kaldi_jobs,
    "webdataset": _webdataset_jobs,
    "hf-audio": _hf_jobs,
}


# --------------------------------------------------------------------------- entry point


def export_corpus(
    store: Store,
    fmt: str,
    out: PathLike,
    *,
    round: int | None = None,
    source: Literal["auto", "utterances", "segments"] = "auto",
    splits: Sequence[str] = (),
    licenses: Sequence[str] = (),
    languages: Sequence[str] = (),
    min_duration_s: float | None = None,
    max_duration_s: float | None = None,
    dev_fraction: float = 0.05,
    test_fraction: float = 0.05,
    shard_size: int = 1000,
    progress: bool | None = None,
) -> ExportResult:
    """Export the corpus of `store` as `fmt` into the folder `out` (module docstring)."""
    filters = _check_options(
        fmt,
        source,
        round,
        splits,
        licenses,
        languages,
        min_duration_s,
        max_duration_s,
        dev_fraction,
        test_fraction,
        shard_size,
    )
    out_dir = _check_out(out)
    con = connect(store)
    try:
        used, unrefined = _resolve_source(con, store, source, round)
        candidates, orphans = _candidates(con, store, used, round, dev_fraction, test_fraction)
    finally:
        con.close()
    present = {r.language for r in candidates}
    absent = sorted(filters.languages - present)
    if absent:
        raise SpeechmillError(
            f"language {absent[0]!r}: no {used} in this language (languages: "
            f"{', '.join(sorted(present)) or 'none'})"
        )
    rows, skipped = select(candidates, filters)
    skipped["no_recording"] = orphans
    if not rows:
        why = ", ".join(f"{k} {v}" for k, v in skipped.items() if v) or "none"
        raise SpeechmillError(
            f"nothing to export: no {used} of {store.root} pass the filters "
            f"({len(candidates)} candidates; left out: {why})"
        )
    _check_ids(rows)
    previous = _previous_files(out_dir)
    parts = _by_split(rows)
    credits = credits_of(rows)
    total = sum(r.num_samples for r in rows)
    meta = {
        "format": fmt,
        "root": store.root,
        "source": used,
        "round": round,
        "filters": {
            "splits": sorted(filters.splits),
            "licenses": list(filters.licenses),
            "languages": sorted(filters.languages),
            "min_duration_s": min_duration_s,
            "max_duration_s": max_duration_s,
            "dev_fraction": dev_fraction,
            "test_fraction": test_fraction,
        },
        "utterances": len(rows),
        "seconds": total / SAMPLE_RATE,
    }
    spans = _Spans(store)
    with bar(len(rows), desc="export", unit="utt", show=progress) as b:
        ctx = _Context(store, out_dir, spans, lambda: b.update(1), shard_size)
        try:
            jobs = _WRITERS[fmt](parts, ctx) + _attribution_jobs(credits, "utterances")
            files, removed = _run_jobs(out_dir, jobs, previous, meta)
        finally:
            spans.close()
    return ExportResult(
        format=fmt,
        source=used,
        round=round,
        out_dir=out_dir,
        files=files,
        utterances=len(rows),
        seconds=total / SAMPLE_RATE,
        recordings=len(credits),
        splits={split: len(part) for split, part in parts},
        licenses=dict(sorted(Counter(r.license for r in rows).items())),
        skipped=skipped,
        unrefined_recordings=unrefined,
        replaced=removed,
    )
