"""speechmill's faster-whisper backend on a small random *multilingual* model.

The model (tests/multilingual_model.py) has random weights, so its text is
nonsense; what is tested is that language detection, language hints, prompting,
beam search and sampled top-ups run through the real code with the real
multilingual vocabulary.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from speechmill.backends.asr import decode_with_retry
from speechmill.backends.faster_whisper import FasterWhisperBackend, context_frames
from speechmill.core.asr.decoding import AsrItem, AsrOutput, DecodeOptions
from speechmill.core.asr.nbest import BEAM, SAMPLE
from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.core.text.normalize import get_normalizer
from tests.multilingual_model import (
    OPENAI_WHISPER_PIP,
    VOCAB_SIZE,
    build_multilingual_model,
    load_languages,
    whisper_package_dir,
)

pytestmark = pytest.mark.model

OPTIONS = DecodeOptions(beam_size=4, n_best=3, max_new_tokens=16)
# fewer beam hypotheses than requested: the list must be topped up by sampling
TOP_UP = DecodeOptions(beam_size=2, n_best=5, max_new_tokens=16, sample_budget=32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("whisper") is None:
        pytest.skip(f"needs openai-whisper's vocabulary files: {OPENAI_WHISPER_PIP}")
    return build_multilingual_model(tmp_path_factory.mktemp("multilingual") / "model")


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> FasterWhisperBackend:
    return FasterWhisperBackend.load(str(model_dir), "cpu", "int8", cpu_threads=1)


@pytest.fixture(scope="module")
def languages(model_dir: Path) -> list[str]:  # (after model_dir: skipped without whisper)
    return load_languages(whisper_package_dir())


def _sine(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


ITEMS = [
    AsrItem("a", _sine(1.0, 440.0), None),
    AsrItem("b", _noise(1.5, 7), "de"),
]


def _decode(backend: FasterWhisperBackend, options: DecodeOptions) -> list[AsrOutput]:
    return decode_with_retry(backend, ITEMS, options, get_normalizer("whisper-basic"))


@pytest.fixture(scope="module")
def outputs(backend: FasterWhisperBackend) -> list[AsrOutput]:
    return _decode(backend, OPTIONS)


@pytest.fixture(scope="module")
def topped_up(backend: FasterWhisperBackend) -> list[AsrOutput]:
    return _decode(backend, TOP_UP)


def _detected(backend: FasterWhisperBackend, audio: np.ndarray) -> dict[str, float]:
    """The model's language probabilities for one item, asked directly."""
    import ctranslate2

    feats = backend.features(audio)
    enc = backend._encode([feats], context_frames(feats.shape[1], OPTIONS.min_context_s))
    (probs,) = backend._fw.model.detect_language(ctranslate2.StorageView.from_array(enc))
    return {tok.strip("<|>"): float(p) for tok, p in probs}


def test_model_is_multilingual(backend: FasterWhisperBackend, model_dir: Path) -> None:
    assert backend.multilingual
    assert backend._fw.hf_tokenizer.get_vocab_size() == VOCAB_SIZE
    assert backend._fw.model.n_mels == 80
    assert (model_dir / "tokenizer.json").is_file()


def test_detected_language(
    outputs: list[AsrOutput], backend: FasterWhisperBackend, languages: list[str]
) -> None:
    out = outputs[0]
    assert out.item_id == "a" and out.error is None
    assert out.language in languages
    assert out.language_prob is not None and 0.0 < out.language_prob <= 1.0
    probs = _detected(backend, ITEMS[0].audio)
    assert set(probs) == set(languages)
    assert out.language == max(probs, key=lambda k: probs[k])
    assert out.language_prob == pytest.approx(probs[out.language], rel=1e-3)


