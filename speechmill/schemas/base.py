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
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa

T = TypeVar("T")

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

    def from_row(self, row: Mapping[str, Any]) -> Any:
        """Rebuild a record from a row read back (unknown columns are ignored)."""
        kwargs = {n: row.get(n) for n in self.field_names}
        return self.record(**kwargs)


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
