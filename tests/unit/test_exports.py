from __future__ import annotations

import csv
import json

import duckdb
import pyarrow as pa
import pytest

from speechmill.exports import (
    DEFAULT_SFT_TEMPLATE,
    FORMATS,
    check_template,
    export,
    export_dlm,
    export_hf,
    export_hyporadise,
    export_sft,
    sft_prompt,
)
from speechmill.schemas import AugParams, Pair, TtsParams, spec_of

TAB_HYP = 'he said "hi"\tthen left'


def _pair(
    pid: str,
    split: str,
    reference: str,
    hyps: list[str],
    *,
    raw: list[str] | None = None,
    synthetic: bool = True,
    snr: float | None = None,
) -> Pair:
    n = len(hyps)
    tts = (
        TtsParams(engine="piper", voice="en_US-joe-medium", speaker=3, seed=1)
        if synthetic
        else TtsParams()
    )
    aug = AugParams(noise_type="pink", snr_db=snr, seed=2) if snr is not None else AugParams()
    return Pair(
        pair_id=pid,
        text_id="t" + pid,
        source="books" if synthetic else "corpus:/data",
        split=split,
        language="en",
        reference=reference,
        reference_raw=reference.capitalize() + ".",
        hypotheses=hyps,
        hypotheses_raw=raw if raw is not None else [h.capitalize() + "." for h in hyps],
        hypotheses_presub=hyps,
        substituted=[False] * n,
        sum_logprob=[-1.5 * (i + 1) for i in range(n)],
        num_tokens=[len(h.split()) for h in hyps],
        avg_logprob=[-0.5] * n,
        method=["beam"] * n,
        token_logprobs=None,
        n_requested=5,
        n_unique=n,
        model_id="tiny.en",
        decoder_id="dec",
        beam_size=5,
        temperatures=[None] * n,
        seeds=[None] * n,
        tts=tts,
        aug=aug,
        audio_uri=f"media/synth/{pid}.flac",
        clean_audio_uri=f"media/synth/{pid}.clean.flac",
        duration_s=1.25,
        is_synthetic=synthetic,
        wer_1best=0.0,
        oracle_wer=0.0,
        oracle_index=0,
        normalizer="whisper-english",
        normalizer_version="0.1",
        run_id="run1",
    )


PAIRS = [
    # written out of pair_id order: exports sort by pair_id within a split
    _pair(
        "p2",
        "train",
        "the cat sat on the mat",
        [
            "the cat sat on mat",
            "the cat sat on the mat",
            "a cat sat on the mat",
            "the cat sat",
            "x",
        ],
        snr=4.0,
    ),
    _pair("p1", "train", "hello world", ["hello word", "hello world"]),
    _pair("p3", "dev", "good morning", ["good morning"]),
    _pair("p4", "test", "she said hi", [TAB_HYP, "she said hi"], raw=["A\nB", "C"]),
    _pair("p5", "test", "real speech here", ["real speech hear"], synthetic=False),
]


def _from_duckdb() -> pa.RecordBatchReader:
    """The rows as a DuckDB view returns them (`.arrow()`: a reader, structs as structs)."""
    con = duckdb.connect()
    con.register("pairs_t", spec_of(Pair).to_table(PAIRS))
    return con.sql("SELECT * FROM pairs_t").arrow()


@pytest.fixture
def pairs() -> pa.Table:
    return _from_duckdb().read_all()


def test_hyporadise(pairs, tmp_path):
    files = export_hyporadise(pairs, tmp_path, n=3)
    assert [f.name for f in files] == ["train.json", "dev.json", "test.json"]
    train = json.loads((tmp_path / "train.json").read_text())
    assert [o["id"] for o in train] == ["p1", "p2"]
    p2 = train[1]
    assert p2["split"] == "train"
    assert p2["input"] == ["the cat sat on mat", "the cat sat on the mat", "a cat sat on the mat"]
    assert p2["output"] == "the cat sat on the mat"
    assert p2["input1"] == "the cat sat on mat."
    assert p2["input2"] == "the cat sat on the mat. a cat sat on the mat"
    assert p2["am_score"] == [-1.5, -3.0, -4.5]
    [p3] = json.loads((tmp_path / "dev.json").read_text())
    assert (p3["input1"], p3["input2"], p3["am_score"]) == ("good morning.", "", [-1.5])

    export_hyporadise(pairs, tmp_path / "raw", raw=True)
    test = json.loads((tmp_path / "raw" / "test.json").read_text())
    assert test[0]["input"] == ["A\nB", "C"] and test[0]["output"] == "She said hi."
    assert test[0]["input1"] == "A\nB." and test[0]["input2"] == "C"
    with pytest.raises(ValueError, match="n must"):
        export_hyporadise(pairs, tmp_path, n=0)


