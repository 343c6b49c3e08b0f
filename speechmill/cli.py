"""The `speechmill` command.

speechmill run CONFIG [--root R] [--set a.b=v ...] [-- BEAM_OPTIONS...]
speechmill tables | query | views | rejects | gc  --root R
speechmill config check|show CONFIG
speechmill models convert-ct2 DIR OUT.pt

Each sub-command's parser names its handler (`set_defaults(func=...)`); a handler runs
the pipeline if there is one and prints the report `speechmill.reports` computes from
the committed tables. Modules are imported inside the handlers, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Literal, NoReturn

from speechmill import __version__
from speechmill.errors import DryRun, SpeechmillError

DEFAULT_ROOT = "./data"

EPILOG = """\
Quick start:
  speechmill config check configs/local-folder.yaml
  speechmill run configs/local-folder.yaml --root ./data
  speechmill tables --root ./data
  speechmill query --root ./data "select count(*), sum(duration_s)/3600 from recordings"
  speechmill gc --root ./data

Every command takes --root (default: the config's store.root, else ./data).
Options after `--` go to Apache Beam unchanged (e.g. -- --runner=DaskRunner).
Docs: docs/index.md
"""

Handler = Callable[[argparse.Namespace], int]

# ----------------------------------------------------------------------------- helpers


def _split_beam_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def _load(args: argparse.Namespace, extra: Sequence[str] = ()) -> Any:
    from speechmill.config import load_config

    runner = getattr(args, "runner", None)
    return load_config(
        args.config, [*args.overrides, *([f"runner.name={runner}"] if runner else []), *extra]
    )


def _root(args: argparse.Namespace) -> str:
    if getattr(args, "root", None):
        return str(args.root)
    if getattr(args, "config", None):
        return str(_load(args).store.root)
    return DEFAULT_ROOT


def _store(args: argparse.Namespace) -> Any:
    """The dataset: --root, else the config's root; with the config's store.options
    (object-store endpoint, region, profile) whenever a config is given."""
    from speechmill.store import Store

    if getattr(args, "config", None):
        return Store.from_config(_load(args), getattr(args, "root", None))
    return Store(_root(args))


def _progress(args: argparse.Namespace) -> bool | None:
    """--no-progress or -q: off; else None: on where the driver sees the work (the
    DirectRunner) and stderr is a terminal (speechmill.progress)."""
    return False if _no_progress(args) else None


def _no_progress(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "no_progress", False) or getattr(args, "quiet", False))


def _shown(path: object) -> str:
    """A path as the CLI prints it (`speechmill.store.fs.shown`)."""
    from speechmill.store.fs import shown

    return shown(path)


def _in_cwd(message: str) -> str:
    """A message with paths under the working directory made relative (as typed): only
    where a path starts (`/srv/tmp/x` stays whole when the working directory is /tmp)."""
    import re

    cwd = re.escape(os.getcwd().rstrip(os.sep) + os.sep)
    return re.sub(rf"(?<![\w/.~-]){cwd}", "", message)


def safe_text(value: object, limit: int = 60) -> str:
    """Remote text for a terminal (`speechmill.reports.safe_text`)."""
    from speechmill.reports import safe_text

    return safe_text(value, limit)


class _DropNoise(logging.Filter):
    """Beam logs harmless import-time warnings on every start; hide them unless -v."""

    NOISE = ("apitools not found", "Resource module is not available", "No iterator is returned")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(n in msg for n in self.NOISE)


def quiet_beam() -> None:
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    for h in logging.getLogger().handlers:
        h.addFilter(_DropNoise())


# ----------------------------------------------------------------------------- commands


def cmd_config_check(args: argparse.Namespace) -> int:
    """validate a config"""
    cfg = _load(args)
    names = ", ".join(cfg.source_names()) or "none"
    what = f"{len(cfg.sources)} sources: {names}"
    if cfg.synth.texts:
        n_texts, n_voices = len(cfg.synth.texts), len(cfg.synth.voices)
        what += f"; synth: {n_texts} text sources, {n_voices} voice specs"
    print(f"{args.config}: OK ({what}; root {cfg.store.root})")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """print the effective config"""
    import yaml

    sys.stdout.write(yaml.safe_dump(_load(args).model_dump(mode="json"), sort_keys=False))
    return 0


def cmd_models_convert_ct2(args: argparse.Namespace) -> int:
    """convert a CTranslate2 Whisper model to an openai-whisper checkpoint

    DIR is a CTranslate2 Whisper model directory (model.bin, config.json, vocabulary) or
    bundled:tiny.en; OUT.pt loads with whisper.load_model(OUT.pt) and as asr.model with
    asr.backend: openai-whisper. float16 stays float16; int8 weights are dequantized.
    """
    from speechmill.backends.ct2_convert import convert
    from speechmill.backends.faster_whisper import BUNDLED, resolve_model

    src = resolve_model(BUNDLED) if args.model_dir == BUNDLED else args.model_dir
    done = convert(src, args.out)
    dims = " ".join(f"{k}={v}" for k, v in done.dims.items())
    print(f"wrote {done.out}: {done.dtype}, {done.tensors} tensors, {done.parameters:,} parameters")
    print(f"  from {args.model_dir}")
    print(f"  dims {dims}")
    print(f"  alignment heads {done.alignment_heads or 'none (openai-whisper default)'}")
    print(f"  sha256 {done.sha256}")
    return 0


def _print_corpus_run(store: Any, result: Any, t0: float, *, skipped: bool) -> int:
    from speechmill import reports

    if not result.markers:
        print(result.nothing_new(store.root))
        return 0
    print(reports.summarize(store, result.run_ids).format())
    if skipped and result.skipped:
        print(f"skipped        {result.skipped} items already committed")
    print(f"dataset        {store.root}  ({time.monotonic() - t0:.1f} s)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """run the corpus pipeline (decode, VAD, Whisper N-best) and commit

    Discover the config's sources, skip what committed runs already hold, process the rest and
    commit one run (or one per runner.commit_every items).
    """
    from speechmill.pipelines.corpus import run_corpus
    from speechmill.store import Store

    cfg = _load(args, [f"asr.model={args.model}"] if args.model else [])
    root = args.root or cfg.store.root
    t0 = time.monotonic()
    result = run_corpus(cfg, root=root, beam_args=args.beam_args, progress=_progress(args))
    return _print_corpus_run(Store.from_config(cfg, root), result, t0, skipped=True)


def cmd_refresh(args: argparse.Namespace) -> int:
    """incremental corpus refresh: discover, fetch only what is new, commit (locked)

    The same job as `run`, under the dataset lock so two refreshes never overlap. Items
    committed runs hold are skipped; feeds are fetched with conditional requests and channel
    scans stop at known entries. Meant for cron/systemd/Airflow (docs/scheduling.md).
    """
    from speechmill.pipelines.corpus import run_corpus
    from speechmill.store import Store

    cfg = _load(args)
    root = args.root or cfg.store.root
    store = Store.from_config(cfg, root)
    if args.break_lock and store.lock_holder() is not None:
        print(f"removing the lock of {store.root}: {store.lock_holder()}", file=sys.stderr)
    t0 = time.monotonic()
    result = run_corpus(
        cfg,
        root=root,
        beam_args=args.beam_args,
        progress=_progress(args),
        pipeline="refresh",
        lock=True,
        break_lock=args.break_lock,
    )
    return _print_corpus_run(store, result, t0, skipped=False)


def cmd_refine(args: argparse.Namespace) -> int:
    """align transcripts, cut utterances, decode and filter them (round-0 labels)

    For committed recordings not refined yet: force-align each segment's text, resegment at
    sentence ends and pauses, decode every utterance on its own audio, apply the filter suite
    (docs/filters.md) and commit utterances and round-0 labels.
    """
    from speechmill import reports
    from speechmill.pipelines.refine import run_refine
    from speechmill.store import Store

    cfg = _load(args)
    root = args.root or cfg.store.root
    result = run_refine(cfg, root=root, beam_args=args.beam_args, progress=_progress(args))
    store = Store.from_config(cfg, root)
    if not result.markers:
        print(f"nothing to refine in {store.root}: {result.skipped} recordings already refined")
        return 0
    (run_id,) = result.run_ids
    print(reports.refine_report(store, run_id))
    return 0


def cmd_relabel(args: argparse.Namespace) -> int:
    """one noisy-student round: a teacher relabels the kept utterances (CER gate)"""
    from speechmill.pipelines.relabel import run_round

    cfg = _load(args)
    r = run_round(
        cfg,
        teacher=args.teacher,
        round_k=args.round,
        force=args.force,
        root=args.root,
        beam_args=args.beam_args,
        progress=_progress(args),
    )
    if r.skipped_committed:
        print(f"round {args.round} is already committed; nothing to do (--force replaces it)")
        return 0
    print(
        f"round {r.round}  teacher {r.teacher}: {r.kept} kept, {r.rejected} rejected "
        f"of {r.pool} (CER gate {cfg.relabel.cer_gate})"
    )
    return 0


def cmd_nst(args: argparse.Namespace) -> int:
    """noisy-student loop: relabel, export, train, repeat

    For each round: relabel with the current teacher, export the kept set to
    <root>/nst/round-K/manifest.jsonl, run the training command and use the model it writes
    (<root>/nst/round-K/model) as the next teacher.
    """
    from speechmill.pipelines.relabel import run_nst

    r = run_nst(
        _load(args),
        rounds=args.rounds,
        train_cmd=args.train_cmd,
        teacher=args.teacher,
        root=args.root,
        force=args.force,
        beam_args=args.beam_args,
        progress=_progress(args),
    )
    for rr, teacher in zip(r.rounds, r.teachers, strict=True):
        state = (
            "already committed"
            if rr.skipped_committed
            else f"{rr.kept} kept, {rr.rejected} rejected of {rr.pool}"
        )
        print(f"round {rr.round}  teacher {teacher}: {state}")
    if r.stopped:
        print(f"stopped: {r.stopped}", file=sys.stderr)
        return 1
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    """list what the config's sources yield and the policy decision for each"""
    from speechmill import reports
    from speechmill.pipelines.corpus import plan
    from speechmill.store import Store, new_run_id

    cfg = _load(args)
    work = plan(cfg, Store.from_config(cfg, args.root), new_run_id(), dry_run=True)
    try:
        text = reports.sources(
            work.decisions(),
            todo=work.todo,
            rejected=work.rejected,
            committed=work.skipped + work.known,
            as_json=args.json,
        )
    finally:
        work.close()
    sys.stdout.write(text)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """committed runs and parts: what each did, and what a resumed run skipped"""
    from speechmill import reports

    print(reports.runs(_store(args)))
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    """tables, row counts and committed runs"""
    from speechmill import reports

    print(reports.tables(_store(args), as_json=args.json))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """run SQL over the committed tables (DuckDB views)

    Views: one per table (latest committed row per primary key) and <table>_history (every
    committed row).
    """
    from speechmill import reports

    sys.stdout.write(reports.query(_store(args), args.sql, args.format))
    return 0


def cmd_views(args: argparse.Namespace) -> int:
    """print the CREATE VIEW SQL (for the duckdb CLI)"""
    from speechmill.store import view_sql

    sys.stdout.write(view_sql(_store(args)))
    return 0


def cmd_rejects(args: argparse.Namespace) -> int:
    """what was dropped and why, with hours"""
    from speechmill import reports

    print(reports.rejects(_store(args), args.by))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """summary of committed runs (default: the latest)"""
    from speechmill import reports

    print(reports.summary(_store(args), args.run))
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """remove files no commit lists (debris of failed runs)"""
    from speechmill import reports
    from speechmill.store import collect_garbage

    store = _store(args)
    report = collect_garbage(
        store, dry_run=args.dry_run, grace=dt.timedelta(hours=args.grace_hours)
    )
    text, warnings = reports.gc(report, store.root)
    for warning in warnings:
        print(warning, file=sys.stderr)
    print(text)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    """TTS -> augmentation -> Whisper N-best: (hypotheses, reference) pairs for GER/DLM

    Read the config's synth.texts, prepare sentences, synthesise them with the configured
    voices, degrade the audio, decode it with Whisper N-best and commit `pairs`
    (docs/synth.md). Items a committed run already holds are skipped.
    """
    from speechmill import reports
    from speechmill.pipelines.synth import run_synth
    from speechmill.store import Store

    cfg = _load(args)
    root = args.root or cfg.store.root
    result = run_synth(cfg, root=root, beam_args=args.beam_args, progress=_progress(args))
    (run_id,) = result.run_ids
    store = Store.from_config(cfg, root)
    print(reports.synth_report(store, run_id, already=result.already, real=result.real))
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    """WER/CER (S/D/I), oracle and compositional oracle, N-best diversity of `pairs`

    Error rates and diversity of the committed pairs, grouped by split, voice, augmentation
    and SNR bucket (docs/synth.md defines every figure).
    """
    from speechmill import reports

    by = [] if args.by in ("", "none") else [b.strip() for b in args.by.split(",") if b.strip()]
    store = _store(args)
    columns = reports.metric_columns(
        before_substitution=args.before_substitution, roundtrip=bool(args.roundtrip)
    )
    table = reports.pairs_table(store, columns=columns)
    if table.num_rows == 0:
        print(f"no pairs in {store.root}: run `speechmill synth` first")
        return 0
    groups = reports.metric_groups(table, by)
    roundtrip: dict[str, Any] = {}
    if args.roundtrip:
        from speechmill.pipelines.synth import roundtrip_wer

        cfg = _load(args) if args.config else None
        roundtrip = roundtrip_wer(store, table, per_voice=args.roundtrip, cfg=cfg)
    print(reports.metrics(groups, by, roundtrip=roundtrip, as_json=args.json))
    return 0


CORPUS_FILTERS = ("round", "source", "split", "language", "min_duration", "max_duration",
                  "shard_size")  # fmt: skip


def _csv(values: Sequence[str] | None, flag: str) -> list[str]:
    """`--license cc-by,cc0 --license pd` -> ["cc-by", "cc0", "pd"]; a flag given with
    nothing in it (`--license ""`, an empty shell variable) is an error, not "no filter"."""
    out = [v.strip() for value in values or () for v in value.split(",") if v.strip()]
    if values is not None and not out:
        raise SpeechmillError(f"{flag} was given an empty list; name at least one value")
    return out


def cmd_export(args: argparse.Namespace) -> int:
    """export the corpus for a trainer (Lhotse, NeMo, Kaldi, WebDataset, HF audio) or
    `pairs` for GER/DLM (HyPoradise, HF, SFT, DLM), with ATTRIBUTION.md

    Corpus formats export the kept utterances with their latest labels (or a round's,
    --round), or the segments of a dataset that has not been refined; filters by split,
    licence, language and duration (docs/exports.md). Pair formats export `pairs`
    (--where filters them; docs/synth.md#exports). Every export writes ATTRIBUTION.md and
    attribution.jsonl: title, author, URL and licence of each recording used.
    """
    from speechmill.corpus_exports import CORPUS_FORMATS

    if args.format in CORPUS_FORMATS:
        return _export_corpus(args)
    given = [
        f"--{n.replace('_', '-')}" for n in CORPUS_FILTERS if getattr(args, n) not in (None, [])
    ]
    if given:
        raise SpeechmillError(
            f"{', '.join(given)}: only for corpus exports ({', '.join(CORPUS_FORMATS)}); "
            f"--format {args.format} exports pairs: filter them with --where and --license"
        )
    licenses = _csv(args.license, "--license")
    from speechmill import reports
    from speechmill.corpus_exports import export_pairs as export

    store = _store(args)
    table = reports.pairs_table(store, args.where)
    if table.num_rows == 0:
        print(f"no pairs to export in {store.root}")
        return 0
    opts: dict[str, Any] = {}
    if args.format in ("hyporadise", "sft"):
        opts["raw"] = args.raw
    if args.format == "sft" and args.template:
        try:
            with open(args.template, encoding="utf-8") as f:
                opts["template"] = f.read()
        except OSError as e:
            raise SpeechmillError(f"--template {args.template}: {e.strerror or e}") from None
    if args.format.startswith("dlm"):
        opts["all_hypotheses"] = args.all_hypotheses
    if licenses:
        from speechmill.corpus_exports import filter_pairs_by_license

        table, left_out = filter_pairs_by_license(store, table, licenses)
        if any(left_out.values()):
            print("left out: " + ", ".join(f"{k} {v}" for k, v in left_out.items() if v))
    for path in export(store, table, args.format, args.out, **opts):
        print(_shown(path))
    print(f"{table.num_rows} pairs exported as {args.format} into {_shown(args.out)}")
    return 0


def _export_corpus(args: argparse.Namespace) -> int:
    from speechmill.corpus_exports import export_corpus

    for flag in ("where", "template"):
        if getattr(args, flag):
            raise SpeechmillError(
                f"--{flag} is for pair exports; corpus exports filter with "
                "--split, --license, --language, --min/max-duration, --round"
            )
    store = _store(args)
    r = export_corpus(
        store,
        args.format,
        args.out,
        round=args.round,
        source=args.source or "auto",
        splits=_csv(args.split, "--split"),
        licenses=_csv(args.license, "--license"),
        languages=_csv(args.language, "--language"),
        min_duration_s=args.min_duration,
        max_duration_s=args.max_duration,
        shard_size=1000 if args.shard_size is None else args.shard_size,
        progress=_progress(args),
    )
    what = "kept utterances" if r.source == "utterances" else "segments (not refined)"
    label = "latest labels" if r.round is None else f"round {r.round} labels"
    print(
        f"{r.utterances} {what} ({r.seconds / 3600:.3f} h, {label}) from {r.recordings} "
        f"recordings exported as {r.format} into {_shown(r.out_dir)}"
    )
    print("  splits    " + ", ".join(f"{k} {v}" for k, v in sorted(r.splits.items())))
    print("  licences  " + ", ".join(f"{k} {v}" for k, v in sorted(r.licenses.items())))
    if any(r.skipped.values()):
        print("  left out  " + ", ".join(f"{k} {v}" for k, v in sorted(r.skipped.items()) if v))
    if r.unrefined_recordings:
        print(
            f"  note: {r.unrefined_recordings} recordings have segments but no utterances "
            "(not refined yet: `speechmill refine`); --source segments exports segments"
        )
    print(f"  {len(r.files)} files, with ATTRIBUTION.md and attribution.jsonl")
    if args.verbose:
        for path in r.files:
            print(f"    {_shown(path)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """write one self-contained HTML report of a dataset (plots, rejects, dataset card)

    Hours per source, licence, language and run, the raw -> refined -> kept funnel,
    durations, speech rate, alignment scores, rejects, N-best diversity, synthetic pairs,
    relabelling rounds and the dataset card, as one HTML file with inline SVG plots that
    opens offline (docs/report.md). Default: report.html at the dataset root.
    """
    from speechmill.report_html import write_report

    if args.out and os.path.isdir(args.out):
        raise SpeechmillError(f"--out {args.out} is a directory; name the HTML file to write")
    store = _store(args)
    where = write_report(store, args.out, progress=_progress(args))
    print(f"report written to {_shown(where)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """offline demo: generate speech, run the corpus pipeline, print WER

    Speaks the demo sentences with the bundled piper voice (and a short espeak-ng part), runs
    the corpus pipeline with Whisper tiny.en and prints the summary, the label WER and the
    N-best diversity. Needs no network.
    """
    import shutil
    from pathlib import Path

    from speechmill.demo import run_demo, run_synth_demo

    workdir = Path(args.workdir).resolve()
    if args.fresh and workdir.exists():
        doomed = [workdir / "synth", workdir / "synth-exports"] if args.synth else [workdir]
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
    if args.synth:
        return run_synth_demo(workdir, seed=args.seed, progress=not _no_progress(args))
    return run_demo(workdir, seed=args.seed, progress=not _no_progress(args))


# ----------------------------------------------------------------------------- parser


def _add_config_args(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
    if optional:
        p.add_argument("--config", "-c", help="config YAML (for its store.root)")
    else:
        p.add_argument("config", help="config YAML file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set asr.beam_size=10 (repeatable)",
    )


def _add_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", help="dataset root (local path, gs:// or s3://)")


def _add_runner(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument(
        "--runner",
        help="Beam runner (shorthand for --set runner.name=...; a --runner=X flag after `--` "
        "wins over both, docs/runners/index.md)",
    )
    return p


def _add_no_progress(p: argparse.ArgumentParser) -> None:
    """Nothing to add: every command takes --no-progress, -q and -v (`_add_terminal_args`)."""


def _add_terminal_args(p: argparse.ArgumentParser, *, top: bool = False) -> None:
    """-v, -q and --no-progress, the same on every command (before or after its name).

    On a command they default to SUPPRESS, so `speechmill -v run ...` and
    `speechmill run -v ...` mean the same: the command's parser does not reset what the
    top-level parser set.
    """
    default: dict[str, Any] = {"default": False} if top else {"default": argparse.SUPPRESS}
    p.add_argument(
        "-v", "--verbose", action="store_true", help="log more; tracebacks on errors", **default
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress and no warnings (results and errors still print)",
        **default,
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no live progress (it shows only on a terminal anyway)",
        **default,
    )


def _command(
    sub: Any, name: str, func: Handler, *, takes: Literal["config", "root"] | None = None
) -> argparse.ArgumentParser:
    """A sub-command handled by `func`, with its help and description from `func`'s docstring.

    The docstring's first paragraph is the one-line help the command list shows, the rest the
    description `--help` shows. takes="config": CONFIG, --set and --root (the pipelines);
    takes="root": --root, --config and --set (the commands that read a dataset).
    """
    help_, _, description = inspect.cleandoc(func.__doc__ or "").partition("\n\n")
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=description or None)
    p.set_defaults(func=func)
    _add_terminal_args(p)
    if takes == "config":
        _add_config_args(p)
        _add_root(p)
    elif takes == "root":
        _add_root(p)
        _add_config_args(p, optional=True)
    return p


def _print_help(p: argparse.ArgumentParser) -> Handler:
    """The handler of a command used without its action: its help, as `--help` prints it."""

    def show(args: argparse.Namespace) -> NoReturn:
        p.print_help()
        p.exit()

    return show


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechmill",
        description="Build speech training corpora with Apache Beam: crawl, transcribe "
        "(N-best), align, filter, relabel; Parquet tables you query with DuckDB.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"speechmill {__version__}")
    _add_terminal_args(parser, top=True)
    parser.set_defaults(func=None)
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("config", help="check or show a config")
    p.set_defaults(func=_print_help(p))
    actions = p.add_subparsers(metavar="ACTION")
    _add_config_args(_command(actions, "check", cmd_config_check))
    _add_config_args(_command(actions, "show", cmd_config_show))

    p = sub.add_parser("models", help="convert models between backends")
    p.set_defaults(func=_print_help(p))
    actions = p.add_subparsers(metavar="ACTION")
    p = _command(actions, "convert-ct2", cmd_models_convert_ct2)
    p.add_argument("model_dir", metavar="DIR", help="CTranslate2 Whisper model directory")
    p.add_argument("out", metavar="OUT.pt", help="openai-whisper checkpoint to write")

    p = _add_runner(_command(sub, "run", cmd_run, takes="config"))
    p.add_argument("--model", help="ASR model (shorthand for --set asr.model=...)")
    _add_no_progress(p)

    p = _add_runner(_command(sub, "refresh", cmd_refresh, takes="config"))
    _add_no_progress(p)
    p.add_argument("--break-lock", action="store_true", help="remove a stale dataset lock first")

    _add_no_progress(_add_runner(_command(sub, "refine", cmd_refine, takes="config")))

    p = _add_runner(_command(sub, "relabel", cmd_relabel, takes="config"))
    p.add_argument("--teacher", required=True, help="teacher model (name or directory)")
    p.add_argument("--round", type=int, required=True, help="round number (1, 2, ...)")
    p.add_argument("--force", action="store_true", help="replace a committed round")
    _add_no_progress(p)

    p = _add_runner(_command(sub, "nst", cmd_nst, takes="config"))
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument(
        "--train-cmd",
        required=True,
        help="training command template with {manifest}, {out_model}, {round}; split like a "
        "shell would but run as an argument list (no shell)",
    )
    p.add_argument("--teacher", help="first teacher (default: asr.model)")
    p.add_argument("--force", action="store_true", help="recompute committed rounds")
    _add_no_progress(p)

    p = _command(sub, "sources", cmd_sources, takes="config")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="discover and decide only (the default: this command never downloads media)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per item")

    _command(sub, "runs", cmd_runs, takes="root")
    p = _command(sub, "tables", cmd_tables, takes="root")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = _command(sub, "query", cmd_query, takes="root")
    p.add_argument("sql", help="a SQL query")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")

    _command(sub, "views", cmd_views, takes="root")

    p = _command(sub, "rejects", cmd_rejects, takes="root")
    p.add_argument("--by", choices=["category", "reason", "stage", "source"], default="category")

    p = _command(sub, "summary", cmd_summary, takes="root")
    p.add_argument("--run", action="append", default=[], help="run id (repeatable)")

    _add_no_progress(_add_runner(_command(sub, "synth", cmd_synth, takes="config")))

    p = _command(sub, "metrics", cmd_metrics, takes="root")
    p.add_argument(
        "--by",
        default="split",
        help="comma-separated grouping: split, voice, aug, snr, source, is_synthetic "
        "(default: split; 'none' for one overall row)",
    )
    p.add_argument("--json", action="store_true", help="JSON records instead of a table")
    p.add_argument(
        "--before-substitution",
        action="store_true",
        help="score the hypotheses as decoded (hypotheses_presub), not after character "
        "substitution (default: what a trainer sees)",
    )
    p.add_argument(
        "--roundtrip",
        type=int,
        default=0,
        metavar="N",
        help="also decode the clean TTS audio of up to N pairs per voice (1-best, beam 5) and "
        "print per-voice round-trip WER",
    )

    p = _command(sub, "export", cmd_export, takes="root")
    p.add_argument(
        "--format",
        required=True,
        choices=[
            *("lhotse", "nemo", "kaldi", "webdataset", "hf-audio"),
            *("hyporadise", "hf", "sft", "dlm-tsv", "dlm-jsonl"),
        ],
        help="corpus: lhotse, nemo, kaldi, webdataset, hf-audio (docs/exports.md); pairs: "
        "hyporadise, hf, sft, dlm-tsv, dlm-jsonl (docs/synth.md#exports)",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--round", type=int, help="corpus: the labels of relabelling round K (0: refine's)"
    )
    p.add_argument(
        "--source",
        choices=["auto", "utterances", "segments"],
        help="corpus: kept utterances, or segments (default auto: utterances when refined)",
    )
    p.add_argument(
        "--split", action="append", help="corpus: train, dev and/or test (comma-separated)"
    )
    p.add_argument(
        "--license",
        action="append",
        help="only these licences, e.g. cc-by,cc0 (a family matches every version; pairs: "
        "synthetic ones are `unknown`)",
    )
    p.add_argument("--language", action="append", help="corpus: only these language codes")
    p.add_argument("--min-duration", type=float, help="corpus: shortest utterance, seconds")
    p.add_argument("--max-duration", type=float, help="corpus: longest utterance, seconds")
    p.add_argument(
        "--shard-size", type=int, help="corpus: utterances per WebDataset tar / HF file (1000)"
    )
    p.add_argument("--raw", action="store_true", help="hyporadise/sft: un-normalised texts")
    p.add_argument("--template", help="sft: a prompt template file ({input1}, {input2}, ...)")
    p.add_argument(
        "--all-hypotheses", action="store_true", help="dlm: one row per hypothesis (default 1-best)"
    )
    p.add_argument("--where", help="SQL filter on the pairs view, e.g. \"split = 'train'\"")

    p = _command(sub, "report", cmd_report, takes="root")
    p.add_argument("--out", help="HTML file to write (default: report.html at the dataset root)")

    p = _command(sub, "demo", cmd_demo)
    p.add_argument("--workdir", default="./demo-data", help="where audio and dataset go")
    p.add_argument("--seed", type=int, default=0, help="seed for voice parameters and pauses")
    p.add_argument("--fresh", action="store_true", help="delete the work directory first")
    _add_no_progress(p)
    p.add_argument(
        "--synth",
        action="store_true",
        help="the synth demo instead: a small GER dataset (TTS -> augmentation -> 5-best), "
        "its metrics table and exports",
    )

    p = _command(sub, "gc", cmd_gc, takes="root")
    p.add_argument("--dry-run", action="store_true", help="list, don't delete")
    p.add_argument(
        "--grace-hours",
        type=float,
        default=24.0,
        help="runs started on another host are presumed alive this long (default 24)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    own, beam_args = _split_beam_args(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(own)
    from speechmill import progress

    level = logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        quiet_beam()
    progress.set_enabled(not _no_progress(args))
    if args.func is None:
        parser.print_help()
        return 2
    args.beam_args = beam_args  # options after `--`, for the commands that run a pipeline
    try:
        return args.func(args)
    except DryRun as d:
        print(f"speechmill: {d}; nothing committed")
        for step, hints in d.hinted_steps():
            print(f"  {step}: " + ", ".join(f"{k}={v}" for k, v in hints.items()))
        return 0
    except SpeechmillError as e:
        print(f"speechmill: error: {_in_cwd(str(e))}", file=sys.stderr)
        if args.verbose:
            traceback.print_exc()
        return 2
    except BrokenPipeError:  # `speechmill tables | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        what = (
            "the export folder may hold part of the files; the next export into it replaces them"
            if args.func is cmd_export
            else "nothing was committed for the unfinished run"
        )
        print(f"speechmill: interrupted; {what}", file=sys.stderr)
        return 130
    except Exception as e:  # anything else: one line, the traceback under -v
        if args.verbose:
            traceback.print_exc()
        print(f"speechmill: error: {_one_line(e)}", file=sys.stderr)
        if not args.verbose:
            print(
                "speechmill: this looks like a bug or an environment problem; run again with -v "
                "for the traceback and report it with that output",
                file=sys.stderr,
            )
        return 1


def _one_line(e: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(e).strip().splitlines()
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.strerror or type(e).__name__}: {e.filename}"
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
