"""CTranslate2 Whisper model -> openai-whisper checkpoint.

    speechmill models convert-ct2 MODEL_DIR OUT.pt

A CTranslate2 model directory holds `model.bin` (every weight, named by the spec that
wrote it), `config.json` (Whisper: suppressed tokens, language ids, alignment heads)
and the vocabulary. `read_model_bin` parses `model.bin` as CTranslate2 writes it
(`ModelSpec._serialize` in python/ctranslate2/specs/model_spec.py, read back by
`Model::load` in src/models/model.cc), binary versions 4 to 6, little-endian:

    u32 binary version | str spec name | u32 spec revision
    u32 n | n x (str name | u8 rank | rank x u32 dim | u8 dtype | u32 n_bytes | bytes)
    u32 m | m x (str alias | str name)
    str: u16 length including a trailing NUL, the UTF-8 bytes, NUL
    dtype: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16

`whisper_checkpoint` renames and reshapes those weights into openai-whisper's
`Whisper` module: the fused query/key/value of self-attention and the fused
key/value of cross-attention are split (openai-whisper's `key` has no bias; the
converters fill CTranslate2's with zeros, and a constant key bias never changes an
attention softmax, so it is dropped), layer norms' gamma/beta become weight/bias, and
the output projection must be the token embedding with no bias (openai-whisper ties
them).
int8 weights are dequantized with their per-row `_scale` (CTranslate2 quantizes each
row as round(w * 127 / max|row|)); int16 with their per-layer scale. float16 stays
float16; bfloat16 becomes float32 (exactly).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from speechmill.errors import ModelError

SUPPORTED_BINARY_VERSIONS = range(4, 7)
WHISPER_SPEC = "WhisperSpec"
# CTranslate2's DataType enum (include/ctranslate2/types.h), by type id
DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_NUMPY: dict[str, str] = {
    "float32": "<f4",
    "int8": "i1",
    "int16": "<i2",
    "int32": "<i4",
    "float16": "<f2",
    "bfloat16": "<u2",  # raw bits; widened to float32 when dequantized
}

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Ct2Model:
    """The parsed `model.bin`: variables by name (read-only views of the file), aliases."""

    path: str
    binary_version: int
    spec: str
    revision: int
    variables: dict[str, Array]
    dtypes: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Array:
        """A variable by name, following an alias."""
        target = self.aliases.get(name, name)
        if target not in self.variables:
            raise ModelError(f"{self.path}: no variable {name!r} (is it a Whisper model?)")
        return self.variables[target]

    def has(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.variables

    def scalar(self, name: str) -> int:
        return int(self.get(name).reshape(-1)[0])


class _Reader:
    def __init__(self, data: npt.NDArray[np.uint8], path: str) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def take(self, n: int, what: str) -> npt.NDArray[np.uint8]:
        if n < 0 or self.pos + n > self.data.size:
            raise ModelError(
                f"{self.path} is not a complete CTranslate2 model.bin: {what} of {n} bytes "
                f"at offset {self.pos} runs past the end ({self.data.size} bytes)"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> int:
        size = struct.calcsize("<" + fmt)
        value: int = struct.unpack("<" + fmt, self.take(size, what).tobytes())[0]
        return value

    def string(self, what: str) -> str:
        n = self.unpack("H", what)
        raw = self.take(n, what).tobytes()
        if n == 0 or raw[-1] != 0:
            raise ModelError(f"{self.path}: malformed {what} at offset {self.pos - n}")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError(f"{self.path}: {what} at offset {self.pos - n} is not text") from None


def read_model_bin(path: str | os.PathLike[str]) -> Ct2Model:
    """Parse a CTranslate2 `model.bin` (memory-mapped; the arrays are views of the file)."""
    p = str(path)
    try:
        data = np.memmap(p, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {p}: {e}") from None
    r = _Reader(data, p)
    version = r.unpack("I", "binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise ModelError(
            f"{p}: CTranslate2 binary version {version} is not supported (this converter "
            f"reads versions {min(SUPPORTED_BINARY_VERSIONS)}-{max(SUPPORTED_BINARY_VERSIONS)}); "
            "is it a CTranslate2 model.bin?"
        )
    spec = r.string("spec name")
    revision = r.unpack("I", "spec revision")
    variables: dict[str, Array] = {}
    dtypes: dict[str, str] = {}
    for _ in range(r.unpack("I", "variable count")):
        name = r.string("variable name")
        rank = r.unpack("B", f"rank of {name}")
        shape = tuple(r.unpack("I", f"shape of {name}") for _ in range(rank))
        type_id = r.unpack("B", f"dtype of {name}")
        if type_id >= len(DTYPES):
            raise ModelError(f"{p}: variable {name} has unknown dtype id {type_id}")
        dtype = DTYPES[type_id]
        n_bytes = r.unpack("I", f"size of {name}")
        raw = r.take(n_bytes, f"data of {name}")
        itemsize = np.dtype(_NUMPY[dtype]).itemsize
        if n_bytes != int(np.prod(shape, dtype=np.int64)) * itemsize:
            raise ModelError(f"{p}: variable {name} has {n_bytes} bytes for shape {shape} {dtype}")
        variables[name] = raw.view(_NUMPY[dtype]).reshape(shape)
        dtypes[name] = dtype
    aliases: dict[str, str] = {}
    for _ in range(r.unpack("I", "alias count")):
        alias = r.string("alias")
        aliases[alias] = r.string("aliased variable")
    if r.pos != data.size:
        raise ModelError(f"{p}: {data.size - r.pos} unexpected bytes after the aliases")
    return Ct2Model(p, version, spec, revision, variables, dtypes, aliases)


# ----------------------------------------------------------------------------- dequantize


def _bf16_to_f32(bits: Array) -> npt.NDArray[np.float32]:
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def float_value(model: Ct2Model, name: str) -> Array:
    """A float variable, dequantized if CTranslate2 stored it as int8/int16 with a scale."""
    target = model.aliases.get(name, name)
    value = model.get(target)
    dtype = model.dtypes[target]
    if dtype in ("float32", "float16"):
        return value
    if dtype == "bfloat16":
        return _bf16_to_f32(value)
    if dtype in ("int8", "int16"):
        scale_name = target + "_scale"
        if not model.has(scale_name):
            raise ModelError(
                f"{model.path}: {name} is {dtype} without a {scale_name}: quantized weights "
                "this converter cannot dequantize; convert the model again with "
                "ct2-transformers-converter --quantization float16"
            )
        scale = model.get(scale_name).astype(np.float32)
        q = value.astype(np.float32)
        if dtype == "int16" or scale.size == 1:
            return q / scale.reshape(())
        rows = q.reshape(q.shape[0], -1) / scale.reshape(-1, 1)
        return rows.reshape(q.shape)
    raise ModelError(f"{model.path}: {name} is {dtype}, not a float weight")


# ----------------------------------------------------------------------------- mapping


@dataclass(frozen=True)
class WhisperCheckpoint:
    """openai-whisper's checkpoint contents, as NumPy arrays."""

    dims: dict[str, int]
    state: dict[str, Array]
    alignment_heads: npt.NDArray[np.bool_] | None
    dtype: str  # float16 or float32


