"""CTC forced alignment: the NumPy Viterbi (always) and the torch backend (where torch is).

The pure tests check the Viterbi against a brute-force enumeration of every valid
CTC path on tiny random problems. The torch tests (skipped without torch) run the
aligner on emissions of a tiny model whose output is planted in the audio, and
load a synthetic state dict with torchaudio's MMS_FA key names into a tiny
network. The real MMS_FA weights come only from a model hub: that test is
`slow` and runs only where SPEECHMILL_MMS_FA names a local model.pt.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from speechmill.core.align.alignment import AlignedWord, Alignment
from speechmill.core.align.ctc import (
    TokenSpan,
    align_words,
    attach_punctuation,
    ctc_forced_align,
    fitting_prefix,
    group_spans,
    merge_tokens,
    min_frames,
    place_words,
    tokenize_words,
    words_from_spans,
)

# ----------------------------------------------------------------------------- helpers


def triples(spans: list[TokenSpan]) -> list[tuple[int, int, int]]:
    return [(s.token, s.start_frame, s.end_frame) for s in spans]


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def collapse(path, blank=0) -> list[int]:
    out = []
    prev = None
    for tok in path:
        if tok not in (prev, blank):
            out.append(tok)
        prev = tok
    return out


def brute_force(lp: np.ndarray, targets: list[int], blank: int = 0) -> float:
    """Best score over every frame path that collapses to `targets` (-inf if none)."""
    symbols = sorted({blank, *targets})
    best = -math.inf
    rows = np.arange(lp.shape[0])
    for path in itertools.product(symbols, repeat=lp.shape[0]):
        if collapse(path, blank) == targets:
            best = max(best, float(lp[rows, list(path)].sum()))
    return best


def path_score(lp: np.ndarray, path: list[int]) -> float:
    return float(lp[np.arange(len(path)), path].sum())


problems = st.tuples(
    st.integers(1, 6),  # frames
    st.integers(2, 4),  # vocabulary (token 0 is the blank)
    st.integers(0, 2**32 - 1),  # seed
).flatmap(
    lambda t: st.tuples(
        st.just(t[0]),
        st.just(t[1]),
        st.just(t[2]),
        st.lists(st.integers(1, t[1] - 1), max_size=4),
    )
)


# ----------------------------------------------------------------------------- Viterbi (pure)


@given(problems)
def test_viterbi_matches_brute_force_on_random_emissions(problem):
    n_frames, vocab, seed, targets = problem
    lp = log_softmax(np.random.default_rng(seed).normal(0, 2, size=(n_frames, vocab)))
    if n_frames < min_frames(targets):
        with pytest.raises(ValueError, match="too few"):
            ctc_forced_align(lp, targets)
        assert brute_force(lp, targets) == -math.inf
        return
    path, scores = ctc_forced_align(lp, targets)
    assert len(path) == len(scores) == n_frames
    assert collapse(path) == targets
    assert scores == pytest.approx(lp[np.arange(n_frames), path].tolist())
    assert sum(scores) == pytest.approx(brute_force(lp, targets), abs=1e-9)


@given(problems)
def test_free_end_viterbi_is_the_best_path_for_any_prefix(problem):
    n_frames, vocab, seed, targets = problem
    lp = log_softmax(np.random.default_rng(seed).normal(0, 2, size=(n_frames, vocab)))
    path, scores = ctc_forced_align(lp, targets, free_end=True)
    reached = collapse(path)
    assert reached == targets[: len(reached)]
    best = max(brute_force(lp, targets[:k]) for k in range(len(targets) + 1))
    assert sum(scores) == pytest.approx(best, abs=1e-9)
    if n_frames >= min_frames(targets):
        fixed, _ = ctc_forced_align(lp, targets)
        assert path_score(lp, fixed) <= sum(scores) + 1e-9


@given(
    st.integers(1, 5).flatmap(
        lambda n: st.tuples(
            st.lists(st.lists(st.integers(-3, 0), min_size=3, max_size=3), min_size=n, max_size=n),
            st.lists(st.integers(1, 2), max_size=3),
        )
    )
)
def test_viterbi_is_optimal_with_ties(problem):
    """Integer log-probs make many paths tie: the score must still be the best one."""
    rows, targets = problem
    lp = np.array(rows, dtype=np.float64)
    if len(rows) < min_frames(targets):
        with pytest.raises(ValueError):
            ctc_forced_align(lp, targets)
        return
    path, _ = ctc_forced_align(lp, targets)
    assert collapse(path) == targets
    assert path_score(lp, path) == brute_force(lp, targets)


@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(3, 8))
def test_viterbi_is_invariant_to_a_constant_per_frame(seed, n_frames, vocab):
    rng = np.random.default_rng(seed)
    lp = log_softmax(rng.normal(0, 2, size=(n_frames, vocab)))
    n_targets = int(rng.integers(0, n_frames + 1))
    targets = rng.integers(1, vocab, size=n_targets).tolist()
    while min_frames(targets) > n_frames:
        targets.pop()
    shift = rng.normal(0, 5, size=(n_frames, 1))
    path, scores = ctc_forced_align(lp, targets)
    path2, scores2 = ctc_forced_align(lp + shift, targets)
    assert path2 == path
    assert np.allclose(np.array(scores2) - np.array(scores), shift[:, 0])


def test_repeats_need_a_blank_between_them():
    lp = np.log(np.full((2, 3), 1 / 3))
    assert min_frames([1, 1]) == 3
    with pytest.raises(ValueError, match="at least 3"):
        ctc_forced_align(lp, [1, 1])
    path, _ = ctc_forced_align(np.log(np.full((3, 3), 1 / 3)), [1, 1])
    assert path == [1, 0, 1]
    path, _ = ctc_forced_align(lp, [1, 2])  # different tokens need no blank
    assert path == [1, 2]


def test_bad_inputs_raise_value_error():
    lp = log_softmax(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="blank"):
        ctc_forced_align(lp, [0, 1])
    with pytest.raises(ValueError, match="outside"):
        ctc_forced_align(lp, [3])
    with pytest.raises(ValueError, match="2-D"):
        ctc_forced_align(lp[0], [1])
    with pytest.raises(ValueError, match="too few"):
        ctc_forced_align(lp[:0], [])
    impossible = lp.copy()
    impossible[:, 2] = -np.inf
    with pytest.raises(ValueError, match="finite"):
        ctc_forced_align(impossible, [2])


def test_empty_targets_give_an_all_blank_path():
    lp = log_softmax(np.random.default_rng(0).normal(size=(5, 4)))
    path, scores = ctc_forced_align(lp, [], blank=2)
    assert path == [2] * 5
    assert scores == pytest.approx(lp[:, 2].tolist())


def planted(spec: list[tuple[int, int]], vocab: int = 6, seed: int = 0) -> np.ndarray:
    """Peaky emissions: `spec` is (token, frames) runs; noise elsewhere."""
    frames = [tok for tok, n in spec for _ in range(n)]
    logits = np.random.default_rng(seed).normal(0, 0.3, size=(len(frames), vocab))
    logits[np.arange(len(frames)), frames] += 8.0
    return log_softmax(logits)


def test_planted_path_is_recovered_and_merged_into_spans():
    # blank x2, "a"=1 x3, blank, "b"=2 x2, "b" again after a blank, blank x2
    spec = [(0, 2), (1, 3), (0, 1), (2, 2), (0, 1), (2, 1), (0, 2)]
    lp = planted(spec)
    path, scores = ctc_forced_align(lp, [1, 2, 2])
    assert path == [0, 0, 1, 1, 1, 0, 2, 2, 0, 2, 0, 0]
    spans = merge_tokens(path, scores)
    assert triples(spans) == [(1, 2, 5), (2, 6, 8), (2, 9, 10)]
    assert spans[0].score == pytest.approx(np.mean(scores[2:5]))
    assert all(s.score <= 0 for s in spans)


def test_merge_tokens_without_blanks_between_different_tokens():
    spans = merge_tokens([1, 1, 2, 3, 3, 0], [-0.1, -0.3, -0.2, -0.5, -0.5, -1.0])
    assert triples(spans) == [(1, 0, 2), (2, 2, 3), (3, 3, 5)]
    assert spans[0].score == pytest.approx(-0.2)
    assert spans[0].frames == 2
    with pytest.raises(ValueError):
        merge_tokens([1, 2], [0.0])


def test_group_spans_and_words_from_spans():
    spans = [TokenSpan(1, 2, 4, -0.5), TokenSpan(2, 5, 6, -0.2), TokenSpan(3, 10, 12, 0.0)]
    grouped = group_spans(spans, [2, 0, 1])
    assert [len(g) for g in grouped] == [2, 0, 1]
    with pytest.raises(ValueError):
        group_spans(spans, [1, 1])
    words = words_from_spans(["ab", "42", "c"], grouped, frame_s=0.02, offset_s=1.0)
    assert words == (
        AlignedWord("ab", 1.04, 1.12, pytest.approx(math.exp((2 * -0.5 + -0.2) / 3))),
        AlignedWord("c", 1.2, 1.24, 1.0),
    )
    for w in words:
        assert 0 < w.score <= 1
        assert w.start_s < w.end_s


def test_align_words_interpolates_and_counts_words_without_tokens():
    # "ab" = tokens 1,2 at frames 1-2 and 3; "x" has no token; "b" = token 2 at frame 6
    spec = [(0, 1), (1, 2), (2, 1), (0, 2), (2, 1), (0, 1)]
    lp = planted(spec)
    al = align_words(lp, ["ab", "x", "b"], [[1, 2], [], [2]], frame_s=0.02)
    assert isinstance(al, Alignment)
    assert al.unaligned == 1
    assert [w.word for w in al.words] == ["ab", "x", "b"]
    ab, x, b = al.words
    assert (ab.start_s, ab.end_s) == pytest.approx((0.02, 0.08))
    assert (x.start_s, x.end_s, x.score) == pytest.approx((0.08, 0.12, 0.0))  # in the gap
    assert (b.start_s, b.end_s) == pytest.approx((0.12, 0.14))
    assert al.score == pytest.approx(np.mean([w.score for w in al.words]))
    assert ab.score > 0.9
    assert b.score > 0.9
    nothing = align_words(lp, ["x"], [[]], frame_s=0.02, duration_s=1.0)
    assert nothing == Alignment((AlignedWord("x", 0.0, 1.0, 0.0),), unaligned=1, score=0.0)


def test_words_past_what_fits_are_unaligned_not_an_error():
    lp = planted([(0, 1), (1, 2), (0, 1), (2, 1)])  # 5 frames
    assert fitting_prefix([[1], [2], [1, 1, 1]], 5) == 2
    assert fitting_prefix([[1], [1]], 2) == 1  # a repeat across words needs a blank too
    assert fitting_prefix([[], [1]], 1) == 2
    placed = place_words(lp, ["a", "b", "aaa"], [[1], [2], [1, 1, 1]], frame_s=0.02)
    assert [p is not None for p in placed] == [True, True, False]
    al = align_words(lp, ["a", "b", "aaa"], [[1], [2], [1, 1, 1]], frame_s=0.02)
    assert al.unaligned == 1
    assert [w.word for w in al.words] == ["a", "b", "aaa"]
    impossible = lp.copy()
    impossible[:, 2] = -np.inf
    assert place_words(impossible, ["a", "b"], [[1], [2]], frame_s=0.02) == [None, None]


def test_punctuation_only_words_attach_to_a_neighbour():
    lp = planted([(0, 2), (1, 3), (0, 2), (2, 2), (0, 1)])
    words = ["\u2014", "a", "&", "b", "42"]
    placed = place_words(lp, words, [[], [1], [], [2], []], frame_s=0.02)
    dash, a, amp, b, num = placed
    assert a is not None
    assert b is not None
    assert dash == AlignedWord("\u2014", a.start_s, a.start_s, a.score)  # before the first word
    assert amp == AlignedWord("&", a.end_s, a.end_s, a.score)
    assert num is None  # digits are content: an unaligned word
    assert attach_punctuation(["!"], [None]) == [None]  # nothing to attach to
    w = AlignedWord("w", 1.0, 2.0, 0.5)
    chained = attach_punctuation(["(", "[", "w", "x", ")"], [None, None, w, None, None])
    assert chained[:3] == [AlignedWord("(", 1.0, 1.0, 0.5), AlignedWord("[", 1.0, 1.0, 0.5), w]
    assert chained[3:] == [None, None]  # not across an unplaced word


def test_tokenize_words_for_mms_fa_labels():
    from speechmill.backends.ctc import MMS_FA_DICTIONARY as d  # no torch needed

    words = [
        "Hello,",
        "It\u2019s",
        "42",
        "caf\u00e9",
        "well-known",
        "*",
        "\u0661\u0662",
        "Zo\u00eb",
    ]
    tokens = tokenize_words(words, d)
    assert tokens[0] == [d[c] for c in "hello"]
    assert tokens[1] == [d["i"], d["t"], d["'"], d["s"]]
    assert tokens[2] == []  # no digits in MMS_FA
    assert tokens[3] == [d[c] for c in "cafe"]
    assert tokens[4] == [d[c] for c in "wellknown"]  # `-` is MMS_FA's blank label
    assert tokens[5] == []  # `*` is punctuation (MMS_FA's star token is never a target)
    assert tokens[6] == []  # another script: romanise first
    assert tokens[7] == [d[c] for c in "zoe"]
    assert tokenize_words(["qx"], d, vocab=27) == [[d["q"]]]  # x (27) is outside the vocab


def test_viterbi_speed_on_a_30_s_window():
    """1500 frames (30 s at 20 ms) x 450 characters, MMS_FA's 28 outputs."""
    rng = np.random.default_rng(1)
    lp = log_softmax(rng.normal(size=(1500, 28)))
    targets = rng.integers(1, 28, size=450).tolist()
    start = time.perf_counter()
    path, _ = ctc_forced_align(lp, targets)
    assert time.perf_counter() - start < 5.0
    assert collapse(path) == targets


