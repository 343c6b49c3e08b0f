"""Writing a table: records -> Parquet with the declared schema, in the run's directory."""

from __future__ import annotations

import apache_beam as beam

from speechmill.schemas import TableSpec
from speechmill.store import Store


class WriteTable(beam.PTransform):
    """Typed records -> `<root>/tables/<table>/run=<run_id>/part-*.parquet`.

    The schema is passed explicitly (never inferred). Files become visible only
    when the driver commits the run's marker.
    """

    def __init__(self, spec: TableSpec, root: str, run_id: str) -> None:
        super().__init__()
        self._spec = spec
        self._prefix = Store(root).run_table_dir(spec.name, run_id) + "/part"

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        spec = self._spec
        return (
            records
            | f"{spec.name}ToRows" >> beam.Map(spec.to_row)
            | f"Write{spec.name}"
            >> beam.io.WriteToParquet(
                self._prefix,
                spec.schema,
                file_name_suffix=".parquet",
                codec="zstd",
            )
        )
