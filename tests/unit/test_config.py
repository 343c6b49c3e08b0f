from __future__ import annotations

from pathlib import Path

import pytest

from speechmill.config import Config, LocalSource, load_config, parse_override
from speechmill.errors import ConfigError

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_defaults_are_valid_and_frozen() -> None:
    cfg = load_config(text="")
    assert cfg.asr.model == "bundled:tiny.en"
    assert cfg.asr.beam_size >= cfg.asr.n_best
    with pytest.raises(Exception):
        cfg.asr.beam_size = 3  # type: ignore[misc]


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("store:\n  root: x\nasr:\n  beam_size: 5\n  beem: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert f"{p}:5: asr.beem" in str(e.value)


def test_bad_value_in_a_source_points_at_its_line() -> None:
    text = "sources:\n  - kind: local\n    paths: [a]\n  - kind: local\n    paths: []\n"
    with pytest.raises(ConfigError) as e:
        load_config("s.yaml", text=text)
    assert "s.yaml:5" in str(e.value)
    assert "paths" in str(e.value)


def test_unknown_source_kind_is_rejected() -> None:
    with pytest.raises(ConfigError, match="does not match any of the expected tags"):
        load_config(text="sources:\n  - kind: ftp\n    url: x\n")


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(ConfigError, match=r"c.yaml:2: not valid YAML"):
        load_config("c.yaml", text="asr:\n  beam_size: : 3\nvad: {}\n")


def test_overrides_parse_yaml_scalars_and_lists() -> None:
    cfg = load_config(
        text="sources:\n  - kind: local\n    paths: [a]\n",
        overrides=["asr.beam_size=7", "sources.0.paths=[b, c]", "asr.language=null"],
    )
    assert cfg.asr.beam_size == 7
    assert isinstance(cfg.sources[0], LocalSource)
    assert cfg.sources[0].paths == ["b", "c"]
    assert cfg.asr.language is None
    assert parse_override("a.b=true") == ("a.b", True)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("nonsense")
    with pytest.raises(ConfigError, match="out of range"):
        load_config(text="", overrides=["sources.3.paths=[x]"])


def test_override_validation_error_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"asr\.beam_size"):
        load_config(text="", overrides=["asr.beam_size=0"])


def test_config_hash_is_stable_and_sensitive() -> None:
    a = load_config(text="asr:\n  beam_size: 5\n")
    b = load_config(text="asr: {beam_size: 5}\n")
    c = load_config(text="asr:\n  beam_size: 6\n")
    assert a.config_hash() == b.config_hash() != c.config_hash()


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("/nonexistent/x.yaml")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_validates(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    # a config drives the corpus pipeline (sources) or the synth pipeline (texts)
    assert cfg.sources or cfg.synth.texts, f"{path.name} declares no sources and no texts"


def test_there_are_shipped_configs() -> None:
    assert len(CONFIGS) >= 1


def test_config_doc_is_generated_from_the_code() -> None:
    from speechmill.config_docs import render

    doc = Path(__file__).parents[2] / "docs" / "config.md"
    assert doc.read_text() == render(), "docs/config.md is stale: run `make docs`"


def test_store_options_reach_beams_s3_options_but_never_keys() -> None:
    from speechmill.pipelines.runs import pipeline_options

    cfg = load_config(
        text="store: {root: 's3://b/c', options: {endpoint_url: 'http://127.0.0.1:9', "
        "region: eu-west-1}}\n"
    )
    opts = pipeline_options(cfg).get_all_options()
    assert opts["s3_endpoint_url"] == "http://127.0.0.1:9"
    assert opts["s3_region_name"] == "eu-west-1"
    assert opts.get("s3_access_key_id") is None and opts.get("s3_secret_access_key") is None
    assert "access" not in cfg.canonical_json().lower().replace("anonymous", "")