# ----------------------------------------------------------------------------- torch backend


@pytest.fixture
def torch() -> Any:
    return pytest.importorskip("torch")


def tiny_config():
    from speechmill.backends.ctc import Wav2Vec2Config

    return Wav2Vec2Config(
        conv_layers=((16, 10, 5),) + ((16, 3, 2),) * 4 + ((16, 2, 2),) * 2,
        embed_dim=128,
        pos_conv_kernel=16,
        pos_conv_groups=4,
        num_layers=2,
        num_heads=2,
        ff_dim=64,
        num_out=28,
    )


def torchaudio_style_state_dict(torch, cfg, *, fairseq_head: bool = False) -> dict[str, Any]:
    """Random tensors under torchaudio's wav2vec2 key names (written out here, not taken
    from our network), with the legacy weight-norm keys (`weight_g`, `weight_v`)."""
    sd: dict[str, Any] = {}

    def put(name: str, *shape: int) -> None:
        sd[name] = torch.randn(*shape) * 0.1

    cin = 1
    for i, (cout, k, _) in enumerate(cfg.conv_layers):
        put(f"feature_extractor.conv_layers.{i}.conv.weight", cout, cin, k)
        put(f"feature_extractor.conv_layers.{i}.conv.bias", cout)
        sd[f"feature_extractor.conv_layers.{i}.layer_norm.weight"] = torch.ones(cout)
        put(f"feature_extractor.conv_layers.{i}.layer_norm.bias", cout)
        cin = cout
    d = cfg.embed_dim
    sd["encoder.feature_projection.layer_norm.weight"] = torch.ones(cin)
    put("encoder.feature_projection.layer_norm.bias", cin)
    put("encoder.feature_projection.projection.weight", d, cin)
    put("encoder.feature_projection.projection.bias", d)
    pc = "encoder.transformer.pos_conv_embed.conv."
    put(pc + "weight_g", 1, 1, cfg.pos_conv_kernel)
    put(pc + "weight_v", d, d // cfg.pos_conv_groups, cfg.pos_conv_kernel)
    put(pc + "bias", d)
    sd["encoder.transformer.layer_norm.weight"] = torch.ones(d)
    put("encoder.transformer.layer_norm.bias", d)
    for j in range(cfg.num_layers):
        p = f"encoder.transformer.layers.{j}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            put(p + f"attention.{proj}.weight", d, d)
            put(p + f"attention.{proj}.bias", d)
        for ln in ("layer_norm", "final_layer_norm"):
            sd[p + ln + ".weight"] = torch.ones(d)
            put(p + ln + ".bias", d)
        put(p + "feed_forward.intermediate_dense.weight", cfg.ff_dim, d)
        put(p + "feed_forward.intermediate_dense.bias", cfg.ff_dim)
        put(p + "feed_forward.output_dense.weight", d, cfg.ff_dim)
        put(p + "feed_forward.output_dense.bias", d)
    rows = cfg.num_out + (3 if fairseq_head else 0)
    put("aux.weight", rows, d)
    put("aux.bias", rows)
    return sd


def test_from_state_dict_loads_torchaudio_keys_and_emits_log_probs(torch):
    from speechmill.backends.ctc import CtcAligner, Wav2Vec2Config

    cfg = tiny_config()
    assert Wav2Vec2Config.infer(torchaudio_style_state_dict(torch, cfg)) == cfg  # sizes
    sd = torchaudio_style_state_dict(torch, cfg, fairseq_head=True)
    aligner = CtcAligner.from_state_dict(sd, cfg)
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)  # 1 s
    lp = aligner.log_probs(audio)
    assert lp.shape == (cfg.num_frames(16000), 28) == (49, 28)
    assert lp.dtype == np.float32
    assert np.allclose(np.exp(lp).sum(axis=1), 1.0, atol=1e-4)
    # the fairseq specials (rows 1-3) were dropped, as torchaudio does for MMS_FA
    head = aligner.model.aux.weight.detach()
    assert torch.equal(head[0], sd["aux.weight"][0])
    assert torch.equal(head[1:], sd["aux.weight"][4:])
    # a `model.`-prefixed dict (torchaudio's wrapper) loads the same, with sizes inferred
    wrapped = {"model." + k: v for k, v in sd.items()}
    again = CtcAligner.from_state_dict(wrapped)
    assert np.allclose(again.log_probs(audio), lp, atol=1e-5)


