"""Corpus exports of datasets the pipelines built, on a local root and on an S3 root.

The corpus pipeline (fake ASR, real espeak-ng speech from two local source specs
under two licences) builds an unrefined dataset; refine (fake ASR, the real Whisper
aligner) makes it a refined one. Both are exported; the refined root is also copied
into a bucket of the S3-protocol test server and exported from `s3://`.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechmill.config import StoreOptions, load_config
from speechmill.corpus_exports import ATTRIBUTION_JSONL, export_corpus
from speechmill.pipelines.corpus import run_corpus
from speechmill.pipelines.refine import run_refine
from speechmill.pipelines.relabel import run_round
from speechmill.store import Store, connect, fs
from tests.audio_fixtures import speech_clip, write_wav
from tests.fakes import FakeFactory
from tests.s3_server import S3, s3, s3_server

__all__ = ["s3", "s3_server"]

pytestmark = pytest.mark.model  # refine loads the bundled tiny.en as its aligner

SR = 16000


def config(src: Path, root: Path | str):
    return load_config(
        text=f"""
store: {{root: {root}}}
sources:
  - {{kind: local, name: talks, paths: [{src / "by"}], language: en, license: cc-by-4.0}}
  - {{kind: local, name: zero, paths: [{src / "zero"}], language: en, license: cc0-1.0}}
