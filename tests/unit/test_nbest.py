from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speechmill.core.asr.nbest import (
    ALT,
    BEAM,
    SAMPLE,
    Budget,
    Candidate,
    assemble,
    derive_seed,
    draw,
    local_alternatives,
    log_softmax,
    replay_sample,
    rescored,
    select_unique,
    uniform,
)

EOT = 0
V = 6  # token 0 is end-of-text


class ToyModel:
    """A Markov chain over 6 tokens; logits depend on the previous token and position."""

    def __init__(self) -> None:
        rng = np.random.default_rng(3)
        self.table = rng.normal(0, 1.5, size=(V, V))
        self.calls = 0

    def logits(self, prefix: tuple[int, ...]) -> np.ndarray:
        prev = prefix[-1] if prefix else 1
        z = self.table[prev].copy()
        z[EOT] += 1.5 * len(prefix)  # longer sequences end more often
        return z

    def forced(self, prefixes, window=32):
        self.calls += 1
        out = []
        for p in prefixes:
            seq = list(p)
            logits = [self.logits(tuple(p[:i])) for i in range(len(p))]
            while True:
                z = self.logits(tuple(seq))
                logits.append(z)
                tok = int(np.argmax(z))
                if tok == EOT or len(seq) >= 30:
                    break
                seq.append(tok)
            out.append((seq, logits))
        return out

    def logprob(self, toks) -> float:
        total = 0.0
        for i in range(len(toks) + 1):
            z = self.logits(tuple(toks[:i]))
            nxt = toks[i] if i < len(toks) else EOT
            total += float(log_softmax(z)[nxt])
        return total


def test_replay_sampling_is_deterministic_and_independent_of_batching() -> None:
    m = ToyModel()
    seeds = [derive_seed("seg-1", 0, j) for j in range(6)]
    together = replay_sample(seeds, m.forced, eot=EOT, temperature=1.0)
    alone = [replay_sample([s], m.forced, eot=EOT, temperature=1.0)[0] for s in seeds]
    assert together == alone
    assert together == replay_sample(seeds, ToyModel().forced, eot=EOT, temperature=1.0)


def test_replay_scores_are_temperature_one_logprobs_with_eot() -> None:
    m = ToyModel()
    seeds = [derive_seed("x", j) for j in range(20)]
    for res in replay_sample(seeds, m.forced, eot=EOT, temperature=0.7):
        assert res is not None
        toks, lp = res
        assert lp == pytest.approx(m.logprob(list(toks)), abs=1e-9)


def test_replay_sampling_matches_the_model_distribution() -> None:
    m = ToyModel()
    n = 1500
    seeds = [derive_seed("dist", j) for j in range(n)]
    samples = replay_sample(seeds, m.forced, eot=EOT, temperature=1.0, budget=Budget(10**7))
    # the first two tokens, against the chain's own probabilities
    first = Counter(s[0][0] if s and s[0] else EOT for s in samples)
    p = np.exp(log_softmax(m.logits(())))
    pairs = Counter(tuple(s[0][:2]) for s in samples if s and len(s[0]) >= 2)
    a, b = pairs.most_common(1)[0][0]
    p_ab = p[a] * np.exp(log_softmax(m.logits((a,))))[b]
    sd_ab = math.sqrt(n * p_ab * (1 - p_ab)) + 1
    assert abs(pairs[(a, b)] - n * p_ab) < 5 * sd_ab
    for tok in range(V):
        expected = p[tok] * n
        sd = math.sqrt(n * p[tok] * (1 - p[tok])) + 1
        assert abs(first[tok] - expected) < 5 * sd, (tok, first[tok], expected)


def test_draw_respects_masks_and_topk() -> None:
    z = np.array([-1e38, 2.0, 1.0, 0.5, -3.4e38])
    for i in range(200):
        tok, lp = draw(z, 1.0, 2, uniform(9, i))
        assert tok in (1, 2)
        assert lp == pytest.approx(float(log_softmax(z)[tok]))


def test_incomplete_samples_are_dropped() -> None:
    m = ToyModel()
    res = replay_sample([1, 2, 3], m.forced, eot=EOT, temperature=5.0, max_tokens=1)
    assert all(r is None or len(r[0]) < 1 for r in res)


def c(text: str, lp: float, method: str = BEAM, n: int = 3) -> Candidate:
    return Candidate(tuple(range(n)), text, lp, method)


def norm(t: str) -> str:
    return " ".join(t.lower().replace(",", "").replace(".", "").split())


def test_duplicates_after_normalisation_keep_the_best_raw_form() -> None:
    beam = [c("Hello, world.", -2.0), c("hello world", -1.0), c("Hello world!", -3.0)]
    got = select_unique(beam, norm, 5)
    assert len(got) == 2  # "hello world" and "hello world!"
    assert got[0][0].text == "hello world"


def test_top_up_only_when_short_and_never_repeats() -> None:
    beam = [c("a b", -1.0), c("A b.", -1.2), c("a c", -2.0)]
    rounds = []

    def sampler(k, r):
        rounds.append((k, r))
        return [
            c("a b", -0.5, SAMPLE),
            c("a d", -3.0, SAMPLE),
            c("a e", -4.0, SAMPLE),
            c("a d", -5.0, SAMPLE),
        ][:k]

    nb = assemble(beam, norm, 4, sampler=sampler, max_rounds=3)
    assert [h.text for h in nb.hyps] == ["a b", "a c", "a d", "a e"]
    assert [h.method for h in nb.hyps] == [BEAM, BEAM, SAMPLE, SAMPLE]
    assert len(set(nb.norms)) == nb.n_unique == 4 and nb.n_requested == 4
    assert rounds[0] == (3, 0)

    full = assemble([c(f"w{i}", -i) for i in range(6)], norm, 5, sampler=sampler)
    assert full.n_unique == 5 and all(h.method == BEAM for h in full.hyps)


