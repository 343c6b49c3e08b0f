"""The refine pipeline: committed segments -> aligned, resegmented, filtered utterances.

`speechmill refine CONFIG` reads the committed recordings and their segments
(the transcripts), aligns each segment's text to its audio, cuts utterances at
sentence ends and pauses, decodes every utterance on its own audio (its own
hallucination signals and N-best list), runs the filter suite per source, and
commits `utterances`, round-0 `labels`, `hypotheses` and `rejects`. Recordings
already refined are skipped.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam

from speechmill.config import Config
from speechmill.core.asr.decoding import DecodeOptions
from speechmill.pipelines.runs import execute, show_progress
from speechmill.store import Marker, Store, connect
from speechmill.transforms.asr import (
    AsrModelHandler,
    BackendFactory,
    Decode,
    backend_factory,
    decoder_id,
)
from speechmill.transforms.common import HYPOTHESES, REJECTS
from speechmill.transforms.refine import (
    ALIGN_STAGE,
    LABELS,
    AlignedWordsDoFn,
    AlignModelHandler,
    FilterDoFn,
    LoadSpanDoFn,
    RecordingInfo,
    ResegmentDoFn,
    SegmentRef,
    UtteranceRows,
    aligner_factory,
    attribution_from,
)
from speechmill.transforms.write import WriteTables


@dataclass
class RefineResult:
    markers: list[Marker] = field(default_factory=list)
    recordings: int = 0
    skipped: int = 0

    @property
    def run_ids(self) -> list[str]:
        return [m.run_id for m in self.markers]


def pending_segments(store: Store, cfg: Config) -> tuple[list[SegmentRef], int]:
    """Segments of committed recordings that no committed refine run has handled."""
    con = connect(store)
    try:
        rows = con.execute(
            """
            SELECT r.recording_id, r.media_id, r.audio_uri, r.num_samples,
                   coalesce(r.language, ?), r.license, r.attribution,
                   g.segment_id, g.start_sample, g.end_sample, g.text
            FROM recordings r JOIN segments g USING (recording_id)
            WHERE r.recording_id NOT IN (SELECT recording_id FROM utterances)
              AND r.recording_id NOT IN (
                  SELECT item_id FROM rejects WHERE stage = ? AND item_kind = 'recording')
            ORDER BY r.recording_id, g.start_sample
            """,
            [cfg.asr.language or "en", ALIGN_STAGE],
        ).fetchall()
        done = con.execute("SELECT count(DISTINCT recording_id) FROM utterances").fetchone()
    finally:
        con.close()
    infos: dict[str, RecordingInfo] = {}
    out = []
    for rid, media_id, uri, n, lang, lic, att, sid, a, b, text in rows:
        info = infos.get(rid)
        if info is None:
            info = RecordingInfo(
                rid,
                media_id,
                store.path(uri),
                int(n),
                str(lang),
                str(lic),
                attribution_from(att),
            )
            infos[rid] = info
        out.append(SegmentRef(info, sid, int(a), int(b), str(text)))
    return out, int(done[0]) if done else 0


def build_refine(
    p: beam.Pipeline,
    *,
    segments: Sequence[SegmentRef],
    cfg: Config,
    store: Store,
    run_id: str,
    asr: BackendFactory,
    model_hash: str,
    aligner: Any,
    progress: bool = False,
) -> None:
    options = DecodeOptions.from_config(cfg.asr)
    decoder = decoder_id(model_hash, options, cfg.asr.normalizer)
    seg_audio = (
        p
        | "Segments" >> beam.Create(list(segments))
        | "LoadSegments"
        >> beam.ParDo(LoadSpanDoFn(run_id, ALIGN_STAGE, store)).with_outputs(REJECTS, main="audio")
    )
    from apache_beam.ml.inference.base import RunInference

    words = (
        seg_audio.audio
        | "Align" >> RunInference(AlignModelHandler(aligner, batch_size=cfg.asr.batch_size))
        | "Words"
        >> beam.ParDo(AlignedWordsDoFn(run_id, progress, len(segments))).with_outputs(
            REJECTS, main="words"
        )
    )
    drafts = (
        words.words
        | "ByRecording" >> beam.GroupByKey()
        | "Resegment"
        >> beam.ParDo(ResegmentDoFn(cfg.align, run_id)).with_outputs(REJECTS, main="drafts")
    )
    utt_audio = drafts.drafts | "LoadUtterances" >> beam.ParDo(
        LoadSpanDoFn(run_id, "transcribe", store)
    ).with_outputs(REJECTS, main="audio")
    handler = AsrModelHandler.from_config(asr, options, cfg.asr, language=cfg.asr.language)
    rows = UtteranceRows(
        aligner=f"{'ctc' if cfg.align.backend == 'ctc' else 'whisper-ct2'}:{aligner.model_id}",
        model_id=asr.model_id,
        decoder=decoder,
        normalizer=cfg.asr.normalizer,
        beam_size=options.beam_size,
        run_id=run_id,
    )
    decoded = utt_audio.audio | "Decode" >> Decode(
        handler, rows, run_id, fault="refine.decode", progress=progress, label="refine"
    )
    filtered = (
        decoded.main
        | "BySource" >> beam.GroupByKey()
        | "Filter"
        >> beam.ParDo(
            FilterDoFn(
                cfg.filters,
                language=cfg.asr.language or "en",
                model_id=asr.model_id,
                model_hash=model_hash,
                decoder=decoder,
                normalizer=cfg.asr.normalizer,
                run_id=run_id,
            )
        ).with_outputs(LABELS, REJECTS, main="utterances")
    )
    rejects = (
        seg_audio[REJECTS],
        words[REJECTS],
        drafts[REJECTS],
        utt_audio[REJECTS],
        decoded[REJECTS],
        filtered[REJECTS],
    ) | "AllRejects" >> beam.Flatten()
    _ = {
        "utterances": filtered.utterances,
        "labels": filtered[LABELS],
        "hypotheses": decoded[HYPOTHESES],
        "rejects": rejects,
    } | "WriteTables" >> WriteTables(store, run_id)


def run_refine(
    cfg: Config,
    *,
    root: str | None = None,
    asr: BackendFactory | None = None,
    aligner: Any = None,
    beam_args: Sequence[str] = (),
    progress: bool | None = None,
) -> RefineResult:
    store = Store.from_config(cfg, root)
    segments, done = pending_segments(store, cfg)
    result = RefineResult(
        recordings=len({s.recording.recording_id for s in segments}), skipped=done
    )
    if not segments:
        return result
    asr = asr or backend_factory(cfg.asr)
    aligner = aligner or aligner_factory(
        cfg.align, cfg.asr.model, cfg.asr.device, cfg.asr.compute_type
    )
    model_hash = asr.fingerprint()
    progress = show_progress(cfg, progress, beam_args)
    with store.run("refine", cfg) as run:
        build = functools.partial(
            build_refine,
            segments=segments,
            cfg=cfg,
            store=store,
            run_id=run.run_id,
            asr=asr,
            model_hash=model_hash,
            aligner=aligner,
            progress=progress,
        )
        execute(cfg, beam_args, build, progress=progress)
        marker = run.commit(
            model_hashes={asr.model_id: model_hash}, extra={"recordings": result.recordings}
        )
    result.markers.append(marker)
    return result
