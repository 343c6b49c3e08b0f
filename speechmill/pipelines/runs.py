"""What every pipeline does around its Beam graph: options, running it, the terminal.

A pipeline module reads top to bottom as the data flows::

    with store.run("refine", cfg) as run:          # begin, parents, end (store.Store.run)
        execute(cfg, beam_args, progress, lambda p: build_refine(p, ..., run.run_id))
        run.commit(model_hashes=..., extra=...)     # the marker, written last
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

from speechmill import progress as live
from speechmill.config import Config
from speechmill.errors import ConfigError, DryRun


def explicit_flags(beam_args: Sequence[str]) -> set[str]:
    """The Beam options the flags after `--` set, by name (`--foo_bar=1`, `--foo_bar 1`)."""
    return {
        a[2:].split("=", 1)[0].replace("-", "_")
        for a in beam_args
        if a.startswith("--") and len(a) > 2
    }


def effective_runner(cfg: Config, beam_args: Sequence[str] = ()) -> str:
    """The runner the pipeline will use: a `--runner` flag after `--` wins over the config."""
    return str(PipelineOptions(list(beam_args)).view_as(StandardOptions).runner or cfg.runner.name)


def is_direct(runner: str) -> bool:
    return runner.rsplit(".", maxsplit=1)[-1] in {"DirectRunner", "BundleBasedDirectRunner"}


def pipeline_options(cfg: Config, beam_args: Sequence[str] = ()) -> PipelineOptions:
    """One precedence rule: flags after `--` > `--runner`/`--set` (already in `cfg`) > the
    config file > defaults. `runner.direct_*` reach only the DirectRunner."""
    runner = effective_runner(cfg, beam_args)
    opts: dict[str, object] = {"runner": cfg.runner.name}
    if is_direct(runner):
        opts["direct_num_workers"] = cfg.runner.direct_num_workers
        opts["direct_running_mode"] = cfg.runner.direct_running_mode
    opts |= {**store_pipeline_options(cfg), **cfg.runner.options}
    flags = explicit_flags(beam_args)
    return PipelineOptions(list(beam_args), **{k: v for k, v in opts.items() if k not in flags})


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


def show_progress(cfg: Config, progress: bool | None, beam_args: Sequence[str] = ()) -> bool:
    """Live progress: on when asked, else only where the driver sees the work (Direct)."""
    return is_direct(effective_runner(cfg, beam_args)) if progress is None else progress


def execute(
    cfg: Config,
    beam_args: Sequence[str],
    build: Callable[[beam.Pipeline], object],
    *,
    progress: bool = False,
) -> None:
    """Build the pipeline with `build`, run it to the end (raising on failure).

    With Beam's `--dry_run=True` (DataflowRunner only: other runners ignore the flag and
    would run the job) the job is built, not submitted, and `DryRun` is raised."""
    options = pipeline_options(cfg, beam_args)
    runner = effective_runner(cfg, beam_args)
    dry = bool(options.view_as(TestOptions).dry_run)
    if dry and not runner.endswith("DataflowRunner"):
        raise ConfigError(f"--dry_run=True works with the DataflowRunner only, not {runner}")
    try:
        pipeline = beam.Pipeline(options=options)
    except ValueError as e:  # Beam's own validation of its options (project, locations)
        raise ConfigError(f"the Beam options are not valid for {runner}: {e}") from None
    try:
        with pipeline as p:
            build(p)
    finally:  # failed, interrupted or done: the next run in this process starts afresh
        live.close_stages()
    if dry:
        raise DryRun(runner, getattr(p.result, "job", None))