def test_language_hint(outputs: list[AsrOutput], backend: FasterWhisperBackend) -> None:
    out = outputs[1]
    assert out.item_id == "b" and out.error is None
    assert out.language == "de"
    tk = backend._tokenizers["de"]  # the prompt is <|startoftranscript|><|de|><|transcribe|>
    assert tuple(tk.sot_sequence) == (50258, backend._fw.hf_tokenizer.token_to_id("<|de|>"), 50359)
    assert isinstance(out.language_prob, float)
    assert out.language_prob == pytest.approx(_detected(backend, ITEMS[1].audio)["de"], rel=1e-3)


def _check_nbest(outputs: list[AsrOutput], options: DecodeOptions) -> None:
    assert [o.item_id for o in outputs] == ["a", "b"]
    for out in outputs:
        assert out.error is None
        assert 0.0 <= out.no_speech_prob <= 1.0
        nb = out.nbest
        assert nb is not None
        assert nb.n_requested == options.n_best
        assert 1 <= nb.n_unique <= nb.n_requested
        assert len(set(nb.norms)) == len(nb.norms) == nb.n_unique
        for hyp in nb.hyps:
            assert np.isfinite(hyp.sum_logprob) and hyp.sum_logprob < 0
            assert len(hyp.tokens) <= options.max_new_tokens
            assert all(0 <= t < 50257 for t in hyp.tokens)  # text tokens only


def test_nbest_lists(outputs: list[AsrOutput]) -> None:
    _check_nbest(outputs, OPTIONS)


def test_sampled_top_up(topped_up: list[AsrOutput]) -> None:
    _check_nbest(topped_up, TOP_UP)
    for out in topped_up:
        assert out.nbest is not None
        methods = [h.method for h in out.nbest.hyps]
        assert methods.count(BEAM) <= TOP_UP.beam_size
        assert SAMPLE in methods
        assert methods == sorted(methods, key=lambda m: m != BEAM)  # beam hypotheses first
        for hyp in out.nbest.hyps:
            if hyp.method == SAMPLE:
                assert hyp.seed is not None and hyp.temperature in TOP_UP.temperatures


def _key(outputs: list[AsrOutput]) -> list[object]:
    key: list[object] = []
    for out in outputs:
        assert out.nbest is not None
        key.append((out.language, [(h.tokens, h.method, h.seed) for h in out.nbest.hyps]))
    return key


@pytest.mark.parametrize("which", ["beam", "top_up"])
def test_decoding_is_deterministic(
    which: str,
    outputs: list[AsrOutput],
    topped_up: list[AsrOutput],
    backend: FasterWhisperBackend,
) -> None:
    first, options = (outputs, OPTIONS) if which == "beam" else (topped_up, TOP_UP)
    again = _decode(backend, options)
    assert _key(again) == _key(first)
    for a, b in zip(first, again, strict=True):
        assert a.nbest is not None and b.nbest is not None
        assert [h.sum_logprob for h in b.nbest.hyps] == pytest.approx(
            [h.sum_logprob for h in a.nbest.hyps]
        )
        assert b.language_prob == pytest.approx(a.language_prob)


def test_build_is_deterministic(model_dir: Path, tmp_path: Path) -> None:
    def digest(d: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir()}

    assert digest(build_multilingual_model(tmp_path / "again")) == digest(model_dir)


def test_unknown_language_hint_fails_alone(backend: FasterWhisperBackend) -> None:
    items = [ITEMS[0], AsrItem("x", ITEMS[1].audio, "xx")]
    good, bad = decode_with_retry(backend, items, OPTIONS, get_normalizer("whisper-basic"))
    assert good.item_id == "a" and good.error is None and good.nbest is not None
    assert bad.item_id == "x" and bad.nbest is None
    assert bad.error is not None and "'xx'" in bad.error


def test_hint_missing_from_model_is_not_reported_as_decoded(
    backend: FasterWhisperBackend,
) -> None:
    item = AsrItem("y", ITEMS[1].audio, "yue")
    (out,) = decode_with_retry(backend, [item], OPTIONS, get_normalizer("whisper-basic"))
    assert out.error is not None or out.language != "yue"