@pytest.fixture
def offline_datasets(tmp_path, monkeypatch):
    """`datasets` with no network and every cache under tmp_path."""
    cache = tmp_path / "hf-cache"
    for var, value in {
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(cache),
        "HF_DATASETS_CACHE": str(cache / "datasets"),
        "HF_MODULES_CACHE": str(cache / "modules"),
    }.items():
        monkeypatch.setenv(var, value)
    import datasets
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache / "datasets")
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", cache / "modules")
    datasets.disable_progress_bars()
    return datasets, str(cache / "datasets")


def test_hf(pairs, tmp_path, offline_datasets):
    datasets, cache_dir = offline_datasets
    out = tmp_path / "hf"
    files = export_hf(pairs, out)
    assert [f.relative_to(out).as_posix() for f in files] == [
        "data/train-00000-of-00001.parquet",
        "data/dev-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
        "README.md",
    ]
    ds = datasets.load_dataset(
        "parquet",
        data_files={"train": str(files[0]), "test": str(files[2])},
        cache_dir=cache_dir,
    )
    train = ds["train"]
    assert train.column_names == [
        "id",
        "hypothesis",
        "transcription",
        "hypothesis_raw",
        "transcription_raw",
        "am_score",
        "split",
        "source",
        "is_synthetic",
        "voice",
        "snr_db",
        "audio_path",
        "clean_audio_path",
        "duration_s",
    ]
    assert train["id"] == ["p1", "p2"]
    row = train[1]
    assert row["hypothesis"][:2] == ["the cat sat on mat", "the cat sat on the mat"]
    assert row["transcription"] == "the cat sat on the mat"
    assert row["transcription_raw"] == "The cat sat on the mat."
    assert row["am_score"][0] == -1.5 and len(row["am_score"]) == 5
    assert (row["voice"], row["snr_db"], row["source"]) == (
        "piper:en_US-joe-medium#spk3",
        4.0,
        "books",
    )
    assert row["audio_path"] == "media/synth/p2.flac"
    assert row["clean_audio_path"] == "media/synth/p2.clean.flac"
    assert train[0]["snr_db"] is None
    real = ds["test"].filter(lambda r: not r["is_synthetic"])
    assert real["voice"] == ["real"] and real["hypothesis"] == [["real speech hear"]]

    # the dataset card's YAML makes the folder loadable by itself, split names kept
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n")
    whole = datasets.load_dataset(str(out), cache_dir=cache_dir)
    assert sorted(whole) == ["dev", "test", "train"]
    assert whole["dev"]["transcription"] == ["good morning"]


def test_sft(pairs, tmp_path, offline_datasets):
    datasets, cache_dir = offline_datasets
    files = export_sft(pairs, tmp_path / "sft.jsonl")
    assert [f.name for f in files] == ["sft.train.jsonl", "sft.dev.jsonl", "sft.test.jsonl"]
    ds = datasets.load_dataset("json", data_files={"train": str(files[0])}, cache_dir=cache_dir)
    train = ds["train"]
    assert train.column_names == ["id", "prompt", "completion"]
    p1 = train[0]
    assert p1["id"] == "p1" and p1["completion"] == "hello world"
    assert p1["prompt"] == sft_prompt(["hello word", "hello world"])
    assert "### Best-hypothesis:\nhello word.\n### Other-hypothesis:\nhello world\n" in p1["prompt"]
    assert p1["prompt"].endswith("### Response:\n")

    template = "{n} hypotheses:\n{hypotheses}\nbest: {input1} {{literal}}\n"
    files = export_sft(pairs, tmp_path / "custom", template=template, n=2)
    assert [f.name for f in files] == ["train.jsonl", "dev.jsonl", "test.jsonl"]
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert lines[1]["prompt"] == (
        "2 hypotheses:\n1. the cat sat on mat\n2. the cat sat on the mat\n"
        "best: the cat sat on mat. {literal}\n"
    )