def test_from_state_dict_rejects_a_mismatched_state_dict(torch):
    from speechmill.backends.ctc import CtcAligner
    from speechmill.errors import ModelError

    cfg = tiny_config()
    sd = torchaudio_style_state_dict(torch, cfg)
    del sd["encoder.transformer.layers.1.final_layer_norm.bias"]
    with pytest.raises(ModelError, match="does not fit"):
        CtcAligner.from_state_dict(sd, cfg)
    with pytest.raises(ModelError, match="not a wav2vec2"):
        CtcAligner.from_state_dict({"foo": torch.zeros(1)})


def test_mms_fa_network_has_torchaudios_keys_and_shapes(torch):
    """The full-size network, built on the meta device (no memory), has exactly the
    keys and shapes of torchaudio's MMS_FA state dict (after the head fix)."""
    from speechmill.backends.ctc import MMS_FA_CONFIG, build_network

    with torch.device("meta"):
        net = build_network(MMS_FA_CONFIG)
        expected = torchaudio_style_state_dict(torch, MMS_FA_CONFIG)
    pc = "encoder.transformer.pos_conv_embed.conv."
    expected[pc + "parametrizations.weight.original0"] = expected.pop(pc + "weight_g")
    expected[pc + "parametrizations.weight.original1"] = expected.pop(pc + "weight_v")
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert got == {k: tuple(v.shape) for k, v in expected.items()}
    n_params = sum(v.numel() for v in net.parameters())
    assert n_params == sum(v.numel() for v in expected.values()) == 315_466_396
    assert MMS_FA_CONFIG.hop_samples == 320
    assert MMS_FA_CONFIG.receptive_field == 400


