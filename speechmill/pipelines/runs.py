"""What every pipeline does around its Beam graph: options, running it, the terminal.

A pipeline module reads top to bottom as the data flows::

    with store.run("refine", cfg) as run:          # begin, parents, end (store.Store.run)
        execute(cfg, beam_args, progress, lambda p: build_refine(p, ..., run.run_id))
        run.commit(model_hashes=..., extra=...)     # the marker, written last
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from speechmill.config import Config


def pipeline_options(cfg: Config, beam_args: Sequence[str] = ()) -> PipelineOptions:
    opts: dict[str, object] = {
        "runner": cfg.runner.name,
        "direct_num_workers": cfg.runner.direct_num_workers,
        "direct_running_mode": cfg.runner.direct_running_mode,
        **store_pipeline_options(cfg),
        **cfg.runner.options,
    }
    return PipelineOptions(list(beam_args), **opts)


def store_pipeline_options(cfg: Config) -> dict[str, object]:
    """The store's endpoint and region as Beam's own S3 options (for Beam IO and staging;
    speechmill's store itself travels with its options, docs/store.md). Never keys."""
    o = cfg.store.options
    if not cfg.store.root.startswith("s3://"):
        return {}
    out: dict[str, object] = {}
    if o.endpoint_url:
        out["s3_endpoint_url"] = o.endpoint_url
    if o.region:
        out["s3_region_name"] = o.region
    return out


def show_progress(cfg: Config, progress: bool | None) -> bool:
    """Live progress: on when asked, else only where the driver sees the work (Direct)."""
    return cfg.runner.name == "DirectRunner" if progress is None else progress


def execute(
    cfg: Config,
    beam_args: Sequence[str],
    build: Callable[[beam.Pipeline], object],
    *,
    progress: bool = False,
) -> None:
    """Build the pipeline with `build`, run it to the end (raising on failure)."""
    with beam.Pipeline(options=pipeline_options(cfg, beam_args)) as p:
        build(p)
    if progress and sys.stderr.isatty():
        sys.stderr.write("\n")  # the progress line stays on screen
