"""A small, randomly initialised, multilingual CTranslate2 Whisper model for tests.

`build_multilingual_model(out_dir)` writes a directory that
`faster_whisper.WhisperModel(out_dir, device="cpu", compute_type="int8")` loads
fully offline: `model.bin` + `config.json` + `vocabulary.json` (CTranslate2) and
`tokenizer.json` (Hugging Face `tokenizers`). The weights are random, so the
model's output is nonsense, but language detection, prompting and decoding run
through the real code with the real multilingual vocabulary (51,865 tokens,
special tokens at Whisper's classic ids).

The vocabulary comes from the `whisper/assets/multilingual.tiktoken` file the
openai-whisper package ships. Install it without its dependencies (they pull in
torch); the package is only read, never imported:

    pip install --no-deps openai-whisper==20250625

Usage: python -m tests.multilingual_model OUT_DIR
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ctranslate2.specs import WhisperSpec
    from tokenizers import Tokenizer

OPENAI_WHISPER_PIP = "pip install --no-deps openai-whisper==20250625"

N_MELS = 80
N_AUDIO_CTX = 1500  # encoder positions (30 s after the stride-2 conv)
N_TEXT_CTX = 448  # decoder positions
D_MODEL = 64
FFN = 128
HEADS = 2
LAYERS = 2
N_LANGUAGES = 99  # the classic multilingual vocabulary (tiny ... large-v2): 51,865 tokens
N_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|>
VOCAB_SIZE = 51865
WEIGHT_STD = 0.02
# Logit bias of <|endoftext|> (the output projection's bias; 0 elsewhere). With small
# random weights the other logits are nearly uniform over 51,865 tokens, so +10 gives
# end-of-text about 30 % at each step: beam hypotheses and samples end after a few
# tokens, as a trained model's do, instead of running to the length limit.
EOT_BIAS = 10.0

# The tokens Whisper suppresses while decoding: the non-speech symbols (faster-whisper's
# Tokenizer.non_speech_tokens on this vocabulary) and <|startoftranscript|>,
# <|translate|>, <|transcribe|>, <|startoflm|>, <|startofprev|>, <|nocaptions|>; at
# the first step also " " and <|endoftext|>.
SUPPRESS_IDS = [
    1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92,
    93, 359, 503, 522, 542, 873, 893, 902, 918, 922, 931, 1350, 1853, 1982, 2460, 2627,
    3246, 3253, 3268, 3536, 3846, 3961, 4183, 4667, 6585, 6647, 7273, 9061, 9383, 10428,
    10929, 11938, 12033, 12331, 12562, 13793, 14157, 14635, 15265, 15618, 16553, 16604,
    18362, 18956, 20075, 21675, 22520, 26130, 26161, 26435, 28279, 29464, 31650, 32302,
    32470, 36865, 42863, 47425, 49870, 50254, 50258, 50358, 50359, 50360, 50361, 50362,
]  # fmt: skip
SUPPRESS_IDS_BEGIN = [220, 50257]


# ---------------------------------------------------------------------- vocabulary
def whisper_package_dir() -> Path:
    """The installed openai-whisper package directory (found, never imported)."""
    spec = importlib.util.find_spec("whisper")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        pkg = Path(loc)
        if (pkg / "assets" / "multilingual.tiktoken").is_file() and (
            pkg / "tokenizer.py"
        ).is_file():
            return pkg
    raise RuntimeError(
        "building the multilingual test model needs the vocabulary files of the "
        "openai-whisper package (whisper/assets/multilingual.tiktoken); install them "
        f"without torch: {OPENAI_WHISPER_PIP}"
    )


def load_ranks(pkg: Path) -> dict[bytes, int]:
    """multilingual.tiktoken: one `base64(token bytes) rank` per line."""
    ranks: dict[bytes, int] = {}
    for line in (pkg / "assets" / "multilingual.tiktoken").read_text().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise RuntimeError("multilingual.tiktoken ranks are not 0..n-1")
    return ranks


def load_languages(pkg: Path) -> list[str]:
    """The language codes of whisper/tokenizer.py's LANGUAGES, in order (parsed)."""
    tree = ast.parse((pkg / "tokenizer.py").read_text())
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "LANGUAGES" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            codes = [ast.literal_eval(k) for k in node.value.keys if k is not None]
            if len(codes) < N_LANGUAGES or codes[0] != "en":
                raise RuntimeError(f"unexpected LANGUAGES in {pkg / 'tokenizer.py'}")
            return codes[:N_LANGUAGES]
    raise RuntimeError(f"no LANGUAGES dict in {pkg / 'tokenizer.py'}")