FRAME = 320  # samples per 20 ms frame


class PlantedModel:
    """A stand-in acoustic model: each 20 ms frame of the audio carries a token id
    (sample value id / 100); the model emits random logits with that token boosted,
    so the frame-level truth survives windowing."""

    def __init__(self, torch, vocab: int = 28) -> None:
        self.torch = torch
        self.vocab = vocab
        self.calls = 0

    def __call__(self, wave):
        self.calls += 1
        n = (wave.shape[1] - 400) // FRAME + 1
        ids = (wave[0, FRAME * self.torch.arange(n) + 160] * 100).round().long()
        gen = self.torch.Generator().manual_seed(self.calls)
        logits = self.torch.randn(1, n, self.vocab, generator=gen)
        logits[0, self.torch.arange(n), ids] += 6.0
        return logits  # not normalised: the aligner applies log_softmax


def plant_speech(words: list[str], dictionary: dict[str, int], seed: int = 0):
    """Audio whose frames spell `words` (2-4 frames a character, pauses between words),
    and each word's true (start_s, end_s)."""
    rng = np.random.default_rng(seed)
    frames: list[int] = [0] * 10
    truth = []
    for word in words:
        frames += [0] * int(rng.integers(3, 30))
        start = len(frames)
        prev = None
        for c in word:
            tok = dictionary[c]
            if tok == prev:
                frames.append(0)
            frames += [tok] * int(rng.integers(2, 5))
            prev = tok
        truth.append((start * 0.02, len(frames) * 0.02))
    frames += [0] * 10
    audio = np.repeat(np.array(frames, dtype=np.float32) / 100, FRAME)
    return np.concatenate([audio, np.zeros(80, np.float32)]), truth


