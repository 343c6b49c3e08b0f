"""Typed errors with messages that tell the user what to do."""

from __future__ import annotations

from typing import Any


class SpeechmillError(Exception):
    """Base class: the CLI prints these without a traceback."""


class ConfigError(SpeechmillError):
    """The config is invalid; the message names key, file and line."""


class StoreError(SpeechmillError):
    """The dataset root is unusable or inconsistent."""


class LockedError(StoreError):
    """Another refresh holds the dataset lock."""


class ModelError(SpeechmillError):
    """A model could not be found or loaded."""


class DryRun(Exception):
    """A dry run built the job and stopped: nothing ran, nothing is committed.

    Raised by `execute` out of the run's lifecycle (the run ends without a marker);
    `job` is the runner's job description (Dataflow: `apiclient.Job`, with
    `proto_pipeline` and `proto`)."""

    def __init__(self, runner: str, job: Any) -> None:
        super().__init__(f"dry run on {runner}: the job was built and not submitted")
        self.runner = runner
        self.job = job

    def hinted_steps(self) -> list[tuple[str, dict[str, str]]]:
        """(step, resource hints) for every leaf step that carries hints."""
        proto = getattr(self.job, "proto_pipeline", None)
        if proto is None:
            return []
        envs = proto.components.environments
        out = []
        for t in proto.components.transforms.values():
            hints = envs[t.environment_id].resource_hints if t.environment_id else {}
            if hints and not t.subtransforms:
                out.append(
                    (
                        t.unique_name,
                        {k.split(":")[2]: v.decode() for k, v in sorted(hints.items())},
                    )
                )
        return sorted(out)
