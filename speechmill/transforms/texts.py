"""Reading synthesis texts from a `TextSource`: text, JSONL, CSV, Parquet or a corpus.

`read_texts(source)` checks that the file (or dataset root) exists, raising a
`ConfigError` (`StoreError` for a root without committed runs) before anything
is read, and returns an iterator of `RawText`, one per item in file order:

| kind | one item per | key `<source>:...` |
|---|---|---|
| `text` | non-blank line | line |
| `jsonl` | non-blank line (an object; `column` holds the text) | line |
| `csv` | record after the header row (`column` names the field) | line the record starts on |
| `parquet` | row (`column`), read in batches | row (from 1) |
| `corpus` | kept utterance (its latest label), else segment (1-best) | utterance or segment id |

`<source>` is the source's `name`, else the file (or root folder) name. Lines
are numbered from 1. An item that cannot be read (invalid UTF-8, bad JSON, not
an object, missing field, null or non-string value) carries a `Drop` instead
of text and is never dropped silently. A CSV header or Parquet schema without
`column` gives one `Drop` item (key `<source>:header`) and nothing else; a
file that fails mid-read gives an `io_error` item (key `<source>:read`) after
the items already read. `max_texts` caps the items returned (problem items
count: it takes the first N items of the source).
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from speechmill.config import TextSource
from speechmill.errors import ConfigError, StoreError
from speechmill.schemas import Drop
from speechmill.schemas.rejects import Category
from speechmill.store import Marker, Store, connect, fs

PARQUET_BATCH_ROWS = 1024
CORPUS_FETCH_ROWS = 1024
DETAIL_BYTES = 200


@dataclass(frozen=True, slots=True)
class RawText:
    """One text as read, or why it could not be read."""

    source: str
    """Source name (recorded in `pairs.source`)."""
    key: str
    """Stable id: `<source>:<line, row or utterance id>`."""
    text: str | None
    """The text as read; None when `problem` is set."""
    problem: Drop | None = None


def source_name(source: TextSource) -> str:
    """The source's `name`, else the file (or dataset root folder) name."""
    if source.name:
        return source.name
    path = source.path.rstrip("/\\")
    base = posixpath.basename(path) if fs.is_remote(path) else os.path.basename(path)
    return base or source.path


def read_texts(source: TextSource) -> Iterator[RawText]:
    """The items of one text source, in order (see the module doc).

    Raises `ConfigError` when the file or dataset root does not exist, and
    `StoreError` when a `corpus` root has no committed runs.
    """
    name = source_name(source)
    path = source.path
    if not fs.exists(path):
        what = "dataset root" if source.kind == "corpus" else "file"
        raise ConfigError(f"text source {name!r} ({source.kind}): no such {what}: {path}")
    local_dir = not fs.is_remote(path) and os.path.isdir(path)
    if source.kind == "corpus":
        if not fs.is_remote(path) and not local_dir:
            raise ConfigError(
                f"text source {name!r} (corpus): {path} is a file, not a dataset root"
            )
        items = _read_corpus(Store(path), name, source.max_texts)
    elif local_dir:
        raise ConfigError(f"text source {name!r} ({source.kind}): {path} is a folder, not a file")
    elif source.kind == "text":
        items = _guarded(_read_lines(path, name), name)
    elif source.kind == "jsonl":
        items = _guarded(_read_jsonl(path, name, source.column), name)
    elif source.kind == "csv":
        items = _guarded(_read_csv(path, name, source.column), name)
    else:
        items = _guarded(_read_parquet(path, name, source.column), name)
    return _capped(items, source.max_texts)


# --------------------------------------------------------------------------- helpers


def _problem(name: str, where: str, reason: str, detail: str | None = None) -> RawText:
    return RawText(name, f"{name}:{where}", None, Drop(Category.BAD_TEXT, reason, detail))


