"""The N-best recipe: distinct-after-normalisation lists, topped up by replayable sampling.

One beam search per item returns `beam_size` hypotheses. They are normalised,
de-duplicated (the best-scoring raw form of each normalised text is kept) and
the top N kept. Only if fewer than N remain, sampled decodes from the same
encoder output are added, never repeats.

Sampling is *replayable*: the token at position `p` of sample `s` is drawn by
inverse-CDF from the model's distribution at temperature T with the uniform
number `u(s, p)` = a hash of (sample seed, position). The sampler only needs a
teacher-forced decode (`ForcedDecode`): the model returns the greedy
continuation of a prefix with the logits of every position; the sampler walks
those positions, draws its own token, and re-decodes from the first position
where its draw differs from the greedy token. The result is exact ancestral
sampling, identical for the same (item, seed) whatever batch the item is in,
and the log-probabilities at temperature 1 come from the same logits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

BEAM = "beam"
SAMPLE = "sample"
ALT = "alt"

# Logits at or below this are masked (suppressed tokens come back as -FLT_MAX).
MASKED = -1e30


@dataclass(frozen=True)
class Candidate:
    """One decoded hypothesis with its score (natural log, temperature 1)."""

    tokens: tuple[int, ...]
    text: str
    sum_logprob: float
    method: str = BEAM
    temperature: float | None = None
    seed: int | None = None
    token_logprobs: tuple[float, ...] | None = None  # per text token, then end-of-text

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def avg_logprob(self) -> float:
        """sum_logprob / (tokens + 1): the end-of-text token is part of the sum."""
        return self.sum_logprob / (len(self.tokens) + 1)


@dataclass(frozen=True)
class NBest:
    """A final list: distinct after normalisation, beam hypotheses first, best first."""

    hyps: tuple[Candidate, ...]
    norms: tuple[str, ...]
    n_requested: int

    @property
    def n_unique(self) -> int:
        return len(self.hyps)


def select_unique(
    cands: Iterable[Candidate],
    normalize: Callable[[str], str],
    n: int,
    taken: Sequence[str] = (),
) -> list[tuple[Candidate, str]]:
    """Best raw form per normalised text (not in `taken`), best first, at most n."""
    best: dict[str, Candidate] = {}
    blocked = set(taken)
    for c in cands:
        key = normalize(c.text)
        if key in blocked:
            continue
        cur = best.get(key)
        if cur is None or c.avg_logprob > cur.avg_logprob:
            best[key] = c
    ranked = sorted(best.items(), key=lambda kv: (-kv[1].avg_logprob, kv[0]))
    return [(c, k) for k, c in ranked[:n]]


def derive_seed(*parts: str | int) -> int:
    """A 63-bit seed from anything printable (item id, round, index)."""
    h = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big") >> 1


def uniform(seed: int, position: int) -> float:
    """The uniform number in [0, 1) used at one position of one sample."""
    h = hashlib.blake2b(f"{seed}:{position}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0**64


def log_softmax(
    logits: npt.NDArray[np.floating], temperature: float = 1.0
) -> npt.NDArray[np.float64]:
    z = np.asarray(logits, dtype=np.float64)
    valid = z > MASKED
    z = np.where(valid, z / temperature, -np.inf)
    m = float(z.max())
    return z - (m + math.log(float(np.exp(z - m).sum())))


def log_softmax_rows(rows: Sequence[npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
    """`log_softmax` of each row at T=1 (masked entries -inf), all rows at once."""
    z = np.asarray(np.stack(rows), dtype=np.float64)
    z = np.where(z > MASKED, z, -np.inf)
    m = z.max(axis=1, keepdims=True)
    return np.asarray(z - (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))))


def draw(
    logits: npt.NDArray[Any], temperature: float, topk: int, u: float, last: int | None = None
) -> tuple[int, float]:
    """Inverse-CDF draw at temperature T (optionally top-k) among tokens 0..last.

    Returns (token, log-prob at T=1 under the full distribution, the one beam
    search scores with). `last` keeps special tokens (timestamps, language tags)
    out of samples: Whisper's text tokens and end-of-text come first.
    """
    lp1 = log_softmax(logits, 1.0)
    lpt = lp1[: None if last is None else last + 1] / temperature
    if topk > 0 and topk < lpt.size:
        cut = np.partition(lpt, -topk)[-topk]
        lpt = np.where(lpt >= cut, lpt, -np.inf)
    p = np.exp(lpt - lpt.max())
    cdf = np.cumsum(p)
    tok = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    tok = min(tok, lpt.size - 1)
    while not np.isfinite(lpt[tok]):  # float edge at the end of the cdf
        tok -= 1
    return tok, float(lp1[tok])


def token_logprobs(
    tokens: Sequence[int], logits: Sequence[npt.NDArray[Any]], eot: int
) -> tuple[float, ...] | None:
    """Log-probs at T=1 of each token, then of end-of-text, from teacher-forced logits
    (logits[i] is the distribution at position i). None if the logits are too short."""
    if len(logits) < len(tokens) + 1:
        return None
    lp = log_softmax_rows(logits[: len(tokens) + 1])
    return tuple(float(x) for x in lp[np.arange(len(tokens) + 1), [*tokens, eot]])


class ForcedDecode(Protocol):
    """A teacher-forced decode: for each prefix, the greedy continuation (prefix included,
    at most `window` tokens past the longest prefix) and the logits at every position
    from 0 to the last step decoded (the end-of-text step when it ended)."""

    def __call__(
        self, prefixes: Sequence[tuple[int, ...]], window: int = ...
    ) -> list[tuple[Sequence[int], Sequence[npt.NDArray[Any]]]]: ...


@dataclass
class _Sample:
    seed: int
    prefix: list[int]
    logprobs: list[float]
    done: bool = False
    complete: bool = False


@dataclass
class Budget:
    """Decoder rows a list's top-ups may still spend (each forced decode row costs
    about one cross-attention projection of the encoder output plus the prefix)."""

    rows_left: int


def replay_sample(
    seeds: Sequence[int],
    decode: ForcedDecode,
    *,
    eot: int,
    temperature: float,
    topk: int = 0,
    max_tokens: int = 224,
    budget: Budget | None = None,
    last_token: int | None = None,
) -> list[tuple[tuple[int, ...], float] | None]:
    """One exact ancestral sample per seed: (tokens, sum logprob at T=1 incl. EOT).

    A sample that reaches `max_tokens` without end-of-text, or that the budget
    cannot finish, is returned as None (incomplete hypotheses are never used).
    Only tokens up to `last_token` are drawn (for Whisper: end-of-text).
    """
    samples = [_Sample(s, [], []) for s in seeds]
    budget = budget if budget is not None else Budget(rows_left=64 * max(1, len(seeds)))
    while any(not s.done for s in samples):
        active = [s for s in samples if not s.done]
        groups: dict[tuple[int, ...], list[_Sample]] = {}
        for s in active:
            groups.setdefault(tuple(s.prefix), []).append(s)
        prefixes = list(groups)
        if len(prefixes) > budget.rows_left:
            break
        budget.rows_left -= len(prefixes)
        results = decode(prefixes)
        for prefix, (seq, logits) in zip(prefixes, results, strict=True):
            for s in groups[prefix]:
                before = len(s.logprobs)
                _advance(
                    s,
                    seq=seq,
                    logits=logits,
                    eot=eot,
                    temperature=temperature,
                    topk=topk,
                    max_tokens=max_tokens,
                    last_token=last_token,
                )
                if len(s.logprobs) == before:  # the model gave nothing new: stop
                    s.done = True
    out: list[tuple[tuple[int, ...], float] | None] = []
    for s in samples:
        out.append((tuple(s.prefix), float(sum(s.logprobs))) if s.complete else None)
    return out


def _advance(
    s: _Sample,
    *,
    seq: Sequence[int],
    logits: Sequence[npt.NDArray[Any]],
    eot: int,
    temperature: float,
    topk: int,
    max_tokens: int,
    last_token: int | None,
) -> None:
    pos = len(s.prefix)
    while pos < len(logits):
        tok, lp = draw(logits[pos], temperature, topk, uniform(s.seed, pos), last_token)
        s.logprobs.append(lp)
        if tok == eot:
            s.done = s.complete = True
            return
        s.prefix.append(tok)
        if len(s.prefix) >= max_tokens:
            s.done = True
            return
        greedy = seq[pos] if pos < len(seq) else None
        pos += 1
        if tok != greedy:
            return  # diverged from the greedy continuation: decode again from here
    # ran out of logits (the model stopped at its length limit)
    if pos >= max_tokens:
        s.done = True


def local_alternatives(
    best: Candidate,
    logits: Sequence[npt.NDArray[Any]],
    k: int,
    *,
    eot: int,
    differs: Callable[[int, int], bool] | None = None,
) -> list[tuple[tuple[int, ...], float]]:
    """Up to k one-token substitutions (or deletions) of `best`, cheapest first, each with
    its estimated sum log-prob at T=1.

    `logits[i]` is the model's distribution at position i of `best` (teacher-forced);
    positions past the last one given are left alone (a decode grows with its length,
    not its rows, so callers force only a window of a long hypothesis, all items of a
    batch in one call). The k substitutions that cost the least (log-prob of the new
    token minus the old one; never end-of-text, a special token, or a token
    `differs(old, new)` calls the same word) are returned with `best`'s score less the
    old token's log-prob plus the new one's: exact up to the substituted position, the
    tokens after it scored in `best`'s context (a first-order estimate;
    `asr.token_logprobs` rescoring makes it exact). A substitution by the token that
    follows (the model skipping one) is returned as that token's deletion.
    """
    tokens = best.tokens[: len(logits)]
    if k <= 0 or not tokens:
        return []
    lp = log_softmax_rows(logits[: len(tokens)])
    picked = lp[np.arange(len(tokens)), np.asarray(tokens)]
    text = lp[:, :eot]  # text tokens only
    options: list[tuple[float, int, int]] = []
    for pos, old in enumerate(tokens):
        row = text[pos]
        for tok in np.argpartition(row, -4)[-4:]:
            new = int(tok)
            if new == old or not np.isfinite(row[new]):
                continue
            if differs is not None and not differs(old, new):
                continue
            options.append((float(row[new] - picked[pos]), pos, new))
    options.sort(key=lambda o: (-o[0], o[1], o[2]))
    full = best.tokens
    out: list[tuple[tuple[int, ...], float]] = []
    for cost, pos, new in options:
        if len(out) == k:
            break
        if pos + 1 < len(full) and new == full[pos + 1]:
            # the model would skip the old token: the alternative is its deletion
            if pos + 1 >= len(tokens):
                continue
            out.append((full[:pos] + full[pos + 1 :], best.sum_logprob + cost - picked[pos + 1]))
        else:
            out.append(((*full[:pos], new, *full[pos + 1 :]), best.sum_logprob + cost))
    return [(seq, float(lp)) for seq, lp in out]


def rescored(c: Candidate, lps: tuple[float, ...] | None) -> Candidate:
    """`c` with its per-token log-probs; an estimated (`ALT`) score becomes their sum."""
    if lps is None:
        return dataclasses.replace(c, token_logprobs=None)
    exact = float(sum(lps)) if c.method == ALT else c.sum_logprob
    return dataclasses.replace(c, token_logprobs=lps, sum_logprob=exact)


def assemble(
    beam: Sequence[Candidate],
    normalize: Callable[[str], str],
    n: int,
    *,
    sampler: Callable[[int, int], Sequence[Candidate]] | None = None,
    max_rounds: int = 3,
    alternatives: Callable[[int], Sequence[Candidate]] | None = None,
) -> NBest:
    """The recipe: distinct beam hypotheses, then local alternatives and sampled top-ups
    while fewer than n.

    `alternatives(k)` returns up to k one-token substitutions of the 1-best;
    `sampler(k, round)` returns k sampled candidates (already seeded per item).
    """
    chosen = select_unique(beam, normalize, n)
    extra: list[tuple[Candidate, str]] = []
    if alternatives is not None and chosen and len(chosen) < n:
        need = n - len(chosen)
        taken = [k for _, k in chosen]
        extra.extend(select_unique(alternatives(2 * need + 2), normalize, need, taken))
    rounds = 0
    while sampler is not None and len(chosen) + len(extra) < n and rounds < max_rounds:
        need = n - len(chosen) - len(extra)
        drawn = sampler(need + 1, rounds)
        taken = [k for _, k in chosen] + [k for _, k in extra]
        extra.extend(select_unique(drawn, normalize, need, taken))
        rounds += 1
    extra.sort(key=lambda ck: -ck[0].avg_logprob)
    final = chosen + extra
    return NBest(tuple(c for c, _ in final), tuple(k for _, k in final), n)
