from __future__ import annotations

from pathlib import Path

import pytest

from speechmill.demo import shown


def test_the_demo_prints_paths_relative_to_where_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert shown(tmp_path / "demo-data" / "dataset") == "demo-data/dataset"
    assert shown("s3://bucket/corpus") == "s3://bucket/corpus"
    outside = tmp_path.parent / "elsewhere"
    assert shown(outside) == str(outside)
