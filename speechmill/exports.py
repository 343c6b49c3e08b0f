"""Exports of the `pairs` table for GER (HyPoradise JSON, HF datasets, SFT JSONL) and DLMs.

Every exporter takes a pyarrow Table of `pairs` rows (as the DuckDB `pairs` view
returns it; a RecordBatchReader is read whole), writes one file per split and
returns the files written. Within a split, rows are written in `pair_id` order so
the same rows always give byte-identical files. Files are written to a temporary
name and renamed into place. No rows: nothing is written and [] is returned.

Attribution: `speechmill.corpus_exports.export_pairs(store, table, fmt, out)` runs
`export` and writes `ATTRIBUTION.md` and `attribution.jsonl` into `export_dir(fmt,
out)`, the folder the files went to (docs/exports.md).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import string
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from speechmill.core.quality.pair_metrics import voice_label

ExportFormat: TypeAlias = Literal["hyporadise", "hf", "sft", "dlm-tsv", "dlm-jsonl"]
FORMATS: tuple[str, ...] = ("hyporadise", "hf", "sft", "dlm-tsv", "dlm-jsonl")
PathLike: TypeAlias = str | os.PathLike[str]
Pairs: TypeAlias = pa.Table | pa.RecordBatchReader

_SPLIT_ORDER = {"train": 0, "dev": 1, "validation": 1, "test": 2}
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")  # what `datasets` accepts as a split name

DEFAULT_SFT_TEMPLATE = (
    "Below are the best hypotheses a speech recognition system produced for one utterance. "
    "Revise the best hypothesis into the true transcription, taking words from the other "
    "hypotheses only where they fit better, and write the corrected transcription as the "
    "response.\n"
    "### Best-hypothesis:\n{input1}\n"
    "### Other-hypothesis:\n{input2}\n"
    "### Response:\n"
)
"""The n-best -> transcript instruction (HyPoradise / LLaMA-adapter style)."""

SFT_PLACEHOLDERS: tuple[str, ...] = ("input1", "input2", "hypotheses", "n")
"""Placeholders of an SFT template: `{input1}` (1-best and a period), `{input2}` (the
other hypotheses joined by ". "), `{hypotheses}` (numbered list, one per line:
"1. ...") and `{n}` (hypotheses in the list). `{{`/`}}` are literal braces."""

HF_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("hypothesis", pa.list_(pa.string())),
        pa.field("transcription", pa.string()),
        pa.field("hypothesis_raw", pa.list_(pa.string())),
        pa.field("transcription_raw", pa.string()),
        pa.field("am_score", pa.list_(pa.float64())),
        pa.field("split", pa.string()),
        pa.field("source", pa.string()),
        pa.field("is_synthetic", pa.bool_()),
        pa.field("voice", pa.string()),
        pa.field("snr_db", pa.float64()),
        pa.field("audio_path", pa.string()),
        pa.field("clean_audio_path", pa.string()),
        pa.field("duration_s", pa.float64()),
    ]
)
"""Columns of the HF Parquet export."""

_HF_DOCS: dict[str, str] = {
    "id": "Pair id (`pairs.pair_id`).",
    "hypothesis": "N-best hypotheses, normalised, best first.",
    "transcription": "Reference, normalised.",
    "hypothesis_raw": "N-best as decoded.",
    "transcription_raw": "Reference as spoken.",
    "am_score": "Per-hypothesis sum of token log-probabilities (natural log).",
    "split": "Split of the pair.",
    "source": "Text source (or `corpus:<root>` for real speech).",
    "is_synthetic": "False for pairs from real speech.",
    "voice": "TTS voice label (`engine:voice+variant#spkN`; `real` for real speech).",
    "snr_db": "SNR of the added noise in dB (null: no noise).",
    "audio_path": "The degraded audio the ASR heard, as stored (relative to the dataset root).",
    "clean_audio_path": "The un-degraded audio, as stored.",
    "duration_s": "Audio duration in seconds.",
}


# --------------------------------------------------------------------------- helpers


def as_table(table: Pairs) -> pa.Table:
    """A pyarrow Table (a RecordBatchReader is read whole)."""
    if isinstance(table, pa.RecordBatchReader):
        return table.read_all()
    return table


def _need(table: pa.Table, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"pairs table lacks columns {missing}")


def _splits(table: pa.Table) -> list[str]:
    """Split names in the table: train, dev, test first, then alphabetically."""
    column = table["split"]
    if column.null_count:
        raise ValueError("pairs rows without a split")
    names = [str(s) for s in pc.unique(column).to_pylist()]
    for name in names:
        if not _SPLIT_NAME.match(name):
            raise ValueError(f"split {name!r} is not usable as a file or split name")
    return sorted(names, key=lambda s: (_SPLIT_ORDER.get(s, 3), s))


def _split_tables(table: Pairs, columns: Sequence[str]) -> Iterator[tuple[str, pa.Table]]:
    """(split, its rows sorted by pair_id with only `columns`) for each split."""
    t = as_table(table)
    _need(t, ["split", "pair_id", *columns])
    for split in _splits(t):
        part = t.filter(pc.equal(t["split"], split)).sort_by("pair_id")
        yield split, part.select(list(dict.fromkeys(columns)))


def _rows(part: pa.Table) -> Iterator[dict[str, Any]]:
    for batch in part.to_batches():
        yield from batch.to_pylist()


def _strings(value: Any) -> list[str]:
    return [str(v) if v is not None else "" for v in (value or [])]


def _number(value: Any) -> float | None:
    """A JSON-safe float: None for null and NaN/inf (JSON has no NaN)."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


