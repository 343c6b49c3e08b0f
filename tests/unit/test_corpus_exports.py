"""Trainer exports of the ASR corpus (speechmill.corpus_exports), read back by each library.

A small dataset is committed through the store (no Beam): four recordings of real
espeak-ng speech under four licences (one unknown), one with every attribution field,
one credited through its `sources` row only; seven utterances with round-0, round-1
and round-2 labels (some rejected); one recording with segments only; N-best lists
for the real-speech pairs of the GER test. A second dataset has segments only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import io
import json
import shlex
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf

from speechmill import corpus_exports
from speechmill.core.synth.synthplan import split_of
from speechmill.corpus_exports import (
    ATTRIBUTION_JSONL,
    ATTRIBUTION_MD,
    CORPUS_FORMATS,
    MANIFEST,
    attribution_for_pairs,
    export_corpus,
    export_pairs,
    filter_pairs_by_license,
    license_name,
    license_url,
    pair_licenses,
)
from speechmill.errors import SpeechmillError
from speechmill.schemas import (
    Attribution,
    Label,
    NBestList,
    Recording,
    Segment,
    SourceItem,
    Utterance,
    spec_of,
)
from speechmill.schemas.synth import Pair
from speechmill.store import Store
from tests.audio_fixtures import speech_clip
from tests.pipeline.helpers import commit_records
from tests.unit.test_exports import _pair, offline_datasets

__all__ = ["offline_datasets"]

SR = 16000
FRACTIONS = {"dev_fraction": 0.4, "test_fraction": 0.2}


def rid_in(split: str, name: str) -> str:
    """A recording id whose hash puts it in `split` (with FRACTIONS)."""
    for k in range(10_000):
        rid = hashlib.sha256(f"{name}-{k}".encode()).hexdigest()
        if split_of(rid, FRACTIONS["dev_fraction"], FRACTIONS["test_fraction"]) == split:
            return rid
    raise AssertionError("no id found")


@dataclass(frozen=True)
class Rec:
    name: str
    split: str
    license: str
    language: str
    attribution: Attribution
    source_title: str | None = None
    source_author: str | None = None
    source_page: str | None = None

    @property
    def rid(self) -> str:
        return rid_in(self.split, self.name)


RECS = [
    Rec("a", "train", "cc-by-4.0", "en", Attribution("Ada Lovelace", "Talk *about* [rivers]", "https://example.org/a")),
    Rec("b", "dev", "cc0-1.0", "de", Attribution(None, "Violins", "https://example.org/b")),
    Rec("c", "train", "unknown", "en", Attribution()),
    Rec("d", "test", "cc-by-sa-3.0", "en", Attribution(), "Lighthouses", "Dora", "https://example.org/d"),
]  # fmt: skip
UNREFINED = Rec("e", "train", "cc-by-4.0", "en", Attribution("Eve", "Never refined", None))
BY_NAME = {r.name: r for r in RECS}

# (utterance, round, text, decision); `a2` leaves the pool in round 1, `b2` in round 0
LABELS = [
    ("a1", 0, "a one", "seed"), ("a1", 1, "a one round one", "keep"),
    ("a1", 2, "a one round two", "keep"),
    ("a2", 0, "a two", "seed"), ("a2", 1, "a two round one", "reject"),
    ("b1", 0, "b eins", "seed"), ("b1", 1, "b eins runde eins", "keep"),
    ("b2", 0, "b zwei", "reject"),
    ("c1", 0, "c one", "seed"), ("c1", 1, "c one round one", "keep"),
    ("c2", 0, "c two", "seed"), ("c2", 1, "c two round one", "keep"),
    ("d1", 0, "d one", "seed"), ("d1", 1, "d one round one", "keep"),
    ("d2", 0, "d two", "seed"), ("d2", 1, "d two round one", "keep"),
]  # fmt: skip
LATEST = {
    "a1": "a one round two",
    "b1": "b eins runde eins",
    "c1": "c one round one",
    "c2": "c two round one",
    "d1": "d one round one",
    "d2": "d two round one",
}


@dataclass
class Dataset:
    root: Path
    store: Store
    audio: dict[str, np.ndarray]  # recording name -> samples as stored (float32)
    spans: dict[str, tuple[str, int, int]]  # utterance name -> (recording name, start, end)
    uid: dict[str, str]  # utterance name -> utterance_id

    def name_of(self, utterance_id: str) -> str:
        return {v: k for k, v in self.uid.items()}[utterance_id]

    def span(self, utterance_id: str) -> np.ndarray:
        rec, a, b = self.spans[self.name_of(utterance_id)]
        return self.audio[rec][a:b]


def _source(r: Rec) -> SourceItem:
    return SourceItem(
        media_id=f"list:{r.name}",
        source_name="talks",
        kind="list",
        url=f"https://media.example.org/{r.name}.mp3",
        listed_url=None,
        webpage_url=r.source_page,
        extractor="generic",
        title=r.source_title,
        author=r.source_author,
        channel_id=None,
        license=r.license,
        license_raw=None,
        upload_date=None,
        duration_s=None,
        language=r.language,
        tags=[],
        size_bytes=None,
        etag=None,
        discovered_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        recording_id=r.rid,
        run_id="",
    )


def _recording(store: Store, r: Rec, audio: np.ndarray) -> Recording:
    rel = Store.media_rel(r.rid)
    path = Path(store.path(rel))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SR, format="FLAC", subtype="PCM_16")
    return Recording(
        recording_id=r.rid,
        media_id=f"list:{r.name}",
        audio_uri=rel,
        duration_s=audio.size / SR,
        num_samples=audio.size,
        sample_rate=SR,
        orig_sample_rate=SR,
        orig_channels=1,
        downmix="mono",
        orig_codec="pcm_s16le",
        orig_container="wav",
        orig_sample_format="s16",
        orig_size_bytes=path.stat().st_size,
        rms_dbfs=-20.0,
        language=r.language,
        license=r.license,
        attribution=r.attribution,
        run_id="",
    )


def _segment(r: Rec, a: int, b: int, text: str) -> Segment:
    return Segment(
        segment_id=f"{r.rid[:24]}-{a}-{b}",
        recording_id=r.rid,
        start_sample=a,
        end_sample=b,
        start_s=a / SR,
        duration_s=(b - a) / SR,
        text=text,
        language=r.language,
        language_prob=None,
        avg_logprob=-0.2,
        no_speech_prob=0.01,
        compression_ratio=1.2,
        num_tokens=4,
        model_id="fake",
        decoder_id="dec",
        license=r.license,
        attribution=r.attribution,
        run_id="",
    )


def _utterance(r: Rec, a: int, b: int, text: str) -> Utterance:
    return Utterance(
        utterance_id=f"{r.rid[:24]}-u{a}-{b}",
        recording_id=r.rid,
        source_id=f"list:{r.name}",
        start_sample=a,
        end_sample=b,
        start_s=a / SR,
        duration_s=(b - a) / SR,
        text=text,
        words=[],
        align_score=0.9,
        unaligned_words=0,
        aligner="test",
        asr_text=text,
        avg_logprob=-0.2,
        no_speech_prob=0.01,
        compression_ratio=1.2,
        language=r.language,
        language_prob=None,
        license=r.license,
        attribution=r.attribution,
        run_id="",
    )


def _label(uid: str, rnd: int, text: str, decision: str) -> Label:
    return Label(uid, rnd, "m", "mh", "dec", text, text, None, None, decision, None, "")


def _nbest(uid: str) -> NBestList:
    return NBestList(
        uid, "utterance", "dec", "fake", "en", ["x"], ["x"], [-1.0], [1], [-0.5], ["beam"],
        [None], [None], 1, 1, 1, "whisper-english", "0", "",
    )  # fmt: skip


def build(root: Path, *, refined: bool) -> Dataset:
    store = Store(str(root))
    audio: dict[str, np.ndarray] = {}
    spans: dict[str, tuple[str, int, int]] = {}
    uid: dict[str, str] = {}
    sources, recordings, segments, utterances = [], [], [], []
    for i, r in enumerate([*RECS, UNREFINED]):
        clip = speech_clip(sentence=i)
        stored = (np.clip(np.rint(clip * 32768), -32768, 32767) / 32768).astype(np.float32)
        audio[r.name] = stored
        sources.append(_source(r))
        recordings.append(_recording(store, r, stored))
        n = stored.size
        segments.append(_segment(r, 4800, n - 4800, f"segment of {r.name}"))
        cut = 4800 + SR + SR // 5  # utterance 1: 1.2 s; utterance 2: the rest
        for k, (a, b) in enumerate([(4800, cut), (cut, n - 4800)], 1):
            if r is UNREFINED:
                continue
            u = _utterance(r, a, b, f"{r.name} {k}")
            spans[f"{r.name}{k}"] = (r.name, a, b)
            uid[f"{r.name}{k}"] = u.utterance_id
            utterances.append(u)
    commit_records(
        store, {"sources": sources, "recordings": recordings, "segments": segments}, "corpus"
    )
    if refined:
        labels = [_label(uid[n], k, t, d) for n, k, t, d in LABELS]
        commit_records(
            store,
            {
                "utterances": utterances,
                "labels": [x for x in labels if x.round == 0],
                "hypotheses": [_nbest(uid["a1"])],
            },
            "refine",
        )
        commit_records(store, {"labels": [x for x in labels if x.round == 1]}, "relabel")
        commit_records(store, {"labels": [x for x in labels if x.round == 2]}, "relabel")
    return Dataset(root, store, audio, spans, uid)


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build(tmp_path_factory.mktemp("refined"), refined=True)


@pytest.fixture(scope="module")
def segs(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build(tmp_path_factory.mktemp("segments"), refined=False)


def run(ds: Dataset, fmt: str, out: Path, **kw) -> corpus_exports.ExportResult:
    return export_corpus(ds.store, fmt, out, progress=False, **{**FRACTIONS, **kw})


def rels(result: corpus_exports.ExportResult) -> list[str]:
    return [p.relative_to(result.out_dir).as_posix() for p in result.files]


# --------------------------------------------------------------------------- formats


def test_lhotse_manifests_load_into_cuts_whose_audio_is_the_span(ds: Dataset, tmp_path: Path):
    from lhotse import CutSet, load_manifest

    res = run(ds, "lhotse", tmp_path / "lh")
    assert rels(res) == [
        "speechmill_recordings_train.jsonl.gz",
        "speechmill_supervisions_train.jsonl.gz",
        "speechmill_recordings_dev.jsonl.gz",
        "speechmill_supervisions_dev.jsonl.gz",
        "speechmill_recordings_test.jsonl.gz",
        "speechmill_supervisions_test.jsonl.gz",
        ATTRIBUTION_MD,
        ATTRIBUTION_JSONL,
        MANIFEST,
    ]
    seen = {}
    for split in ("train", "dev", "test"):
        recs = load_manifest(res.out_dir / f"speechmill_recordings_{split}.jsonl.gz")
        sups = load_manifest(res.out_dir / f"speechmill_supervisions_{split}.jsonl.gz")
        for rec in recs:  # the whole stored FLAC, by path, never copied
            (source,) = rec.sources
            assert source.type == "file" and Path(source.source).is_file()
            assert rec.num_samples == sf.info(source.source).frames
        cuts = CutSet.from_manifests(recordings=recs, supervisions=sups).trim_to_supervisions()
        for cut in cuts:
            (sup,) = cut.supervisions
            seen[sup.id] = sup.text
            assert sup.speaker == sup.recording_id[:24] and sup.channel == 0
            assert sup.custom["split"] == split
            rec = BY_NAME[ds.name_of(sup.id)[0]]
            assert (sup.language, sup.custom["license"]) == (rec.language, rec.license)
            assert np.array_equal(cut.load_audio()[0], ds.span(sup.id))
    assert seen == {ds.uid[k]: v for k, v in LATEST.items()}  # the kept set, latest labels


def test_nemo_manifest_durations_match_the_audio(ds: Dataset, tmp_path: Path):
    res = run(ds, "nemo", tmp_path / "nemo", round=1)
    assert rels(res)[:3] == ["train_manifest.jsonl", "dev_manifest.jsonl", "test_manifest.jsonl"]
    texts = {}
    for split in ("train", "dev", "test"):
        lines = (res.out_dir / f"{split}_manifest.jsonl").read_text(encoding="utf-8").splitlines()
        ids = [json.loads(line)["id"] for line in lines]
        assert ids == sorted(ids)
        for line in lines:
            obj = json.loads(line)
            assert set(obj) == {"audio_filepath", "offset", "duration", "text", "lang", "id"}
            assert Path(obj["audio_filepath"]).is_absolute()
            with sf.SoundFile(obj["audio_filepath"]) as f:
                assert f.samplerate == SR
                f.seek(round(obj["offset"] * SR))
                span = f.read(round(obj["duration"] * SR), dtype="float32")
            assert len(span) == round(obj["duration"] * SR)  # inside the file
            assert np.array_equal(span, ds.span(obj["id"]))
            texts[ds.name_of(obj["id"])] = obj["text"]
    assert texts == {n: t for n, r, t, d in LABELS if r == 1 and d == "keep"}


def test_kaldi_data_dirs_read_back_with_lhotse(ds: Dataset, tmp_path: Path):
    from lhotse.kaldi import load_kaldi_data_dir

    res = run(ds, "kaldi", tmp_path / "kaldi")
    files = ["wav.scp", "segments", "text", "utt2spk", "spk2utt", "utt2dur", "utt2lang", "reco2dur"]
    assert rels(res)[: len(files)] == [f"train/{f}" for f in files]
    n = 0
    for split in ("train", "dev", "test"):
        d = res.out_dir / split
        for name in files:  # sorted as `LC_ALL=C sort` would
            lines = (d / name).read_bytes().splitlines()
            assert lines == sorted(lines) and lines, name
        utt2spk = dict(line.split() for line in (d / "utt2spk").read_text().splitlines())
        for utt, spk in utt2spk.items():
            assert utt.startswith(spk + "-")
        spk2utt = {
            s: us for s, *us in (line.split() for line in (d / "spk2utt").read_text().splitlines())
        }
        assert sorted(u for us in spk2utt.values() for u in us) == sorted(utt2spk)
        for line in (d / "wav.scp").read_text().splitlines():
            rid, *cmd = shlex.split(line)
            assert cmd[:4] == ["flac", "-c", "-d", "-s"] and cmd[-1] == "|"
            assert sf.info(cmd[4]).frames == len(
                ds.audio[next(r.name for r in RECS if r.rid == rid)]
            )
        recs, sups, _ = load_kaldi_data_dir(d, sampling_rate=SR)
        assert len(sups) == len(utt2spk) and len(recs) == len(spk2utt)
        utt2dur = dict(line.split() for line in (d / "utt2dur").read_text().splitlines())
        for sup in sups:
            span = ds.span(sup.id)
            assert sup.duration == pytest.approx(span.size / SR, abs=1e-9)
            assert float(utt2dur[sup.id]) == span.size / SR
            assert sup.text == LATEST[ds.name_of(sup.id)]
            assert sup.speaker == utt2spk[sup.id] and sup.language == "de" * (
                split == "dev"
            ) + "en" * (split != "dev")
        for rec in recs:
            name = next(r.name for r in RECS if r.rid == rec.id)
            assert rec.num_samples == ds.audio[name].size and rec.sources[0].type == "command"
        n += len(sups)
    assert n == res.utterances == len(LATEST)


def _wds_samples(paths: list[Path]) -> list[dict]:
    import webdataset as wds

    urls = [str(p) for p in paths]
    return list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))


def test_webdataset_shards_hold_the_cut_audio(ds: Dataset, tmp_path: Path):
    res = run(ds, "webdataset", tmp_path / "wds", shard_size=2)
    shards = [p for p in res.files if p.suffix == ".tar"]
    assert [p.relative_to(res.out_dir).as_posix() for p in shards] == [
        "train/shard-000000.tar",
        "train/shard-000001.tar",
        "dev/shard-000000.tar",
        "test/shard-000000.tar",
    ]
    for shard in shards:  # no time, owner or host in the tar headers
        with tarfile.open(shard) as tar:
            heads = {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in tar}
        assert heads == {(0, 0, 0, "", "", 0o644)}
    samples = _wds_samples(shards)
    assert [s["__key__"] for s in samples] == [
        *sorted(ds.uid[n] for n in ("a1", "c1", "c2")),
        ds.uid["b1"],
        *sorted(ds.uid[n] for n in ("d1", "d2")),
    ]
    for s in samples:
        audio, rate = sf.read(io.BytesIO(s["flac"]), dtype="float32")
        meta = json.loads(s["json"])
        assert rate == SR and np.array_equal(audio, ds.span(s["__key__"]))
        assert meta["text"] == LATEST[ds.name_of(s["__key__"])]
        assert meta["duration"] == audio.size / SR
        rec = BY_NAME[ds.name_of(s["__key__"])[0]]
        assert (meta["recording_id"], meta["license"], meta["language"]) == (
            rec.rid,
            rec.license,
            rec.language,
        )
        if rec.name == "a":
            assert meta["attribution"] == {
                "title": "Talk *about* [rivers]",
                "author": "Ada Lovelace",
                "url": "https://example.org/a",
            }
            assert meta["license_url"] == "https://creativecommons.org/licenses/by/4.0/"


def test_hf_audio_loads_with_datasets(ds: Dataset, tmp_path: Path, offline_datasets):
    datasets, cache = offline_datasets
    res = run(ds, "hf-audio", tmp_path / "hf", shard_size=2)
    assert "data/train-00000-of-00002.parquet" in rels(res) and "README.md" in rels(res)
    loaded = datasets.load_dataset(str(res.out_dir), cache_dir=cache)
    assert sorted(loaded) == ["dev", "test", "train"]
    train = loaded["train"]
    assert isinstance(train.features["audio"], datasets.Audio)
    assert train.features["audio"].sampling_rate == SR
    # decoding in `datasets` needs torchcodec (not installed here): read the bytes instead
    for split in loaded:
        rows = loaded[split].cast_column("audio", datasets.Audio(decode=False))
        assert rows["id"] == sorted(rows["id"])
        for row in rows:
            audio, rate = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
            assert rate == SR and np.array_equal(audio, ds.span(row["id"]))
            assert row["text"] == LATEST[ds.name_of(row["id"])] and row["split"] == split
            assert row["label_round"] == (2 if ds.name_of(row["id"]) == "a1" else 1)
    one = datasets.load_dataset(
        "parquet", data_files=str(res.out_dir / "data/dev-00000-of-00001.parquet"), cache_dir=cache
    )["train"]
    assert isinstance(one.features["audio"], datasets.Audio) and one["license"] == ["cc0-1.0"]
    assert one["title"] == ["Violins"] and one["source_url"] == ["https://example.org/b"]


# --------------------------------------------------------------------------- rows and filters


def ids_of(res: corpus_exports.ExportResult, ds: Dataset) -> dict[str, str]:
    """utterance name -> text, from a NeMo export."""
    out = {}
    for p in res.files:
        if p.name.endswith("_manifest.jsonl"):
            for line in p.read_text(encoding="utf-8").splitlines():
                obj = json.loads(line)
                out[ds.name_of(obj["id"])] = obj["text"]
    return out


def test_rounds_pick_their_labels_and_kept_sets(ds: Dataset, tmp_path: Path):
    latest = run(ds, "nemo", tmp_path / "latest")
    assert ids_of(latest, ds) == LATEST and latest.round is None
    assert latest.source == "utterances" and latest.unrefined_recordings == 1
    for k in (0, 1, 2):
        res = run(ds, "nemo", tmp_path / f"r{k}", round=k)
        want = {n: t for n, r, t, d in LABELS if r == k and d in ("seed", "keep")}
        assert ids_of(res, ds) == want and res.round == k
    with pytest.raises(
        SpeechmillError, match=r"round 3 has no committed labels .* \(rounds: 0, 1, 2\)"
    ):
        run(ds, "nemo", tmp_path / "r3", round=3)
    assert not (tmp_path / "r3").exists()


def test_an_unrefined_dataset_exports_its_segments(segs: Dataset, ds: Dataset, tmp_path: Path):
    res = run(segs, "nemo", tmp_path / "segs")
    assert res.source == "segments" and res.utterances == 5 and res.unrefined_recordings == 0
    lines = [
        json.loads(x)
        for p in res.files
        if p.name.endswith("_manifest.jsonl")
        for x in p.read_text().splitlines()
    ]
    assert sorted(o["text"] for o in lines) == sorted(f"segment of {n}" for n in "abcde")
    # a refined dataset exports its segments when asked
    assert run(ds, "nemo", tmp_path / "asked", source="segments").utterances == 5
    with pytest.raises(SpeechmillError, match="round 1 needs refined utterances"):
        run(segs, "nemo", tmp_path / "x", round=1)
    with pytest.raises(SpeechmillError, match="has no refined utterances: run `speechmill refine`"):
        run(segs, "nemo", tmp_path / "x", source="utterances")


def test_filters_keep_what_they_name_and_count_the_rest(ds: Dataset, tmp_path: Path):
    def names(**kw) -> tuple[set[str], dict[str, int]]:
        res = run(ds, "nemo", tmp_path / f"f{len(list(tmp_path.iterdir()))}", **kw)
        return set(ids_of(res, ds)), {k: v for k, v in res.skipped.items() if v}

    assert names(splits=["train"]) == ({"a1", "c1", "c2"}, {"split": 3})
    assert names(splits=["dev", "test"]) == ({"b1", "d1", "d2"}, {"split": 3})
    assert names(languages=["de"]) == ({"b1"}, {"language": 5})
    # a family matches every version of it, not its share-alike cousin; unknown is
    # excluded and counted on its own unless listed
    assert names(licenses=["cc-by"]) == ({"a1"}, {"license": 3, "unknown_license": 2})
    assert names(licenses=["cc-by-sa-3.0", "pd"]) == (
        {"b1", "d1", "d2"},
        {"license": 1, "unknown_license": 2},
    )
    assert names(licenses=["cc-by", "unknown"]) == ({"a1", "c1", "c2"}, {"license": 3})
    short = {n for n in LATEST if n.endswith("1")}  # the 1.2 s utterances
    assert names(max_duration_s=1.2) == (short, {"max_duration": 2})
    assert names(min_duration_s=1.21) == (set(LATEST) - short, {"min_duration": 4})
    assert names(splits=["train"], min_duration_s=1.21) == ({"c2"}, {"split": 3, "min_duration": 2})


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"fmt": "csv"}, "unknown corpus export format 'csv' \\(choose from lhotse, nemo"),
        ({"source": "labels"}, "unknown source 'labels'"),
        ({"splits": ["valid"]}, "unknown split 'valid' \\(choose from train, dev, test\\)"),
        ({"licenses": ["cc-bx"]}, "unknown licence 'cc-bx'"),
        ({"languages": ["fr"]}, "language 'fr': no utterances .* \\(languages: de, en\\)"),
        ({"min_duration_s": 3, "max_duration_s": 1}, "min_duration_s 3 is larger than max"),
        ({"min_duration_s": -1}, "min_duration_s must be a number >= 0"),
        ({"round": -1}, "round must be 0 or more"),
        ({"round": 7}, "round 7 has no committed labels"),
        ({"shard_size": 0}, "shard_size must be at least 1"),
        ({"dev_fraction": 0.7, "test_fraction": 0.5}, "dev_fraction \\+ test_fraction must"),
        ({"out": "s3://bucket/x"}, "exports are written to a local folder"),
        ({"licenses": ["cc-by-nd"]}, "nothing to export: .*: license 4, unknown_license 2\\)"),
        ({"splits": ["test"], "languages": ["de"]}, "nothing to export: .*split 4, language 2"),
    ],
)  # fmt: skip
def test_bad_options_are_one_clear_error_and_write_nothing(
    ds: Dataset, tmp_path: Path, kw, message
):
    kw = {"fmt": "webdataset", "out": tmp_path / "out", **kw}
    with pytest.raises(SpeechmillError, match=message):
        run(ds, kw.pop("fmt"), kw.pop("out"), **kw)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_dataset_is_a_clear_error(tmp_path: Path):
    store = Store(str(tmp_path / "empty"))
    with pytest.raises(
        SpeechmillError, match=r"nothing to export: .* no committed utterances or segments"
    ):
        export_corpus(store, "nemo", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- attribution


def test_attribution_credits_each_recording_used_grouped_by_licence(ds: Dataset, tmp_path: Path):
    res = run(ds, "nemo", tmp_path / "all")
    assert res.recordings == 4 and res.licenses == {
        "cc-by-4.0": 1,
        "cc-by-sa-3.0": 2,
        "cc0-1.0": 1,
        "unknown": 2,
    }
    md = (res.out_dir / ATTRIBUTION_MD).read_text(encoding="utf-8")
    head = md.split("\n## ")[0]
    assert (
        "- Licences that require credit: CC BY 4.0 (`cc-by-4.0`), CC BY-SA 3.0 (`cc-by-sa-3.0`)"
        in head
    )
    assert (
        "- Share-alike: adaptations of `cc-by-sa-3.0` material must be shared under the same"
        in head
    )
    assert "- No credit required: `cc0-1.0`" in head and "`unknown`: check its terms first" in head
    sections = [
        "CC0 1.0 (`cc0-1.0`)",
        "CC BY 4.0 (`cc-by-4.0`)",
        "CC BY-SA 3.0 (`cc-by-sa-3.0`)",
        "Unknown licence (`unknown`)",
    ]
    assert [s.split("\n")[0] for s in md.split("\n## ")[1:]] == sections  # least restrictive first
    by = md.split("## CC BY 4.0 (`cc-by-4.0`)\n")[1].split("\n## ")[0]
    assert "Licence: <https://creativecommons.org/licenses/by/4.0/>" in by
    # remote text is escaped: no emphasis, no link syntax
    assert (
        '- "Talk \\*about\\* \\[rivers\\]" by Ada Lovelace, <https://example.org/a> '
        "(1 utterance, 1.2 s)" in by
    )
    sa = md.split("## CC BY-SA 3.0 (`cc-by-sa-3.0`)\n")[1]
    assert '"Lighthouses" by Dora, <https://example.org/d>' in sa  # from the sources row
    assert "Share-alike" in sa
    credits = [json.loads(x) for x in (res.out_dir / ATTRIBUTION_JSONL).read_text().splitlines()]
    assert [c["id"] for c in credits] == [BY_NAME[n].rid for n in "badc"]
    a = credits[1]
    assert a == {
        "kind": "recording",
        "id": BY_NAME["a"].rid,
        "title": "Talk *about* [rivers]",
        "author": "Ada Lovelace",
        "url": "https://example.org/a",
        "license": "cc-by-4.0",
        "license_name": "CC BY 4.0",
        "license_url": "https://creativecommons.org/licenses/by/4.0/",
        "items": 1,
        "seconds": 1.2,
    }
    # only what is exported is credited: a licence filter drops the others' credits
    only = run(ds, "webdataset", tmp_path / "cc0", licenses=["cc0"])
    credits = [json.loads(x) for x in (only.out_dir / ATTRIBUTION_JSONL).read_text().splitlines()]
    assert [c["license"] for c in credits] == ["cc0-1.0"] and only.recordings == 1
    assert "cc-by" not in (only.out_dir / ATTRIBUTION_MD).read_text()


def test_licence_names_and_links():
    assert license_name("cc-by-nc-sa-4.0") == "CC BY-NC-SA 4.0"
    assert license_name("cc-by") == "CC BY" and license_name("cc0-1.0") == "CC0 1.0"
    assert license_url("cc-by-nd-2.5") == "https://creativecommons.org/licenses/by-nd/2.5/"
    assert license_url("cc0-1.0") == "https://creativecommons.org/publicdomain/zero/1.0/"
    assert license_url("cc-by") == "https://creativecommons.org/licenses/"
    assert license_url("all-rights-reserved") is None and license_url("unknown") is None


def _pairs_table(ds: Dataset) -> pa.Table:
    real = _pair("p9", "test", "a one round two", ["a one round two"], synthetic=False)
    real = dataclasses.replace(
        real,
        pair_id=hashlib.sha256(f"real|{ds.uid['a1']}|dec".encode()).hexdigest(),
        source=f"corpus:{ds.root}",
    )
    lost = dataclasses.replace(real, pair_id="p8", source="corpus:/nowhere/at/all")
    rows = [
        _pair("p1", "train", "hello world", ["hello word"]),
        _pair("p2", "train", "good day", ["good day"]),
        real,
        lost,
    ]
    return spec_of(Pair).to_table(rows)


def test_ger_exports_write_attribution_beside_their_files(ds: Dataset, tmp_path: Path):
    table = _pairs_table(ds)
    credits = attribution_for_pairs(ds.store, table)
    # the real pair is traced to recording a; synthetic pairs credit their text source
    assert [(c.kind, c.id, c.license, c.items) for c in credits] == [
        ("recording", BY_NAME["a"].rid, "cc-by-4.0", 1),
        ("text-source", "books", "unknown", 2),
        ("text-source", "corpus:/nowhere/at/all", "unknown", 1),
    ]
    assert credits[0].title == "Talk *about* [rivers]" and credits[1].seconds == 2.5
    files = export_pairs(ds.store, table, "hyporadise", tmp_path / "hypo")
    assert [f.name for f in files][-2:] == [ATTRIBUTION_MD, ATTRIBUTION_JSONL]
    md = (tmp_path / "hypo" / ATTRIBUTION_MD).read_text()
    assert "This export holds 4 pairs" in md and "Text source `books` (2 pairs, 2.5 s)" in md
    assert (
        '"Talk \\*about\\* \\[rivers\\]" by Ada Lovelace' in md
        and "no licence for text sources" in md
    )
    # a file path for sft: the attribution goes beside it, named after it, so a folder's
    # own ATTRIBUTION.md (a project root) and another export's credits are left alone
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / ATTRIBUTION_MD).write_text("the project's own\n")
    files = export_pairs(ds.store, table, "sft", tmp_path / "sft" / "ger.jsonl")
    assert (tmp_path / "sft" / f"ger.jsonl.{ATTRIBUTION_MD}") in files
    assert (tmp_path / "sft" / f"ger.jsonl.{ATTRIBUTION_JSONL}") in files
    assert (tmp_path / "sft" / "ger.train.jsonl") in files
    assert (tmp_path / "sft" / ATTRIBUTION_MD).read_text() == "the project's own\n"
    empty = spec_of(Pair).to_table([])
    assert export_pairs(ds.store, empty, "hf", tmp_path / "none") == []
    assert not (tmp_path / "none").exists()
    with pytest.raises(SpeechmillError, match="unknown export format 'csv'"):
        export_pairs(ds.store, table, "csv", tmp_path / "csv")  # type: ignore[arg-type]


def test_ger_exports_keep_only_the_licences_asked_for(ds: Dataset, tmp_path: Path):
    table = _pairs_table(ds)
    assert pair_licenses(ds.store, table) == {
        "p1": "unknown",
        "p2": "unknown",
        table.column("pair_id")[2].as_py(): "cc-by-4.0",  # traced to recording a
        "p8": "unknown",  # its dataset cannot be read
    }
    kept, left = filter_pairs_by_license(ds.store, table, ["cc-by"])
    assert kept.num_rows == 1 and left == {"license": 0, "unknown_license": 3}
    files = export_pairs(ds.store, table, "hyporadise", tmp_path / "by", licenses=["cc-by"])
    data = [r for f in files if f.suffix == ".json" for r in json.loads(f.read_text())]
    assert len(data) == 1
    md = (tmp_path / "by" / ATTRIBUTION_MD).read_text()
    assert "This export holds 1 pair" in md and "books" not in md
    kept, left = filter_pairs_by_license(ds.store, table, ["cc0", "unknown"])
    assert kept.num_rows == 3 and left == {"license": 1, "unknown_license": 0}
    for licenses, message in (
        (["cc-by-nc"], "none of the 4 pairs is under cc-by-nc"),
        ([" ", ""], "names no licence"),
        (["cc-bye"], "unknown licence 'cc-bye'"),
    ):
        with pytest.raises(SpeechmillError, match=message):
            export_pairs(ds.store, table, "hf", tmp_path / "x", licenses=licenses)
    assert not (tmp_path / "x").exists()


def test_ids_that_could_escape_the_folder_are_refused():
    row = corpus_exports.ExportRow(
        "a" * 24 + "-u0-16000", "a" * 64, 0, 16000, "text", "en", None, "train", "/x.flac",
        16000, "cc0-1.0", None, None, None,
    )  # fmt: skip
    corpus_exports._check_ids([row])  # the store's own ids pass
    for field, bad in (("id", "../../etc/passwd"), ("id", "a b"), ("recording_id", ".hidden")):
        with pytest.raises(SpeechmillError, match="cannot name an exported file"):
            corpus_exports._check_ids([dataclasses.replace(row, **{field: bad})])


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("fmt", CORPUS_FORMATS)
def test_the_same_rows_give_byte_identical_files(ds: Dataset, tmp_path: Path, fmt: str):
    a = run(ds, fmt, tmp_path / "a", shard_size=2)
    b = run(ds, fmt, tmp_path / "b", shard_size=2)
    assert rels(a) == rels(b)
    for x, y in zip(a.files, b.files, strict=True):
        assert x.read_bytes() == y.read_bytes(), x
    left = sorted(p.relative_to(a.out_dir).as_posix() for p in a.out_dir.rglob("*") if p.is_file())
    assert left == sorted(rels(a))  # no temporary file left behind


def test_a_reexport_replaces_its_own_files_and_refuses_other_folders(ds: Dataset, tmp_path: Path):
    out = tmp_path / "wds"
    first = run(ds, "webdataset", out, shard_size=1)
    assert len([p for p in first.files if p.suffix == ".tar"]) == 6
    again = run(ds, "webdataset", out, splits=["train"], shard_size=10)
    assert again.replaced == 5  # dev/ and test/ shards and train's extra shards
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted(rels(again)) and not (out / "dev").exists()
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] and manifest["files"] == rels(again)[:-1]
    # a folder that is not an export of ours is never touched
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(SpeechmillError, match="is not empty and holds no speechmill export"):
        run(ds, "nemo", other)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_a_killed_export_is_cleaned_by_the_next(ds: Dataset, tmp_path: Path, monkeypatch):
    out = tmp_path / "hf"
    run(ds, "hf-audio", out, shard_size=1)
    real = corpus_exports.flac_bytes
    calls = []

    def dies(audio):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real(audio)

    monkeypatch.setattr(corpus_exports, "flac_bytes", dies)
    with pytest.raises(KeyboardInterrupt):
        run(ds, "hf-audio", out, shard_size=2)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] is False  # lists the old files and the planned ones
    assert "data/train-00000-of-00003.parquet" in manifest["files"]
    assert "data/train-00000-of-00002.parquet" in manifest["files"]
    torn = out / "data/train-00002-of-00003.parquet.tmp"  # as a SIGKILL would leave it
    torn.write_bytes(b"torn")
    monkeypatch.setattr(corpus_exports, "flac_bytes", real)
    res = run(ds, "hf-audio", out, shard_size=2)
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted(rels(res)) and json.loads((out / MANIFEST).read_text())["complete"]


def test_the_export_loop_reports_progress(ds: Dataset, tmp_path: Path, monkeypatch):
    made = []

    class Bar:
        def __init__(self, total, *, desc, unit, show):
            made.append(self)
            self.total, self.desc, self.show, self.n = total, desc, show, 0

        def update(self, k):
            self.n += k

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(corpus_exports, "bar", Bar)
    for fmt in CORPUS_FORMATS:
        res = export_corpus(ds.store, fmt, tmp_path / fmt, progress=True)
        b = made[-1]
        assert (b.desc, b.show, b.total, b.n) == ("export", True, res.utterances, res.utterances), (
            fmt
        )


def test_gzip_manifests_carry_no_timestamp(ds: Dataset, tmp_path: Path):
    res = run(ds, "lhotse", tmp_path / "lh")
    raw = (res.out_dir / "speechmill_supervisions_train.jsonl.gz").read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip MTIME
    assert gzip.decompress(raw).decode().count("\n") == 3