def _capped(items: Iterator[RawText], cap: int | None) -> Iterator[RawText]:
    try:
        for n, item in enumerate(items):
            if cap is not None and n >= cap:
                return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _guarded(items: Iterator[RawText], name: str) -> Iterator[RawText]:
    """`items`, ending with an `io_error` item if reading the file fails midway."""
    try:
        yield from items
    except (OSError, pa.ArrowException) as e:
        yield RawText(
            name,
            f"{name}:read",
            None,
            Drop(
                Category.IO_ERROR,
                f"reading the file failed ({type(e).__name__}); check that it is intact and "
                "of the source's kind",
                str(e)[:2000],
            ),
        )


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its ending), BOM removed from the first line."""
    with fs.open_read(path) as f:
        for lineno, line in enumerate(f, 1):
            text = line.removeprefix(b"\xef\xbb\xbf") if lineno == 1 else line
            yield lineno, text.rstrip(b"\r\n")


def _decode(line: bytes) -> str | UnicodeDecodeError:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        return e


def _bad_utf8(name: str, lineno: int, line: bytes, e: UnicodeDecodeError) -> RawText:
    return _problem(
        name,
        str(lineno),
        f"line {lineno} is not valid UTF-8 (byte 0x{line[e.start]:02x} at column "
        f"{e.start + 1}); re-encode the file as UTF-8",
        repr(line[:DETAIL_BYTES]),
    )


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _value(name: str, where: str, what: str, column: str, value: object) -> RawText:
    """A RawText for a field value: its text, or why it is not one."""
    if value is None:
        return _problem(name, where, f"{what}: column {column!r} is null")
    if not isinstance(value, str):
        return _problem(
            name,
            where,
            f"{what}: column {column!r} holds a {_type_name(value)}, not a string",
            repr(value)[:DETAIL_BYTES],
        )
    if any("\udc80" <= c <= "\udcff" for c in value):
        return _problem(
            name,
            where,
            f"{what}: column {column!r} is not valid UTF-8; re-encode the file as UTF-8",
            repr(value.encode("utf-8", "surrogateescape")[:DETAIL_BYTES]),
        )
    return RawText(name, f"{name}:{where}", value)


# --------------------------------------------------------------------------- readers


def _read_lines(path: str, name: str) -> Iterator[RawText]:
    for lineno, line in _lines(path):
        text = _decode(line)
        if isinstance(text, UnicodeDecodeError):
            yield _bad_utf8(name, lineno, line, text)
        elif text.strip():
            yield RawText(name, f"{name}:{lineno}", text)


def _read_jsonl(path: str, name: str, column: str) -> Iterator[RawText]:
    for lineno, line in _lines(path):
        text = _decode(line)
        if isinstance(text, UnicodeDecodeError):
            yield _bad_utf8(name, lineno, line, text)
            continue
        if not text.strip():
            continue
        where = str(lineno)
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            yield _problem(
                name,
                where,
                f"line {lineno} is not valid JSON ({e.msg} at column {e.colno})",
                text[:DETAIL_BYTES],
            )
            continue
        if not isinstance(record, dict):
            yield _problem(
                name,
                where,
                f"line {lineno} is a JSON {_type_name(record)}, not an object with a "
                f"{column!r} field",
                text[:DETAIL_BYTES],
            )
        elif column not in record:
            fields = ", ".join(sorted(record)[:20]) or "none"
            yield _problem(
                name,
                where,
                f"line {lineno} has no {column!r} field (fields: {fields}); set the source's "
                "`column`",
                text[:DETAIL_BYTES],
            )
        else:
            yield _value(name, where, f"line {lineno}", column, record[column])


def _read_csv(path: str, name: str, column: str) -> Iterator[RawText]:
    with fs.open_read(path) as raw:
        f = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            return
        if column not in header:
            shown = ", ".join(repr(h) for h in header[:20])
            yield _problem(
                name,
                "header",
                f"the CSV header has no column {column!r} (columns: {shown}); set the "
                "source's `column`",
            )
            return
        index = header.index(column)
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield _problem(name, str(start), f"line {start} is not valid CSV ({e})")
                continue
            if not row:
                continue
            if index >= len(row):
                yield _problem(
                    name,
                    str(start),
                    f"line {start} has {len(row)} fields, none in column {column!r}",
                    repr(row)[:DETAIL_BYTES],
                )
                continue
            yield _value(name, str(start), f"line {start}", column, row[index])


def _read_parquet(path: str, name: str, column: str) -> Iterator[RawText]:
    with fs.open_read(path) as f:
        parquet = pq.ParquetFile(f)
        names = parquet.schema_arrow.names
        if column not in names:
            shown = ", ".join(repr(n) for n in names[:20])
            yield _problem(
                name,
                "header",
                f"the Parquet file has no column {column!r} (columns: {shown}); set the "
                "source's `column`",
            )
            return
        row = 0
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[column]):
            for value in batch.column(0).to_pylist():
                row += 1
                yield _value(name, str(row), f"row {row}", column, value)


def _read_corpus(store: Store, name: str, cap: int | None) -> Iterator[RawText]:
    markers = store.markers()
    if not markers:
        raise StoreError(
            f"text source {name!r} (corpus): {store.root} has no committed runs; point it at "
            "a speechmill dataset root that holds a transcribed corpus"
        )
    return _corpus_rows(store, markers, name, cap)


def _corpus_rows(
    store: Store, markers: Sequence[Marker], name: str, cap: int | None
) -> Iterator[RawText]:
    con = connect(store, markers=markers)
    try:
        limit = f" LIMIT {int(cap)}" if cap is not None else ""
        count = con.execute("SELECT count(*) FROM kept_utterances").fetchone()
        if count and count[0]:
            sql = "SELECT utterance_id, label FROM kept_utterances ORDER BY utterance_id"
            what, column = "utterance", "label"
        else:
            sql = "SELECT segment_id, text FROM segments ORDER BY segment_id"
            what, column = "segment", "text"
        cur = con.execute(sql + limit)
        while rows := cur.fetchmany(CORPUS_FETCH_ROWS):
            for item_id, text in rows:
                yield _value(name, str(item_id), f"{what} {item_id}", column, text)
    finally:
        con.close()