@contextmanager
def _atomic(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open `path.tmp` for writing and rename it onto `path` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        if "b" in mode:
            with open(tmp, mode) as f:
                yield f
        else:
            with open(tmp, mode, encoding="utf-8", newline="") as f:
                yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _split_path(out: PathLike, split: str, suffix: str) -> Path:
    """`<out>/<split><suffix>` for a directory (existing, or a path without a suffix),
    else `<out stem>.<split><out suffix>` beside `out`."""
    p = Path(out)
    if p.is_dir() or not p.suffix:
        return p / f"{split}{suffix}"
    return p.with_name(f"{p.stem}.{split}{p.suffix}")


def _input1(hyps: Sequence[str]) -> str:
    """The 1-best followed by a period ("" for an empty list; raw text that already ends
    in . ? or ! keeps its own)."""
    if not hyps:
        return ""
    return hyps[0] if hyps[0].rstrip().endswith((".", "?", "!")) else f"{hyps[0]}."


def _input2(hyps: Sequence[str]) -> str:
    """The other hypotheses joined with ". " (no trailing period)."""
    return ". ".join(hyps[1:])


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")


# --------------------------------------------------------------------------- HyPoradise


def export_hyporadise(
    table: Pairs, out_dir: PathLike, *, n: int = 5, raw: bool = False
) -> list[Path]:
    """HyPoradise JSON: `<out_dir>/<split>.json`, a list of one object per pair.

    Fields: `id` (pair_id), `split`, `input` (the first `n` hypotheses: normalised,
    or as decoded with `raw`), `output` (reference; `reference_raw` with `raw`),
    `input1` (the 1-best followed by a period), `input2` (the other hypotheses of
    `input` joined with ". "), `am_score` (`sum_logprob` of each hypothesis in
    `input`; null where missing). The period is appended as is, also after raw
    hypotheses that already end in punctuation.
    """
    _check_n(n)
    hyp_col = "hypotheses_raw" if raw else "hypotheses"
    ref_col = "reference_raw" if raw else "reference"
    written: list[Path] = []
    for split, part in _split_tables(table, ["pair_id", hyp_col, ref_col, "sum_logprob"]):
        path = Path(out_dir) / f"{split}.json"
        with _atomic(path) as f:
            f.write("[")
            for i, row in enumerate(_rows(part)):
                hyps = _strings(row[hyp_col])[:n]
                scores = list(row["sum_logprob"] or [])
                obj = {
                    "id": row["pair_id"],
                    "split": split,
                    "input": hyps,
                    "output": row[ref_col] or "",
                    "input1": _input1(hyps),
                    "input2": _input2(hyps),
                    "am_score": [
                        _number(scores[k]) if k < len(scores) else None for k in range(len(hyps))
                    ],
                }
                f.write(("\n" if i == 0 else ",\n") + json.dumps(obj, ensure_ascii=False))
            f.write("\n]\n")
        written.append(path)
    return written


# --------------------------------------------------------------------------- HF datasets


def export_hf(table: Pairs, out_dir: PathLike) -> list[Path]:
    """Parquet for `datasets`: `<out_dir>/data/<split>-00000-of-00001.parquet` and a README.md.

    The README's YAML header declares each split's file (`configs`/`data_files`),
    so `load_dataset(out_dir)` keeps the split names (`dev` stays `dev`).
    Columns: `HF_SCHEMA`. Returns the Parquet files, then the README.
    """
    root = Path(out_dir)
    columns = [
        "pair_id",
        "hypotheses",
        "reference",
        "hypotheses_raw",
        "reference_raw",
        "sum_logprob",
        "split",
        "source",
        "is_synthetic",
        "tts",
        "aug",
        "audio_uri",
        "clean_audio_uri",
        "duration_s",
    ]
    written: list[Path] = []
    counts: dict[str, int] = {}
    for split, part in _split_tables(table, columns):
        arrays: dict[str, Any] = {
            "id": part["pair_id"],
            "hypothesis": part["hypotheses"],
            "transcription": part["reference"],
            "hypothesis_raw": part["hypotheses_raw"],
            "transcription_raw": part["reference_raw"],
            "am_score": part["sum_logprob"],
            "split": part["split"],
            "source": part["source"],
            "is_synthetic": part["is_synthetic"],
            "voice": pa.array([voice_label(t) for t in part["tts"].to_pylist()], pa.string()),
            "snr_db": [(a or {}).get("snr_db") for a in part["aug"].to_pylist()],
            "audio_path": part["audio_uri"],
            "clean_audio_path": part["clean_audio_uri"],
            "duration_s": part["duration_s"],
        }
        out = pa.table(
            [_cast(arrays[f.name], f.type) for f in HF_SCHEMA],
            schema=HF_SCHEMA,
        )
        path = root / "data" / f"{split}-00000-of-00001.parquet"
        with _atomic(path, "wb") as f:
            pq.write_table(out, f)
        written.append(path)
        counts[split] = out.num_rows
    if written:
        readme = root / "README.md"
        with _atomic(readme) as f:
            f.write(_dataset_card(counts))
        written.append(readme)
    return written


def _cast(values: Any, type_: pa.DataType) -> pa.ChunkedArray | pa.Array:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return values.cast(type_)
    return pa.array(values, type_)


def _dataset_card(counts: dict[str, int]) -> str:
    files = "".join(f"  - split: {s}\n    path: data/{s}-00000-of-00001.parquet\n" for s in counts)
    rows = "".join(f"| {s} | {n} |\n" for s, n in counts.items())
    cols = "".join(
        f"| `{f.name}` | {str(f.type).replace('item: ', '')} | {_HF_DOCS[f.name]} |\n"
        for f in HF_SCHEMA
    )
    return (
        "---\n"
        "configs:\n"
        "- config_name: default\n"
        "  data_files:\n"
        f"{files}"
        "task_categories:\n"
        "- automatic-speech-recognition\n"
        "- text-generation\n"
        "tags:\n"
        "- generative-error-correction\n"
        "- n-best\n"
        "- speechmill\n"
        "---\n\n"
        "# N-best hypotheses with references\n\n"
        "TTS -> ASR (and real speech) pairs exported by speechmill for generative error "
        "correction: each row holds an ASR N-best list (`hypothesis`, best first) and the "
        "reference (`transcription`).\n\n"
        "```python\n"
        "from datasets import load_dataset\n\n"
        'ds = load_dataset("path/to/this/folder")\n'
        "```\n\n"
        "| split | pairs |\n|---|---|\n"
        f"{rows}\n"
        "| column | type | meaning |\n|---|---|---|\n"
        f"{cols}"
    )


# --------------------------------------------------------------------------- SFT


def _template_fields(template: str) -> list[str]:
    fields: list[str] = []
    for _, name, spec, _ in string.Formatter().parse(template):
        if name is not None:
            fields.append(name)
        if spec and "{" in spec:
            fields.extend(_template_fields(spec))
    return fields


def check_template(template: str) -> None:
    """Raise ValueError unless `template` only uses `SFT_PLACEHOLDERS` and formats."""
    try:
        names = _template_fields(template)
    except ValueError as e:
        raise ValueError(f"SFT template is malformed: {e}") from None
    unknown = sorted({n for n in names if n not in SFT_PLACEHOLDERS})
    if unknown:
        shown = ", ".join("{" + n + "}" for n in unknown)
        allowed = ", ".join("{" + n + "}" for n in SFT_PLACEHOLDERS)
        raise ValueError(f"SFT template has unknown placeholders {shown} (allowed: {allowed})")
    try:
        template.format(input1="", input2="", hypotheses="", n=0)
    except (ValueError, KeyError, IndexError) as e:
        raise ValueError(f"SFT template does not format: {e}") from None


def sft_prompt(hypotheses: Sequence[str], template: str = DEFAULT_SFT_TEMPLATE) -> str:
    """The prompt of one N-best list (see `SFT_PLACEHOLDERS`)."""
    return template.format(
        input1=_input1(hypotheses),
        input2=_input2(hypotheses),
        hypotheses="\n".join(f"{i}. {h}" for i, h in enumerate(hypotheses, 1)),
        n=len(hypotheses),
    )


def export_sft(
    table: Pairs,
    path_or_dir: PathLike,
    *,
    template: str | None = None,
    n: int = 5,
    raw: bool = False,
) -> list[Path]:
    """Instruction-tuning JSONL, one file per split, lines `{"id", "prompt", "completion"}`.

    `prompt` is `template` (default `DEFAULT_SFT_TEMPLATE`) filled from the first `n`
    hypotheses; `completion` is the reference (raw hypotheses and `reference_raw`
    with `raw`). Files: `<dir>/<split>.jsonl`, or `<stem>.<split>.jsonl` beside a
    file path such as `sft.jsonl`. An unknown placeholder raises ValueError before
    anything is written.
    """
    tpl = DEFAULT_SFT_TEMPLATE if template is None else template
    check_template(tpl)
    _check_n(n)
    hyp_col = "hypotheses_raw" if raw else "hypotheses"
    ref_col = "reference_raw" if raw else "reference"
    written: list[Path] = []
    for split, part in _split_tables(table, ["pair_id", hyp_col, ref_col]):
        path = _split_path(path_or_dir, split, ".jsonl")
        with _atomic(path) as f:
            for row in _rows(part):
                hyps = _strings(row[hyp_col])[:n]
                obj = {
                    "id": row["pair_id"],
                    "prompt": sft_prompt(hyps, tpl),
                    "completion": row[ref_col] or "",
                }
                f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        written.append(path)
    return written


# --------------------------------------------------------------------------- DLM


def export_dlm(
    table: Pairs,
    path: PathLike,
    *,
    fmt: Literal["tsv", "jsonl"] = "tsv",
    all_hypotheses: bool = False,
) -> list[Path]:
    """Denoising-LM pairs, one file per split: (hypothesis, reference, is_real[, rank]).

    By default one row per pair with its 1-best; with `all_hypotheses`, one row per
    hypothesis and `rank` (0 = 1-best). Normalised text; `is_real` is
    `not is_synthetic`. Files: `<dir>/<split>.<fmt>` or `<stem>.<split><suffix>`.

    TSV: a header row, tab-separated, `\\n` line ends, `is_real` as `true`/`false`.
    A field containing a tab, CR, LF or `"` is wrapped in double quotes with inner
    quotes doubled (RFC 4180 quoting with a tab delimiter, Python's `excel-tab`
    dialect), so `csv.reader(f, delimiter="\\t")` (file opened with `newline=""`),
    pandas `read_csv(sep="\\t")` and DuckDB `read_csv(..., delim='\\t', quote='"',
    escape='"')` read the exact text back. Normalised text holds none of those
    characters, so in practice every row is one plain line. DuckDB reads an empty
    field as NULL.
    """
    if fmt not in ("tsv", "jsonl"):
        raise ValueError(f"fmt must be 'tsv' or 'jsonl', got {fmt!r}")
    header = ["hypothesis", "reference", "is_real"] + (["rank"] if all_hypotheses else [])
    written: list[Path] = []
    for split, part in _split_tables(table, ["pair_id", "hypotheses", "reference", "is_synthetic"]):
        out = _split_path(path, split, f".{fmt}")
        with _atomic(out) as f:
            if fmt == "tsv":
                writer = csv.writer(f, dialect="excel-tab", lineterminator="\n")
                writer.writerow(header)
                for values in _dlm_rows(part, all_hypotheses):
                    values[2] = "true" if values[2] else "false"
                    writer.writerow(values)
            else:
                for values in _dlm_rows(part, all_hypotheses):
                    obj = dict(zip(header, values, strict=True))
                    f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        written.append(out)
    return written


def _dlm_rows(part: pa.Table, all_hypotheses: bool) -> Iterator[list[Any]]:
    """[hypothesis, reference, is_real] (+ rank) per output row."""
    for row in _rows(part):
        hyps = _strings(row["hypotheses"])
        reference = row["reference"] or ""
        is_real = row["is_synthetic"] is False
        if all_hypotheses:
            for rank, hyp in enumerate(hyps):
                yield [hyp, reference, is_real, rank]
        else:
            yield [hyps[0] if hyps else "", reference, is_real]


# --------------------------------------------------------------------------- dispatch


def export_dir(fmt: ExportFormat, out: PathLike) -> Path:
    """The folder `export(table, fmt, out)` writes into: `out` itself, or for `sft` and
    the DLM formats given a file path such as `sft.jsonl`, the folder holding it."""
    p = Path(out)
    if fmt in ("hyporadise", "hf"):
        return p
    return p if p.is_dir() or not p.suffix else p.parent


def export(table: Pairs, fmt: ExportFormat, out: PathLike, **opts: Any) -> list[Path]:
    """Export in one of `FORMATS`; `opts` go to the format's exporter."""
    if fmt == "hyporadise":
        return export_hyporadise(table, out, **opts)
    if fmt == "hf":
        return export_hf(table, out, **opts)
    if fmt == "sft":
        return export_sft(table, out, **opts)
    if fmt == "dlm-tsv":
        return export_dlm(table, out, fmt="tsv", **opts)
    if fmt == "dlm-jsonl":
        return export_dlm(table, out, fmt="jsonl", **opts)
    raise ValueError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
