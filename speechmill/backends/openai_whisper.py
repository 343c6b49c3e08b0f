"""The openai-whisper (PyTorch) ASR backend (CPU and CUDA).

The same recipe as the faster-whisper backend, on openai-whisper's own modules: one
encoder pass per batch (per encoder context length), one batched beam search over the
batch driving openai-whisper's `DecodingTask` (its logit filters, its
`BeamSearchDecoder`), where every finished beam is kept with its sum log-probability
instead of the one its ranker picks; then the shared N-best recipe
(`speechmill.core.asr.nbest.assemble`), with sampled top-ups and token rescoring from a
teacher-forced decode against the same encoder output.

Models: a `.pt` openai-whisper checkpoint, a name openai-whisper downloads (`small`,
`large-v3`; online only), or a CTranslate2 Whisper directory, `bundled:tiny.en`
included, converted once into the cache (`speechmill.backends.ct2_convert`).
torch and whisper are imported on the worker only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechmill.backends.ct2_convert import convert, file_sha256
from speechmill.backends.faster_whisper import (
    BUNDLED,
    FORCED_WINDOW,
    FRAMES_PER_SECOND,
    MAX_FRAMES,
    _cache_dir,
    context_frames,
    model_fingerprint,
    resolve_model,
)
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
    Candidate,
    ForcedDecode,
    assemble,
)
from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.core.text.normalize import Normalizer
from speechmill.errors import ModelError

log = logging.getLogger(__name__)

HOP = SAMPLE_RATE // FRAMES_PER_SECOND  # samples per log-mel frame


# ----------------------------------------------------------------------------- model files


def converted_path(ct2_dir: str) -> Path:
    """Where the openai-whisper checkpoint of a CTranslate2 directory is cached."""
    key = model_fingerprint(ct2_dir)
    return _cache_dir() / "openai-whisper" / f"ct2-{key[:32]}.pt"


def checkpoint_hash(path: str) -> str:
    """sha256 of a checkpoint file (cached by path, size and mtime)."""
    st = os.stat(path)
    stamp = [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]
    key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()
    cache = _cache_dir() / "checkpoint-hashes.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return str(known[key])
    digest = file_sha256(path)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        known[key] = digest
        cache.write_text(json.dumps(known))
    except OSError:
        pass
    return digest


def _whisper_names() -> dict[str, str]:
    try:
        import whisper
    except ImportError as e:
        raise ModelError(
            "the openai-whisper backend needs openai-whisper and torch: "
            "pip install 'speechmill[openai-whisper]'"
        ) from e
    return dict(whisper._MODELS)


def resolve_checkpoint(spec: str) -> tuple[str, str]:
    """(checkpoint file, its sha256) for a model spec; converts a CTranslate2 directory
    (or `bundled:tiny.en`) once, downloads a named model (online only)."""
    if spec == BUNDLED or os.path.isdir(spec):
        ct2 = resolve_model(spec)
        out = converted_path(ct2)
        if not out.is_file():
            log.info("converting %s to an openai-whisper checkpoint at %s", ct2, out)
            done = convert(ct2, out)
            return str(out), done.sha256
        return str(out), checkpoint_hash(str(out))
    if os.path.isfile(spec):
        return spec, checkpoint_hash(spec)
    names = _whisper_names()
    if spec not in names:
        raise ModelError(
            f"ASR model {spec!r} is not a checkpoint file, a CTranslate2 directory, "
            f"{BUNDLED}, nor an openai-whisper model name ({', '.join(names)})"
        )
    import whisper

    url = names[spec]
    root = os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "whisper",
    )
    try:
        path = whisper._download(url, root, in_memory=False)
    except Exception as e:
        raise ModelError(
            f"could not download openai-whisper model {spec!r} ({type(e).__name__}: {e}). "
            f"Offline, use asr.model: {BUNDLED} or a local .pt checkpoint."
        ) from None
    return str(path), url.split("/")[-2]  # the file's sha256, checked by the download


def load_whisper(path: str, device: str, alignment_heads: bytes | None = None) -> Any:
    """An openai-whisper `Whisper` module from a checkpoint file, on `device`, in eval mode.

    Weights load as float32 (a float16 checkpoint is widened, as openai-whisper does);
    decoding on CUDA runs in float16 through openai-whisper's casting layers."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = Whisper(ModelDimensions(**ckpt["dims"]))
        model.load_state_dict(ckpt["model_state_dict"])
    except Exception as e:
        raise ModelError(
            f"{path} is not an openai-whisper checkpoint ({type(e).__name__}: {str(e)[:300]})"
        ) from None
    heads = ckpt.get("alignment_heads")
    if heads is not None:
        model.register_buffer("alignment_heads", heads.to(torch.bool).to_sparse(), persistent=False)
    elif alignment_heads is not None:
        model.set_alignment_heads(alignment_heads)
    return model.to(device).eval()


