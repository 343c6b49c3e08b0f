"""Quality metrics of `pairs` rows: per-row WER/oracle, grouped corpus metrics, a table.

All error counting goes through `speechmill.core.text.metrics` (whitespace-split words,
characters with whitespace runs collapsed). Rows are plain mappings as DuckDB or
`pyarrow.Table.to_pylist()` return them (`tts` and `aug` are dicts or None); only
the columns in `METRIC_COLUMNS` are read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from speechmill.core.text.metrics import ErrorCounts, char_counts, word_counts

GROUP_KEYS: tuple[str, ...] = ("split", "voice", "aug", "snr", "source", "is_synthetic")
"""Dimensions `aggregate` can group by."""

METRIC_COLUMNS: tuple[str, ...] = (
    "split",
    "source",
    "is_synthetic",
    "tts",
    "aug",
    "reference",
    "hypotheses",
    "n_unique",
)
"""The `pairs` columns `aggregate` reads (select only these for large tables)."""

SNR_BUCKETS: tuple[str, ...] = ("clean", "<0", "0-5", "5-10", "10-20", ">=20")
"""`snr_bucket` labels in order: no noise, then SNR in dB, lower edge inclusive."""

AUG_ORDER: tuple[str, ...] = ("noise", "reverb", "speed", "telephone", "codec", "mask")
"""Order of the components of an `aug_label` (what degraded the audio or features;
character substitution acts on the text, per hypothesis: see `substituted`)."""

_SPLIT_ORDER = {"train": 0, "dev": 1, "validation": 1, "test": 2}


@dataclass(frozen=True)
class RowMetrics:
    """Per-row values the pipeline caches in `pairs` (wer_1best, oracle_wer, oracle_index)."""

    wer_1best: float
    oracle_wer: float
    oracle_index: int


def row_metrics(reference: str, hypotheses: Sequence[str]) -> RowMetrics:
    """WER of the 1-best, lowest WER in the list and its index (first on ties).

    Rates follow `ErrorCounts.rate`: errors / reference words (0.0 for an empty
    reference and hypothesis; the insertion count for an empty reference). An empty
    list is scored as one empty hypothesis (1.0 for a non-empty reference, i.e.
    everything deleted) and has `oracle_index` -1.
    """
    if not hypotheses:
        rate = word_counts(reference, "").rate
        return RowMetrics(rate, rate, -1)
    counts = [word_counts(reference, h) for h in hypotheses]
    best = min(range(len(counts)), key=lambda i: counts[i].errors)
    return RowMetrics(counts[0].rate, counts[best].rate, best)


# --------------------------------------------------------------------------- labels


def voice_label(tts: Mapping[str, Any] | None) -> str:
    """`engine:voice`, with `#spk<N>` for a speaker id and `+<variant>` for a variant.

    e.g. `piper:en_US-joe-medium#spk3`, `espeak-ng:en-us+f3`. A voice given as a model
    path is shortened to its file name without `.onnx`. `real` when no engine is
    recorded (pairs from real speech).
    """
    if not tts or not tts.get("engine"):
        return "real"
    engine = tts["engine"]
    voice = str(tts.get("voice") or "")
    if "/" in voice or "\\" in voice or voice.endswith(".onnx"):
        voice = voice.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".onnx")
    label = f"{engine}:{voice}" if voice else str(engine)
    variant = tts.get("variant")
    if variant:
        label += f"+{variant}"
    speaker = tts.get("speaker")
    if speaker is not None:
        label += f"#spk{speaker}"
    return label


def aug_label(aug: Mapping[str, Any] | None) -> str:
    """The applied augmentations joined by `+` in `AUG_ORDER`, or `clean`.

    A component counts as applied when its field is set (null means not applied):
    noise (`noise_type`), reverb (`reverb_rt60_s`), speed (`speed`), telephone
    (`telephone` true), codec (`codec`) and mask (`freq_masks` > 0).
    """
    if not aug:
        return "clean"
    applied = {
        "noise": aug.get("noise_type") is not None,
        "reverb": aug.get("reverb_rt60_s") is not None,
        "speed": aug.get("speed") is not None,
        "telephone": bool(aug.get("telephone")),
        "codec": aug.get("codec") is not None,
        "mask": (aug.get("freq_masks") or 0) > 0,
    }
    parts = [name for name in AUG_ORDER if applied[name]]
    return "+".join(parts) if parts else "clean"


def snr_bucket(snr_db: float | None) -> str:
    """`clean` (no noise: None or NaN), `<0`, `0-5`, `5-10`, `10-20`, `>=20` (dB, [low, high))."""
    if snr_db is None or math.isnan(snr_db):
        return "clean"
    if snr_db < 0:
        return "<0"
    if snr_db < 5:
        return "0-5"
    if snr_db < 10:
        return "5-10"
    if snr_db < 20:
        return "10-20"
    return ">=20"


def group_value(row: Mapping[str, Any], key: str) -> str:
    """The label of a row along one `GROUP_KEYS` dimension."""
    if key == "split":
        return str(row.get("split") or "")
    if key == "source":
        return str(row.get("source") or "")
    if key == "voice":
        return voice_label(row.get("tts"))
    if key == "aug":
        return aug_label(row.get("aug"))
    if key == "snr":
        aug = row.get("aug")
        return snr_bucket(aug.get("snr_db") if aug else None)
    if key == "is_synthetic":
        return "real" if row.get("is_synthetic") is False else "synthetic"
    raise ValueError(f"unknown group key {key!r} (choose from {', '.join(GROUP_KEYS)})")


# --------------------------------------------------------------------------- aggregation


@dataclass(frozen=True)
class GroupMetrics:
    """Corpus metrics of one group of pairs (counts; rates are properties).

    - `word`/`char`: edits turning each reference into its 1-best (an empty list
      counts as an empty 1-best), summed over the group; `ref_len` is the number
      of reference words/characters.
    - `oracle_errors`: sum over rows of the fewest word errors of any hypothesis.
    - `compositional_misses`: reference word tokens, counted with multiplicity,
      whose word type occurs in no hypothesis of the row's list (a reference word
      repeated twice counts as covered twice if any hypothesis contains it once).
      This ignores order and insertions: it is the error floor of any output made
      only of words from the list, as in HyPoradise's compositional oracle.
    - Diversity: `hypotheses` and `distinct_hypotheses` (distinct within each list,
      summed); `lists` (rows with at least one hypothesis) and `identical_lists`
      (those with a single distinct hypothesis, so a one-hypothesis list counts:
      it offers no alternative); `pairwise_lists` (rows with >= 2 hypotheses) and
      `pairwise_sum` (sum over them of the mean, over unordered hypothesis pairs, of
      word edit distance / max(word lengths), 0 for two empty hypotheses).
    - `n_unique_sum`: sum of `n_unique` (distinct hypotheses when it is null).
    """

    key: dict[str, str]
    pairs: int
    word: ErrorCounts
    char: ErrorCounts
    oracle_errors: int
    compositional_misses: int
    hypotheses: int
    distinct_hypotheses: int
    lists: int
    identical_lists: int
    pairwise_lists: int
    pairwise_sum: float
    n_unique_sum: int

    @property
    def ref_words(self) -> int:
        return self.word.ref_len

    @property
    def ref_chars(self) -> int:
        return self.char.ref_len

    @property
    def wer(self) -> float:
        return self.word.rate

    @property
    def sub_rate(self) -> float:
        return _rate(self.word.substitutions, self.word.ref_len)

    @property
    def del_rate(self) -> float:
        return _rate(self.word.deletions, self.word.ref_len)

    @property
    def ins_rate(self) -> float:
        return _rate(self.word.insertions, self.word.ref_len)

    @property
    def cer(self) -> float:
        return self.char.rate

    @property
    def oracle_wer(self) -> float:
        """Sum of each list's fewest word errors / reference words."""
        return _rate(self.oracle_errors, self.word.ref_len)

    @property
    def compositional_oracle_wer(self) -> float:
        """Reference tokens absent from every hypothesis of their list / reference words."""
        return _rate(self.compositional_misses, self.word.ref_len)

    @property
    def distinct_ratio(self) -> float:
        """Distinct (within each list) normalised hypotheses / hypotheses; 0 with none."""
        return self.distinct_hypotheses / self.hypotheses if self.hypotheses else 0.0

    @property
    def identical_share(self) -> float:
        """Share of non-empty lists with one distinct hypothesis; 0 with none."""
        return self.identical_lists / self.lists if self.lists else 0.0

    @property
    def pairwise_distance(self) -> float | None:
        """Mean pairwise normalised word edit distance; None without any list of >= 2."""
        return self.pairwise_sum / self.pairwise_lists if self.pairwise_lists else None

    @property
    def mean_n_unique(self) -> float:
        return self.n_unique_sum / self.pairs if self.pairs else 0.0

    @property
    def mean_hypotheses(self) -> float:
        return self.hypotheses / self.pairs if self.pairs else 0.0


