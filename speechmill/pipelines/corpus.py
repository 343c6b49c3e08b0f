"""The corpus pipeline: sources -> recordings -> chunks -> segments + N-best lists.

`run_corpus` is the one code path behind `speechmill run` (and `refresh`):
discover on the driver, skip what the ledger says is done, run the Beam
pipeline writing into the run's own directories, then commit the marker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from speechmill import __version__
from speechmill.config import Config, LocalSource
from speechmill.errors import ConfigError
from speechmill.schemas import Reject, SourceItem
from speechmill.store import Ledger, Marker, Store, new_run_id
from speechmill.store.store import utcnow
from speechmill.transforms.common import HYPOTHESES, REJECTS, SOURCES
from speechmill.transforms.decode import DecodeLocalDoFn, DedupeRecordings
from speechmill.transforms.discover import discover_local
from speechmill.transforms.transcribe import (
    AsrModelHandler,
    BackendFactory,
    FasterWhisperFactory,
    Transcribe,
    decode_options,
    decoder_id,
)
from speechmill.transforms.vad import DetectSpeechDoFn
from speechmill.transforms.write import WriteTables

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """What a run will do: new items, items skipped as done, discovery rejects."""

    todo: list[SourceItem]
    skipped: list[SourceItem]
    rejects: list[Reject]


@dataclass
class RunResult:
    markers: list[Marker] = field(default_factory=list)
    skipped: int = 0
    discovered: int = 0

    @property
    def run_ids(self) -> list[str]:
        return [m.run_id for m in self.markers]


def discover(
    cfg: Config, run_id: str, base_dir: str | None = None
) -> tuple[list[SourceItem], list[Reject]]:
    """Every source item the config's sources yield now (driver side)."""
    base = base_dir or os.getcwd()
    now = utcnow()
    items: list[SourceItem] = []
    rejects: list[Reject] = []
    for spec, name in zip(cfg.sources, cfg.source_names(), strict=True):
        if isinstance(spec, LocalSource):
            found = discover_local(spec, name, run_id, base, now)
            items.extend(found.items)
            rejects.extend(found.rejects)
        else:
            raise ConfigError(
                f"source {name}: kind {spec.kind!r} is not available in this version; "
                "use kind: local"
            )
    return items, rejects


def plan(cfg: Config, store: Store, run_id: str) -> Plan:
    items, rejects = discover(cfg, run_id)
    ledger = Ledger.load(store)
    todo: list[SourceItem] = []
    skipped: list[SourceItem] = []
    seen: set[str] = set()
    for it in items:
        if it.media_id in seen:
            continue
        seen.add(it.media_id)
        (skipped if ledger.is_done(it.media_id, it.etag) else todo).append(it)
    return Plan(todo, skipped, rejects)


def pipeline_options(cfg: Config, beam_args: Sequence[str] = ()) -> PipelineOptions:
    opts: dict[str, object] = {
        "runner": cfg.runner.name,
        "direct_num_workers": cfg.runner.direct_num_workers,
        "direct_running_mode": cfg.runner.direct_running_mode,
        **cfg.runner.options,
    }
    return PipelineOptions(list(beam_args), **opts)


