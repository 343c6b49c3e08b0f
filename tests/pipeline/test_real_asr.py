"""End to end with the real bundled Whisper tiny.en on speech made by piper."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechmill.core.text.metrics import corpus_counts
from speechmill.core.text.normalize import get_normalizer
from speechmill.pipelines.corpus import run_corpus
from tests.audio_fixtures import SENTENCES, piper_speech, write_wav
from tests.conftest import make_config
from tests.pipeline.helpers import check_accounting, rows

pytestmark = pytest.mark.model


def test_tiny_en_transcribes_generated_speech(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i, text in enumerate(SENTENCES):
        audio, sr = piper_speech(text, length_scale=1.0 + 0.1 * (i % 2))
        write_wav(src / f"s{i}.wav", audio, sr)
    root = tmp_path / "ds"
    cfg = make_config(src, "asr:\n  beam_size: 8\n  n_best: 3\n")
    (run_id,) = run_corpus(cfg, root=str(root), progress=False).run_ids
    check_accounting(root, run_id)
    got = dict(
        rows(
            root,
            """
        select s.url, string_agg(g.text, ' ' order by g.start_sample)
        from sources s join segments g using (recording_id) group by 1
    """,
        )
    )
    norm = get_normalizer("whisper-english")
    pairs = [(norm(t), norm(got[str(src / f"s{i}.wav")])) for i, t in enumerate(SENTENCES)]
    counts = corpus_counts(pairs)
    print(f"\nlabel WER on {len(pairs)} piper sentences: {100 * counts.rate:.1f}%")
    assert counts.rate <= 0.20
    lists = rows(root, "select n_unique, n_requested, texts_norm from hypotheses")
    assert lists and all(n <= req for n, req, _ in lists)
    assert all(len(set(t)) == len(t) for _, _, t in lists)
    meta = rows(root, "select model_id, language, language_prob from segments limit 1")[0]
    assert meta == ("bundled:tiny.en", "en", None)
