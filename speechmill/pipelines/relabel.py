"""Noisy-student relabelling rounds and the NST loop.

`speechmill relabel CONFIG --teacher MODEL --round K`: the teacher transcribes
every utterance that round K-1 kept; where CER(previous label, teacher) <= the
gate the teacher's text becomes the round-K label (`keep`), otherwise the
utterance is rejected for round K and leaves the pool. A committed round is
immutable: running it again does nothing unless `force` replaces it.

`speechmill nst CONFIG --rounds R --train-cmd "..."`: for each round, relabel,
export the kept set as a training manifest, run the user's training command
(an argument list with {manifest}, {out_model}, {round}; never a shell) and use
the model it writes as the next teacher.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import apache_beam as beam
from apache_beam.ml.inference.base import PredictionResult, RunInference

from speechmill.backends.asr import DecodeOptions
from speechmill.config import Config
from speechmill.core.text.metrics import cer
from speechmill.core.text.normalize import get_normalizer
from speechmill.errors import SpeechmillError
from speechmill.faults import fault_point
from speechmill.pipelines.corpus import commit_run, pipeline_options
from speechmill.schemas import Category, Label
from speechmill.store import Ledger, Marker, Store, connect, new_run_id
from speechmill.transforms.common import REJECTS, Progress, reject
from speechmill.transforms.refine import LoadSpanDoFn, RecordingInfo, attribution_from
from speechmill.transforms.transcribe import (
    AsrModelHandler,
    BackendFactory,
    FasterWhisperFactory,
    decoder_id,
)
from speechmill.transforms.write import WriteTables

STAGE = "relabel"
SR = 16000


@dataclass(frozen=True, slots=True)
class PoolItem:
    """An utterance in the pool of a round, with its previous label."""

    recording: RecordingInfo
    utterance_id: str
    start: int
    end: int
    prev_text: str

    @property
    def item_id(self) -> str:
        return self.utterance_id

    @property
    def language(self) -> str:
        return self.recording.language


@dataclass
class RoundResult:
    round: int
    teacher: str
    marker: Marker | None = None
    pool: int = 0
    kept: int = 0
    rejected: int = 0
    skipped_committed: bool = False


def committed_rounds(store: Store) -> set[int]:
    con = connect(store)
    try:
        return {int(r[0]) for r in con.execute("SELECT DISTINCT round FROM labels").fetchall()}
    finally:
        con.close()


def pool_of(store: Store, round_k: int, default_language: str) -> list[PoolItem]:
    """Utterances whose round K-1 label kept them (round 0: the filters' seed)."""
    con = connect(store)
    try:
        rows = con.execute(
            """
            SELECT u.utterance_id, u.recording_id, u.source_id, r.audio_uri, r.num_samples,
                   coalesce(r.language, ?), u.license, u.attribution, u.start_sample,
                   u.end_sample, l.text
            FROM utterances u
            JOIN labels l ON l.utterance_id = u.utterance_id AND l.round = ?
            JOIN recordings r ON r.recording_id = u.recording_id
            WHERE l.decision IN ('seed', 'keep')
            ORDER BY u.utterance_id
            """,
            [default_language, round_k - 1],
        ).fetchall()
    finally:
        con.close()
    out = []
    for uid, rid, src, uri, n, lang, lic, att, a, b, text in rows:
        info = RecordingInfo(
            rid,
            src,
            store.path(uri),
            int(n),
            str(lang),
            str(lic),
            attribution_from(att),
        )
        out.append(PoolItem(info, uid, int(a), int(b), str(text)))
    return out


class GateDoFn(beam.DoFn):
    """Teacher output -> round-K label (keep/reject) and a reject row for rejections."""

    def __init__(
        self,
        *,
        round_k: int,
        gate: float,
        model_id: str,
        model_hash: str,
        decoder: str,
        normalizer: str,
        run_id: str,
        progress: bool = False,
    ) -> None:
        self._round = round_k
        self._gate = gate
        self._model_id = model_id
        self._model_hash = model_hash
        self._decoder = decoder
        self._normalizer = normalizer
        self._run_id = run_id
        self._progress_on = progress

    def setup(self) -> None:
        self._norm = get_normalizer(self._normalizer)
        self._progress = Progress(self._progress_on, f"relabel round {self._round}")

    def process(self, result: PredictionResult) -> Iterator[Any]:
        fault_point("relabel.gate")
        item = cast(PoolItem, cast(tuple[Any, Any], result.example)[0])
        self._progress.add((item.end - item.start) / 16000)
        out = cast(Any, result.inference)
        failed = out.error is not None or out.nbest is None or not out.nbest.hyps
        text = "" if failed else out.nbest.hyps[0].text
        norm = self._norm(text)
        score = None if failed else cer(self._norm(item.prev_text), norm)
        keep = score is not None and score <= self._gate
        yield Label(
            utterance_id=item.utterance_id,
            round=self._round,
            model_id=self._model_id,
            model_hash=self._model_hash,
            decoder_id=self._decoder,
            text=text,
            text_norm=norm,
            prev_text=item.prev_text,
            cer_prev=score,
            decision="keep" if keep else "reject",
            cer_gate=self._gate,
            run_id=self._run_id,
        )
        if not keep:
            reason = (
                f"round {self._round}: the teacher failed on this utterance"
                if score is None
                else f"round {self._round}: CER {score:.3f} against the round "
                f"{self._round - 1} label is above the gate {self._gate}"
            )
            yield reject(
                item_id=item.utterance_id,
                item_kind="utterance",
                stage=f"{STAGE}-{self._round}",
                category=Category.ASR_ERROR if score is None else Category.RELABEL,
                reason=reason,
                run_id=self._run_id,
                parent_id=item.recording.recording_id,
                source_id=item.recording.source_id,
                detail=out.error if failed else f"teacher: {text[:500]}",
                duration_s=(item.end - item.start) / SR,
            )


def run_round(
    cfg: Config,
    *,
    teacher: str,
    round_k: int,
    force: bool = False,
    root: str | None = None,
    factory: BackendFactory | None = None,
    beam_args: Sequence[str] = (),
    progress: bool | None = None,
) -> RoundResult:
    """One relabelling round, committed as one run (or nothing if already committed)."""
    if round_k < 1:
        raise SpeechmillError("relabelling rounds start at 1 (round 0 is the aligned transcript)")
    store = Store(root or cfg.store.root)
    result = RoundResult(round_k, teacher)
    done = committed_rounds(store)
    if round_k in done and not force:
        result.skipped_committed = True
        return result
    if round_k - 1 not in done:
        raise SpeechmillError(
            f"round {round_k - 1} has no committed labels: run `speechmill refine` "
            + ("first" if round_k == 1 else f"and `speechmill relabel --round {round_k - 1}`")
        )
    pool = pool_of(store, round_k, cfg.asr.language or "en")
    result.pool = len(pool)
    factory = factory or FasterWhisperFactory(
        teacher, cfg.asr.device, cfg.asr.compute_type, cfg.asr.cpu_threads
    )
    options = DecodeOptions(
        beam_size=cfg.relabel.teacher_beam_size,
        n_best=1,
        top_up=False,
        min_context_s=cfg.asr.min_context_s,
    )
    model_hash = factory.fingerprint()
    decoder = decoder_id(model_hash, options, cfg.asr.normalizer)
    handler = AsrModelHandler(
        factory,
        options,
        cfg.asr.normalizer,
        language=cfg.asr.language,
        batch_size=cfg.relabel.batch_size,
    )
    if progress is None:
        progress = cfg.runner.name == "DirectRunner"
    handle = store.begin(f"relabel-{round_k}", new_run_id())
    try:
        parent = list(Ledger.load(store).run_ids[-1:])
        with beam.Pipeline(options=pipeline_options(cfg, beam_args)) as p:
            loaded = (
                p
                | "Pool" >> beam.Create(pool)
                | "Load"
                >> beam.ParDo(LoadSpanDoFn(handle.run_id, STAGE)).with_outputs(
                    REJECTS, main="audio"
                )
            )
            gated = (
                loaded.audio
                | "Teacher" >> RunInference(handler)
                | "Gate"
                >> beam.ParDo(
                    GateDoFn(
                        round_k=round_k,
                        gate=cfg.relabel.cer_gate,
                        model_id=teacher,
                        model_hash=model_hash,
                        decoder=decoder,
                        normalizer=cfg.asr.normalizer,
                        run_id=handle.run_id,
                        progress=progress,
                    )
                ).with_outputs(REJECTS, main="labels")
            )
            rejects = (loaded[REJECTS], gated[REJECTS]) | "Rejects" >> beam.Flatten()
            _ = {"labels": gated.labels, "rejects": rejects} | "Write" >> WriteTables(
                store.root, handle.run_id
            )
        if progress and sys.stderr.isatty():
            sys.stderr.write("\n")
        result.marker = commit_run(
            store,
            handle,
            cfg,
            model_hashes={teacher: model_hash},
            parent_runs=parent,
            extra={"round": round_k, "teacher": teacher, "force": force, "pool": len(pool)},
        )
    finally:
        store.end(handle)
    con = connect(store)
    try:
        counts = dict(
            con.execute(
                "SELECT decision, count(*) FROM labels_history WHERE run_id = ? GROUP BY 1",
                [handle.run_id],
            ).fetchall()
        )
    finally:
        con.close()
    result.kept = int(counts.get("keep", 0))
    result.rejected = int(counts.get("reject", 0))
    return result


# ----------------------------------------------------------------------------- export + NST


def export_manifest(store: Store, path: Path, round_k: int | None = None) -> int:
    """The kept set as a JSONL training manifest (NeMo style: audio_filepath, offset,
    duration, text), one line per utterance. Returns the number of lines."""
    con = connect(store)
    try:
        sql = (
            "SELECT u.utterance_id, r.audio_uri, u.start_s, u.duration_s, l.text, l.round "
            "FROM utterances u JOIN recordings r USING (recording_id) "
        )
        if round_k is None:
            sql += "JOIN labels_latest l USING (utterance_id) "
            params: list[Any] = []
        else:
            sql += "JOIN labels l ON l.utterance_id = u.utterance_id AND l.round = ? "
            params = [round_k]
        sql += "WHERE l.decision IN ('seed', 'keep') ORDER BY u.utterance_id"
        rows = con.execute(sql, params).fetchall()
    finally:
        con.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for uid, uri, start, dur, text, rnd in rows:
            f.write(
                json.dumps(
                    {
                        "utterance_id": uid,
                        "audio_filepath": store.path(uri),
                        "offset": start,
                        "duration": dur,
                        "text": text,
                        "round": rnd,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    tmp.replace(path)
    return len(rows)


def training_argv(template: str, *, manifest: str, out_model: str, round_k: int) -> list[str]:
    """Split the template like a shell would, then fill placeholders per argument.

    The command runs as an argument list: no shell ever sees the values.
    """
    try:
        args = shlex.split(template)
    except ValueError as e:
        raise SpeechmillError(f"--train-cmd cannot be split into arguments: {e}") from None
    if not args:
        raise SpeechmillError("--train-cmd is empty")
    values = {"manifest": manifest, "out_model": out_model, "round": str(round_k)}
    out = []
    for a in args:
        try:
            out.append(a.format(**values))
        except (KeyError, IndexError, ValueError) as e:
            raise SpeechmillError(
                f"--train-cmd argument {a!r}: unknown placeholder {e}; use {{manifest}}, "
                "{out_model}, {round}"
            ) from None
    return out


@dataclass
class NstResult:
    rounds: list[RoundResult] = field(default_factory=list)
    teachers: list[str] = field(default_factory=list)
    stopped: str | None = None


def run_nst(
    cfg: Config,
    *,
    rounds: int,
    train_cmd: str,
    teacher: str | None = None,
    root: str | None = None,
    force: bool = False,
    beam_args: Sequence[str] = (),
    log: Any = None,
    progress: bool | None = None,
) -> NstResult:
    """Rounds 1..R of relabel -> export -> train; the model each training writes teaches next."""
    store = Store(root or cfg.store.root)
    out = NstResult()
    current = teacher or cfg.asr.model
    say = log or (lambda msg: print(msg, file=sys.stderr))
    for k in range(1, rounds + 1):
        out.teachers.append(current)
        rr = run_round(
            cfg,
            teacher=current,
            round_k=k,
            force=force,
            root=store.root,
            beam_args=beam_args,
            progress=progress,
        )
        out.rounds.append(rr)
        say(
            f"round {k}: teacher {current}: "
            + (
                "already committed"
                if rr.skipped_committed
                else f"{rr.kept} kept, {rr.rejected} rejected of {rr.pool}"
            )
        )
        work = Path(store.path(f"nst/round-{k}"))
        manifest = work / "manifest.jsonl"
        n = export_manifest(store, manifest, k)
        out_model = work / "model"
        argv = training_argv(train_cmd, manifest=str(manifest), out_model=str(out_model), round_k=k)
        say(f"round {k}: training on {n} utterances: {' '.join(shlex.quote(a) for a in argv)}")
        proc = subprocess.run(argv, check=False)  # an argument list: never a shell
        if proc.returncode != 0:
            out.stopped = (
                f"round {k}: the training command exited with status {proc.returncode}; "
                f"rounds 1..{k} are committed, the loop stops here"
            )
            return out
        if not (out_model / "model.bin").is_file():
            out.stopped = (
                f"round {k}: the training command wrote no CTranslate2 model at {out_model} "
                "(model.bin missing); the loop stops here"
            )
            return out
        current = str(out_model)
    return out
