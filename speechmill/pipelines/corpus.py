"""The corpus pipeline: sources -> recordings -> chunks -> segments + N-best lists.

`run_corpus` is the one code path behind `speechmill run` (and `refresh`):
discover on the driver, skip what the ledger says is done, run the Beam
pipeline writing into the run's own directories, then commit the marker.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import apache_beam as beam

from speechmill.backends.robots import Robots
from speechmill.config import Config, LocalSource, RssSource
from speechmill.core.asr.decoding import DecodeOptions
from speechmill.core.crawl.policy import give_up
from speechmill.faults import fault_point
from speechmill.pipelines.runs import execute, show_progress
from speechmill.schemas import Category, Drop, Reject, SourceItem
from speechmill.store import Ledger, Marker, Store, new_run_id
from speechmill.store.store import utcnow
from speechmill.transforms.asr import (
    AsrModelHandler,
    BackendFactory,
    FasterWhisperFactory,
    decoder_id,
)
from speechmill.transforms.common import HYPOTHESES, REJECTS, SOURCES
from speechmill.transforms.discover import discover_local
from speechmill.transforms.fetch import AcquireDoFn, DedupeRecordings
from speechmill.transforms.transcribe import Transcribe
from speechmill.transforms.vad import DetectSpeechDoFn
from speechmill.transforms.write import WriteTables

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """What a run will do, decided on the driver before any download."""

    todo: list[SourceItem] = field(default_factory=list)  # to fetch / decode
    skipped: list[SourceItem] = field(default_factory=list)  # done in committed runs
    rejected: list[SourceItem] = field(default_factory=list)  # skipped now, with a reject
    rejects: list[Reject] = field(default_factory=list)  # new rejects from discovery/policy
    known: int = 0  # remote items a listing showed that committed runs hold
    watermarks: dict[str, dict[str, str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)  # feeds that answered 304
    attempts: dict[str, int] = field(default_factory=dict)
    decisions: list[tuple[str, SourceItem, str]] = field(default_factory=list)
    robots: Robots | None = field(default=None, repr=False)  # one robots.txt fetch per host

    @property
    def host_delays(self) -> dict[str, float]:
        """Host name -> robots.txt `Crawl-delay` (a lower bound on fetch pacing)."""
        return self.robots.host_delays() if self.robots is not None else {}

    @property
    def discovered(self) -> int:
        return len(self.todo) + len(self.skipped) + len(self.rejected) + self.known


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


def _give_up(r: Reject, ledger: Ledger, max_attempts: int) -> Reject:
    """A discovery reject after `core.crawl.policy.give_up` (the fetch stage's rule too)."""
    tries = ledger.attempts.get(r.item_id, 0) + 1
    d = give_up(Drop(Category(r.category), r.reason, r.detail, r.retryable), tries, max_attempts)
    return dataclasses.replace(r, reason=d.reason, retryable=d.retryable)


def plan(cfg: Config, store: Store, run_id: str, base_dir: str | None = None) -> Plan:
    """Discover every source, skip what committed runs settled, decide the rest."""
    from speechmill.transforms.discover_remote import discover_rss, discover_ytdlp, robots_for

    base = base_dir or os.getcwd()
    now = utcnow()
    ledger = Ledger.load(store)
    out = Plan(attempts=dict(ledger.attempts), robots=robots_for(cfg.crawl))
    seen: set[str] = set()

    def settled(media_id: str) -> bool:
        return ledger.is_settled(media_id)

    for spec, name in zip(cfg.sources, cfg.source_names(), strict=True):
        accepted: list[SourceItem]
        rejected: list[SourceItem]
        rejects: list[Reject]
        if isinstance(spec, LocalSource):
            local = discover_local(spec, name, run_id, base, now)
            accepted, rejected, rejects = local.items, [], local.rejects
        elif isinstance(spec, RssSource):
            found = discover_rss(
                spec, name, run_id, now, cfg.crawl, settled, ledger.watermarks.get(name), out.robots
            )
            accepted, rejected, rejects = found.items, found.skipped, found.rejects
            out.known += found.known
            if found.watermark:
                out.watermarks[name] = found.watermark
            if found.unchanged:
                out.unchanged.append(name)
        else:
            found = discover_ytdlp(spec, name, run_id, now, cfg.crawl, settled, out.robots)
            accepted, rejected, rejects = found.items, found.skipped, found.rejects
            out.known += found.known
        reject_of = {r.item_id: r for r in rejects}
        for it in accepted:
            if it.media_id in seen:
                continue
            seen.add(it.media_id)
            if ledger.is_done(it.media_id, it.etag) and ledger.policy_reject(it.media_id) is None:
                out.skipped.append(it)
                out.decisions.append((name, it, "done"))
            else:
                out.todo.append(it)
                out.decisions.append((name, it, "fetch"))
        for it in rejected:
            if it.media_id in seen:
                continue
            seen.add(it.media_id)
            r = reject_of.get(it.media_id)
            if r is None:
                continue
            out.decisions.append((name, it, f"skip: {r.category}: {r.reason}"))
            if ledger.policy_reject(it.media_id) == r.category:
                continue  # the same decision is already committed
            out.rejected.append(it)
            out.rejects.append(_give_up(r, ledger, cfg.crawl.max_attempts))
        listed = {it.media_id for it in rejected}
        for r in rejects:  # rejects without an item (paths that match nothing)
            if r.item_id not in listed:
                out.rejects.append(_give_up(r, ledger, cfg.crawl.max_attempts))
    return out


def build_corpus(
    p: beam.Pipeline,
    *,
    items: Sequence[SourceItem],
    pre_rejects: Sequence[Reject],
    pre_sources: Sequence[SourceItem] = (),
    attempts: Mapping[str, int] | None = None,
    cfg: Config,
    store: Store,
    run_id: str,
    committed_recordings: frozenset[str],
    factory: BackendFactory,
    model_hash: str,
    progress: bool = False,
    host_delays: Mapping[str, float] | None = None,
) -> None:
    """Wire the corpus stages and the table writes into a pipeline."""
    options = DecodeOptions.from_config(cfg.asr)
    decoder = decoder_id(model_hash, options, cfg.asr.normalizer)
    handler = AsrModelHandler(
        factory,
        options,
        cfg.asr.normalizer,
        language=cfg.asr.language,
        batch_size=cfg.asr.batch_size,
    )
    pacing = {
        name: (getattr(spec, "rate_limit_s", 0.0), getattr(spec, "cookies_file", None))
        for spec, name in zip(cfg.sources, cfg.source_names(), strict=True)
    }
    # Reshuffle: on distributed runners the fetches spread over workers (not one bundle)
    sources = p | "Sources" >> beam.Create(list(items)) | "Spread" >> beam.Reshuffle()
    decoded = sources | "Acquire" >> beam.ParDo(
        AcquireDoFn(
            store,
            cfg.audio,
            run_id,
            committed_recordings,
            crawl=cfg.crawl,
            attempts={it.media_id: (attempts or {}).get(it.media_id, 0) for it in items},
            pacing=pacing,
            host_delays=host_delays,
        )
    ).with_outputs(SOURCES, REJECTS, main="recordings")
    recordings = decoded.recordings | "Dedupe" >> DedupeRecordings()
    vad = recordings | "VAD" >> beam.ParDo(
        DetectSpeechDoFn(store, cfg.vad, cfg.audio, run_id)
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
    rejects = (
        p | "DiscoverRejects" >> beam.Create(list(pre_rejects)),
        decoded[REJECTS],
        vad[REJECTS],
        asr["rejects"],
    ) | "AllRejects" >> beam.Flatten()
    all_sources = (
        p | "SkippedSources" >> beam.Create(list(pre_sources)),
        decoded[SOURCES],
    ) | "AllSources" >> beam.Flatten()
    outputs = {
        "sources": all_sources,
        "recordings": recordings,
        "segments": asr["segments"],
        HYPOTHESES: asr[HYPOTHESES],
        "rejects": rejects,
    }
    _ = outputs | "WriteTables" >> WriteTables(store, run_id)


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
        factory = FasterWhisperFactory.from_config(cfg.asr)
    base_run = new_run_id()
    work = plan(cfg, store, base_run)
    result = RunResult(
        skipped=len(work.skipped) + work.known,
        discovered=work.discovered,
        unchanged=list(work.unchanged),
    )
    if not work.todo and not work.rejects:
        return result
    model_hash = factory.fingerprint()
    progress = show_progress(cfg, progress)
    parts = _parts(work.todo, cfg.runner.commit_every)
    for i, part in enumerate(parts):
        run_id = base_run if len(parts) == 1 else f"{base_run}-p{i + 1:03d}"
        part_items = [dataclasses.replace(it, run_id=run_id) for it in part]
        pre = [dataclasses.replace(r, run_id=run_id) for r in work.rejects] if i == 0 else []
        pre_sources = (
            [dataclasses.replace(x, run_id=run_id) for x in work.rejected] if i == 0 else []
        )
        # a run builds on the latest committed run, a part on the part before it
        with store.run(pipeline, cfg, run_id=run_id) as run:
            build = functools.partial(
                build_corpus,
                items=part_items,
                pre_rejects=pre,
                pre_sources=pre_sources,
                attempts=work.attempts,
                cfg=cfg,
                store=store,
                run_id=run.run_id,
                committed_recordings=Ledger.load(store).recordings,
                factory=factory,
                model_hash=model_hash,
                progress=progress,
                host_delays=work.host_delays,
            )
            execute(cfg, beam_args, build, progress=progress)
            marker = run.commit(
                model_hashes={factory.model_id: model_hash},
                extra={
                    "part": i + 1,
                    "parts": len(parts),
                    "items": len(part_items),
                    "watermarks": work.watermarks if i == len(parts) - 1 else {},
                },
            )
        result.markers.append(marker)
        fault_point("part.done")
    return result
