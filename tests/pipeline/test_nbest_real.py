"""The N-best recipe on the real tiny.en: distinct lists, honest scores, replayable top-ups."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from speechmill.backends.asr import decode_with_retry
from speechmill.backends.faster_whisper import FasterWhisperBackend
from speechmill.core.asr.decoding import AsrItem, DecodeOptions
from speechmill.core.text.normalize import get_normalizer
from speechmill.pipelines.corpus import run_corpus
from tests.audio_fixtures import SENTENCES, piper_speech, resample, write_wav
from tests.conftest import make_config
from tests.pipeline.helpers import rows

pytestmark = pytest.mark.model

NORM = get_normalizer("whisper-english")


@pytest.fixture(scope="module")
def backend() -> FasterWhisperBackend:
    return FasterWhisperBackend.load()


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    out = []
    for text in SENTENCES[:3]:
        audio, sr = piper_speech(text)
        out.append(resample(audio, sr, 16000))
    return out


def test_lists_are_distinct_after_normalisation_and_topped_up(backend, clips):
    opts = DecodeOptions(
        beam_size=2, n_best=5, temperatures=(1.0, 1.3), sample_budget=16, alternatives=0
    )
    items = [AsrItem(f"c{i}", a, "en") for i, a in enumerate(clips)]
    outs = decode_with_retry(backend, items, opts, NORM)
    for o in outs:
        nb = o.nbest
        assert o.error is None and nb is not None
        assert len(set(nb.norms)) == nb.n_unique == len(nb.hyps) <= 5
        assert list(nb.norms) == [NORM(h.text) for h in nb.hyps]
        methods = [h.method for h in nb.hyps]
        assert methods[: methods.count("beam")] == ["beam"] * methods.count("beam")
        for h in nb.hyps:
            assert h.sum_logprob < 0 and math.isfinite(h.sum_logprob)
            if h.method == "sample":
                assert h.temperature in (1.0, 1.3) and h.seed is not None
            else:
                assert h.temperature is None and h.seed is None
    assert any(h.method == "sample" for o in outs for h in o.nbest.hyps), "no top-up happened"


def test_sampled_top_ups_replay_identically_in_any_batch(backend, clips):
    opts = DecodeOptions(beam_size=2, n_best=5, sample_budget=16, alternatives=0)
    together = decode_with_retry(
        backend, [AsrItem(f"c{i}", a) for i, a in enumerate(clips)], opts, NORM
    )
    alone = decode_with_retry(backend, [AsrItem("c1", clips[1])], opts, NORM)[0]
    again = decode_with_retry(backend, [AsrItem("c1", clips[1])], opts, NORM)[0]

    def samples(o):
        return [
            (h.text, h.seed, h.temperature, round(h.sum_logprob, 3))
            for h in o.nbest.hyps
            if h.method == "sample"
        ]

    assert samples(alone) == samples(again)
    assert [(h.text, h.method) for h in alone.nbest.hyps] == [
        (h.text, h.method) for h in again.nbest.hyps
    ]
    # the samples of an item depend on its id and its encoder output only
    assert {s[1] for s in samples(alone)} <= {s[1] for s in samples(together[1])} or not samples(
        alone
    )


def test_alternatives_fill_lists_with_single_edits_of_the_best(backend, clips):
    """A beam of 2 gives at most 2 distinct; one forced decode of the 1-best fills the
    lists with its cheapest one-token substitutions (or deletions), before any sample;
    rescoring makes their estimated scores exact."""
    opts = DecodeOptions(beam_size=2, n_best=5, top_up=False, alternatives=8)
    items = [AsrItem(f"c{i}", a, "en") for i, a in enumerate(clips)]
    outs = decode_with_retry(backend, items, opts, NORM)
    scored = decode_with_retry(
        backend, items, DecodeOptions(**{**opts.__dict__, "token_logprobs": True}), NORM
    )
    for o, r in zip(outs, scored, strict=True):
        hyps = o.nbest.hyps
        assert o.nbest.n_unique == 5 == len(set(o.nbest.norms))
        methods = [h.method for h in hyps]
        assert methods == sorted(methods, key=["beam", "alt"].index) and "alt" in methods
        best = hyps[0].tokens
        for h in hyps:
            if h.method != "alt":
                continue
            t = h.tokens
            edits = sum(a != b for a, b in zip(t, best, strict=False))
            deleted = len(t) == len(best) - 1 and any(
                t == best[:i] + best[i + 1 :] for i in range(len(best))
            )
            assert (len(t) == len(best) and edits == 1) or deleted
            assert h.avg_logprob <= hyps[0].avg_logprob
        # the same lists, every score now exact: alternatives' sums are their tokens'
        assert [h.text for h in r.nbest.hyps] == [h.text for h in hyps]
        for h in r.nbest.hyps:
            assert h.token_logprobs is not None
            if h.method == "alt":
                assert h.sum_logprob == pytest.approx(sum(h.token_logprobs))


def test_beam_and_sample_scores_are_comparable(backend, clips):
    """Beam scores equal a teacher-forced T=1 rescoring (EOT included), which is how
    sampled hypotheses are scored, up to int8 numerics of the different batch shapes."""
    opts = DecodeOptions(beam_size=2, n_best=5, sample_budget=16)
    (out,) = decode_with_retry(backend, [AsrItem("c0", clips[0])], opts, NORM)
    beam_best = out.nbest.hyps[0]
    # rescore the beam's best with a teacher-forced decode, as the sampler scores
    import ctranslate2

    from speechmill.core.asr.nbest import log_softmax

    enc = backend._encode([backend.features(clips[0])], 3000)
    tk = backend._tokenizer("en")

    res = backend._fw.model.generate(
        ctranslate2.StorageView.from_array(enc),
        [[*tk.sot_sequence, tk.no_timestamps, *beam_best.tokens]],
        beam_size=1,
        max_length=448,
        return_logits_vocab=True,
        suppress_blank=False,
    )[0]
    logits = [np.array(x, dtype=np.float32) for x in res.logits[0]]
    logits[0][[*tk.encode(" "), tk.eot]] = -1e31
    toks = [*beam_best.tokens, tk.eot]
    total = sum(float(log_softmax(logits[i])[t]) for i, t in enumerate(toks))
    assert total == pytest.approx(beam_best.sum_logprob, abs=0.15)


def test_a_rerun_gives_the_same_rows(tmp_path: Path, clips):
    src = tmp_path / "in"
    src.mkdir()
    for i, a in enumerate(clips):
        write_wav(src / f"c{i}.wav", a, 16000)
    extra = "asr:\n  beam_size: 2\n  n_best: 4\n  sample_budget: 16\n  alternatives: 0\n"
    for name in ("a", "b"):
        run_corpus(make_config(src, extra), root=str(tmp_path / name), progress=False)
    q = (
        "select item_id, texts, texts_norm, method, seed, temperature, n_unique, "
        "list_transform(sum_logprob, lambda x: round(x, 4)) from hypotheses order by 1"
    )
    first, second = rows(tmp_path / "a", q), rows(tmp_path / "b", q)
    assert first == second
    assert any("sample" in r[3] for r in first)