def _rate(count: int, total: int) -> float:
    """count / total, with `ErrorCounts.rate`'s convention for a zero total."""
    if total == 0:
        return float(count)
    return count / total


@dataclass
class _Acc:
    pairs: int = 0
    word: ErrorCounts = field(default_factory=ErrorCounts)
    char: ErrorCounts = field(default_factory=ErrorCounts)
    oracle_errors: int = 0
    compositional_misses: int = 0
    hypotheses: int = 0
    distinct_hypotheses: int = 0
    lists: int = 0
    identical_lists: int = 0
    pairwise_lists: int = 0
    pairwise_sum: float = 0.0
    n_unique_sum: int = 0

    def add(self, row: Mapping[str, Any]) -> None:
        reference = str(row.get("reference") or "")
        hyps = [str(h or "") for h in (row.get("hypotheses") or [])]
        best = hyps[0] if hyps else ""
        self.pairs += 1
        self.word = self.word + word_counts(reference, best)
        self.char = self.char + char_counts(reference, best)
        self.oracle_errors += min(
            (word_counts(reference, h).errors for h in hyps),
            default=word_counts(reference, "").errors,
        )
        vocab = {w for h in hyps for w in h.split()}
        self.compositional_misses += sum(1 for w in reference.split() if w not in vocab)
        distinct = len(set(hyps))
        self.hypotheses += len(hyps)
        self.distinct_hypotheses += distinct
        if hyps:
            self.lists += 1
            self.identical_lists += int(distinct == 1)
        if len(hyps) >= 2:
            self.pairwise_lists += 1
            self.pairwise_sum += pairwise_distance(hyps)
        n_unique = row.get("n_unique")
        self.n_unique_sum += distinct if n_unique is None else int(n_unique)

    def freeze(self, key: dict[str, str]) -> GroupMetrics:
        return GroupMetrics(
            key=key,
            pairs=self.pairs,
            word=self.word,
            char=self.char,
            oracle_errors=self.oracle_errors,
            compositional_misses=self.compositional_misses,
            hypotheses=self.hypotheses,
            distinct_hypotheses=self.distinct_hypotheses,
            lists=self.lists,
            identical_lists=self.identical_lists,
            pairwise_lists=self.pairwise_lists,
            pairwise_sum=self.pairwise_sum,
            n_unique_sum=self.n_unique_sum,
        )