def special_tokens(languages: list[str]) -> list[str]:
    """Whisper's special tokens in id order (ids continue after the regular tokens)."""
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *[f"<|{code}|>" for code in languages],
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        # HF's tokenizer.json for the classic models spells it <|nocaptions|> (the
        # tiktoken files say <|nospeech|>); CTranslate2 and faster-whisper take either
        "<|nocaptions|>",
        "<|notimestamps|>",
        *[f"<|{i * 0.02:.2f}|>" for i in range(N_TIMESTAMPS)],
    ]


@cache
def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character map."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def _to_unicode(token: bytes) -> str:
    table = _byte_to_unicode()
    return "".join(table[b] for b in token)


def _bpe(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """BPE of `token`'s bytes using only merges of rank below `max_rank`."""
    parts = [bytes([b]) for b in token]
    while True:
        best_i, best_rank = -1, max_rank
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best_i, best_rank = i, rank
        if best_i < 0:
            return parts
        parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]


def vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The HF byte-level BPE vocab and merges equivalent to tiktoken's ranks."""
    vocab = {_to_unicode(tok): rank for tok, rank in ranks.items()}
    merges: list[tuple[str, str]] = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) <= 1:  # single bytes, and the empty placeholder at rank 50256
            continue
        pair = _bpe(ranks, tok, rank)
        if len(pair) != 2:
            raise RuntimeError(f"token {tok!r} (rank {rank}) is not one merge of two tokens")
        merges.append((_to_unicode(pair[0]), _to_unicode(pair[1])))
    return vocab, merges


