"""refine (align, resegment, decode, filter) and noisy-student rounds on real tiny.en."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from speechmill.config import load_config
from speechmill.errors import SpeechmillError
from speechmill.pipelines.corpus import run_corpus
from speechmill.pipelines.refine import run_refine
from speechmill.pipelines.relabel import run_nst, run_round, training_argv
from tests.audio_fixtures import SENTENCES, piper_speech, resample, write_wav
from tests.pipeline.helpers import rows

pytestmark = pytest.mark.model

EXTRA_SENTENCES = [
    "Please remember to close the window before you leave the house tonight.",
    "The small bakery on the corner sells fresh bread every morning.",
]


def config(src: Path, root: Path, extra: str = ""):
    return load_config(
        text=f"""
store: {{root: {root}}}
sources: [{{kind: local, name: talks, paths: [{src}], language: en}}]
asr: {{beam_size: 4, n_best: 2, batch_size: 4}}
filters: {{min_duration_s: 1.0}}
relabel: {{teacher_beam_size: 1, cer_gate: 0.2}}
{extra}"""
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("nst")
    src = tmp / "in"
    src.mkdir()
    sents = [*SENTENCES, *EXTRA_SENTENCES]
    rng = np.random.default_rng(0)
    for r in range(2):  # two long-form recordings, three sentences each, pauses between
        parts = []
        for text in sents[3 * r : 3 * r + 3]:
            audio, sr = piper_speech(text)
            parts += [
                np.zeros(int(rng.uniform(0.4, 0.9) * 16000), np.float32),
                resample(audio, sr, 16000),
            ]
        write_wav(src / f"rec{r}.wav", np.concatenate([*parts, np.zeros(8000, np.float32)]), 16000)
    root = tmp / "ds"
    run_corpus(config(src, root), progress=False)
    return src, root


def test_refine_cuts_aligned_utterances_and_seeds_round_zero(corpus) -> None:
    src, root = corpus
    (run_id,) = run_refine(config(src, root)).run_ids
    utts = rows(
        root,
        "select utterance_id, recording_id, start_s, duration_s, text, words, "
        "align_score from utterances order by 1",
    )
    assert len(utts) >= 4
    for _uid, _rid, start, dur, text, words, score in utts:
        assert words and 0 <= score <= 1
        assert text == " ".join(w["word"] for w in words)
        for w in words:  # every word of the label inside the utterance's audio
            assert start - 1e-6 <= w["start_s"] <= w["end_s"] <= start + dur + 1e-6
    # every recording has utterances; every utterance has a round-0 label
    assert rows(root, "select count(distinct recording_id) from utterances") == [(2,)]
    labels = rows(root, "select decision, count(*) from labels where round = 0 group by 1")
    assert sum(n for _, n in labels) == len(utts)
    # filter drops (if any) are rejects with the filter's name in the reason
    for _stage, reason in rows(root, "select stage, reason from rejects where stage = 'filter'"):
        assert reason.split(":")[0] in {
            "duration",
            "charset",
            "text_language",
            "audio_language",
            "speech_rate",
            "alignment",
            "hallucination",
            "label_agreement",
            "duplicate",
        }
    # utterances have their own N-best lists
    assert rows(root, "select count(*) from hypotheses where item_kind = 'utterance'") == [
        (len(utts),)
    ]
    # refine again: nothing left to do
    assert run_refine(config(src, root)).run_ids == []
    assert run_id


def test_relabel_rounds_lineage_counts_and_idempotence(corpus, tmp_path) -> None:
    src, root = corpus
    if not rows(root, "select count(*) from utterances")[0][0]:
        run_refine(config(src, root))
    cfg = config(src, root)
    r1 = run_round(cfg, teacher="bundled:tiny.en", round_k=1)
    assert r1.pool > 0 and r1.kept + r1.rejected == r1.pool
    lineage = rows(
        root,
        """select l1.prev_text = l0.text, l1.cer_prev is not null, l1.round
                            from labels l1 join labels l0 using (utterance_id)
                            where l1.round = 1 and l0.round = 0""",
    )
    assert lineage and all(a and b and r == 1 for a, b, r in lineage)
    assert rows(root, "select count(*) from labels_latest where round = 1") == [(r1.pool,)]
    # a committed round is immutable unless forced
    again = run_round(cfg, teacher="bundled:tiny.en", round_k=1)
    assert again.skipped_committed and again.marker is None
    forced = run_round(cfg, teacher="bundled:tiny.en", round_k=1, force=True)
    assert forced.marker is not None and forced.pool == r1.pool
    assert rows(root, "select count(*) from labels where round = 1") == [(r1.pool,)]
    with pytest.raises(SpeechmillError, match="round 2 has no committed labels"):
        run_round(cfg, teacher="bundled:tiny.en", round_k=3)

    # the NST loop: round 1 is committed (skipped), round 2 uses the trained model
    from speechmill.backends.faster_whisper import resolve_model

    bundled = resolve_model("bundled:tiny.en")
    train = (
        f'{sys.executable} -c "import shutil,sys; shutil.copytree(sys.argv[1], sys.argv[2])"'
        f" {bundled} {{out_model}}"
    )
    nst = run_nst(cfg, rounds=2, train_cmd=train)
    assert nst.stopped is None
    assert nst.rounds[0].skipped_committed
    assert nst.teachers[1].endswith("nst/round-1/model")
    r2 = nst.rounds[1]
    kept1 = rows(root, "select count(*) from labels where round = 1 and decision = 'keep'")[0][0]
    assert r2.pool == kept1 and r2.kept + r2.rejected == r2.pool
    assert Path(root / "nst/round-2/manifest.jsonl").read_text().count("\n") == r2.kept
    # a failing training command stops the loop cleanly; what was done stays committed
    bad = run_nst(cfg, rounds=3, train_cmd=f'{sys.executable} -c "import sys; sys.exit(7)"')
    assert bad.stopped and "status 7" in bad.stopped
    assert rows(root, "select max(round) from labels") == [(2,)]


def test_training_command_is_an_argument_list() -> None:
    argv = training_argv(
        "train.py --data {manifest} --out '{out_model}' --tag r{round} ; rm -rf /",
        manifest="m.jsonl",
        out_model="/x y/model",
        round_k=3,
    )
    assert argv == [
        "train.py",
        "--data",
        "m.jsonl",
        "--out",
        "/x y/model",
        "--tag",
        "r3",
        ";",
        "rm",
        "-rf",
        "/",
    ]  # ";" is just an argument: no shell runs it
    with pytest.raises(SpeechmillError, match="placeholder"):
        training_argv("train {nope}", manifest="m", out_model="o", round_k=1)


def test_synth_mixes_in_real_pairs_from_a_refined_corpus(corpus, tmp_path) -> None:
    """synth.real_root: kept utterances with their N-best become pairs (is_synthetic false)."""
    from speechmill.pipelines.synth import run_synth
    from tests.fakes import FakeFactory

    src, root = corpus
    if not rows(root, "select count(*) from utterances")[0][0]:
        run_refine(config(src, root))
    kept = rows(root, "select count(*) from kept_utterances")[0][0]
    assert kept >= 2
    texts = tmp_path / "t.txt"
    texts.write_text("The garden gate squeaks whenever the wind turns north.\n", encoding="utf-8")
    out = tmp_path / "pairs"
    cfg = load_config(
        text=f"""
store: {{root: {out}}}
asr: {{beam_size: 4, n_best: 3}}
synth:
  texts: [{{kind: text, path: {texts}}}]
  variants_per_text: 2
  voices: [{{engine: espeak, voices: [en-us]}}]
  real_root: {root}
  real_ratio: 0.5
"""
    )
    result = run_synth(cfg, asr=FakeFactory(), progress=False)
    assert result.real == 2  # half of the output: as many real pairs as the 2 synthetic ones
    real = rows(
        out,
        "select p.reference_raw, p.hypotheses_raw, p.audio_uri, p.source, p.tts.engine "
        "from pairs p where not is_synthetic",
    )
    labels = dict(rows(root, "select label, utterance_id from kept_utterances"))
    for label, hyps, uri, source, engine in real:
        assert label in labels and hyps and engine is None
        assert source.startswith("corpus:") and (out / uri).exists()
    # a re-run adds nothing real: the ratio already holds
    assert run_synth(cfg, asr=FakeFactory(), progress=False).real == 0