def pairwise_distance(hypotheses: Sequence[str]) -> float:
    """Mean over unordered pairs of word edit distance / max(word lengths); 0 below 2."""
    toks = [h.split() for h in hypotheses]
    total = 0.0
    count = 0
    for i in range(len(toks)):
        for j in range(i + 1, len(toks)):
            longest = max(len(toks[i]), len(toks[j]))
            if longest:
                total += word_counts(hypotheses[i], hypotheses[j]).errors / longest
            count += 1
    return total / count if count else 0.0


def _sort_key(key: str, value: str) -> tuple[int, str]:
    if key == "split":
        return (_SPLIT_ORDER.get(value, 3), value)
    if key == "snr" and value in SNR_BUCKETS:
        return (SNR_BUCKETS.index(value), value)
    if key == "aug":
        return (0 if value == "clean" else 1 + value.count("+"), value)
    if key == "is_synthetic":
        return (0 if value == "synthetic" else 1, value)
    return (0, value)


def aggregate(rows: Iterable[Mapping[str, Any]], by: Sequence[str] = ()) -> list[GroupMetrics]:
    """Group rows by the `by` dimensions (from `GROUP_KEYS`) and compute `GroupMetrics`.

    An empty `by` gives one overall group (also for no rows). Groups come sorted:
    splits train/dev/test, SNR buckets ascending, `clean` augmentation first, the
    rest alphabetically. Raises ValueError for an unknown or repeated key.
    """
    by = tuple(by)
    unknown = [k for k in by if k not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"unknown group keys {unknown} (choose from {', '.join(GROUP_KEYS)})")
    if len(set(by)) != len(by):
        raise ValueError(f"repeated group keys in {list(by)}")
    accs: dict[tuple[str, ...], _Acc] = {}
    if not by:
        accs[()] = _Acc()
    for row in rows:
        gkey = tuple(group_value(row, k) for k in by)
        acc = accs.get(gkey)
        if acc is None:
            acc = accs[gkey] = _Acc()
        acc.add(row)
    ordered = sorted(accs, key=lambda g: [_sort_key(k, v) for k, v in zip(by, g, strict=True)])
    return [accs[g].freeze(dict(zip(by, g, strict=True))) for g in ordered]