asr: {{beam_size: 2, n_best: 2, batch_size: 4}}
filters: {{min_duration_s: 0.5, disable: [speech_rate, label_agreement, alignment, hallucination]}}
"""
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("built")
    src = tmp / "in"
    for folder, sentences in (("by", [0, 1]), ("zero", [2])):
        (src / folder).mkdir(parents=True)
        for i in sentences:  # two sentences with a pause: two utterances after refine
            speech = [speech_clip(sentence=i), speech_clip(sentence=i + 1)]
            gap = np.zeros(8000, np.float32)
            audio = np.concatenate([speech[0], gap, speech[1], gap])
            write_wav(src / folder / f"talk{i}.wav", audio, SR)
    corpus = tmp / "corpus"
    run_corpus(config(src, corpus), factory=FakeFactory(), progress=False)
    refined = tmp / "refined"
    shutil.copytree(corpus, refined)
    from speechmill.pipelines.refine import aligner_factory

    aligner = aligner_factory(load_config(text="").align, "bundled:tiny.en", "cpu", "int8")
    run_refine(config(src, refined), asr=FakeFactory(), aligner=aligner)
    run_round(
        config(src, refined), teacher="fake", round_k=1, factory=FakeFactory(), progress=False
    )
    return {"corpus": corpus, "refined": refined}


def manifest_lines(files: list[Path]) -> list[dict]:
    return [
        json.loads(line)
        for p in files
        if p.name.endswith("_manifest.jsonl")
        for line in p.read_text(encoding="utf-8").splitlines()
    ]


def test_an_unrefined_pipeline_dataset_exports_its_segments(built, tmp_path: Path):
    store = Store(str(built["corpus"]))
    res = export_corpus(store, "nemo", tmp_path / "nemo", dev_fraction=0, test_fraction=0)
    assert res.source == "segments" and res.splits == {"train": res.utterances}
    con = connect(store)
    segments = con.execute("select segment_id, text, duration_s from segments").fetchall()
    con.close()
    lines = manifest_lines(res.files)
    assert sorted((o["id"], o["text"]) for o in lines) == sorted((s, t) for s, t, _ in segments)
    for o in lines:  # every duration against the audio it points into
        with sf.SoundFile(o["audio_filepath"]) as f:
            assert f.samplerate == SR and o["offset"] + o["duration"] <= f.frames / SR + 1e-9
            f.seek(round(o["offset"] * SR))
            assert len(f.read(round(o["duration"] * SR))) == round(o["duration"] * SR)
    credits = [json.loads(x) for x in (res.out_dir / ATTRIBUTION_JSONL).read_text().splitlines()]
    assert sorted(c["license"] for c in credits) == ["cc-by-4.0", "cc-by-4.0", "cc0-1.0"]
    # the licence filter keeps one source spec's recordings
    only = export_corpus(store, "nemo", tmp_path / "cc0", licenses=["cc0"])
    assert only.recordings == 1 and only.skipped["license"] == res.utterances - only.utterances


def test_a_refined_pipeline_dataset_exports_its_kept_utterances(built, tmp_path: Path):
    from lhotse import CutSet, load_manifest

    store = Store(str(built["refined"]))
    res = export_corpus(store, "lhotse", tmp_path / "lh", round=1, dev_fraction=0, test_fraction=0)
    con = connect(store)
    kept = dict(
        con.execute(
            "select utterance_id, text from labels where round = 1 and decision = 'keep'"
        ).fetchall()
    )
    con.close()
    assert res.source == "utterances" and res.utterances == len(kept) >= 3
    cuts = CutSet.from_manifests(
        recordings=load_manifest(res.out_dir / "speechmill_recordings_train.jsonl.gz"),
        supervisions=load_manifest(res.out_dir / "speechmill_supervisions_train.jsonl.gz"),
    ).trim_to_supervisions()
    assert {c.supervisions[0].id: c.supervisions[0].text for c in cuts} == kept
    assert {c.supervisions[0].custom["label_round"] for c in cuts} == {1}
    for cut in cuts:
        uri = cut.recording.sources[0].source
        a = round(cut.start * SR)  # the cut starts where the supervision does
        assert np.array_equal(cut.load_audio()[0], store.read_span(uri, a, a + cut.num_samples))


def test_exports_from_an_s3_root_equal_the_local_ones(built, s3: S3, tmp_path: Path):
    local = Store(str(built["refined"]))
    root = s3.root("refined")
    remote = Store(root, StoreOptions(**s3.options))  # registers the endpoint for the root
    for info in fs.walk(str(built["refined"])):  # the committed dataset, copied into the bucket
        fs.upload(info.path, remote.path(fs.relative(str(built["refined"]), info.path)))
    remote_files: dict[str, list[Path]] = {}
    for fmt in ("webdataset", "hf-audio"):
        here = export_corpus(local, fmt, tmp_path / f"local-{fmt}", shard_size=2)
        there = export_corpus(remote, fmt, tmp_path / f"s3-{fmt}", shard_size=2)
        remote_files[fmt] = there.files
        names = [p.relative_to(here.out_dir) for p in here.files]
        assert names == [p.relative_to(there.out_dir) for p in there.files]
        for a, b in zip(here.files, there.files, strict=True):  # the same cut audio, bytes
            if a.name != "speechmill-export.json":  # it names the root
                assert a.read_bytes() == b.read_bytes(), a
    import webdataset as wds

    shards = [str(p) for p in remote_files["webdataset"] if p.suffix == ".tar"]
    assert len(shards) >= 2
    for sample in wds.WebDataset(shards, shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        audio, _ = sf.read(io.BytesIO(sample["flac"]), dtype="float32")
        rel = Store.media_rel(meta["recording_id"])
        a = round(meta["start"] * SR)
        assert np.array_equal(audio, remote.read_span(remote.path(rel), a, a + audio.size))
    # reference formats point at the bucket; Kaldi copies the recordings it needs
    lh = export_corpus(remote, "lhotse", tmp_path / "s3-lhotse")
    raw = gzip.decompress((lh.out_dir / "speechmill_recordings_train.jsonl.gz").read_bytes())
    for line in raw.splitlines():
        (source,) = json.loads(line)["sources"]
        assert source["type"] == "url" and source["source"].startswith(root + "/media/")
    kaldi = export_corpus(remote, "kaldi", tmp_path / "s3-kaldi")
    copies = sorted((kaldi.out_dir / "audio").iterdir())
    assert copies and all(
        c.read_bytes() == (built["refined"] / Store.media_rel(c.stem)).read_bytes() for c in copies
    )
    scp = (kaldi.out_dir / "train" / "wav.scp").read_text()
    assert str(kaldi.out_dir.resolve() / "audio") in scp
