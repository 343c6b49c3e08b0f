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

import functools
import json
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam

from speechmill.config import Config
from speechmill.core.asr.decoding import AsrOutput, DecodeOptions
from speechmill.core.audio.chunks import SAMPLE_RATE as SR
from speechmill.core.quality.relabel import gate
from speechmill.core.text.normalize import Normalizer, get_normalizer
from speechmill.errors import SpeechmillError
from speechmill.pipelines.runs import execute, show_progress
from speechmill.schemas import Label
from speechmill.store import Marker, Store, connect
from speechmill.transforms.asr import (
    AsrModelHandler,
    BackendFactory,
    Decode,
    ItemRef,
    backend_factory,
    decoder_id,
)
from speechmill.transforms.common import REJECTS, reject
from speechmill.transforms.refine import LoadSpanDoFn, RecordingInfo, attribution_from
from speechmill.transforms.write import WriteTables

STAGE = "relabel"


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
    def duration_s(self) -> float:
        return (self.end - self.start) / SR

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


@dataclass
class GateRows:
    """Row builder of relabel: the teacher's decode -> a round-K label, and a reject if gated."""

    round_k: int
    gate: float
    model_id: str
    model_hash: str
    decoder: str
    normalizer: str
    run_id: str
    tags: tuple[str, ...] = ()
    _norm: Normalizer | None = None

    @property
    def stage(self) -> str:
        return f"{STAGE}-{self.round_k}"

    def setup(self) -> None:
        self._norm = get_normalizer(self.normalizer)

    def ref(self, item: PoolItem) -> ItemRef:
        rec = item.recording
        return ItemRef(
            item.utterance_id, "utterance", rec.recording_id, rec.source_id, item.duration_s
        )

    def rows(self, item: PoolItem, out: AsrOutput) -> list[object]:
        if self._norm is None:
            raise RuntimeError("GateRows.setup() was not called")
        failed = out.error is not None or out.nbest is None or not out.nbest.hyps
        g = gate(
            item.prev_text,
            None if failed or out.nbest is None else out.nbest.hyps[0].text,
            normalize=self._norm,
            threshold=self.gate,
            round_k=self.round_k,
            error=out.error,
        )
        label = Label(
            utterance_id=item.utterance_id,
            round=self.round_k,
            model_id=self.model_id,
            model_hash=self.model_hash,
            decoder_id=self.decoder,
            text=g.text,
            text_norm=g.text_norm,
            prev_text=item.prev_text,
            cer_prev=g.cer_prev,
            decision=g.decision,
            cer_gate=self.gate,
            run_id=self.run_id,
        )
        if g.drop is None:
            return [label]
        ref = self.ref(item)
        return [
            label,
            reject(
                g.drop,
                item_id=ref.item_id,
                item_kind=ref.item_kind,
                stage=self.stage,
                run_id=self.run_id,
                parent_id=ref.parent_id,
                source_id=ref.source_id,
                duration_s=ref.duration_s,
            ),
        ]


def build_relabel(
    p: beam.Pipeline,
    *,
    pool: Sequence[PoolItem],
    handler: AsrModelHandler,
    rows: GateRows,
    store: Store,
    progress: bool,
) -> None:
    """Pool -> load each utterance's audio -> the teacher -> the gate -> labels, rejects."""
    loaded = (
        p
        | "Pool" >> beam.Create(list(pool))
        | "Load"
        >> beam.ParDo(LoadSpanDoFn(rows.run_id, STAGE, store)).with_outputs(REJECTS, main="audio")
    )
    gated = loaded.audio | "Teacher" >> Decode(
        handler,
        rows,
        rows.run_id,
        fault="relabel.gate",
        progress=progress,
        label=f"relabel round {rows.round_k}",
    )
    rejects = (loaded[REJECTS], gated[REJECTS]) | "Rejects" >> beam.Flatten()
    _ = {"labels": gated.main, "rejects": rejects} | "Write" >> WriteTables(store, rows.run_id)


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
    store = Store.from_config(cfg, root)
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
    factory = factory or backend_factory(cfg.asr, model=teacher)
    options = DecodeOptions.from_config(
        cfg.asr, beam_size=cfg.relabel.teacher_beam_size, n_best=1, top_up=False
    )
    model_hash = factory.fingerprint()
    handler = AsrModelHandler.from_config(
        factory, options, cfg.asr, language=cfg.asr.language, batch_size=cfg.relabel.batch_size
    )
    progress = show_progress(cfg, progress, beam_args)
    with store.run(f"relabel-{round_k}", cfg) as run:
        rows = GateRows(
            round_k=round_k,
            gate=cfg.relabel.cer_gate,
            model_id=teacher,
            model_hash=model_hash,
            decoder=decoder_id(model_hash, options, cfg.asr.normalizer),
            normalizer=cfg.asr.normalizer,
            run_id=run.run_id,
        )
        build = functools.partial(
            build_relabel, pool=pool, handler=handler, rows=rows, store=store, progress=progress
        )
        execute(cfg, beam_args, build, progress=progress)
        result.marker = run.commit(
            model_hashes={teacher: model_hash},
            extra={"round": round_k, "teacher": teacher, "force": force, "pool": len(pool)},
        )
    con = connect(store)
    try:
        counts = dict(
            con.execute(
                "SELECT decision, count(*) FROM labels_history WHERE run_id = ? GROUP BY 1",
                [result.marker.run_id],
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
    store = Store.from_config(cfg, root)
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
