"""How a table is declared: a frozen dataclass whose fields carry their Arrow type.

A table is declared exactly once, as a record type::

    @table("recordings", primary_key=("recording_id",), doc="...")
    @dataclass(frozen=True, slots=True)
    class Recording:
        recording_id: str = col(pa.string(), "sha256 of the source bytes")

The Arrow schema, the primary key, the column documentation in docs/schema.md
and the DuckDB view are all derived from that one declaration.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa

T = TypeVar("T")
log = logging.getLogger(__name__)

_ARROW = "arrow"
_DOC = "doc"


def col(arrow_type: pa.DataType, doc: str) -> Any:
    """A column of a record type: its Arrow type and one line of documentation."""
    return dataclasses.field(metadata={_ARROW: arrow_type, _DOC: doc})


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    nullable: bool
    doc: str


@dataclass(frozen=True)
class TableSpec:
    """A declared table: record type, Arrow schema, primary key, docs."""

    name: str
    record: type[Any]
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    doc: str
    field_names: tuple[str, ...] = ()

    @property
    def schema(self) -> pa.Schema:
        fields = [pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns]
        meta = {
            b"speechmill.table": self.name.encode(),
            b"speechmill.primary_key": ",".join(self.primary_key).encode(),
        }
        return pa.schema(fields, metadata=meta)

    def to_row(self, record: Any) -> dict[str, Any]:
        """A record as a plain dict (nested records become dicts too)."""
        if not isinstance(record, self.record):
            raise TypeError(f"{self.name}: expected {self.record.__name__}, got {type(record)!r}")
        return {name: _plain(getattr(record, name)) for name in self.field_names}

    def to_table(self, records: Iterable[Any]) -> pa.Table:
        rows = [self.to_row(r) for r in records]
        return pa.Table.from_pylist(rows, schema=self.schema)

    def to_table_checked(self, records: Iterable[Any]) -> tuple[pa.Table, list[BadRow]]:
        """Records -> table, setting aside every row that does not fit the schema.

        The whole batch is converted at once; only when that fails is each row
        checked on its own, so the common case costs nothing extra.
        """
        rows = [self.to_row(r) for r in records]
        try:
            return pa.Table.from_pylist(rows, schema=self.schema), []
        except Exception:  # any failure: find the rows that cause it
            log.debug("%s: a batch does not fit the schema; checking row by row", self.name)
        good: list[dict[str, Any]] = []
        bad: list[BadRow] = []
        for row in rows:
            problem = self.row_problem(row)
            if problem is None:
                good.append(row)
            else:
                bad.append(problem)
        return pa.Table.from_pylist(good, schema=self.schema), bad

    def row_problem(self, row: Mapping[str, Any]) -> BadRow | None:
        """Why `row` cannot be written with this table's schema, or None if it can."""
        for f in self.schema:
            value = row.get(f.name)
            if value is None and not f.nullable:
                return self._bad(row, f.name, "a required value is missing", value)
            try:
                pa.array([value], type=f.type)
            except Exception as e:
                return self._bad(row, f.name, f"{type(e).__name__}: {e}", value)
        try:
            pa.Table.from_pylist([dict(row)], schema=self.schema)
        except Exception as e:
            return self._bad(row, "", f"{type(e).__name__}: {e}", None)
        return None

    def _bad(self, row: Mapping[str, Any], column: str, error: str, value: Any) -> BadRow:
        key = "/".join(_storable(str(row.get(k))) for k in self.primary_key)
        parent = next(
            (row[c] for c in _PARENT_COLUMNS if c not in self.primary_key and row.get(c)), None
        )
        source = next((row[c] for c in _SOURCE_COLUMNS if row.get(c)), None)
        return BadRow(
            self.name,
            key,
            column,
            _storable(error),
            _storable(ascii(value))[:300],
            parent=None if parent is None else _storable(str(parent)),
            source=None if source is None else _storable(str(source)),
        )

    def from_row(self, row: Mapping[str, Any]) -> Any:
        """Rebuild a record from a row read back (unknown columns are ignored)."""
        kwargs = {n: row.get(n) for n in self.field_names}
        return self.record(**kwargs)


@dataclass(frozen=True)
class BadRow:
    """A row that does not fit its table: which key, which column, why, the value's repr."""

    table: str
    key: str
    column: str
    error: str
    value_repr: str
    parent: str | None = None
    source: str | None = None


# The columns that name a row's parent item and its source item, most specific first.
_PARENT_COLUMNS = ("recording_id", "utterance_id", "parent_id", "text_id", "media_id")
_SOURCE_COLUMNS = ("source_id", "media_id")


def _storable(text: str) -> str:
    """`text` with lone surrogates replaced (the one thing str -> UTF-8 cannot encode)."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _is_optional(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return type(None) in typing.get_args(annotation)
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")

REGISTRY: dict[str, TableSpec] = {}
_BY_TYPE: dict[type[Any], TableSpec] = {}


def table(name: str, *, primary_key: tuple[str, ...], doc: str) -> Callable[[type[T]], type[T]]:
    """Register a dataclass as a table. Nullability comes from `X | None` annotations."""

    def register(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        hints = typing.get_type_hints(cls)
        columns = []
        for f in dataclasses.fields(cls):
            if _ARROW not in f.metadata:
                raise TypeError(f"{cls.__name__}.{f.name} must be declared with col()")
            columns.append(
                Column(f.name, f.metadata[_ARROW], _is_optional(hints[f.name]), f.metadata[_DOC])
            )
        names = tuple(c.name for c in columns)
        missing = [k for k in (*primary_key, "run_id") if k not in names]
        if missing:
            raise TypeError(f"table {name}: columns {missing} are not declared")
        if name in REGISTRY:
            raise ValueError(f"table {name} declared twice")
        spec = TableSpec(name, cls, tuple(columns), primary_key, doc, names)
        REGISTRY[name] = spec
        _BY_TYPE[cls] = spec
        return cls

    return register


def spec_of(record_type: type[Any]) -> TableSpec:
    try:
        return _BY_TYPE[record_type]
    except KeyError:
        raise TypeError(f"{record_type.__name__} is not a declared table") from None
