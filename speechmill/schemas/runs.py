"""The `runs` table: one row per committed run, read from the commit markers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

from speechmill.schemas.base import col, table
from speechmill.schemas.corpus import TIMESTAMP


@table(
    "runs",
    primary_key=("run_id",),
    doc="One row per committed run (or committed part of a run). Built from the commit "
    "markers in `<root>/runs/`, which are the source of truth.",
)
@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str = col(pa.string(), "`<UTC time>-<random>`, sortable by start time.")
    pipeline: str = col(pa.string(), "`corpus`, `refresh`, `relabel`, `synth`, ...")
    started_at: dt.datetime = col(TIMESTAMP, "When the run started.")
    committed_at: dt.datetime = col(TIMESTAMP, "When its marker was written.")
    wall_s: float = col(pa.float64(), "committed_at - started_at in seconds.")
    code_version: str = col(pa.string(), "speechmill version (and git commit where known).")
    schema_version: int = col(pa.int32(), "SCHEMA_VERSION the run wrote.")
    config_hash: str = col(pa.string(), "sha256 of the effective config (canonical JSON).")
    config_json: str = col(pa.string(), "The effective config.")
    model_hashes_json: str = col(pa.string(), "Model name -> content hash, as JSON.")
    parent_runs: list[str] = col(pa.list_(pa.string()), "Runs this one builds on.")
    runner: str = col(pa.string(), "Beam runner used.")
    num_files: int = col(pa.int32(), "Data files listed by the marker.")
    rows_json: str = col(pa.string(), "Rows written per table, as JSON.")
