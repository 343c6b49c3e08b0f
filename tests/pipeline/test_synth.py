"""The synth pipeline end to end: texts -> TTS -> augmentation -> ASR -> pairs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechmill.cli import main
from speechmill.config import load_config
from speechmill.pipelines.synth import run_synth
from speechmill.store import Store
from speechmill.store.gc import collect_garbage
from tests.fakes import FakeFactory
from tests.pipeline.helpers import rows

GOOD = [
    "The ferry leaves the harbour at 7:45 am on weekdays.",
    "Our library opened a reading room for 120 people in 1998.",
    "Bring a torch, a spare pair of socks and something warm to drink.",
    "Heavy rain is expected this afternoon. Take an umbrella if you go out.",
]
BAD = [
    "🙂🙂🙂",
    "<p>Click <a href='x'>here</a> now</p>",
]


def write_texts(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    txt = folder / "texts.txt"
    txt.write_text("\n".join([*GOOD, GOOD[0], *BAD]) + "\n", encoding="utf-8")
    jsonl = folder / "more.jsonl"
    jsonl.write_text(
        json.dumps({"body": "The museum closes early on public holidays in winter."})
        + "\n"
        + json.dumps({"body": 42})
        + "\n",
        encoding="utf-8",
    )
    return txt, jsonl


def config(root: Path, txt: Path, jsonl: Path, extra: str = ""):
    return load_config(
        text=f"""
