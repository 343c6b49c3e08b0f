"""One `pairs` row from an N-best list and its reference: synthetic and real pairs alike.

The N-best columns come from `core.asr.decoding.nbest_columns` (the mapping the
`hypotheses` table uses); here they get the pair's names (`hypotheses_raw` are the
decoded texts, `hypotheses_presub` the normalised ones, `temperatures`/`seeds`),
the seeded character substitution and the per-row metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from speechmill.core.asr.decoding import NBestColumns
from speechmill.core.quality.pair_metrics import row_metrics
from speechmill.core.synth.synthplan import substitute_list
from speechmill.schemas.synth import AugParams, Pair, TtsParams


@dataclass(frozen=True)
class PairSource:
    """Where a pair comes from: everything of its row but the hypotheses."""

    pair_id: str
    text_id: str
    source: str
    split: str
    language: str
    reference: str  # normalised: what hypotheses are scored against
    reference_raw: str  # as spoken (synthetic) or as labelled (real)
    tts: TtsParams
    aug: AugParams
    audio_uri: str
    clean_audio_uri: str
    duration_s: float
    is_synthetic: bool


def make_pair(
    src: PairSource,
    cols: NBestColumns,
    *,
    model_id: str,
    decoder_id: str,
    beam_size: int,
    normalizer: tuple[str, str],
    substitution: tuple[float, float, int],
    run_id: str,
) -> Pair:
    """The row; `substitution` is (share, rate, seed) of the character substitution."""
    share, rate, seed = substitution
    final, flags = substitute_list(cols.texts_norm, share=share, rate=rate, seed=seed)
    metrics = row_metrics(src.reference, final)
    return Pair(
        pair_id=src.pair_id,
        text_id=src.text_id,
        source=src.source,
        split=src.split,
        language=src.language,
        reference=src.reference,
        reference_raw=src.reference_raw,
        hypotheses=final,
        hypotheses_raw=cols.texts,
        hypotheses_presub=cols.texts_norm,
        substituted=flags,
        sum_logprob=cols.sum_logprob,
        num_tokens=cols.num_tokens,
        avg_logprob=cols.avg_logprob,
        method=cols.method,
        token_logprobs=cols.token_logprobs,
        n_requested=cols.n_requested,
        n_unique=cols.n_unique,
        model_id=model_id,
        decoder_id=decoder_id,
        beam_size=beam_size,
        temperatures=cols.temperature,
        seeds=cols.seed,
        tts=src.tts,
        aug=src.aug,
        audio_uri=src.audio_uri,
        clean_audio_uri=src.clean_audio_uri,
        duration_s=src.duration_s,
        is_synthetic=src.is_synthetic,
        wer_1best=metrics.wer_1best,
        oracle_wer=metrics.oracle_wer,
        oracle_index=metrics.oracle_index,
        normalizer=normalizer[0],
        normalizer_version=normalizer[1],
        run_id=run_id,
    )
