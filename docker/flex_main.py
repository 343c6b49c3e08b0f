"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE): one speechmill command on Dataflow.

The Flex Template launcher runs this file with the template's parameters and the job's
pipeline options as `--name=value` flags, and the Dataflow job starts only after this
program exits: it must not wait for the job
(https://cloud.google.com/dataflow/docs/guides/templates/configuring-flex-templates).
speechmill's driver waits for each of its jobs and then commits the run (docs/store.md),
so it cannot run in the launcher itself. This file therefore submits a small *driver job*:
one element, one step, which calls `speechmill.cli.main([...])` on a Dataflow worker. That
step plans the run, submits the speechmill job(s) with the DataflowRunner, waits for them
and commits, as `speechmill run` does on a workstation. See docs/runners/dataflow.md.

Template parameters (docker/flex-template.json):
  config        the config file: gs://... or a path inside the image (required)
  command       run | refresh | refine | relabel | synth (default run)
  root          the dataset root (default: the config's store.root)
  overrides     `key=value ...` (shell-quoted), each passed as --set
  command_args  further arguments of the command (shell-quoted), e.g. `--teacher large-v3 --round 1`
  beam_args     Beam flags for the speechmill job(s) (shell-quoted), e.g. GPU options

The speechmill job(s) inherit from the launcher's options only where to run and as whom
(project, region, temp/staging locations, service account, network, KMS key, labels,
worker region/zone, sdk_container_image); `beam_args` comes after them and wins.

Local check, no cloud (both jobs on the DirectRunner):
  python docker/flex_main.py --config=configs/demo.yaml --runner=DirectRunner \\
      --beam_args=--runner=DirectRunner
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

COMMANDS = ("run", "refresh", "refine", "relabel", "synth")

# Launcher options the speechmill job(s) inherit: where to run and as whom. Worker shape
# (machine type, GPUs, worker counts, disk, experiments) is the driver job's own and is
# not inherited; give the speechmill job's in `beam_args`.
INHERITED = (
    "project",
    "region",
    "temp_location",
    "staging_location",
    "service_account_email",
    "network",
    "subnetwork",
    "use_public_ips",
    "dataflow_kms_key",
    "labels",
    "worker_region",
    "worker_zone",
    "sdk_container_image",
)

log = logging.getLogger("speechmill.flex")


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """The template's parameters, and the rest: the launcher's pipeline options."""
    p = argparse.ArgumentParser(prog="flex_main.py", description=__doc__.split("\n", 1)[0])
    p.add_argument("--config", required=True)
    p.add_argument("--command", default="run", choices=COMMANDS)
    p.add_argument("--root", default="")
    p.add_argument("--overrides", default="")
    p.add_argument("--command_args", default="")
    p.add_argument("--beam_args", default="")
    return p.parse_known_args(list(argv))


def as_flags(options: dict[str, Any]) -> list[str]:
    """`--name=value` flags for the inherited options that are set."""
    flags: list[str] = []
    for name in INHERITED:
        value = options.get(name)
        if value is None:
            continue
        if name == "use_public_ips":
            flags.append("--use_public_ips" if value else "--no_use_public_ips")
        elif isinstance(value, list):
            flags += [f"--{name}={v}" for v in value]
        else:
            flags.append(f"--{name}={value}")
    return flags


def speechmill_argv(args: argparse.Namespace, launcher_args: Sequence[str]) -> list[str]:
    """The argument list for `speechmill.cli.main` (the config stays a URL until the worker)."""
    argv = [args.command, args.config]
    if args.root:
        argv += ["--root", args.root]
    for item in shlex.split(args.overrides):
        argv += ["--set", item]
    argv += shlex.split(args.command_args)
    argv += ["--runner", "DataflowRunner", "--"]
    inherited = PipelineOptions(list(launcher_args)).get_all_options(drop_default=True)
    # the image carries Beam: nothing to stage; flags after `--` beat --runner (one rule)
    return [*argv, *as_flags(inherited), "--sdk_location=container", *shlex.split(args.beam_args)]


@contextlib.contextmanager
def local_config(url: str) -> Iterator[str]:
    """The config as a local file: a remote one (gs://, s3://) is copied to a temporary dir."""
    if "://" not in url:
        yield url
        return
    from apache_beam.io.filesystems import FileSystems

    tmp = tempfile.mkdtemp(prefix="speechmill-flex-")
    path = os.path.join(tmp, os.path.basename(url.rstrip("/")) or "config.yaml")
    try:
        with FileSystems.open(url) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
        yield path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class RunSpeechmill(beam.DoFn):
    """The driver job's one step: run the speechmill command on this worker, to its end."""

    def __init__(self, argv: Sequence[str]) -> None:
        self._argv = list(argv)

    def process(self, element: object) -> Iterator[int]:
        from speechmill.cli import main

        argv = list(self._argv)
        with local_config(argv[1]) as path:
            argv[1] = path
            log.info("speechmill %s", shlex.join(argv))
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = main(argv)
        for line in out.getvalue().splitlines():
            log.info("%s", line)  # the run's report, in the job's worker logs
        if rc != 0:
            # raising fails the driver job; Dataflow retries the step, and a retried
            # speechmill run resumes after its last committed part
            raise RuntimeError(f"speechmill {argv[0]} exited with status {rc}; see the log above")
        yield rc


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args, launcher_args = parse(sys.argv[1:] if argv is None else argv)
    if "FLEX_TEMPLATE_PYTHON_PY_FILE" in os.environ and not any(
        a.startswith("--runner") for a in launcher_args
    ):
        launcher_args.append("--runner=DataflowRunner")  # in the launcher: Dataflow, always
    command = speechmill_argv(args, launcher_args)
    options = PipelineOptions(launcher_args)
    runner = str(options.view_as(StandardOptions).runner or "")
    on_dataflow = runner.endswith("DataflowRunner")
    if on_dataflow and not options.get_all_options().get("sdk_container_image"):
        print(
            "flex_main.py: pass the speechmill image as the sdk_container_image parameter: "
            "the driver job's worker runs speechmill (docs/runners/dataflow.md)",
            file=sys.stderr,
        )
        return 2
    sized = any(a.startswith("--max_num_workers") for a in launcher_args)
    extra = [] if sized else ["--max_num_workers=1"]  # one element: one worker
    log.info("driver job runs: speechmill %s", shlex.join(command))
    p = beam.Pipeline(options=PipelineOptions([*launcher_args, *extra]))
    _ = p | "One" >> beam.Create([0]) | "Speechmill" >> beam.ParDo(RunSpeechmill(command))
    result = p.run()
    if not on_dataflow:
        result.wait_until_finish()  # local checks; on Dataflow the launcher starts the job
    return 0


if __name__ == "__main__":
    sys.exit(main())