store: {{root: {root}}}
asr: {{beam_size: 6, n_best: 5, batch_size: 4}}
synth:
  texts:
    - {{kind: text, path: {txt}, name: lines}}
    - {{kind: jsonl, path: {jsonl}, column: body, name: articles}}
  variants_per_text: 2
  dev_fraction: 0.3
  test_fraction: 0.3
  seed: 5
  voices:
    - {{engine: espeak, voices: [en-us], variants: [m3, f2]}}
  augment:
    noise_p: 1.0
    noise_types: [white, pink, babble]
    reverb_p: 0.5
    speed_p: 0.5
    telephone_p: 0.3
    codec_p: 0.3
    masking_p: 0.5
  substitution_share: 0.5
  substitution_rate: 0.2
{extra}"""
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("synth")
    txt, jsonl = write_texts(tmp / "texts")
    root = tmp / "ds"
    run_synth(config(root, txt, jsonl), asr=FakeFactory(), progress=False)
    return root, txt, jsonl


# 4 lines + 1 jsonl row, one of them two sentences -> 6 unique sentences, 2 variants each
N_SENTENCES = 6


def test_pairs_are_written_with_aligned_lists_and_audio(made) -> None:
    root, _, _ = made
    got = rows(
        root,
        "SELECT pair_id, text_id, split, reference, reference_raw, hypotheses, hypotheses_raw, "
        "hypotheses_presub, substituted, sum_logprob, n_unique, n_requested, audio_uri, "
        "clean_audio_uri, duration_s, aug, tts, oracle_wer, wer_1best, is_synthetic FROM pairs",
    )
    assert len(got) == 2 * N_SENTENCES
    splits: dict[str, str] = {}
    degraded = 0
    for (
        _pid,
        tid,
        split,
        ref,
        spoken,
        hyps,
        raw,
        presub,
        subs,
        scores,
        n_unique,
        n_req,
        uri,
        clean_uri,
        dur,
        aug,
        tts,
        oracle,
        wer1,
        synthetic,
    ) in got:
        assert synthetic and n_req == 5 and n_unique == len(hyps) == len(raw) == len(scores)
        assert len(presub) == len(subs) == len(hyps)
        assert [h != p for h, p in zip(hyps, presub, strict=True)] == subs
        assert splits.setdefault(tid, split) == split  # a sentence never crosses splits
        assert ref == ref.lower() and spoken
        assert "7:45" not in spoken  # read aloud: numbers spelled out for the voice
        assert oracle <= wer1
        assert tts["engine"] == "espeak-ng" and tts["variant"] in ("m3", "f2")
        assert aug["noise_type"] in ("white", "pink", "babble") and aug["snr_db"] is not None
        audio, sr = sf.read(Store(str(root)).path(uri))
        clean, _ = sf.read(Store(str(root)).path(clean_uri))
        assert sr == 16000 and abs(len(audio) / sr - dur) < 1e-3
        if uri != clean_uri:
            degraded += 1
            if aug["speed"] is None:
                assert len(audio) == len(clean)
                assert not np.allclose(audio, clean, atol=1e-3)
    assert degraded == len(got)  # noise_p = 1: every item is degraded
    assert len(splits) == N_SENTENCES


def test_bad_and_duplicate_texts_are_rejects_with_reasons(made) -> None:
    root, _, _ = made
    rej = rows(root, "SELECT item_id, stage, category, reason FROM rejects ORDER BY item_id")
    by_cat: dict[str, list[str]] = {}
    for item, stage, cat, reason in rej:
        assert stage == "text" and reason
        by_cat.setdefault(cat, []).append(item)
    assert by_cat["duplicate"] == ["lines:5"]
    assert len(by_cat["bad_text"]) == 3  # emoji-only, markup, a non-string JSON value
    assert any(i.startswith("articles:") for i in by_cat["bad_text"])


def test_rerun_adds_nothing_and_another_root_reproduces_the_ids(made, tmp_path) -> None:
    root, txt, jsonl = made
    before = rows(root, "SELECT pair_id, aug, tts, split FROM pairs ORDER BY pair_id")
    again = run_synth(config(root, txt, jsonl), asr=FakeFactory(), progress=False)
    assert again.already == len(before)
    assert rows(root, f"SELECT count(*) FROM pairs_history WHERE run_id = '{again.run_ids[0]}'")[
        0
    ] == (0,)
    other = tmp_path / "other"
    run_synth(config(other, txt, jsonl), asr=FakeFactory(), progress=False)
    assert rows(other, "SELECT pair_id, aug, tts, split FROM pairs ORDER BY pair_id") == before
    seeded = config(other, txt, jsonl, extra="").model_copy()
    assert seeded.synth.seed == 5


def test_gc_keeps_synth_media_and_removes_orphans(made) -> None:
    root, _, _ = made
    store = Store(str(root))
    orphan = Path(store.path("media/synth/degraded/zz/orphan.flac"))
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x")
    report = collect_garbage(store)
    assert report.removed == ["media/synth/degraded/zz/orphan.flac"]
    for uri, clean in rows(root, "SELECT audio_uri, clean_audio_uri FROM pairs"):
        assert os.path.exists(store.path(uri)) and os.path.exists(store.path(clean))


def test_cli_metrics_and_exports(made, tmp_path, capsys) -> None:
    root, _, _ = made
    assert main(["metrics", "--root", str(root), "--by", "split"]) == 0
    table = capsys.readouterr().out
    assert "train" in table and "WER" in table
    assert main(["metrics", "--root", str(root), "--by", "voice,aug", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["groups"]
    assert sum(r["pairs"] for r in records) == 2 * N_SENTENCES
    # substitution changed characters of some hypotheses: scoring before it differs
    assert main(["metrics", "--root", str(root), "--by", "none", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)["groups"][0]
    argv = ["metrics", "--root", str(root), "--by", "none", "--json", "--before-substitution"]
    assert main(argv) == 0
    before = json.loads(capsys.readouterr().out)["groups"][0]
    assert before["pairs"] == after["pairs"] and before["cer"] != after["cer"]
    out = tmp_path / "hyp"
    assert main(["export", "--root", str(root), "--format", "hyporadise", "--out", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["ATTRIBUTION.md", "attribution.jsonl", "dev.json", "test.json", "train.json"]
    credits = [json.loads(x) for x in (out / "attribution.jsonl").read_text().splitlines()]
    assert credits and "Attribution" in (out / "ATTRIBUTION.md").read_text()
    data = [r for f in out.glob("*.json") for r in json.loads(f.read_text())]
    assert len(data) == 2 * N_SENTENCES
    assert all(r["input1"].endswith(".") for r in data)


def test_unknown_voice_fails_before_the_run(tmp_path) -> None:
    txt, jsonl = write_texts(tmp_path / "t")
    cfg = config(tmp_path / "ds", txt, jsonl)
    bad = cfg.model_copy(
        update={
            "synth": cfg.synth.model_copy(
                update={"voices": [cfg.synth.voices[0].model_copy(update={"voices": ["xx-nope"]})]}
            )
        }
    )
    from speechmill.errors import ConfigError

    with pytest.raises(ConfigError, match="xx-nope"):
        run_synth(bad, asr=FakeFactory(), progress=False)
    assert not (tmp_path / "ds" / "runs").exists() or not list((tmp_path / "ds" / "runs").iterdir())


def test_a_tts_plugin_is_loaded_from_its_import_path(tmp_path) -> None:
    txt, jsonl = write_texts(tmp_path / "t")
    root = tmp_path / "ds"
    cfg = config(
        root,
        txt,
        jsonl,
    )
    plug = cfg.synth.voices[0].model_copy(
        update={"engine": "plugin", "model": "tests.tts_plugin:SlowEspeak", "variants": []}
    )
    cfg = cfg.model_copy(update={"synth": cfg.synth.model_copy(update={"voices": [plug]})})
    run_synth(cfg, asr=FakeFactory(), progress=False)
    engines = rows(root, "SELECT DISTINCT tts.engine, tts.voice FROM pairs")
    assert engines == [("plugin:tests.tts_plugin:SlowEspeak", "en-us")]


def test_masking_plan_masks_only_the_items_whose_plan_says_so() -> None:
    from types import SimpleNamespace

    from speechmill.schemas.synth import AugParams
    from speechmill.transforms.synth import MaskingPlan

    def element(pid: str, masks: int | None) -> SimpleNamespace:
        aug = AugParams(freq_masks=masks, freq_mask_width=6 if masks else None, seed=1)
        return SimpleNamespace(item_id=pid, item=SimpleNamespace(aug=aug))

    plan = MaskingPlan()
    assert plan([element("a", None), element("b", None)]) is None
    transform = plan([element("a", 2), element("b", None)])
    assert transform is not None
    feats = np.random.default_rng(0).normal(size=(80, 300)).astype(np.float32)
    masked = transform(feats, "a")
    assert not np.array_equal(masked, feats)
    assert np.array_equal(transform(feats, "a"), masked)  # same item, same masks
    assert np.array_equal(transform(feats, "b"), feats)  # unplanned items pass through
    rows_changed = np.where((masked != feats).any(axis=1))[0]
    assert 1 <= len(rows_changed) <= 12  # two masks of at most 6 mel bins


@pytest.mark.model
def test_real_voices_and_whisper_make_distinct_nbest_lists(tmp_path, capsys) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(GOOD[1:3]) + "\n", encoding="utf-8")
    root = tmp_path / "ds"
    cfg_file = tmp_path / "synth.yaml"
    cfg_file.write_text(
        f"""