def resolve_torch_device(device: str) -> str:
    """`auto`: CUDA when torch sees a GPU on this worker, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("asr.device is cuda but torch sees no CUDA device on this worker")
    return device


# ----------------------------------------------------------------------------- beam search


@functools.cache
def _batched_beam_search() -> Any:
    """openai-whisper's `BeamSearchDecoder` with its step unchanged but for where it runs:
    one top-k over the whole batch and one copy to the host, instead of a top-k and a
    device-to-host copy per row and per candidate (`.item()`), which on CUDA synchronise
    the device each time and left the GPU slower than the CPU."""
    import torch
    import torch.nn.functional as F
    from whisper.decoding import BeamSearchDecoder

    class BatchedBeamSearch(BeamSearchDecoder):
        finished_sequences: list[dict[tuple[int, ...], float]] | None

        def update(self, tokens: Any, logits: Any, sum_logprobs: Any) -> tuple[Any, bool]:
            if tokens.shape[0] % self.beam_size != 0:
                raise ValueError(f"{tokens.shape}[0] % {self.beam_size} != 0")
            n_audio = tokens.shape[0] // self.beam_size
            if self.finished_sequences is None:
                self.finished_sequences = [{} for _ in range(n_audio)]
            logprobs = F.log_softmax(logits.float(), dim=-1)
            top_lp, top_tok = logprobs.topk(self.beam_size + 1, dim=-1)
            new_lp: list[list[float]] = (sum_logprobs[:, None] + top_lp).cpu().tolist()
            new_tok: list[list[int]] = top_tok.cpu().tolist()
            prefixes: list[list[int]] = tokens.cpu().tolist()
            next_tokens: list[tuple[int, ...]] = []
            next_lp: list[float] = []
            source_indices: list[int] = []
            finished_sequences: list[dict[tuple[int, ...], float]] = []
            for i in range(n_audio):
                scores: dict[tuple[int, ...], float] = {}
                sources: dict[tuple[int, ...], int] = {}
                finished: dict[tuple[int, ...], float] = {}
                for j in range(self.beam_size):
                    idx = i * self.beam_size + j
                    for lp, tok in zip(new_lp[idx], new_tok[idx], strict=True):
                        sequence = (*prefixes[idx], tok)
                        scores[sequence] = lp
                        sources[sequence] = idx
                saved = 0
                for sequence in sorted(scores, key=scores.__getitem__, reverse=True):
                    if sequence[-1] == self.eot:
                        finished[sequence] = scores[sequence]
                    else:
                        next_lp.append(scores[sequence])
                        next_tokens.append(sequence)
                        source_indices.append(sources[sequence])
                        saved += 1
                        if saved == self.beam_size:
                            break
                finished_sequences.append(finished)
            sum_logprobs[: len(next_lp)] = torch.tensor(next_lp, device=sum_logprobs.device)
            tokens = torch.tensor(next_tokens, device=tokens.device)
            self.inference.rearrange_kv_cache(source_indices)
            for previously, newly in zip(self.finished_sequences, finished_sequences, strict=True):
                for seq in sorted(newly, key=newly.__getitem__, reverse=True):
                    if len(previously) >= self.max_candidates:
                        break
                    previously[seq] = newly[seq]
            completed = all(len(s) >= self.max_candidates for s in self.finished_sequences)
            return tokens, completed

    return BatchedBeamSearch


# ----------------------------------------------------------------------------- backend


def _first_positions(forced: ForcedDecode, tokens: tuple[int, ...]) -> Sequence[np.ndarray]:
    """The distributions at each position of `tokens` (one teacher-forced decode)."""
    return forced([tokens], window=1)[0][1]


class OpenAIWhisperBackend:
    """A loaded openai-whisper model (one per worker process)."""

    def __init__(self, model_id: str, model_hash: str, model: Any, device: str) -> None:
        self.model_id = model_id
        self.model_hash = model_hash
        self.multilingual = bool(model.is_multilingual)
        self.device = device
        self.fp16 = device.startswith("cuda")
        self._model = model
        self._lock = threading.Lock()

    @staticmethod
    def load(
        model: str = BUNDLED, device: str = "auto", cpu_threads: int = 0
    ) -> OpenAIWhisperBackend:
        _whisper_names()  # a clear error where openai-whisper or torch is missing
        import torch
        import whisper

        path, digest = resolve_checkpoint(model)
        dev = resolve_torch_device(device)
        if cpu_threads > 0:
            torch.set_num_threads(cpu_threads)
        heads = whisper._ALIGNMENT_HEADS.get(model)
        return OpenAIWhisperBackend(model, digest, load_whisper(path, dev, heads), dev)

    # ------------------------------------------------------------------ helpers
    def previous(self, text: str | None) -> list[int]:
        """Whisper's previous-text prompt: <|startofprev|> and the text's last tokens
        (at most half the text context, as openai-whisper and faster-whisper cut it)."""
        if not text or not text.strip():
            return []
        tk = self.tokenizer("en")  # the encoding does not depend on the language
        keep = self._model.dims.n_text_ctx // 2 - 1
        return [tk.sot_prev, *tk.encode(" " + text.strip())[-keep:]]

    def tokenizer(self, language: str) -> Any:
        from whisper.tokenizer import get_tokenizer

        return get_tokenizer(
            self.multilingual,
            num_languages=self._model.num_languages,
            language=language if self.multilingual else None,
            task="transcribe",
        )

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel features (n_mels, frames) as faster-whisper computes them (160 samples
        of padding, at most 30 s)."""
        import torch
        from whisper.audio import log_mel_spectrogram

        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"audio must be a non-empty 1-D array, got shape {audio.shape}")
        if audio.size > MAX_FRAMES * HOP:
            raise ValueError(f"audio longer than 30 s ({audio.size / SAMPLE_RATE:.1f} s)")
        samples = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        mel = log_mel_spectrogram(samples, self._model.dims.n_mels, padding=HOP)
        return np.asarray(mel[:, :MAX_FRAMES].numpy(), dtype=np.float32)

    def encode(self, feats: Sequence[np.ndarray], frames: int) -> Any:
        """Encoder output (batch, frames // 2, n_audio_state) for features zero-padded (or
        cut) to `frames`; the positional embedding is cut to the input length, as
        CTranslate2 does (openai-whisper's own forward only takes 30 s)."""
        import torch
        import torch.nn.functional as F

        n_mels = feats[0].shape[0]
        batch = np.zeros((len(feats), n_mels, frames), dtype=np.float32)
        for i, f in enumerate(feats):
            batch[i, :, : min(frames, f.shape[1])] = f[:, :frames]
        enc = self._model.encoder
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            if self.fp16:
                x = x.half()
            x = F.gelu(enc.conv1(x))
            x = F.gelu(enc.conv2(x)).permute(0, 2, 1)
            if x.shape[1] > enc.positional_embedding.shape[0]:
                raise ValueError(f"{frames} frames exceed the encoder's {MAX_FRAMES}")
            x = (x + enc.positional_embedding[: x.shape[1]]).to(x.dtype)
            for block in enc.blocks:
                x = block(x)
            return enc.ln_post(x)

    # ------------------------------------------------------------------ decode
    def decode(
        self,
        items: Sequence[AsrItem],
        options: DecodeOptions,
        normalizer: Normalizer,
        feature_transform: FeatureTransform | None = None,
    ) -> list[AsrOutput]:
        import torch

        feats = []
        for it in items:
            f = self.features(it.audio)
            if feature_transform is not None:
                f = np.asarray(feature_transform(f, it.item_id), dtype=np.float32)
            feats.append(f)
        groups: dict[int, list[int]] = {}
        for i, f in enumerate(feats):
            groups.setdefault(context_frames(f.shape[1], options.min_context_s), []).append(i)
        outputs: list[AsrOutput | None] = [None] * len(items)
        with self._lock, torch.inference_mode():
            for frames, idx in sorted(groups.items()):
                enc = self.encode([feats[i] for i in idx], frames)
                for j, out in zip(
                    idx,
                    self._decode_encoded(enc, [items[i] for i in idx], options, normalizer),
                    strict=True,
                ):
                    outputs[j] = out
        return [o for o in outputs if o is not None]

    def languages(self, enc: Any, items: Sequence[AsrItem]) -> list[tuple[str, float | None]]:
        """(language, its probability) per item: the hint, or the most probable language
        token after start-of-transcript (multilingual models only)."""
        if not self.multilingual:
            return [(it.language or "en", None) for it in items]
        import torch

        tk = self.tokenizer("en")
        sot = torch.full((enc.shape[0], 1), tk.sot, dtype=torch.long, device=enc.device)
        ids = list(tk.all_language_tokens)
        with torch.inference_mode():
            logits = self._model.decoder(sot, enc)[:, 0].float()
            probs = logits[:, ids].softmax(dim=-1).cpu().numpy()
        out: list[tuple[str, float | None]] = []
        for it, row in zip(items, probs, strict=True):
            table = {code: float(p) for code, p in zip(tk.all_language_codes, row, strict=True)}
            if it.language is not None and it.language not in table:
                raise ValueError(
                    f"language {it.language!r} is not one of this model's {len(table)} languages"
                )
            lang = it.language or max(table, key=lambda k: table[k])
            out.append((lang, table.get(lang)))
        return out

    def _task(self, language: str, options: DecodeOptions, previous: Sequence[int] = ()) -> Any:
        """openai-whisper's decoding task (its logit filters, prompt layout, the batched beam
        search); `previous`: the previous-text tokens its prompt starts with (their number
        sets where sampling begins; each row brings its own tokens)."""
        from whisper.decoding import DecodingOptions, DecodingTask

        task = DecodingTask(
            self._model,
            DecodingOptions(
                task="transcribe",
                language=language if self.multilingual else "en",
                beam_size=options.beam_size,
                sample_len=options.max_new_tokens,
                without_timestamps=True,
                fp16=self.fp16,
                prompt=list(previous[1:]) or None,  # (without <|startofprev|>)
            ),
        )
        task.decoder = _batched_beam_search()(
            options.beam_size, task.tokenizer.eot, task.inference, task.options.patience
        )
        return task

    def beam_search(
        self, enc: Any, prompts: Sequence[Sequence[int]], task: Any
    ) -> tuple[list[list[tuple[tuple[int, ...], float]]], list[float]]:
        """Every finished beam (text tokens, sum log-prob incl. end-of-text) per item, and
        each item's no-speech probability. A batch runs as one search: the encoder output
        is repeated per beam (openai-whisper 20250625 does not, and fails on a batch > 1);
        an item none of whose beams finished keeps its unfinished ones, as
        `BeamSearchDecoder.finalize` does."""
        import torch

        beam = task.n_group
        begin = task.sample_begin
        if any(len(p) != begin for p in prompts):
            raise ValueError(f"prompts must have {begin} tokens: {prompts}")
        tokens = torch.tensor([list(p) for p in prompts], device=enc.device)
        tokens = tokens.repeat_interleave(beam, dim=0)
        audio = enc.repeat_interleave(beam, dim=0)
        task.decoder.reset()
        tokens, sum_logprobs, no_speech = task._main_loop(audio, tokens)
        tokens = tokens.reshape(len(prompts), beam, -1)
        sum_logprobs = sum_logprobs.reshape(len(prompts), beam)
        finished = [dict(f) for f in (task.decoder.finished_sequences or [{}] * len(prompts))]
        if any(not f for f in finished):
            if task.decoder.finished_sequences is None:
                task.decoder.finished_sequences = [{} for _ in prompts]
            seqs, scores = task.decoder.finalize(tokens, sum_logprobs)
            for i, f in enumerate(finished):
                if not f:
                    f.update(
                        (tuple(t.tolist()), float(s))
                        for t, s in zip(seqs[i], scores[i], strict=True)
                    )
        eot = task.tokenizer.eot
        out = []
        for f in finished:
            hyps = []
            for seq, score in sorted(f.items(), key=lambda kv: -kv[1]):
                text = seq[begin:]
                end = text.index(eot) if eot in text else len(text)
                hyps.append((tuple(int(t) for t in text[:end]), float(score)))
            out.append(hyps)
        return out, [float(p) for p in no_speech[::beam]]

    def _decode_encoded(
        self,
        enc: Any,
        items: Sequence[AsrItem],
        options: DecodeOptions,
        normalizer: Normalizer,
    ) -> list[AsrOutput]:
        langs = self.languages(enc, items)
        tokenizers = [self.tokenizer(lang) for lang, _ in langs]
        previous = [self.previous(it.prompt) for it in items]
        prompts = [
            [*prev, *tk.sot_sequence_including_notimestamps]
            for prev, tk in zip(previous, tokenizers, strict=True)
        ]
        # one beam search per prompt length (a row's previous text sets where it samples)
        found: list[list[tuple[tuple[int, ...], float]]] = [[] for _ in items]
        no_speech = [float("nan")] * len(items)
        by_length: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            by_length.setdefault(len(p), []).append(i)
        for idx in by_length.values():
            task = self._task(langs[idx[0]][0], options, previous[idx[0]])
            hyps, probs = self.beam_search(enc[idx], [prompts[i] for i in idx], task)
            for i, hyp, prob in zip(idx, hyps, probs, strict=True):
                found[i], no_speech[i] = hyp, prob
        suppress = list(task._get_suppress_tokens())
        outputs = []
        for i, item in enumerate(items):
            tk = tokenizers[i]
            beam = [
                Candidate(
                    tokens=toks,
                    text=tk.decode(list(toks)).strip(),
                    sum_logprob=score,
                    method=BEAM,
                )
                for toks, score in found[i]
            ]
            forced = self._forced(enc[i : i + 1], prompts[i], tk, suppress)
            sampler = None
            if wants_top_up(beam, options):
                sampler = recipe.sampler(forced, tk, item.item_id, options)
            alternatives = None
            if options.alternatives > 0 and beam:
                window = beam[0].tokens[: options.alt_window]
                alternatives = recipe.alternatives(
                    tk,
                    beam[0],
                    functools.partial(_first_positions, forced, window),
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
                nbest = recipe.with_token_logprobs(nbest, forced, tk.eot)
            lang, lang_prob = langs[i]
            outputs.append(
                AsrOutput(
                    item_id=item.item_id,
                    nbest=nbest,
                    language=lang,
                    language_prob=lang_prob,
                    no_speech_prob=no_speech[i],
                )
            )
        return outputs

    def _forced(
        self, enc_one: Any, prompt: list[int], tk: Any, suppress: list[int]
    ) -> ForcedDecode:
        """Teacher-forced decodes against one item's encoder output: for each prefix, the
        logits of every position (the beam search's masks applied: suppressed tokens
        everywhere, blank and end-of-text at the first position) and a greedy
        continuation of up to `window` tokens. Prefixes of one length run as one batch."""
        first_mask = [*tk.encode(" "), tk.eot]

        def forced(
            prefixes: Sequence[tuple[int, ...]], window: int = FORCED_WINDOW
        ) -> list[tuple[Sequence[int], Sequence[np.ndarray]]]:
            out: list[tuple[Sequence[int], Sequence[np.ndarray]] | None] = [None] * len(prefixes)
            by_len: dict[int, list[int]] = {}
            for i, p in enumerate(prefixes):
                by_len.setdefault(len(p), []).append(i)
            for idx in by_len.values():
                rows = [prompt + list(prefixes[i]) for i in idx]
                results = self._teacher_forced(
                    enc_one, rows, len(prompt), window, tk.eot, suppress, first_mask
                )
                for i, r in zip(idx, results, strict=True):
                    out[i] = r
            return [r for r in out if r is not None]

        return forced

    def _teacher_forced(
        self,
        enc_one: Any,
        rows: list[list[int]],
        start: int,
        window: int,
        eot: int,
        suppress: list[int],
        first_mask: list[int],
    ) -> list[tuple[list[int], list[np.ndarray]]]:
        import torch
        from whisper.decoding import PyTorchInference

        n_ctx = self._model.dims.n_text_ctx
        length = len(rows[0])
        if length > n_ctx:  # no room for the prefix: nothing to give
            return [(r[start:], []) for r in rows]
        steps = max(0, min(window, n_ctx - length))
        tokens = torch.tensor(rows, device=enc_one.device)
        audio = enc_one.expand(len(rows), -1, -1)
        inference = PyTorchInference(self._model, length)

        def masked(logits: Any) -> Any:
            logits[..., suppress] = -np.inf
            return logits

        try:
            lg = masked(inference.logits(tokens, audio)[:, start - 1 :].float())
            lg[:, 0, first_mask] = -np.inf
            host = lg.cpu().numpy()
            seqs = [r[start:] for r in rows]
            logits = [list(host[b]) for b in range(len(rows))]
            alive = [True] * len(rows)
            last = lg[:, -1]
            for step in range(steps):
                nxt = last.argmax(dim=-1)
                for b, t in enumerate(nxt.tolist()):
                    if alive[b]:
                        if t == eot:
                            alive[b] = False
                        else:
                            seqs[b].append(t)
                if not any(alive) or step == steps - 1:
                    break  # (the last token's logits are never needed)
                tokens = torch.cat([tokens, nxt[:, None]], dim=-1)
                last = masked(inference.logits(tokens, audio)[:, -1].float())
                host_last = last.cpu().numpy()
                for b in range(len(rows)):
                    if alive[b]:
                        logits[b].append(host_last[b])
        finally:
            inference.cleanup_caching()
        return list(zip(seqs, logits, strict=True))