def build_corpus(
    p: beam.Pipeline,
    *,
    items: Sequence[SourceItem],
    pre_rejects: Sequence[Reject],
    cfg: Config,
    store: Store,
    run_id: str,
    committed_recordings: frozenset[str],
    factory: BackendFactory,
    model_hash: str,
    progress: bool = False,
) -> None:
    """Wire the corpus stages and the table writes into a pipeline."""
    fault = cfg.testing.fault
    options = decode_options(cfg.asr)
    decoder = decoder_id(model_hash, options, cfg.asr.normalizer)
    handler = AsrModelHandler(
        factory,
        options,
        cfg.asr.normalizer,
        language=cfg.asr.language,
        batch_size=cfg.asr.batch_size,
    )
    sources = p | "Sources" >> beam.Create(list(items))
    decoded = sources | "Decode" >> beam.ParDo(
        DecodeLocalDoFn(store.root, cfg.audio, run_id, committed_recordings, fault)
    ).with_outputs(SOURCES, REJECTS, main="recordings")
    recordings = decoded.recordings | "Dedupe" >> DedupeRecordings()
    vad = recordings | "VAD" >> beam.ParDo(
        DetectSpeechDoFn(store.root, cfg.vad, cfg.audio, run_id, fault)
    ).with_outputs(REJECTS, main="chunks")
    asr = vad.chunks | "Transcribe" >> Transcribe(
        handler,
        model_id=factory.model_id,
        decoder=decoder,
        options=options,
        normalizer=cfg.asr.normalizer,
        run_id=run_id,
        progress=progress,
        fault=fault,
    )
    rejects = (
        p | "DiscoverRejects" >> beam.Create(list(pre_rejects)),
        decoded[REJECTS],
        vad[REJECTS],
        asr["rejects"],
    ) | "AllRejects" >> beam.Flatten()
    outputs = {
        "sources": decoded[SOURCES],
        "recordings": recordings,
        "segments": asr["segments"],
        HYPOTHESES: asr[HYPOTHESES],
        "rejects": rejects,
    }
    _ = outputs | "WriteTables" >> WriteTables(store.root, run_id)


def _parts(items: list[SourceItem], every: int | None) -> list[list[SourceItem]]:
    if not every or len(items) <= every:
        return [items]
    return [items[i : i + every] for i in range(0, len(items), every)]


def run_corpus(
    cfg: Config,
    *,
    root: str | None = None,
    factory: BackendFactory | None = None,
    beam_args: Sequence[str] = (),
    progress: bool | None = None,
    pipeline: str = "corpus",
) -> RunResult:
    """Run the corpus pipeline against a dataset root and commit (one marker per part)."""
    store = Store(root or cfg.store.root)
    if factory is None:
        factory = FasterWhisperFactory.from_config(cfg.asr)
    base_run = new_run_id()
    work = plan(cfg, store, base_run)
    result = RunResult(skipped=len(work.skipped), discovered=len(work.todo) + len(work.skipped))
    if not work.todo and not work.rejects:
        return result
    model_hash = factory.fingerprint()
    if progress is None:
        progress = cfg.runner.name == "DirectRunner"
    parts = _parts(work.todo, cfg.runner.commit_every)
    # a run builds on the latest committed run its ledger read, then on its own parts
    parent: list[str] = list(Ledger.load(store).run_ids[-1:])
    for i, part in enumerate(parts):
        run_id = base_run if len(parts) == 1 else f"{base_run}-p{i + 1:03d}"
        part_items = [dataclasses.replace(it, run_id=run_id) for it in part]
        pre = [dataclasses.replace(r, run_id=run_id) for r in work.rejects] if i == 0 else []
        handle = store.begin(pipeline, run_id)
        try:
            committed = Ledger.load(store).recordings
            with beam.Pipeline(options=pipeline_options(cfg, beam_args)) as p:
                build_corpus(
                    p,
                    items=part_items,
                    pre_rejects=pre,
                    cfg=cfg,
                    store=store,
                    run_id=run_id,
                    committed_recordings=committed,
                    factory=factory,
                    model_hash=model_hash,
                    progress=progress,
                )
            if progress and sys.stderr.isatty():
                sys.stderr.write("\n")
            marker = store.commit(
                handle,
                config=cfg.model_dump(mode="json"),
                config_hash=cfg.config_hash(),
                code_version=__version__,
                model_hashes={factory.model_id: model_hash},
                parent_runs=parent,
                runner=cfg.runner.name,
                extra={"part": i + 1, "parts": len(parts), "items": len(part_items)},
            )
        finally:
            store.end(handle)
        result.markers.append(marker)
        parent = [run_id]
    return result
