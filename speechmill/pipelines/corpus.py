"""The corpus pipeline: sources -> recordings -> chunks -> segments + N-best lists.

`run_corpus` is the one code path behind `speechmill run` (and `refresh`):
discover on the driver, skip what the ledger says is done, run the Beam
pipeline writing into the run's own directories, then commit the marker.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import apache_beam as beam

from speechmill.config import Config
from speechmill.core.asr.decoding import DecodeOptions
from speechmill.faults import fault_point
from speechmill.pipelines.plan import Plan, discover, remove_plan
from speechmill.pipelines.runs import execute, show_progress
from speechmill.store import Marker, Store, new_run_id
from speechmill.transforms.asr import (
    AsrModelHandler,
    BackendFactory,
    backend_factory,
    decoder_id,
)
from speechmill.transforms.common import HYPOTHESES, REJECTS, SOURCES
from speechmill.transforms.fetch import AcquireDoFn, DedupeRecordings
from speechmill.transforms.read import ReadColumnDoFn, ReadRowsDoFn, committed_files, has_rows
from speechmill.transforms.transcribe import Transcribe
from speechmill.transforms.vad import DetectSpeechDoFn
from speechmill.transforms.write import WriteTables

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    markers: list[Marker] = field(default_factory=list)
    skipped: int = 0
    discovered: int = 0
    unchanged: list[str] = field(default_factory=list)

    def nothing_new(self, root: str) -> str:
        """One line for a run that committed nothing."""
        text = f"nothing new in {root}: {self.skipped} listed items are already committed"
        if self.unchanged:
            text += f"; feeds unchanged since the last refresh: {', '.join(self.unchanged)}"
        return text

    @property
    def run_ids(self) -> list[str]:
        return [m.run_id for m in self.markers]


def plan(
    cfg: Config,
    store: Store,
    run_id: str,
    base_dir: str | None = None,
    *,
    dry_run: bool = False,
    progress: bool | None = None,
) -> Plan:
    """Discover every source and decide, out of core, what the run does (pipelines/plan.py);
    a dry run decides and lists, and writes nothing to the store."""
    return discover(cfg, store, run_id, base_dir, dry_run=dry_run, progress=progress)


def build_corpus(
    p: beam.Pipeline,
    *,
    part: str,
    pre_rejects: str | None,
    pre_sources: str | None,
    cfg: Config,
    store: Store,
    run_id: str,
    factory: BackendFactory,
    model_hash: str,
    progress: bool = False,
    host_delays: Mapping[str, float] | None = None,
    items: int | None = None,
) -> None:
    """Wire the corpus stages and the table writes into a pipeline."""
    options = DecodeOptions.from_config(cfg.asr)
    decoder = decoder_id(model_hash, options, cfg.asr.normalizer)
    handler = AsrModelHandler.from_config(factory, options, cfg.asr, language=cfg.asr.language)
    pacing = {
        name: (getattr(spec, "rate_limit_s", 0.0), getattr(spec, "cookies_file", None))
        for spec, name in zip(cfg.sources, cfg.source_names(), strict=True)
    }
    # the part's items are read on the workers from its plan file; Reshuffle spreads the
    # fetches over workers (not one bundle)
    sources = (
        p
        | "Part" >> beam.Create([part])
        | "ReadPart" >> beam.ParDo(ReadRowsDoFn(store, "sources", extra=("attempts",)))
        | "Spread" >> beam.Reshuffle()
    )
    decoded = sources | "Acquire" >> beam.ParDo(
        AcquireDoFn(
            store,
            cfg.audio,
            run_id,
            crawl=cfg.crawl,
            pacing=pacing,
            host_delays=host_delays,
            progress=progress,
            total=items,
        )
    ).with_outputs(SOURCES, REJECTS, main="recordings")
    # steps with nothing to read are left out of the graph: each costs Beam a stage or
    # more on every run, which is most of a short run's overhead
    committed = None
    known = committed_files(store, "recordings")
    if known:
        committed = (
            p
            | "CommittedFiles" >> beam.Create(known)
            | "CommittedIds" >> beam.ParDo(ReadColumnDoFn(store, "recording_id"))
        )
    recordings = decoded.recordings | "Dedupe" >> DedupeRecordings(committed)
    vad = recordings | "VAD" >> beam.ParDo(
        DetectSpeechDoFn(store, cfg.vad, cfg.audio, run_id, progress)
    ).with_outputs(REJECTS, main="chunks")
    asr = vad.chunks | "Transcribe" >> Transcribe(
        handler,
        model_id=factory.model_id,
        decoder=decoder,
        options=options,
        normalizer=cfg.asr.normalizer,
        run_id=run_id,
        store=store,
        progress=progress,
    )
    rejects = [decoded[REJECTS], vad[REJECTS], asr["rejects"]]
    if has_rows(store, pre_rejects):
        rejects.insert(
            0,
            p
            | "DiscoverRejects" >> beam.Create([pre_rejects])
            | "ReadRejects" >> beam.ParDo(ReadRowsDoFn(store, "rejects")),
        )
    all_sources = [decoded[SOURCES]]
    if has_rows(store, pre_sources):
        all_sources.insert(
            0,
            p
            | "SkippedSources" >> beam.Create([pre_sources])
            | "ReadSkipped" >> beam.ParDo(ReadRowsDoFn(store, "sources")),
        )
    outputs = {
        "sources": tuple(all_sources) | "AllSources" >> beam.Flatten(),
        "recordings": recordings,
        "segments": asr["segments"],
        HYPOTHESES: asr[HYPOTHESES],
        "rejects": tuple(rejects) | "AllRejects" >> beam.Flatten(),
    }
    _ = outputs | "WriteTables" >> WriteTables(store, run_id)


def run_corpus(
    cfg: Config,
    *,
    root: str | None = None,
    factory: BackendFactory | None = None,
    beam_args: Sequence[str] = (),
    progress: bool | None = None,
    pipeline: str = "corpus",
    lock: bool = False,
    break_lock: bool = False,
) -> RunResult:
    """Run the corpus pipeline against a dataset root and commit (one marker per part).

    `run` and `refresh` share this code path; `refresh` takes the dataset lock.
    """
    store = Store.from_config(cfg, root)
    if lock:
        with store.lock(pipeline, break_lock=break_lock):
            return _run(cfg, store, factory, beam_args, progress, pipeline)
    return _run(cfg, store, factory, beam_args, progress, pipeline)


def _run(
    cfg: Config,
    store: Store,
    factory: BackendFactory | None,
    beam_args: Sequence[str],
    progress: bool | None,
    pipeline: str,
) -> RunResult:
    if factory is None:
        factory = backend_factory(cfg.asr)
    base_run = new_run_id()
    work = plan(cfg, store, base_run, progress=progress)
    try:
        result = RunResult(
            skipped=work.skipped + work.known,
            discovered=work.discovered,
            unchanged=list(work.unchanged),
        )
        if not work.parts:
            return result
        model_hash = factory.fingerprint()
        progress = show_progress(cfg, progress, beam_args)
        for i, (run_id, part, n_items) in enumerate(work.parts):
            # a run builds on the latest committed run, a part on the part before it
            with store.run(pipeline, cfg, run_id=run_id) as run:
                build = functools.partial(
                    build_corpus,
                    part=part,
                    pre_rejects=work.pre_rejects if i == 0 else None,
                    pre_sources=work.pre_sources if i == 0 else None,
                    cfg=cfg,
                    store=store,
                    run_id=run.run_id,
                    factory=factory,
                    model_hash=model_hash,
                    progress=progress,
                    host_delays=work.host_delays,
                    items=n_items,
                )
                execute(cfg, beam_args, build, progress=progress)
                last = i == len(work.parts) - 1
                marker = run.commit(
                    model_hashes={factory.model_id: model_hash},
                    extra={
                        "part": i + 1,
                        "parts": len(work.parts),
                        "items": n_items,
                        "skipped": work.skipped + work.known if i == 0 else 0,
                        "watermarks": work.watermarks if last else {},
                    },
                )
            result.markers.append(marker)
            fault_point("part.done")
    finally:
        work.close()
        remove_plan(store, base_run)  # a rerun plans again; gc removes those of killed runs
    return result
