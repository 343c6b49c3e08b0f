"""Test-only fault injection: make the process fail at a named point.

The fault-injection tests (tests/pipeline/test_faults.py) set one environment
variable and run a command; the named point fails when it is reached::

    SPEECHMILL_FAULT=<point>[@<after>][:<mode>]

* `point`: one of `POINTS` (a stage's per-item work, a write, a commit step, gc);
* `after`: how many times the point passes before it fails (default 0: the first
  time it is reached); counted per process;
* `mode`: `raise` (a `FaultInjected` exception, default), `exit` (`os._exit(3)`: no
  clean-up, like a crash) or `kill` (SIGKILL to itself, like the OOM killer).

Unset (always, outside tests), `fault_point` costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

ENV = "SPEECHMILL_FAULT"

POINTS: dict[str, str] = {
    # corpus pipeline (per item, inside the Beam stages)
    "decode": "fetch/decode of one source item",
    "vad": "VAD of one recording",
    "transcribe": "the N-best rows of one chunk, after ASR",
    # refine / relabel
    "align": "forced alignment of one recording",
    "refine.decode": "the rows of one utterance, after ASR (refine)",
    "filter": "the filters of one source's utterances",
    "relabel.gate": "the CER gate of one utterance, after the teacher's ASR",
    # synth
    "synth.text": "preparation of one text",
    "synth.tts": "synthesis of one utterance",
    "synth.augment": "augmentation of one utterance",
    "synth.asr": "the pair row of one synthetic utterance, after ASR",
    "synth.real": "mixing in real pairs (driver)",
    # writing and committing (any pipeline)
    "write.part": "before a part file is written",
    "write.manifest": "before a writer's manifest is written",
    "store.begin": "after a run's intent is recorded, before its pipeline starts",
    "commit.begin": "after the pipeline finished, before the commit",
    "commit.runs_row": "after the `runs` row is written, before the marker",
    "commit.marker": "while writing the marker (a partial temporary file is left)",
    "commit.done": "after the marker, before the run's manifests are removed",
    "part.done": "after one part of a multi-part run committed, before the next starts",
    # gc
    "gc.delete": "between two deletions of gc",
}

_lock = threading.Lock()
_counts: dict[str, int] = {}


class FaultInjected(BaseException):
    """Raised at a fault point in `raise` mode.

    A BaseException, like KeyboardInterrupt: it stands for a crash of the process,
    so the per-item handlers (which turn an item's error into a reject) let it pass.
    """


def _parse(spec: str) -> tuple[str, int, str]:
    point, _, mode = spec.partition(":")
    point, _, after = point.partition("@")
    mode = mode or "raise"
    if point not in POINTS or mode not in ("raise", "exit", "kill"):
        raise ValueError(
            f"{ENV}={spec!r}: expected <point>[@<after>][:raise|exit|kill] with a point "
            f"in {sorted(POINTS)}"
        )
    return point, int(after or 0), mode


def fault_point(name: str) -> None:
    """Fail here if the environment asks for it (see the module docstring)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, after, mode = _parse(spec)
    if point != name:
        return
    with _lock:
        seen = _counts.get(spec, 0)
        _counts[spec] = seen + 1
    if seen < after:
        return
    message = f"speechmill fault injection: {mode} at {name} (pass {seen + 1})"
    if mode == "raise":
        raise FaultInjected(message)
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)


def reset() -> None:
    """Forget the counts (tests that run several faulty runs in one process)."""
    with _lock:
        _counts.clear()