def test_lists_are_never_padded() -> None:
    nb = assemble([c("only", -1.0)], norm, 5, sampler=lambda k, r: [c("Only.", -2, SAMPLE)])
    assert nb.n_unique == 1 and nb.n_requested == 5


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "A", "b", "b.", "c", "C,"]), st.floats(-20, 0)), max_size=25
    ),
    st.integers(1, 8),
)
def test_selection_invariants(items, n):
    cands = [c(t, lp) for t, lp in items]
    got = select_unique(cands, norm, n)
    keys = [k for _, k in got]
    assert len(keys) == len(set(keys)) <= n
    assert [x.avg_logprob for x, _ in got] == sorted((x.avg_logprob for x, _ in got), reverse=True)


def test_seeds_are_stable() -> None:
    assert derive_seed("seg", 0, 1) == derive_seed("seg", 0, 1) != derive_seed("seg", 0, 2)
    assert 0 <= uniform(5, 3) < 1 and uniform(5, 3) == uniform(5, 3)


def test_budget_bounds_the_work_and_drops_unfinished_samples() -> None:
    m = ToyModel()
    budget = Budget(rows_left=3)
    res = replay_sample(
        [derive_seed("b", j) for j in range(8)], m.forced, eot=EOT, temperature=2.0, budget=budget
    )
    assert m.calls <= 3 and budget.rows_left >= 0
    assert any(r is None for r in res)
    # finished samples are still exact
    for r in res:
        if r is not None:
            assert r[1] == pytest.approx(m.logprob(list(r[0])), abs=1e-9)


def test_special_tokens_are_never_drawn_but_scores_use_the_full_distribution() -> None:
    z = np.array([0.0, 0.5, 1.0, 9.0, 9.0])  # 3 and 4 stand for timestamp tokens
    full = log_softmax(z)
    for i in range(300):
        tok, lp = draw(z, 1.3, 0, uniform(4, i), last=2)
        assert tok <= 2 and lp == pytest.approx(float(full[tok]))


class TextModel(ToyModel):
    """The toy chain with Whisper's layout: text tokens 0..4, end-of-text 5 (last)."""

    EOT = 5

    def logits(self, prefix: tuple[int, ...]) -> np.ndarray:
        prev = prefix[-1] if prefix else 1
        z = self.table[prev].copy()
        z[self.EOT] += 0.8 * len(prefix)
        return z


def step_logprob(m: TextModel, prefix, tok) -> float:
    return float(log_softmax(m.logits(tuple(prefix)))[tok])


def test_local_alternatives_are_cheapest_single_edits_with_first_order_scores() -> None:
    m = TextModel()
    best_toks = (1, 3, 2, 4, 0, 3, 1)
    best = Candidate(best_toks, "x", -7.5)
    _, logits = m.forced([best_toks[:5]], window=1)[0]  # a window of the first 5 positions
    got = local_alternatives(best, logits[:5], 6, eot=m.EOT)
    assert 0 < len(got) <= 6
    costs = []
    for seq, est in got:
        assert seq != best_toks and m.EOT not in seq
        if len(seq) == len(best_toks):  # a substitution inside the window
            (pos,) = [i for i in range(len(seq)) if seq[i] != best_toks[i]]
            assert pos < 5
            cost = step_logprob(m, best_toks[:pos], seq[pos]) - step_logprob(
                m, best_toks[:pos], best_toks[pos]
            )
        else:  # a deletion: the model preferred the next token
            pos = next(i for i in range(len(seq)) if seq[i] != best_toks[i])
            assert seq == best_toks[:pos] + best_toks[pos + 1 :] and pos + 1 < 5
            nxt = best_toks[pos + 1]
            cost = (
                step_logprob(m, best_toks[:pos], nxt)
                - step_logprob(m, best_toks[:pos], best_toks[pos])
                - step_logprob(m, best_toks[: pos + 1], nxt)
            )
            assert est == pytest.approx(-7.5 + cost)
            continue
        assert est == pytest.approx(-7.5 + cost)
        costs.append(cost)
    assert costs == sorted(costs, reverse=True)
    # the filter keeps out what `differs` calls the same word
    same = local_alternatives(best, logits, 6, eot=m.EOT, differs=lambda a, b: False)
    assert same == []
    assert local_alternatives(best, logits, 0, eot=m.EOT) == []


def test_alternatives_fill_short_lists_after_the_beam_and_before_sampling() -> None:
    beam = [c("a b", -1.0), c("A b.", -1.2)]
    asked = []

    def alternatives(k):
        asked.append(k)
        return [c("a b", -0.1, ALT), c("a x", -2.0, ALT), c("y b", -1.5, ALT)]

    def sampler(k, r):
        return [c("s t", -9.0, SAMPLE)]

    nb = assemble(beam, norm, 4, sampler=sampler, alternatives=alternatives)
    assert [h.text for h in nb.hyps] == ["a b", "y b", "a x", "s t"]
    assert [h.method for h in nb.hyps] == [BEAM, ALT, ALT, SAMPLE]
    full = assemble([c(f"w{i}", -i) for i in range(6)], norm, 5, alternatives=alternatives)
    assert asked == [8] and full.n_unique == 5  # a full beam never asks


def test_rescoring_makes_an_estimated_score_exact_and_leaves_beam_scores() -> None:
    alt = c("a x", -2.0, ALT)
    assert rescored(alt, (-1.0, -0.5, -0.25)).sum_logprob == -1.75
    beam = c("a b", -1.0)
    assert rescored(beam, (-1.0, -0.5)).sum_logprob == -1.0
    assert rescored(beam, None).token_logprobs is None