def test_aligner_on_planted_emissions_across_windows(torch):
    from speechmill.backends.ctc import MMS_FA_DICTIONARY, CtcAligner

    words = ("the river kept its promise and flooded the lower fields by morning " * 6).split()
    audio, truth = plant_speech(words, MMS_FA_DICTIONARY)
    assert len(audio) / 16000 > 40  # several 10 s windows
    model = PlantedModel(torch)
    aligner = CtcAligner(model, MMS_FA_DICTIONARY, window_s=10.0, overlap_s=2.0)
    lp = aligner.log_probs(audio)
    assert lp.shape == ((len(audio) - 400) // FRAME + 1, 28)
    assert model.calls >= 5
    al = aligner.align(audio, " ".join(words), "en")
    assert al.unaligned == 0
    assert [w.word for w in al.words] == words
    for w, (start, end) in zip(al.words, truth, strict=True):
        assert w.start_s == pytest.approx(start)
        assert w.end_s == pytest.approx(end)
        assert 0.5 < w.score <= 1.0
    assert al.score == pytest.approx(np.mean([w.score for w in al.words]))


def test_aligner_returns_every_word_and_counts_unalignable_ones(torch):
    from speechmill.backends.ctc import MMS_FA_DICTIONARY as d
    from speechmill.backends.ctc import CtcAligner

    audio, truth = plant_speech(["its", "cafe"], d, seed=3)
    aligner = CtcAligner(PlantedModel(torch), d)
    al = aligner.align(audio, "It\u2019s 42 caf\u00e9!")
    assert [w.word for w in al.words] == ["It\u2019s", "42", "caf\u00e9!"]
    assert al.unaligned == 1
    assert al.words[1].score == 0.0
    assert al.words[0].start_s == pytest.approx(truth[0][0])
    assert al.words[2].start_s == pytest.approx(truth[1][0])
    assert al.words[2].end_s == pytest.approx(truth[1][1])
    assert aligner.align(audio, "   ") == Alignment((), 0, 0.0)
    none = aligner.align(audio, "42 \u0661\u0662")
    assert (none.unaligned, none.score, len(none.words)) == (2, 0.0, 2)
    short = aligner.align(audio[:100], "its")  # shorter than one frame: interpolated
    assert (short.unaligned, short.words[0].end_s) == (1, pytest.approx(100 / 16000))
    crowded = aligner.align(audio[:4000], "its cafe and a great many more words than fit")
    assert crowded.words[0].score > 0
    assert 0 < crowded.unaligned < 10
    with pytest.raises(ValueError, match="1-D"):
        aligner.align(np.zeros((2, 16000), np.float32), "its")
    with pytest.raises(ValueError, match="window_s"):
        CtcAligner(PlantedModel(torch), d, window_s=60.0)


def test_aligner_splits_text_when_the_trellis_is_too_big(torch):
    from speechmill.backends.ctc import MMS_FA_DICTIONARY, CtcAligner

    words = ("seven violins were tuned before the concert hall opened its doors " * 5).split()
    audio, truth = plant_speech(words, MMS_FA_DICTIONARY, seed=5)
    aligner = CtcAligner(
        PlantedModel(torch), MMS_FA_DICTIONARY, window_s=10.0, overlap_s=2.0, max_cells=100_000
    )
    al = aligner.align(audio, " ".join(words))
    assert [w.word for w in al.words] == words
    starts = [w.start_s for w in al.words]
    assert starts == sorted(starts)
    assert al.unaligned == 0
    exact = sum(
        w.start_s == pytest.approx(t[0]) and w.end_s == pytest.approx(t[1])
        for w, t in zip(al.words, truth, strict=True)
    )
    assert exact == len(words)


def test_window_starts_cover_the_audio():
    from speechmill.backends.ctc import window_starts

    assert window_starts(1000, 160000, 32000, 320) == [0]
    for n in (160001, 500_000, 1_234_567):
        starts = window_starts(n, 160000, 32000, 320)
        assert all(s % 320 == 0 for s in starts)
        assert starts[-1] + 160000 >= n
        assert all(b - a <= 160000 - 32000 for a, b in itertools.pairwise(starts))


def test_load_reads_a_local_state_dict_and_fails_clearly_offline(torch, tmp_path, monkeypatch):
    from speechmill.backends.ctc import CtcAligner
    from speechmill.errors import ModelError

    cfg = tiny_config()
    path = tmp_path / "model.pt"
    torch.save(torchaudio_style_state_dict(torch, cfg), path)
    aligner = CtcAligner.load(path, cfg)
    assert aligner.name == "ctc:model.pt"
    assert aligner.log_probs(np.zeros(16000, np.float32)).shape == (49, 28)

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ModelError, match=r"could not fetch.*model\.pt to this machine"):
        CtcAligner.load("MMS_FA")
    with pytest.raises(ModelError, match="neither a file nor a known hub name"):
        CtcAligner.load("no-such-model")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read"):
        CtcAligner.load(path)


@pytest.mark.slow
def test_real_mms_fa_weights_align_speech(torch):
    path = os.environ.get("SPEECHMILL_MMS_FA")
    if not path:
        pytest.skip("set SPEECHMILL_MMS_FA to a local MMS_FA model.pt to run this test")
    from speechmill.backends.ctc import CtcAligner
    from tests.audio_fixtures import SENTENCES, speech_clip

    aligner = CtcAligner.load(path)
    audio = speech_clip(seconds_pad=0.5, sentence=0)
    al = aligner.align(audio, SENTENCES[0], "en")
    assert al.unaligned == 0
    assert [w.word for w in al.words] == SENTENCES[0].split()
    assert al.words[0].start_s >= 0.4
    assert al.words[-1].end_s <= len(audio) / 16000 - 0.4
    for a, b in itertools.pairwise(al.words):
        assert a.end_s <= b.start_s
    assert al.score > 0.3
