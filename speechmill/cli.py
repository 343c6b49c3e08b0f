"""The `speechmill` command.

speechmill run CONFIG [--root R] [--set a.b=v ...] [-- BEAM_OPTIONS...]
speechmill tables | query | views | rejects | gc  --root R
speechmill config check|show CONFIG
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from speechmill import __version__
from speechmill.errors import SpeechmillError

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


def _split_beam_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechmill",
        description="Build speech training corpora with Apache Beam: crawl, transcribe "
        "(N-best), align, filter, relabel; Parquet tables you query with DuckDB.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"speechmill {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("config", help="check or show a config")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    for name, text in (("check", "validate a config"), ("show", "print the effective config")):
        cp = csub.add_parser(name, help=text)
        _add_config_args(cp)

    p = sub.add_parser(
        "run",
        help="run the corpus pipeline (decode, VAD, Whisper N-best) and commit",
        description="Discover the config's sources, skip what committed runs already hold, "
        "process the rest and commit one run (or one per runner.commit_every items).",
    )
    _add_config_args(p)
    _add_root(p)
    p.add_argument("--runner", help="Beam runner (shorthand for --set runner.name=...)")
    p.add_argument("--model", help="ASR model (shorthand for --set asr.model=...)")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")

    p = sub.add_parser(
        "refresh",
        help="incremental corpus refresh: discover, fetch only what is new, commit (locked)",
        description="The same job as `run`, under the dataset lock so two refreshes never "
        "overlap. Items committed runs hold are skipped; feeds are fetched with conditional "
        "requests and channel scans stop at known entries. Meant for cron/systemd/Airflow "
        "(docs/scheduling.md).",
    )
    _add_config_args(p)
    _add_root(p)
    p.add_argument("--runner", help="Beam runner (shorthand for --set runner.name=...)")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    p.add_argument("--break-lock", action="store_true", help="remove a stale dataset lock first")

    p = sub.add_parser(
        "refine",
        help="align transcripts, cut utterances, decode and filter them (round-0 labels)",
        description="For committed recordings not refined yet: force-align each segment's "
        "text, resegment at sentence ends and pauses, decode every utterance on its own audio, "
        "apply the filter suite (docs/filters.md) and commit utterances and round-0 labels.",
    )
    _add_config_args(p)
    _add_root(p)
    p.add_argument("--no-progress", action="store_true", help="no live progress line")

    p = sub.add_parser(
        "relabel",
        help="one noisy-student round: a teacher relabels the kept utterances (CER gate)",
    )
    _add_config_args(p)
    _add_root(p)
    p.add_argument("--teacher", required=True, help="teacher model (name or directory)")
    p.add_argument("--round", type=int, required=True, help="round number (1, 2, ...)")
    p.add_argument("--force", action="store_true", help="replace a committed round")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")

    p = sub.add_parser(
        "nst",
        help="noisy-student loop: relabel, export, train, repeat",
        description="For each round: relabel with the current teacher, export the kept set "
        "to <root>/nst/round-K/manifest.jsonl, run the training command and use the model it "
        "writes (<root>/nst/round-K/model) as the next teacher.",
    )
    _add_config_args(p)
    _add_root(p)
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument(
        "--train-cmd",
        required=True,
        help="training command template with {manifest}, {out_model}, {round}; split like a "
        "shell would but run as an argument list (no shell)",
    )
    p.add_argument("--teacher", help="first teacher (default: asr.model)")
    p.add_argument("--force", action="store_true", help="recompute committed rounds")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")

    p = sub.add_parser(
        "sources",
        help="list what the config's sources yield and the policy decision for each",
    )
    _add_config_args(p)
    _add_root(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="discover and decide only (the default: this command never downloads media)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per item")

    p = sub.add_parser("tables", help="tables, row counts and committed runs")
    _add_root(p)
    _add_config_args(p, optional=True)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser(
        "query",
        help="run SQL over the committed tables (DuckDB views)",
        description="Views: one per table (latest committed row per primary key) and "
        "<table>_history (every committed row).",
    )
    _add_root(p)
    _add_config_args(p, optional=True)
    p.add_argument("sql", help="a SQL query")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")

    p = sub.add_parser("views", help="print the CREATE VIEW SQL (for the duckdb CLI)")
    _add_root(p)
    _add_config_args(p, optional=True)

    p = sub.add_parser("rejects", help="what was dropped and why, with hours")
    _add_root(p)
    _add_config_args(p, optional=True)
    p.add_argument("--by", choices=["category", "reason", "stage", "source"], default="category")

    p = sub.add_parser("summary", help="summary of committed runs (default: the latest)")
    _add_root(p)
    _add_config_args(p, optional=True)
    p.add_argument("--run", action="append", default=[], help="run id (repeatable)")

    p = sub.add_parser(
        "synth",
        help="TTS -> augmentation -> Whisper N-best: (hypotheses, reference) pairs for GER/DLM",
        description="Read the config's synth.texts, prepare sentences, synthesise them with the "
        "configured voices, degrade the audio, decode it with Whisper N-best and commit `pairs` "
        "(docs/synth.md). Items a committed run already holds are skipped.",
    )
    _add_config_args(p)
    _add_root(p)
    p.add_argument("--no-progress", action="store_true", help="no live progress line")

    p = sub.add_parser(
        "metrics",
        help="WER/CER (S/D/I), oracle and compositional oracle, N-best diversity of `pairs`",
        description="Error rates and diversity of the committed pairs, grouped by split, "
        "voice, augmentation and SNR bucket (docs/synth.md defines every figure).",
    )
    _add_root(p)
    _add_config_args(p, optional=True)
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

    p = sub.add_parser(
        "export",
        help="export `pairs` as HyPoradise JSON, HF Parquet, SFT JSONL or DLM TSV/JSONL",
    )
    _add_root(p)
    _add_config_args(p, optional=True)
    p.add_argument(
        "--format",
        required=True,
        choices=["hyporadise", "hf", "sft", "dlm-tsv", "dlm-jsonl"],
        help="target format (docs/synth.md#exports)",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--raw", action="store_true", help="hyporadise/sft: un-normalised texts")
    p.add_argument("--template", help="sft: a prompt template file ({input1}, {input2}, ...)")
    p.add_argument(
        "--all-hypotheses", action="store_true", help="dlm: one row per hypothesis (default 1-best)"
    )
    p.add_argument("--where", help="SQL filter on the pairs view, e.g. \"split = 'train'\"")

    p = sub.add_parser(
        "demo",
        help="offline demo: generate speech, run the corpus pipeline, print WER",
        description="Speaks the demo sentences with the bundled piper voice (and a short "
        "espeak-ng part), runs the corpus pipeline with Whisper tiny.en and prints the summary, "
        "the label WER and the N-best diversity. Needs no network.",
    )
    p.add_argument("--workdir", default="./demo-data", help="where audio and dataset go")
    p.add_argument("--seed", type=int, default=0, help="seed for voice parameters and pauses")
    p.add_argument("--fresh", action="store_true", help="delete the work directory first")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    p.add_argument(
        "--synth",
        action="store_true",
        help="the synth demo instead: a small GER dataset (TTS -> augmentation -> 5-best), "
        "its metrics table and exports",
    )

    p = sub.add_parser("gc", help="remove files no commit lists (debris of failed runs)")
    _add_root(p)
    _add_config_args(p, optional=True)
    p.add_argument("--dry-run", action="store_true", help="list, don't delete")
    p.add_argument(
        "--grace-hours",
        type=float,
        default=24.0,
        help="runs started on another host are presumed alive this long (default 24)",
    )
    return parser


# ----------------------------------------------------------------------------- helpers


def _load(args: argparse.Namespace, extra: Sequence[str] = ()) -> Any:
    from speechmill.config import load_config

    return load_config(args.config, [*args.overrides, *extra])


def _root(args: argparse.Namespace) -> str:
    if getattr(args, "root", None):
        return str(args.root)
    if getattr(args, "config", None):
        return str(_load(args).store.root)
    return DEFAULT_ROOT


def _store(args: argparse.Namespace) -> Any:
    from speechmill.store import Store

    return Store(_root(args))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: Any = None) -> None:
    out = out or sys.stdout

    def fmt(v: Any) -> str:
        if v is None:
            return "NULL"
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.6g}"
        s = str(v)
        return s if len(s) <= 80 else s[:77] + "..."

    cells = [[fmt(v) for v in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out.write(line.rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _json_default(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return str(v)


# ----------------------------------------------------------------------------- commands


def cmd_config(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if args.config_command == "show":
        import yaml

        sys.stdout.write(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    else:
        names = ", ".join(cfg.source_names()) or "none"
        what = f"{len(cfg.sources)} sources: {names}"
        if cfg.synth.texts:
            n_texts, n_voices = len(cfg.synth.texts), len(cfg.synth.voices)
            what += f"; synth: {n_texts} text sources, {n_voices} voice specs"
        print(f"{args.config}: OK ({what}; root {cfg.store.root})")
    return 0


def cmd_run(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from speechmill.pipelines.corpus import run_corpus
    from speechmill.pipelines.summary import summarize

    extra = []
    if args.runner:
        extra.append(f"runner.name={args.runner}")
    if args.model:
        extra.append(f"asr.model={args.model}")
    cfg = _load(args, extra)
    root = args.root or cfg.store.root
    t0 = time.monotonic()
    result = run_corpus(cfg, root=root, beam_args=beam_args, progress=not args.no_progress)
    from speechmill.store import Store

    store = Store(root)
    if not result.markers:
        print(result.nothing_new(store.root))
        return 0
    summary = summarize(store, result.run_ids)
    print(summary.format())
    if result.skipped:
        print(f"skipped        {result.skipped} items already committed")
    print(f"dataset        {store.root}  ({time.monotonic() - t0:.1f} s)")
    return 0


def cmd_refresh(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from speechmill.pipelines.corpus import run_corpus
    from speechmill.pipelines.summary import summarize
    from speechmill.store import Store

    extra = [f"runner.name={args.runner}"] if args.runner else []
    cfg = _load(args, extra)
    root = args.root or cfg.store.root
    store = Store(root)
    if args.break_lock and store.lock_holder() is not None:
        print(f"removing the lock of {store.root}: {store.lock_holder()}", file=sys.stderr)
    t0 = time.monotonic()
    result = run_corpus(
        cfg,
        root=root,
        beam_args=beam_args,
        progress=not args.no_progress,
        pipeline="refresh",
        lock=True,
        break_lock=args.break_lock,
    )
    if not result.markers:
        print(result.nothing_new(store.root))
        return 0
    print(summarize(store, result.run_ids).format())
    print(f"dataset        {store.root}  ({time.monotonic() - t0:.1f} s)")
    return 0


def cmd_refine(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from speechmill.pipelines.refine import run_refine
    from speechmill.store import Store, connect

    cfg = _load(args)
    root = args.root or cfg.store.root
    result = run_refine(
        cfg, root=root, beam_args=beam_args, progress=False if args.no_progress else None
    )
    store = Store(root)
    if not result.markers:
        print(f"nothing to refine in {store.root}: {result.skipped} recordings already refined")
        return 0
    (run_id,) = result.run_ids
    con = connect(store)
    q = con.execute
    n, hours, recs = q(
        "SELECT count(*), coalesce(sum(duration_s), 0) / 3600, count(DISTINCT recording_id) "
        "FROM utterances_history WHERE run_id = ?",
        [run_id],
    ).fetchone() or (0, 0.0, 0)
    kept = q(
        "SELECT count(*) FROM labels_history WHERE run_id = ? AND decision = 'seed'", [run_id]
    ).fetchone()
    drops = q(
        "SELECT split_part(reason, ':', 1), count(*) FROM rejects_history WHERE run_id = ? "
        "GROUP BY 1 ORDER BY 2 DESC",
        [run_id],
    ).fetchall()
    lists = q(
        "SELECT count(*), avg(n_unique) FROM hypotheses_history WHERE run_id = ?", [run_id]
    ).fetchone() or (0, None)
    wall = q("SELECT wall_s FROM runs WHERE run_id = ?", [run_id]).fetchone()
    audio = q(
        "SELECT coalesce(sum(duration_s), 0) FROM recordings WHERE recording_id IN "
        "(SELECT recording_id FROM utterances_history WHERE run_id = ?)",
        [run_id],
    ).fetchone()
    print(f"run            {run_id}")
    print(f"recordings     {recs} refined ({(audio[0] if audio else 0) / 3600:.3f} h)")
    print(f"utterances     {n}  ({hours:.3f} h)")
    print(f"kept           {kept[0] if kept else 0}  (round-0 labels: seed)")
    print(
        f"rejects        {sum(c for _, c in drops)}"
        + (f"  ({', '.join(f'{r} {c}' for r, c in drops)})" if drops else "")
    )
    if lists[0]:
        print(f"N-best lists   {lists[0]}  (mean n_unique {lists[1]:.2f})")
    if wall:
        xrt = (audio[0] if audio else 0) / wall[0] if wall[0] else 0
        print(f"wall time      {wall[0]:.1f} s  ({xrt:.1f}x RT)")
    return 0


def cmd_relabel(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from speechmill.pipelines.relabel import run_round

    cfg = _load(args)
    r = run_round(
        cfg,
        teacher=args.teacher,
        round_k=args.round,
        force=args.force,
        root=args.root,
        beam_args=beam_args,
        progress=False if args.no_progress else None,
    )
    if r.skipped_committed:
        print(f"round {args.round} is already committed; nothing to do (--force replaces it)")
        return 0
    print(
        f"round {r.round}  teacher {r.teacher}: {r.kept} kept, {r.rejected} rejected "
        f"of {r.pool} (CER gate {cfg.relabel.cer_gate})"
    )
    return 0


def cmd_nst(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from speechmill.pipelines.relabel import run_nst

    cfg = _load(args)
    r = run_nst(
        cfg,
        rounds=args.rounds,
        train_cmd=args.train_cmd,
        teacher=args.teacher,
        root=args.root,
        force=args.force,
        beam_args=beam_args,
        progress=False if args.no_progress else None,
    )
    for rr, teacher in zip(r.rounds, r.teachers, strict=True):
        state = (
            "already committed"
            if rr.skipped_committed
            else (f"{rr.kept} kept, {rr.rejected} rejected of {rr.pool}")
        )
        print(f"round {rr.round}  teacher {teacher}: {state}")
    if r.stopped:
        print(f"stopped: {r.stopped}", file=sys.stderr)
        return 1
    return 0


def safe_text(value: object, limit: int = 60) -> str:
    """Remote text for a terminal: control and bidi characters escaped, length capped."""
    import unicodedata

    text = "" if value is None else str(value)
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode())
        else:
            out.append(ch)
    s = "".join(out)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def cmd_sources(args: argparse.Namespace) -> int:
    from speechmill.pipelines.corpus import plan
    from speechmill.store import Store, new_run_id

    cfg = _load(args)
    store = Store(args.root or cfg.store.root)
    work = plan(cfg, store, new_run_id())
    rows = []
    for source, item, decision in work.decisions:
        if args.json:
            print(
                json.dumps(
                    {
                        "source": source,
                        "media_id": item.media_id,
                        "url": item.url,
                        "title": item.title,
                        "license": item.license,
                        "duration_s": item.duration_s,
                        "decision": decision,
                    },
                    default=_json_default,
                )
            )
        else:
            rows.append(
                (
                    source,
                    item.media_id,
                    safe_text(item.title, 40),
                    item.license,
                    item.duration_s,
                    safe_text(decision, 70),
                )
            )
    if not args.json:
        print_table(["source", "media_id", "title", "licence", "duration_s", "decision"], rows)
        print(
            f"\n{len(work.todo)} to fetch, {len(work.rejected)} skipped by policy or errors, "
            f"{len(work.skipped) + work.known} already committed (dry run: nothing fetched)"
        )
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from speechmill.schemas import TABLES
    from speechmill.store import connect

    store = _store(args)
    markers = store.markers()
    con = connect(store, markers=markers)
    counts = {}
    for name in TABLES:
        row = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()
        counts[name] = int(row[0]) if row else 0
    if args.json:
        print(
            json.dumps(
                {"root": store.root, "tables": counts, "runs": [m.run_id for m in markers]},
                indent=1,
            )
        )
        return 0
    print(f"dataset {store.root}: {len(markers)} committed runs")
    print_table(
        ["table", "rows", "primary key"],
        [(n, counts[n], ", ".join(TABLES[n].primary_key)) for n in TABLES],
    )
    if markers:
        print()
        rows = [
            (
                m.run_id,
                m.pipeline,
                m.committed_at.strftime("%Y-%m-%d %H:%M:%S"),
                sum(f.rows for f in m.files if f.table == "segments"),
                sum(f.rows for f in m.files if f.table == "rejects"),
            )
            for m in markers
        ]
        print_table(["run", "pipeline", "committed (UTC)", "segments", "rejects"], rows)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    from speechmill.store import connect

    con = connect(_store(args))
    try:
        cur = con.execute(args.sql)
    except duckdb.Error as e:
        raise SpeechmillError(f"query failed: {e}") from None
    headers = [d[0] for d in cur.description] if cur.description else []
    rows = cur.fetchall()
    if args.format == "json":
        print(json.dumps([dict(zip(headers, r, strict=True)) for r in rows], default=_json_default))
    elif args.format == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(headers)
        w.writerows(rows)
    else:
        print_table(headers, rows)
    return 0


def cmd_views(args: argparse.Namespace) -> int:
    from speechmill.store import view_sql

    sys.stdout.write(view_sql(_store(args)))
    return 0


def cmd_rejects(args: argparse.Namespace) -> int:
    from speechmill.store import connect

    # reasons carry measured values: group them by their wording with numbers masked
    col = {
        "category": "category",
        "reason": "regexp_replace(reason, '(^|[^A-Za-z0-9_.])[0-9]+([.][0-9]+)*', '\\1#', 'g')",
        "stage": "stage",
        "source": "source_id",
    }[args.by]
    con = connect(_store(args))
    rows = con.execute(
        f"SELECT {col}, count(*) AS items, round(coalesce(sum(duration_s), 0) / 3600, 4) AS hours,"
        f" count(*) FILTER (WHERE retryable) AS retryable FROM rejects GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    print_table([args.by, "items", "hours", "retryable"], rows)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from speechmill.pipelines.summary import summarize

    store = _store(args)
    runs = args.run or [m.run_id for m in store.markers()[-1:]]
    print(summarize(store, runs).format())
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from speechmill.store import collect_garbage

    store = _store(args)
    report = collect_garbage(
        store, dry_run=args.dry_run, grace=dt.timedelta(hours=args.grace_hours)
    )
    verb = "would remove" if args.dry_run else "removed"
    for run_id in report.unreadable:
        print(
            f"kept the files of run {run_id}: its marker runs/{run_id}.json cannot be read "
            "(repair or delete it, then run gc again)",
            file=sys.stderr,
        )
    for rel in report.removed:
        print(f"{verb} {rel}")
    print(
        f"{verb} {len(report.removed)} files ({report.bytes_freed / 1e6:.1f} MB) from {store.root}"
        + (
            f"; kept {len(report.kept_active)} files of runs in progress"
            if report.kept_active
            else ""
        )
    )
    return 0


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


def cmd_synth(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from speechmill.pipelines.synth import run_synth, synth_report
    from speechmill.store import Store

    cfg = _load(args)
    root = args.root or cfg.store.root
    result = run_synth(
        cfg, root=root, beam_args=beam_args, progress=False if args.no_progress else None
    )
    print(synth_report(Store(root), result))
    return 0


def _pairs_table(
    args: argparse.Namespace, where: str | None = None, columns: Sequence[str] = ()
) -> Any:
    from speechmill.store import connect

    store = _store(args)
    con = connect(store)
    cols = ", ".join(columns) if columns else "*"
    try:
        sql = (
            f"SELECT {cols} FROM pairs" + (f" WHERE {where}" if where else "") + " ORDER BY pair_id"
        )
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def cmd_metrics(args: argparse.Namespace) -> int:
    import json

    from speechmill.core.quality.pair_metrics import (
        METRIC_COLUMNS,
        aggregate,
        format_table,
        to_records,
    )

    by = [] if args.by in ("", "none") else [b.strip() for b in args.by.split(",") if b.strip()]
    extra_cols = ("pair_id", "language", "clean_audio_uri") if args.roundtrip else ()
    scored = "hypotheses_presub AS hypotheses" if args.before_substitution else "hypotheses"
    columns = [scored if c == "hypotheses" else c for c in (*METRIC_COLUMNS, *extra_cols)]
    table = _pairs_table(args, columns=columns)
    if table.num_rows == 0:
        print(f"no pairs in {_store(args).root}: run `speechmill synth` first")
        return 0
    groups = aggregate(table.to_pylist(), by)
    extra: dict[str, Any] = {}
    if args.roundtrip:
        from speechmill.pipelines.synth import roundtrip_wer

        cfg = _load(args) if args.config else None
        extra = roundtrip_wer(_store(args), table, per_voice=args.roundtrip, cfg=cfg)
    if args.json:
        print(json.dumps({"groups": to_records(groups), "roundtrip": extra}, indent=2))
        return 0
    print(format_table(groups, by))
    if extra:
        print()
        print_table(
            ["voice", "pairs", "round-trip WER"],
            [(v, r["pairs"], f"{100 * r['wer']:.1f}%") for v, r in sorted(extra.items())],
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from speechmill.exports import export

    table = _pairs_table(args, args.where)
    if table.num_rows == 0:
        print(f"no pairs to export in {_store(args).root}")
        return 0
    opts: dict[str, Any] = {}
    if args.format in ("hyporadise", "sft"):
        opts["raw"] = args.raw
    if args.format == "sft" and args.template:
        with open(args.template, encoding="utf-8") as f:
            opts["template"] = f.read()
    if args.format.startswith("dlm"):
        opts["all_hypotheses"] = args.all_hypotheses
    for path in export(table, args.format, args.out, **opts):
        print(path)
    print(f"{table.num_rows} pairs exported as {args.format} into {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from speechmill.demo import run_demo, run_synth_demo

    workdir = Path(args.workdir).resolve()
    if args.fresh and workdir.exists():
        doomed = [workdir / "synth", workdir / "synth-exports"] if args.synth else [workdir]
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
    if args.synth:
        return run_synth_demo(workdir, seed=args.seed, progress=not args.no_progress)
    return run_demo(workdir, seed=args.seed, progress=not args.no_progress)


def main(argv: Sequence[str] | None = None) -> int:
    own, beam_args = _split_beam_args(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(own)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        quiet_beam()
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "config":
            if not getattr(args, "config_command", None):
                parser.parse_args(["config", "--help"])
            return cmd_config(args)
        if args.command == "run":
            return cmd_run(args, beam_args)
        if args.command == "refresh":
            return cmd_refresh(args, beam_args)
        if args.command in ("refine", "relabel", "nst", "synth"):
            return {
                "refine": cmd_refine,
                "relabel": cmd_relabel,
                "nst": cmd_nst,
                "synth": cmd_synth,
            }[args.command](args, beam_args)
        handlers = {
            "tables": cmd_tables,
            "query": cmd_query,
            "views": cmd_views,
            "rejects": cmd_rejects,
            "summary": cmd_summary,
            "gc": cmd_gc,
            "demo": cmd_demo,
            "sources": cmd_sources,
            "metrics": cmd_metrics,
            "export": cmd_export,
        }
        return handlers[args.command](args)
    except SpeechmillError as e:
        print(f"speechmill: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `speechmill tables | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(
            "speechmill: interrupted; nothing was committed for the unfinished run", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