def _layers(model: Ct2Model, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"/layer_(\d+)/")
    found = {int(m.group(1)) for n in model.variables if (m := pattern.match(n))}
    if found != set(range(len(found))):
        raise ModelError(f"{model.path}: {prefix} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def sinusoids(length: int, channels: int) -> npt.NDArray[np.float32]:
    """openai-whisper's encoder positional embedding (model.sinusoids), in NumPy."""
    increment = np.log(10000) / (channels // 2 - 1)
    inv = np.exp(-increment * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


class _StateBuilder:
    """openai-whisper parameters from CTranslate2 variables, one layer type at a time."""

    def __init__(self, model: Ct2Model) -> None:
        self.model = model
        self.state: dict[str, Array] = {}

    def f(self, name: str) -> Array:
        return float_value(self.model, name)

    def linear(self, dst: str, src: str) -> None:
        self.state[f"{dst}.weight"] = self.f(f"{src}/weight")
        self.state[f"{dst}.bias"] = self.f(f"{src}/bias")

    def norm(self, dst: str, src: str) -> None:
        self.state[f"{dst}.weight"] = self.f(f"{src}/gamma")
        self.state[f"{dst}.bias"] = self.f(f"{src}/beta")

    def split(self, dst: list[str], src: str) -> None:
        """A fused linear layer -> equal row blocks, in order; a key block loses its bias."""
        w, b = self.f(f"{src}/weight"), self.f(f"{src}/bias")
        parts = len(dst)
        n = w.shape[0] // parts
        if n * parts != w.shape[0] or b.shape[0] != w.shape[0]:
            raise ModelError(
                f"{self.model.path}: {src} has shape {w.shape}, not {parts} fused blocks"
            )
        for i, name in enumerate(dst):
            self.state[f"{name}.weight"] = w[i * n : (i + 1) * n]
            if not name.endswith(".key"):
                self.state[f"{name}.bias"] = b[i * n : (i + 1) * n]

    def self_attention(self, dst: str, src: str) -> None:
        self.split([f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"], f"{src}/linear_0")
        self.linear(f"{dst}.attn.out", f"{src}/linear_1")
        self.norm(f"{dst}.attn_ln", f"{src}/layer_norm")

    def cross_attention(self, dst: str, src: str) -> None:
        self.linear(f"{dst}.cross_attn.query", f"{src}/linear_0")
        self.split([f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"], f"{src}/linear_1")
        self.linear(f"{dst}.cross_attn.out", f"{src}/linear_2")
        self.norm(f"{dst}.cross_attn_ln", f"{src}/layer_norm")

    def ffn(self, dst: str, src: str) -> None:
        rows, n_state = self.model.get(f"{src}/linear_0/weight").shape[:2]
        if rows != 4 * n_state:
            raise ModelError(
                f"{self.model.path}: {src} is {rows} wide; openai-whisper's MLP is always 4 x "
                f"{n_state}, so this model cannot be converted"
            )
        self.linear(f"{dst}.mlp.0", f"{src}/linear_0")
        self.linear(f"{dst}.mlp.2", f"{src}/linear_1")
        self.norm(f"{dst}.mlp_ln", f"{src}/layer_norm")

    def embeddings(self) -> None:
        """Token and position embeddings; the output projection must be the (tied) token
        embedding, without a bias."""
        model, f = self.model, self.f
        embedding = f("decoder/embeddings/weight")
        self.state["decoder.token_embedding.weight"] = embedding
        self.state["decoder.positional_embedding"] = f("decoder/position_encodings/encodings")
        if model.has("decoder/projection/weight"):
            tied = model.aliases.get("decoder/projection/weight") == "decoder/embeddings/weight"
            if not tied and not np.array_equal(f("decoder/projection/weight"), embedding):
                raise ModelError(
                    f"{model.path}: the output projection differs from the token embedding; "
                    "openai-whisper ties them, so this model cannot be converted"
                )
        if model.has("decoder/projection/bias") and np.any(f("decoder/projection/bias") != 0):
            raise ModelError(
                f"{model.path}: the output projection has a bias; openai-whisper's has none, "
                "so this model cannot be converted"
            )
        n_state = int(self.state["encoder.conv1.weight"].shape[0])
        if model.has("encoder/position_encodings/encodings"):
            pos = f("encoder/position_encodings/encodings")
        else:  # CTranslate2 may leave the sinusoids out; openai-whisper keeps them
            pos = sinusoids(1500, n_state)
        self.state["encoder.positional_embedding"] = pos


def whisper_checkpoint(model: Ct2Model, config: dict[str, Any] | None = None) -> WhisperCheckpoint:
    """Map a CTranslate2 Whisper model onto openai-whisper's parameter names."""
    if model.spec != WHISPER_SPEC:
        raise ModelError(
            f"{model.path} is a CTranslate2 {model.spec or 'unnamed'} model, not Whisper "
            f"({WHISPER_SPEC}): only Whisper models convert to openai-whisper"
        )
    float_types = {model.dtypes[n] for n in model.variables if model.variables[n].ndim > 0}
    float_types &= {"float32", "float16", "bfloat16"}
    out_dtype = "float16" if float_types == {"float16"} else "float32"
    b = _StateBuilder(model)
    n_audio_layer = _layers(model, "encoder")
    n_text_layer = _layers(model, "decoder")
    for i in range(n_audio_layer):
        b.self_attention(f"encoder.blocks.{i}", f"encoder/layer_{i}/self_attention")
        b.ffn(f"encoder.blocks.{i}", f"encoder/layer_{i}/ffn")
    for i in range(n_text_layer):
        b.self_attention(f"decoder.blocks.{i}", f"decoder/layer_{i}/self_attention")
        b.cross_attention(f"decoder.blocks.{i}", f"decoder/layer_{i}/attention")
        b.ffn(f"decoder.blocks.{i}", f"decoder/layer_{i}/ffn")
    b.linear("encoder.conv1", "encoder/conv1")
    b.linear("encoder.conv2", "encoder/conv2")
    b.norm("encoder.ln_post", "encoder/layer_norm")
    b.norm("decoder.ln", "decoder/layer_norm")
    b.embeddings()
    state = b.state
    conv1, embedding = state["encoder.conv1.weight"], state["decoder.token_embedding.weight"]
    dims = {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(state["encoder.positional_embedding"].shape[0]),
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": model.scalar("encoder/num_heads"),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(embedding.shape[0]),
        "n_text_ctx": int(state["decoder.positional_embedding"].shape[0]),
        "n_text_state": int(embedding.shape[1]),
        "n_text_head": model.scalar("decoder/num_heads"),
        "n_text_layer": n_text_layer,
    }
    np_dtype = np.float16 if out_dtype == "float16" else np.float32
    state = {k: np.ascontiguousarray(v, dtype=np_dtype).copy() for k, v in state.items()}
    heads = None
    pairs = (config or {}).get("alignment_heads")
    if pairs:
        heads = np.zeros((n_text_layer, dims["n_text_head"]), dtype=np.bool_)
        for layer, head in pairs:
            heads[int(layer), int(head)] = True
    return WhisperCheckpoint(dims, state, heads, out_dtype)


# ----------------------------------------------------------------------------- convert


@dataclass(frozen=True)
class Conversion:
    """What `convert` wrote."""

    source: str
    out: str
    dims: dict[str, int]
    dtype: str
    tensors: int
    parameters: int
    sha256: str
    alignment_heads: int


def read_config(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text())
    except ValueError as e:
        raise ModelError(f"{path} is not valid JSON: {e}") from None
    return loaded if isinstance(loaded, dict) else {}


def vocabulary_size(model_dir: str | os.PathLike[str]) -> int | None:
    """Tokens in vocabulary.txt / vocabulary.json, if the directory has one."""
    d = Path(model_dir)
    if (d / "vocabulary.json").is_file():
        return len(json.loads((d / "vocabulary.json").read_text()))
    if (d / "vocabulary.txt").is_file():
        with open(d / "vocabulary.txt", encoding="utf-8") as fh:
            return sum(1 for _ in fh)
    return None


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert(model_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> Conversion:
    """Write the openai-whisper checkpoint of a CTranslate2 Whisper directory to `out`
    (atomically: a temporary file in the same folder, then a rename)."""
    src = Path(model_dir)
    if not (src / "model.bin").is_file():
        raise ModelError(f"{src} is not a CTranslate2 model directory (no model.bin)")
    try:
        import torch
    except ImportError as e:
        raise ModelError(
            "writing an openai-whisper checkpoint needs torch: "
            "pip install 'speechmill[openai-whisper]'"
        ) from e
    config = read_config(src)
    ckpt = whisper_checkpoint(read_model_bin(src / "model.bin"), config)
    n_vocab = vocabulary_size(src)
    if n_vocab is not None and n_vocab != ckpt.dims["n_vocab"]:
        raise ModelError(
            f"{src}: the vocabulary has {n_vocab} tokens but the embedding "
            f"{ckpt.dims['n_vocab']} rows"
        )
    payload: dict[str, Any] = {
        "dims": dict(ckpt.dims),
        "model_state_dict": {k: torch.from_numpy(v) for k, v in ckpt.state.items()},
    }
    if ckpt.alignment_heads is not None:
        payload["alignment_heads"] = torch.from_numpy(ckpt.alignment_heads.copy())
    dst = Path(out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as fh:  # (the umask's permissions, unlike mkstemp's 0600)
            torch.save(payload, fh)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Conversion(
        source=str(src),
        out=str(dst),
        dims=dict(ckpt.dims),
        dtype=ckpt.dtype,
        tensors=len(ckpt.state),
        parameters=sum(int(v.size) for v in ckpt.state.values()),
        sha256=file_sha256(dst),
        alignment_heads=int(ckpt.alignment_heads.sum()) if ckpt.alignment_heads is not None else 0,
    )