store: {{root: {root}}}
asr: {{beam_size: 8, n_best: 4, batch_size: 4}}
synth:
  texts: [{{kind: text, path: {texts}}}]
  variants_per_text: 2
  token_logprobs: true
  voices:
    - {{engine: piper, model: "bundled:joe"}}
    - {{engine: espeak, voices: [en-us]}}
  augment: {{noise_p: 0, reverb_p: 0, speed_p: 0, telephone_p: 0, codec_p: 0, masking_p: 0}}
""",
        encoding="utf-8",
    )
    assert main(["synth", str(cfg_file), "--no-progress"]) == 0
    report = capsys.readouterr().out
    assert "4 new" in report and "mean n_unique" in report
    assert main(["metrics", "--root", str(root), "--by", "voice", "--roundtrip", "1"]) == 0
    table = capsys.readouterr().out
    assert "round-trip WER" in table and "piper:en_US-joe-medium" in table
    got = rows(
        root,
        "SELECT tts.engine, reference, hypotheses, n_unique, method, sum_logprob, wer_1best, "
        "n_requested, token_logprobs, num_tokens FROM pairs",
    )
    assert len(got) == 4
    for engine, ref, hyps, n_unique, method, scores, wer1, n_req, tlp, ntok in got:
        # per-token log-probs (tokens, then end-of-text) add up to each hypothesis's score
        assert [len(t) for t in tlp] == [n + 1 for n in ntok]
        for t, total in zip(tlp, scores, strict=True):
            assert abs(sum(t) - total) < 0.05 * len(t), (t, total)
        # distinct after normalisation, never padded with repeats (top-ups have a budget)
        assert n_req == 4 and 2 <= n_unique == len(hyps) == len(set(hyps))
        assert method[0] == "beam" and all(s < 0 for s in scores)
        if engine == "piper":
            assert wer1 <= 0.25, (ref, hyps[0])


def test_user_noise_files_are_mixed_in_and_checked_first(tmp_path) -> None:
    from speechmill.errors import ConfigError

    txt, jsonl = write_texts(tmp_path / "t")
    hum = tmp_path / "hum.wav"
    t = np.arange(16000 * 2) / 16000
    sf.write(str(hum), 0.3 * np.sin(2 * np.pi * 120 * t).astype(np.float32), 16000)
    cfg = config(tmp_path / "ds", txt, jsonl)
    aug = cfg.synth.augment.model_copy(
        update={"noise_types": ["file"], "noise_files": [str(hum)], "reverb_p": 0.0}
    )
    cfg = cfg.model_copy(update={"synth": cfg.synth.model_copy(update={"augment": aug})})
    run_synth(cfg, asr=FakeFactory(), progress=False)
    got = rows(tmp_path / "ds", "SELECT DISTINCT aug.noise_type, aug.noise_source FROM pairs")
    assert got == [("file", str(hum))]
    bad = tmp_path / "not-audio.wav"
    bad.write_text("this is not audio", encoding="utf-8")
    aug = aug.model_copy(update={"noise_files": [str(bad)]})
    cfg = cfg.model_copy(update={"synth": cfg.synth.model_copy(update={"augment": aug})})
    with pytest.raises(ConfigError, match=r"not-audio\.wav"):
        run_synth(cfg, asr=FakeFactory(), progress=False)


def test_multi_speaker_piper_voices_expand_to_speakers(tmp_path) -> None:
    from speechmill.config import VoiceSpec
    from speechmill.errors import ConfigError
    from speechmill.pipelines.synth import voice_options

    model = tmp_path / "many.onnx"
    model.write_bytes(b"")
    (tmp_path / "many.onnx.json").write_text(json.dumps({"num_speakers": 4}), encoding="utf-8")
    picked = voice_options([VoiceSpec(engine="piper", model=str(model), speakers=[1, 3], weight=2)])
    assert [(o.voice, o.speaker, o.weight) for o in picked] == [("many", 1, 1.0), ("many", 3, 1.0)]
    assert [o.speaker for o in voice_options([VoiceSpec(engine="piper", model=str(model))])] == [
        0,
        1,
        2,
        3,
    ]
    with pytest.raises(ConfigError, match="no speaker"):
        voice_options([VoiceSpec(engine="piper", model=str(model), speakers=[7])])


def test_a_missing_text_file_fails_before_the_run(tmp_path) -> None:
    from speechmill.errors import ConfigError

    _txt, jsonl = write_texts(tmp_path / "t")
    cfg = config(tmp_path / "ds", tmp_path / "nope.txt", jsonl)
    with pytest.raises(ConfigError, match=r"synth\.texts\.0\.path: .*nope\.txt does not exist"):
        run_synth(cfg, asr=FakeFactory(), progress=False)
    empty = tmp_path / "empty-dataset"
    empty.mkdir()
    corpus = cfg.synth.texts[0].model_copy(update={"kind": "corpus", "path": str(empty)})
    cfg = cfg.model_copy(update={"synth": cfg.synth.model_copy(update={"texts": [corpus]})})
    with pytest.raises(ConfigError, match="not a speechmill dataset"):
        run_synth(cfg, asr=FakeFactory(), progress=False)
    assert not (tmp_path / "ds" / "runs").exists()
