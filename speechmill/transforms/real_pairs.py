"""Real speech mixed into a synth run: kept utterances of another dataset become pairs.

Runs on the driver after the synth pipeline, before the commit: it reads the real
dataset's kept utterances with their N-best lists, picks them in a seeded order
until real pairs make `synth.real_ratio` of all pairs, copies their audio into this
dataset (`media/synth/real/`) and writes their rows as part files of the run.
"""

from __future__ import annotations

import hashlib
from typing import Any

from speechmill.config import Config
from speechmill.core.asr.decoding import NBestColumns
from speechmill.core.asr.nbest import derive_seed, uniform
from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.core.synth import synthplan
from speechmill.core.synth.pairs import PairSource, make_pair
from speechmill.core.text.normalize import get_normalizer
from speechmill.errors import ConfigError
from speechmill.faults import fault_point
from speechmill.schemas.synth import AugParams, Pair, TtsParams
from speechmill.store import Store, connect, fs
from speechmill.transforms.synth import flac_bytes, media_rel
from speechmill.transforms.write import write_parts

REAL_SQL = """
SELECT k.utterance_id, k.recording_id, k.start_sample, k.end_sample, k.label, k.language,
       r.audio_uri, h.texts, h.texts_norm, h.sum_logprob, h.num_tokens, h.avg_logprob, h.method,
       h.temperature, h.seed, h.n_requested, h.n_unique, h.model_id, h.decoder_id, h.beam_size
FROM kept_utterances k
JOIN recordings r USING (recording_id)
JOIN (SELECT * EXCLUDE (_rn) FROM (SELECT *, row_number() OVER (PARTITION BY item_id
      ORDER BY run_id DESC, decoder_id) AS _rn FROM hypotheses WHERE item_kind = 'utterance')
      WHERE _rn = 1) h ON h.item_id = k.utterance_id
"""


def real_pair_id(utterance_id: str, decoder: str) -> str:
    return hashlib.sha256(f"real|{utterance_id}|{decoder}".encode()).hexdigest()


def columns_of(row: dict[str, Any]) -> NBestColumns:
    """A `hypotheses` row read back, as N-best columns (by name)."""

    def ls(name: str) -> list[Any]:
        return list(row[name] or [])

    return NBestColumns(
        texts=ls("texts"),
        texts_norm=ls("texts_norm"),
        sum_logprob=ls("sum_logprob"),
        num_tokens=ls("num_tokens"),
        avg_logprob=ls("avg_logprob"),
        method=ls("method"),
        temperature=ls("temperature"),
        seed=ls("seed"),
        token_logprobs=None,
        n_requested=int(row["n_requested"]),
        n_unique=int(row["n_unique"]),
    )


def add_real_pairs(cfg: Config, store: Store, run_id: str) -> int:
    """Mix in pairs from real speech (see the module docstring); returns how many."""
    syn = cfg.synth
    if not syn.real_root or syn.real_ratio <= 0:
        return 0
    new_synth = sum(f.rows for f in store.run_files(run_id) if f.table == "pairs")
    con = connect(store)
    try:
        old_synth, old_real = con.execute(
            "SELECT count(*) FILTER (WHERE is_synthetic), count(*) FILTER (WHERE NOT is_synthetic)"
            " FROM pairs"
        ).fetchone() or (0, 0)
        have = {
            r[0] for r in con.execute("SELECT pair_id FROM pairs WHERE NOT is_synthetic").fetchall()
        }
    finally:
        con.close()
    want = synthplan.fraction_for(old_synth + new_synth, syn.real_ratio) - old_real
    if want <= 0:
        return 0
    fault_point("synth.real")
    real = Store(syn.real_root, store.options)
    rcon = connect(real)
    try:
        cur = rcon.execute(REAL_SQL)
        names = [d[0] for d in cur.description]
        candidates: list[dict[str, Any]] = [
            dict(zip(names, r, strict=True)) for r in cur.fetchall()
        ]
    except Exception as e:
        raise ConfigError(
            f"synth.real_root {real.root} has no refined utterances with N-best lists "
            f"(run `speechmill refine` there first): {e}"
        ) from e
    finally:
        rcon.close()
    candidates.sort(key=lambda c: uniform(derive_seed(syn.seed, "real", str(c["utterance_id"])), 0))
    norm = get_normalizer(cfg.asr.normalizer)
    aug = AugParams(substitution_rate=syn.substitution_rate if syn.substitution_share else None)
    rows: list[Pair] = []
    for c in candidates:
        if len(rows) >= want:
            break
        uid, decoder = str(c["utterance_id"]), str(c["decoder_id"])
        pid = real_pair_id(uid, decoder)
        label = str(c["label"] or "")
        reference = norm(label)
        if pid in have or not reference or not c["texts_norm"]:
            continue
        start, end = int(c["start_sample"]), int(c["end_sample"])
        rel = media_rel(pid, "real")
        audio = real.read_span(real.path(str(c["audio_uri"])), start, end)
        fs.write_bytes_atomic(store.path(rel), flac_bytes(audio))
        src = PairSource(
            pair_id=pid,
            text_id=synthplan.text_id(reference),
            source=f"corpus:{real.root}",
            split=synthplan.split_of(reference, syn.dev_fraction, syn.test_fraction),
            language=str(c["language"] or syn.language),
            reference=reference,
            reference_raw=label,
            tts=TtsParams(),
            aug=aug,
            audio_uri=rel,
            clean_audio_uri=rel,
            duration_s=(end - start) / SAMPLE_RATE,
            is_synthetic=False,
        )
        rows.append(
            make_pair(
                src,
                columns_of(c),
                model_id=str(c["model_id"]),
                decoder_id=decoder,
                beam_size=int(c["beam_size"]),
                normalizer=(norm.name, norm.version),
                substitution=(
                    syn.substitution_share,
                    syn.substitution_rate,
                    derive_seed(syn.seed, "substitution", uid),
                ),
                run_id=run_id,
            )
        )
    if rows:
        files = write_parts(store, run_id, {"pairs": rows})
        if files:
            store.write_manifest(run_id, files)
    return len(rows)