# --------------------------------------------------------------------------- output

_PCT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("WER", "wer"),
    ("sub", "sub_rate"),
    ("del", "del_rate"),
    ("ins", "ins_rate"),
    ("CER", "cer"),
    ("oracle", "oracle_wer"),
    ("comp.oracle", "compositional_oracle_wer"),
    ("distinct", "distinct_ratio"),
    ("identical", "identical_share"),
)


def format_table(groups: Sequence[GroupMetrics], by: Sequence[str] = ()) -> str:
    """A fixed-width text table: one line per group, rates as percentages (one decimal).

    `pw.dist` is the mean pairwise normalised word edit distance (`-` when no list
    has two hypotheses); `n_unique` the mean number of distinct hypotheses.
    """
    header = [*by, "pairs", "words", *(h for h, _ in _PCT_COLUMNS), "pw.dist", "n_unique"]
    if not by:
        header.insert(0, "group")
    lines: list[list[str]] = []
    for g in groups:
        cells = [g.key.get(k, "") for k in by] if by else ["all"]
        cells += [str(g.pairs), str(g.ref_words)]
        cells += [f"{100 * getattr(g, attr):.1f}" for _, attr in _PCT_COLUMNS]
        pw = g.pairwise_distance
        cells += ["-" if pw is None else f"{pw:.3f}", f"{g.mean_n_unique:.2f}"]
        lines.append(cells)
    n_keys = len(by) if by else 1
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        parts = [
            c.ljust(w) if i < n_keys else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule, *(render(r) for r in lines)])


def to_records(groups: Sequence[GroupMetrics]) -> list[dict[str, Any]]:
    """JSON-ready dicts: the group key, counts and rates (fractions, not percentages)."""
    out: list[dict[str, Any]] = []
    for g in groups:
        out.append(
            {
                "group": dict(g.key),
                "pairs": g.pairs,
                "ref_words": g.ref_words,
                "ref_chars": g.ref_chars,
                "wer": g.wer,
                "substitutions": g.word.substitutions,
                "deletions": g.word.deletions,
                "insertions": g.word.insertions,
                "sub_rate": g.sub_rate,
                "del_rate": g.del_rate,
                "ins_rate": g.ins_rate,
                "cer": g.cer,
                "char_substitutions": g.char.substitutions,
                "char_deletions": g.char.deletions,
                "char_insertions": g.char.insertions,
                "oracle_wer": g.oracle_wer,
                "oracle_errors": g.oracle_errors,
                "compositional_oracle_wer": g.compositional_oracle_wer,
                "compositional_misses": g.compositional_misses,
                "hypotheses": g.hypotheses,
                "distinct_hypotheses": g.distinct_hypotheses,
                "distinct_ratio": g.distinct_ratio,
                "identical_share": g.identical_share,
                "pairwise_distance": g.pairwise_distance,
                "mean_n_unique": g.mean_n_unique,
                "mean_hypotheses": g.mean_hypotheses,
            }
        )
    return out