def test_sft_template_errors(pairs, tmp_path):
    check_template(DEFAULT_SFT_TEMPLATE)
    for bad in ("{reference}", "{}", "{0}", "{input1.upper}", "{n:{width}}"):
        with pytest.raises(ValueError, match="unknown placeholder"):
            export_sft(pairs, tmp_path / "bad", template=bad)
    with pytest.raises(ValueError, match="malformed"):
        check_template("{input1")
    with pytest.raises(ValueError, match="does not format"):
        check_template("{n:zz}")
    assert not (tmp_path / "bad").exists()


def test_dlm_tsv(pairs, tmp_path):
    files = export_dlm(pairs, tmp_path / "dlm", fmt="tsv")
    assert [f.name for f in files] == ["train.tsv", "dev.tsv", "test.tsv"]
    with open(tmp_path / "dlm" / "test.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows == [
        ["hypothesis", "reference", "is_real"],
        [TAB_HYP, "she said hi", "false"],
        ["real speech hear", "real speech here", "true"],
    ]
    got = duckdb.sql(
        f"SELECT * FROM read_csv('{tmp_path / 'dlm' / 'test.tsv'}', delim='\\t', quote='\"', "
        "escape='\"', header=true)"
    ).fetchall()
    assert got == [(TAB_HYP, "she said hi", False), ("real speech hear", "real speech here", True)]

    files = export_dlm(pairs, tmp_path / "all.tsv", fmt="tsv", all_hypotheses=True)
    assert files[0].name == "all.train.tsv"
    with open(files[0], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 7 and rows[0] == {
        "hypothesis": "hello word",
        "reference": "hello world",
        "is_real": "false",
        "rank": "0",
    }
    assert [r["rank"] for r in rows[2:]] == ["0", "1", "2", "3", "4"]


def test_dlm_tsv_quotes_line_breaks(tmp_path):
    odd = 'a\r\nb "c"\td\\e'
    table = spec_of(Pair).to_table([_pair("q", "train", "ref", [odd])])
    [path] = export_dlm(table, tmp_path, fmt="tsv")
    with open(path, newline="", encoding="utf-8") as f:
        assert list(csv.reader(f, delimiter="\t"))[1] == [odd, "ref", "false"]


def test_dlm_jsonl_and_dispatch(pairs, tmp_path):
    table = pairs
    files = export(_from_duckdb(), "dlm-jsonl", tmp_path / "j")  # a reader works too
    rows = [json.loads(line) for line in files[2].read_text().splitlines()]
    assert rows[0] == {"hypothesis": TAB_HYP, "reference": "she said hi", "is_real": False}
    assert rows[1]["is_real"] is True
    files = export(table, "dlm-jsonl", tmp_path / "ja", all_hypotheses=True)
    assert json.loads(files[1].read_text()) == {
        "hypothesis": "good morning",
        "reference": "good morning",
        "is_real": False,
        "rank": 0,
    }
    assert [f.name for f in export(table, "dlm-tsv", tmp_path / "t")] == [
        "train.tsv",
        "dev.tsv",
        "test.tsv",
    ]
    assert export(table, "hyporadise", tmp_path / "h", n=1)[0].name == "train.json"
    assert export(table, "sft", tmp_path / "s")[0].name == "train.jsonl"
    assert export(table, "hf", tmp_path / "f")[-1].name == "README.md"
    with pytest.raises(ValueError, match="unknown export format"):
        export(table, "csv", tmp_path)  # type: ignore[arg-type]
    assert set(FORMATS) == {"hyporadise", "hf", "sft", "dlm-tsv", "dlm-jsonl"}


def test_empty_table_writes_nothing(tmp_path):
    empty = spec_of(Pair).to_table([])
    for fmt in FORMATS:
        assert export(empty, fmt, tmp_path / fmt) == []  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_exports_are_reproducible(tmp_path):
    table = spec_of(Pair).to_table(PAIRS)
    a = export_hyporadise(table, tmp_path / "a")
    b = export_hyporadise(table.take([4, 3, 2, 1, 0]), tmp_path / "b")
    assert [x.read_bytes() for x in a] == [y.read_bytes() for y in b]
    assert not list((tmp_path / "a").glob("*.tmp"))