def build_tokenizer(ranks: dict[bytes, int], languages: list[str]) -> Tokenizer:
    """Whisper's multilingual tokenizer as a `tokenizers.Tokenizer`."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab, merges = vocab_and_merges(ranks)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = special_tokens(languages)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    for i, s in enumerate(specials):
        if tok.token_to_id(s) != len(ranks) + i:
            raise RuntimeError(f"{s} got id {tok.token_to_id(s)}, expected {len(ranks) + i}")
    if tok.get_vocab_size(with_added_tokens=True) != VOCAB_SIZE:
        raise RuntimeError(f"vocabulary size {tok.get_vocab_size()} != {VOCAB_SIZE}")
    return tok


# ---------------------------------------------------------------------- weights
class _Init:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def normal(self, *shape: int) -> np.ndarray:
        return (self.rng.standard_normal(shape) * WEIGHT_STD).astype(np.float32)

    def linear(self, spec: Any, d_out: int, d_in: int) -> None:
        spec.weight = self.normal(d_out, d_in)
        spec.bias = self.normal(d_out)

    def layer_norm(self, spec: Any) -> None:
        spec.gamma = (1.0 + self.normal(D_MODEL)).astype(np.float32)
        spec.beta = self.normal(D_MODEL)

    def ffn(self, spec: Any) -> None:
        self.layer_norm(spec.layer_norm)
        self.linear(spec.linear_0, FFN, D_MODEL)
        self.linear(spec.linear_1, D_MODEL, FFN)

    def self_attention(self, spec: Any) -> None:
        self.layer_norm(spec.layer_norm)
        self.linear(spec.linear[0], 3 * D_MODEL, D_MODEL)  # fused Q, K, V
        self.linear(spec.linear[1], D_MODEL, D_MODEL)  # output

    def cross_attention(self, spec: Any) -> None:
        self.layer_norm(spec.layer_norm)
        self.linear(spec.linear[0], D_MODEL, D_MODEL)  # Q
        self.linear(spec.linear[1], 2 * D_MODEL, D_MODEL)  # fused K, V
        self.linear(spec.linear[2], D_MODEL, D_MODEL)  # output


def _sinusoids(length: int, channels: int) -> np.ndarray:
    """Whisper's encoder position embedding."""
    inc = np.log(10000) / (channels // 2 - 1)
    inv = np.exp(-inc * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def build_spec(lang_ids: list[int], eot_id: int, tokens: list[str], seed: int) -> WhisperSpec:
    from ctranslate2.specs import WhisperSpec

    init = _Init(seed)
    spec = WhisperSpec(LAYERS, HEADS, LAYERS, HEADS)
    enc = spec.encoder
    enc.conv1.weight = init.normal(D_MODEL, N_MELS, 3)
    enc.conv1.bias = init.normal(D_MODEL)
    enc.conv2.weight = init.normal(D_MODEL, D_MODEL, 3)
    enc.conv2.bias = init.normal(D_MODEL)
    enc.position_encodings.encodings = _sinusoids(N_AUDIO_CTX, D_MODEL)
    for layer in enc.layer:
        init.self_attention(layer.self_attention)
        init.ffn(layer.ffn)
    init.layer_norm(enc.layer_norm)

    dec = spec.decoder
    embeddings = init.normal(VOCAB_SIZE, D_MODEL)
    dec.embeddings.weight = embeddings
    dec.position_encodings.encodings = init.normal(N_TEXT_CTX, D_MODEL)
    for layer in dec.layer:
        init.self_attention(layer.self_attention)
        init.cross_attention(layer.attention)
        init.ffn(layer.ffn)
    init.layer_norm(dec.layer_norm)
    dec.projection.weight = embeddings  # tied, as in Whisper (aliased on save)
    bias = np.zeros(VOCAB_SIZE, dtype=np.float32)
    bias[eot_id] = EOT_BIAS
    dec.projection.bias = bias

    spec.config.suppress_ids = SUPPRESS_IDS
    spec.config.suppress_ids_begin = SUPPRESS_IDS_BEGIN
    spec.config.lang_ids = lang_ids
    spec.config.alignment_heads = [(LAYERS - 1, h) for h in range(HEADS)]
    spec.register_vocabulary(tokens)
    spec.validate()
    return spec


# ---------------------------------------------------------------------- build
def _id(tokenizer: Tokenizer, token: str) -> int:
    i = tokenizer.token_to_id(token)
    if i is None:
        raise RuntimeError(f"{token} is not in the vocabulary")
    return int(i)


def build_multilingual_model(
    out_dir: Path, *, seed: int = 0, quantization: str | None = "int8"
) -> Path:
    """Write the model directory `out_dir` (created if needed) and return it.

    Deterministic for a given seed. `quantization` is CTranslate2's weight
    type on disk (None keeps float32).
    """
    pkg = whisper_package_dir()
    ranks = load_ranks(pkg)
    languages = load_languages(pkg)
    tokenizer = build_tokenizer(ranks, languages)

    inverse = {rank: tok for tok, rank in ranks.items()}
    tokens = [_to_unicode(inverse[i]) for i in range(len(ranks))] + special_tokens(languages)
    lang_ids = [_id(tokenizer, f"<|{code}|>") for code in languages]
    spec = build_spec(lang_ids, _id(tokenizer, "<|endoftext|>"), tokens, seed)
    spec.optimize(quantization=quantization)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(out_dir))
    # faster-whisper reads tokenizer.json from the model directory (else: the HF hub).
    tokenizer.save(str(out_dir / "tokenizer.json"))
    # 80 mels and the default feature settings: no preprocessor_config.json needed.
    return out_dir


def check_model(model_dir: Path) -> dict[str, float]:
    """Load with faster-whisper and detect the language of silence; returns the probs."""
    import ctranslate2
    from faster_whisper import WhisperModel

    fw = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=1)
    if not fw.model.is_multilingual:
        raise RuntimeError(f"{model_dir} is not multilingual")
    feats = fw.feature_extractor(np.zeros(16000, dtype=np.float32))
    batch = np.zeros((1, N_MELS, 3000), dtype=np.float32)
    batch[0, :, : feats.shape[1]] = feats[:, :3000]
    enc = fw.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=True)
    (probs,) = fw.model.detect_language(enc)
    return {tok: float(p) for tok, p in probs}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.multilingual_model OUT_DIR", file=sys.stderr)
        return 2
    out = build_multilingual_model(Path(argv[0]))
    probs = check_model(out)
    top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
    size = sum(p.stat().st_size for p in out.iterdir())
    print(json.dumps({"model_dir": str(out), "bytes": size, "top_languages": top}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
