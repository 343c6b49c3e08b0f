"""Forced alignment with the real bundled Whisper tiny.en on piper speech of known timing."""

from __future__ import annotations

import importlib.util
import itertools
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from speechmill.backends.align import WhisperAligner
from speechmill.core.align.alignment import Alignment
from speechmill.core.align.resegment import resegment
from speechmill.demo import demo_sentences
from tests.audio_fixtures import SENTENCES, piper_speech, resample

pytestmark = pytest.mark.model

SR = 16000
TOL_S = 0.2  # Whisper's times, snapped to the quiet runs, against where piper is audible


@pytest.fixture(scope="module")
def aligner() -> WhisperAligner:
    return WhisperAligner.load()


def speech(text: str) -> tuple[np.ndarray, float, float]:
    """16 kHz piper speech and the span (s) where it is audible (above -50 dBFS)."""
    audio, sr = piper_speech(text)
    audio = resample(audio, sr, SR)
    loud = np.flatnonzero(np.abs(audio) > 0.003)
    return audio, loud[0] / SR, (loud[-1] + 1) / SR


def check_words(result: Alignment, text: str, duration: float) -> None:
    assert [w.word for w in result.words] == text.split()
    prev = 0.0
    for w in result.words:
        assert prev - 1e-9 <= w.start_s <= w.end_s <= duration + 1e-9
        assert 0.0 <= w.score <= 1.0
        prev = w.end_s


def test_one_sentence(aligner: WhisperAligner) -> None:
    audio, s0, s1 = speech(SENTENCES[0])
    audio = np.concatenate([np.zeros(SR, np.float32), audio, np.zeros(SR // 2, np.float32)])
    result = aligner.align(audio, SENTENCES[0])
    check_words(result, SENTENCES[0], len(audio) / SR)
    assert result.unaligned == 0 and result.score > 0.7
    assert aligner.name == "whisper-ct2:bundled:tiny.en"
    # the leading second of silence is not part of the first word, nor the tail of the last
    assert result.words[0].start_s == pytest.approx(1.0 + s0, abs=TOL_S)
    assert result.words[-1].end_s == pytest.approx(1.0 + s1, abs=TOL_S)
    assert all(w.end_s > w.start_s for w in result.words)


def test_odd_words_map_back_to_the_input_words(aligner: WhisperAligner) -> None:
    text = "It's 1999 \u2014 the well-known caf\u00e9's price: $5.50! \"Really?\" she asked."
    audio, _, _ = speech(text)
    result = aligner.align(audio, text)
    check_words(result, text, len(audio) / SR)
    assert result.unaligned == 0


def test_empty_text_and_too_short_audio(aligner: WhisperAligner) -> None:
    assert aligner.align(np.zeros(SR, np.float32), "  \n") == Alignment((), 0, 0.0)
    tiny = aligner.align(np.zeros(800, np.float32), "two words")
    check_words(tiny, "two words", 0.05)
    assert tiny.unaligned == 2 and tiny.score == 0.0
    with pytest.raises(ValueError):
        aligner.align(np.zeros((2, SR), np.float32), "stereo")


def test_multilingual_model_any_script(tmp_path: Path) -> None:
    """A (random-weight) multilingual model: the language is detected when not given,
    unspaced scripts are split at unicode boundaries, and every input word comes back."""
    from tests.multilingual_model import OPENAI_WHISPER_PIP, build_multilingual_model

    if importlib.util.find_spec("whisper") is None:
        pytest.skip(f"needs openai-whisper's vocabulary files: {OPENAI_WHISPER_PIP}")
    model = WhisperAligner.load(str(build_multilingual_model(tmp_path / "model")), cpu_threads=1)
    assert model.backend.multilingual
    audio = np.random.default_rng(0).normal(0, 0.1, 40 * SR).astype(np.float32)
    for text, language in [
        ("\u65e5\u672c\u8a9e\u306e \u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002 \u6771\u4eac", "ja"),
        ("Hallo Welt, wie geht's? 42 \u00c4pfel", None),
        ("\u3053\u308c\u306f\u65e5\u672c\u8a9e\u306e\u6587\u3067\u3059", None),
    ]:
        result = model.align(audio, text, language)
        check_words(result, text, len(audio) / SR)
        assert result.unaligned == 0


def test_concurrent_calls_share_the_model(aligner: WhisperAligner) -> None:
    clips = [speech(t)[0] for t in SENTENCES[1:3]]
    alone = [aligner.align(c, t) for c, t in zip(clips, SENTENCES[1:3], strict=True)]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(aligner.align, clips, SENTENCES[1:3]))
    assert together == alone


def test_long_form_windows_and_sentence_boundaries(aligner: WhisperAligner) -> None:
    """~75 s of sentences with pauses: several windows, stitched; the true pauses
    between sentences fall in the predicted gaps, and resegmentation cuts in them."""
    rng = random.Random(5)
    texts = SENTENCES + demo_sentences()
    parts = [np.zeros(SR // 2, np.float32)]
    t = 0.5
    spans: list[tuple[float, float]] = []
    used: list[str] = []
    while t < 75.0:
        audio, s0, s1 = speech(texts[len(used)])
        spans.append((t + s0, t + s1))
        used.append(texts[len(used)])
        parts.append(audio)
        t += len(audio) / SR
        pause = round(rng.uniform(0.3, 1.2) * SR)
        parts.append(np.zeros(pause, np.float32))
        t += pause / SR
    audio = np.concatenate(parts)
    text = " ".join(used)
    duration = len(audio) / SR

    windows: list[float] = []
    inner = aligner._align_window

    def counted(a, ws, tk):  # type: ignore[no-untyped-def]
        windows.append(len(a) / SR)
        return inner(a, ws, tk)

    aligner._align_window = counted  # type: ignore[method-assign]
    try:
        result = aligner.align(audio, text)
    finally:
        del aligner._align_window
    assert len(windows) >= 3 and max(windows) <= 30.0

    check_words(result, text, duration)
    assert result.unaligned == 0
    assert result.score > 0.8
    last_word = np.cumsum([len(s.split()) for s in used]) - 1
    pauses = [(a[1], b[0]) for a, b in itertools.pairwise(spans)]
    for k, (p0, p1) in enumerate(pauses):
        before = result.words[last_word[k]]
        after = result.words[last_word[k] + 1]
        # the sentence boundary is inside the predicted gap, and the gap is the pause:
        # starts are snapped to where the sound starts; ends to where the pause starts,
        # but no more than 0.1 s before Whisper's (late) end, so they may stay late
        assert before.end_s - 0.05 <= (p0 + p1) / 2 <= after.start_s + 0.05
        assert p0 - TOL_S <= before.end_s <= p0 + 0.3 + TOL_S
        assert after.start_s == pytest.approx(p1, abs=TOL_S)

    cuts = resegment(result.words, total_s=duration)
    assert [c.last_word for c in cuts] == list(last_word)  # one utterance per sentence
    for a, b in itertools.pairwise(cuts):
        assert any(p0 - 0.02 <= a.end_s and b.start_s <= p1 + 0.02 for p0, p1 in pauses)
    for c, (s0, s1) in zip(cuts, spans, strict=True):
        assert c.start_s <= s0 + 0.02 and s1 - 0.02 <= c.end_s
