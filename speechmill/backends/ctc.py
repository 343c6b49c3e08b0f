"""CTC forced alignment with a character-level wav2vec2 model (MMS_FA) through torch.

Optional backend (extra `speechmill[ctc]`, which pins the CPU build of torch).
torch runs only the acoustic model; the alignment itself is the NumPy Viterbi in
`speechmill.core.align.ctc` (no torchaudio, which is in maintenance mode and
has no build for every torch release).

The network mirrors torchaudio's `wav2vec2_model` (the architecture behind
`torchaudio.pipelines.MMS_FA`) module for module, so its state dict loads with the
same key names:

    feature_extractor.conv_layers.{i}.conv.{weight,bias}
    feature_extractor.conv_layers.{i}.layer_norm.{weight,bias}      (layer_norm mode: every
                                                                     layer; group_norm: layer 0)
    encoder.feature_projection.layer_norm.{weight,bias}
    encoder.feature_projection.projection.{weight,bias}
    encoder.transformer.pos_conv_embed.conv.bias
    encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original{0,1}
        (weight norm over dim 2; the older `weight_g`/`weight_v` keys load too)
    encoder.transformer.layer_norm.{weight,bias}
    encoder.transformer.layers.{j}.attention.{q,k,v,out}_proj.{weight,bias}
    encoder.transformer.layers.{j}.layer_norm.{weight,bias}
    encoder.transformer.layers.{j}.feed_forward.{intermediate,output}_dense.{weight,bias}
    encoder.transformer.layers.{j}.final_layer_norm.{weight,bias}
    aux.{weight,bias}                                                (the CTC head)

MMS_FA's hyper-parameters (`MMS_FA_CONFIG`) are torchaudio's: 7 conv layers
(512 channels; kernels 10,3,3,3,3,2,2; strides 5,2,2,2,2,2,2: 20 ms frames,
25 ms receptive field), layer norm in every conv layer with bias, 1024-d encoder,
24 pre-LN layers with 16 heads and 4096-d feed-forward, positional conv of
kernel 128 in 16 groups, 28 outputs, and the whole input waveform layer-normed.
As torchaudio does, rows 1-3 of a raw fairseq `aux` head (31 rows: unused
dictionary specials) are dropped on load. Dropout and layer drop are left out
(inference only). torchaudio's extra `*` column (log-prob 0) is not appended:
the aligner never targets it.

The labels (`MMS_FA_DICTIONARY`) are lower-case romanised letters plus `'`, with
`-` the blank at 0 and `*` at 28. As every aligner, `align` returns one word per
whitespace-separated word of the text, as given. Each word is lower-cased,
accents are stripped (NFKD) and characters outside the dictionary dropped
(`tokenize_words`); a word left with no characters (digits, another script:
romanise it first, e.g. with uroman) is interpolated with score 0 and counted as
unaligned, while a punctuation-only word (`—`) sits at its neighbour's edge.
CTC leaves blank frames between words, so there is no silence snapping.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from speechmill.core.align.alignment import (
    MARGIN_S,
    MAX_WINDOW_S,
    AlignedWord,
    Alignment,
    align_long_form,
    empty_alignment,
    finish,
)
from speechmill.core.align.ctc import align_words, place_words, tokenize_words
from speechmill.core.audio.chunks import SAMPLE_RATE
from speechmill.errors import ModelError

log = logging.getLogger(__name__)

MMS_FA_URL = "https://dl.fbaipublicfiles.com/mms/torchaudio/ctc_alignment_mling_uroman/model.pt"
MMS_FA_LABELS = (
    "-", "a", "i", "e", "n", "o", "u", "t", "s", "r", "m", "k", "l", "d", "g",
    "h", "y", "b", "p", "w", "c", "v", "j", "z", "f", "'", "q", "x", "*",
)  # fmt: skip
MMS_FA_DICTIONARY: dict[str, int] = {c: i for i, c in enumerate(MMS_FA_LABELS)}
HUB_MODELS = {"mms_fa": MMS_FA_URL}  # names `load` fetches through torch.hub
_FAIRSEQ_SPECIALS = (1, 2, 3)  # rows of a raw fairseq CTC head that torchaudio drops


@dataclass(frozen=True)
class Wav2Vec2Config:
    """Hyper-parameters of the network; the defaults are MMS_FA's."""

    conv_layers: tuple[tuple[int, int, int], ...] = (
        ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    )  # (channels, kernel, stride)
    extractor_mode: str = "layer_norm"  # or "group_norm" (a norm in the first layer only)
    conv_bias: bool = True
    embed_dim: int = 1024
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    num_layers: int = 24
    num_heads: int = 16
    ff_dim: int = 4096
    layer_norm_first: bool = True
    num_out: int = 28
    normalize_waveform: bool = True

    @property
    def hop_samples(self) -> int:
        """Samples per output frame (320: 20 ms at 16 kHz)."""
        return int(np.prod([s for _, _, s in self.conv_layers]))

    @property
    def receptive_field(self) -> int:
        """Samples one output frame sees (400 for the standard stack): the shortest input."""
        field, jump = 1, 1
        for _, k, s in self.conv_layers:
            field += (k - 1) * jump
            jump *= s
        return field

    def num_frames(self, num_samples: int) -> int:
        n = num_samples
        for _, k, s in self.conv_layers:
            n = max(0, (n - k) // s + 1)
        return n

    @classmethod
    def infer(
        cls, state_dict: Mapping[str, Any], base: Wav2Vec2Config | None = None
    ) -> Wav2Vec2Config:
        """Sizes read off a torchaudio-style wav2vec2 state dict; strides, head count and
        norm order (not in a state dict) come from `base` (MMS_FA's by default)."""
        base = base or MMS_FA_CONFIG
        sd = _strip_prefix(state_dict)
        try:
            convs = []
            i = 0
            while f"feature_extractor.conv_layers.{i}.conv.weight" in sd:
                out_ch, _, kernel = sd[f"feature_extractor.conv_layers.{i}.conv.weight"].shape
                stride = base.conv_layers[i][2] if i < len(base.conv_layers) else 2
                convs.append((int(out_ch), int(kernel), stride))
                i += 1
            embed_dim = int(sd["encoder.feature_projection.projection.weight"].shape[0])
            pos = _pos_conv_weight(sd)
            layers = {
                int(k.split(".")[3]) for k in sd if k.startswith("encoder.transformer.layers.")
            }
            ff_dim = sd["encoder.transformer.layers.0.feed_forward.intermediate_dense.weight"]
            num_out = int(sd["aux.weight"].shape[0])
        except (KeyError, IndexError, ValueError) as e:
            raise ModelError(f"not a wav2vec2 CTC state dict (missing {e})") from None
        if not convs:
            raise ModelError("not a wav2vec2 CTC state dict (no feature_extractor.conv_layers)")
        norm_all = "feature_extractor.conv_layers.1.layer_norm.weight" in sd
        heads = base.num_heads if embed_dim == base.embed_dim else max(1, embed_dim // 64)
        return replace(
            base,
            conv_layers=tuple(convs),
            extractor_mode="layer_norm" if norm_all else "group_norm",
            conv_bias="feature_extractor.conv_layers.0.conv.bias" in sd,
            embed_dim=embed_dim,
            pos_conv_kernel=int(pos.shape[2]),
            pos_conv_groups=embed_dim // int(pos.shape[1]),
            num_layers=len(layers),
            num_heads=heads,
            ff_dim=int(ff_dim.shape[0]),
            num_out=num_out,
        )


MMS_FA_CONFIG = Wav2Vec2Config()


def _strip_prefix(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Unwrap {"state_dict": ...} / {"model": ...} and a `model.` prefix (torchaudio's wrapper)."""
    for key in ("state_dict", "model"):
        inner = sd.get(key)
        if isinstance(inner, Mapping):
            sd = inner
    if sd and all(k.startswith("model.") for k in sd):
        return {k[len("model.") :]: v for k, v in sd.items()}
    return dict(sd)


def _pos_conv_weight(sd: Mapping[str, Any]) -> Any:
    for key in ("parametrizations.weight.original1", "weight_v", "weight"):
        full = f"encoder.transformer.pos_conv_embed.conv.{key}"
        if full in sd:
            return sd[full]
    raise KeyError("encoder.transformer.pos_conv_embed.conv.weight")


@functools.cache
def _network_class() -> Any:
    """The torch network (defined on first use: torch is imported only here)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class TransposedLayerNorm(nn.LayerNorm):
        """LayerNorm over channels of a [batch, channels, frames] tensor."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.transpose(-2, -1)
            x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
            return x.transpose(-2, -1)

    class ConvLayerBlock(nn.Module):
        def __init__(self, cin: int, cout: int, k: int, s: int, bias: bool, norm: Any) -> None:
            super().__init__()
            self.conv = nn.Conv1d(cin, cout, kernel_size=k, stride=s, bias=bias)
            self.layer_norm = norm

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv(x)
            if self.layer_norm is not None:
                x = self.layer_norm(x)
            return F.gelu(x)

    class FeatureExtractor(nn.Module):
        def __init__(self, cfg: Wav2Vec2Config) -> None:
            super().__init__()
            blocks = []
            cin = 1
            for i, (cout, k, s) in enumerate(cfg.conv_layers):
                norm: nn.Module | None = None
                if cfg.extractor_mode == "layer_norm":
                    norm = TransposedLayerNorm(cout)
                elif cfg.extractor_mode == "group_norm" and i == 0:
                    norm = nn.GroupNorm(cout, cout, affine=True)
                blocks.append(ConvLayerBlock(cin, cout, k, s, cfg.conv_bias, norm))
                cin = cout
            self.conv_layers = nn.ModuleList(blocks)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N] -> [B, T, C]
            x = x.unsqueeze(1)
            for layer in self.conv_layers:
                x = layer(x)
            return x.transpose(1, 2)

    class FeatureProjection(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.layer_norm = nn.LayerNorm(cin)
            self.projection = nn.Linear(cin, cout)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.projection(self.layer_norm(x))

    class ConvolutionalPositionalEmbedding(nn.Module):
        def __init__(self, dim: int, kernel: int, groups: int) -> None:
            super().__init__()
            conv = nn.Conv1d(dim, dim, kernel_size=kernel, padding=kernel // 2, groups=groups)
            self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
            self.num_remove = 1 if kernel % 2 == 0 else 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv(x.transpose(-2, -1))
            if self.num_remove:
                x = x[..., : -self.num_remove]
            return F.gelu(x).transpose(-2, -1)

    class SelfAttention(nn.Module):
        def __init__(self, dim: int, heads: int) -> None:
            super().__init__()
            if dim % heads:
                raise ModelError(f"embed_dim {dim} is not divisible by num_heads {heads}")
            self.heads = heads
            self.k_proj = nn.Linear(dim, dim)
            self.v_proj = nn.Linear(dim, dim)
            self.q_proj = nn.Linear(dim, dim)
            self.out_proj = nn.Linear(dim, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, n, d = x.shape
            shape = (b, n, self.heads, d // self.heads)
            q = self.q_proj(x).view(shape).transpose(1, 2)
            k = self.k_proj(x).view(shape).transpose(1, 2)
            v = self.v_proj(x).view(shape).transpose(1, 2)
            out = F.scaled_dot_product_attention(q, k, v)
            return self.out_proj(out.transpose(1, 2).reshape(b, n, d))

    class FeedForward(nn.Module):
        def __init__(self, dim: int, hidden: int) -> None:
            super().__init__()
            self.intermediate_dense = nn.Linear(dim, hidden)
            self.output_dense = nn.Linear(hidden, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.output_dense(F.gelu(self.intermediate_dense(x)))

    class EncoderLayer(nn.Module):
        def __init__(self, cfg: Wav2Vec2Config) -> None:
            super().__init__()
            self.attention = SelfAttention(cfg.embed_dim, cfg.num_heads)
            self.layer_norm = nn.LayerNorm(cfg.embed_dim)
            self.feed_forward = FeedForward(cfg.embed_dim, cfg.ff_dim)
            self.final_layer_norm = nn.LayerNorm(cfg.embed_dim)
            self.pre_ln = cfg.layer_norm_first

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.pre_ln:
                x = x + self.attention(self.layer_norm(x))
                return x + self.feed_forward(self.final_layer_norm(x))
            x = self.layer_norm(x + self.attention(x))
            return self.final_layer_norm(x + self.feed_forward(x))

    class Transformer(nn.Module):
        def __init__(self, cfg: Wav2Vec2Config) -> None:
            super().__init__()
            self.pos_conv_embed = ConvolutionalPositionalEmbedding(
                cfg.embed_dim, cfg.pos_conv_kernel, cfg.pos_conv_groups
            )
            self.layer_norm = nn.LayerNorm(cfg.embed_dim)
            self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))
            self.pre_ln = cfg.layer_norm_first

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x + self.pos_conv_embed(x)
            if not self.pre_ln:
                x = self.layer_norm(x)
            for layer in self.layers:
                x = layer(x)
            return self.layer_norm(x) if self.pre_ln else x

    class Encoder(nn.Module):
        def __init__(self, cfg: Wav2Vec2Config) -> None:
            super().__init__()
            in_features = cfg.conv_layers[-1][0]
            self.feature_projection = FeatureProjection(in_features, cfg.embed_dim)
            self.transformer = Transformer(cfg)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.transformer(self.feature_projection(x))

    class Wav2Vec2Ctc(nn.Module):
        """Waveforms [B, N] at 16 kHz -> CTC log-probs [B, T, num_out]."""

        def __init__(self, cfg: Wav2Vec2Config) -> None:
            super().__init__()
            self.normalize_waveform = cfg.normalize_waveform
            self.feature_extractor = FeatureExtractor(cfg)
            self.encoder = Encoder(cfg)
            self.aux = nn.Linear(cfg.embed_dim, cfg.num_out)

        def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
            if self.normalize_waveform:
                waveforms = F.layer_norm(waveforms, waveforms.shape[-1:])
            x = self.encoder(self.feature_extractor(waveforms))
            return F.log_softmax(self.aux(x), dim=-1)

    return Wav2Vec2Ctc


def build_network(config: Wav2Vec2Config) -> Any:
    """A randomly initialised network (torch `nn.Module`) with `config`'s shapes."""
    return _network_class()(config)


def _drop_fairseq_specials(sd: dict[str, Any], num_labels: int) -> dict[str, Any]:
    """A raw fairseq head has 3 extra rows (dictionary specials 1-3): drop them as torchaudio."""
    w = sd.get("aux.weight")
    if w is None or int(w.shape[0]) != num_labels + len(_FAIRSEQ_SPECIALS):
        return sd
    keep = [i for i in range(int(w.shape[0])) if i not in _FAIRSEQ_SPECIALS]
    sd = dict(sd)
    for key in ("aux.weight", "aux.bias"):
        if key in sd:
            sd[key] = sd[key][keep]
    return sd


def window_starts(num_samples: int, window: int, overlap: int, hop: int) -> list[int]:
    """Start samples of windows of `window` samples overlapping by `overlap` (multiples of
    `hop`, the frame shift); the last window ends at the audio's end."""
    if num_samples <= window:
        return [0]
    step = max(hop, window - overlap)
    starts = list(range(0, num_samples - window, step))
    last = -(-(num_samples - window) // hop) * hop  # ceil to a frame boundary
    if last > starts[-1]:
        starts.append(last)
    return starts


class CtcAligner:
    """Aligner (`speechmill.backends.align.Aligner`) over a character-level CTC model.

    `model` maps a float32 waveform tensor [1, N] at 16 kHz to logits or log-probs
    [1, T, V] with one frame every `hop_samples` samples (a torchaudio-style
    `(emissions, lengths)` tuple is accepted too). Audio longer than `window_s` runs
    through the model in windows overlapping by `overlap_s`; each frame is taken
    from the window where it lies farthest from an edge, so the stitched emissions
    cover the whole audio. The text is then aligned in one Viterbi pass over all
    frames (exact), or, past `max_cells` trellis cells (frames x (2 tokens + 1);
    the backpointers take one byte each), with the shared long-form windowing
    (`alignment.align_long_form`) over those emissions, each window's path free to
    end before the words it was given do (a window gets more words than it holds).
    """

    def __init__(
        self,
        model: Any,
        dictionary: Mapping[str, int],
        *,
        name: str = "ctc",
        blank: int = 0,
        hop_samples: int = 320,
        receptive_field: int = 400,
        window_s: float = MAX_WINDOW_S,
        overlap_s: float = 5.0,
        max_cells: int = 100_000_000,
        device: str = "cpu",
    ) -> None:
        if not 0 < window_s <= MAX_WINDOW_S:
            raise ValueError(f"window_s must be in (0, {MAX_WINDOW_S}], got {window_s}")
        if not 0 <= overlap_s < window_s - MARGIN_S:
            raise ValueError(f"overlap_s must be in [0, window_s - {MARGIN_S}), got {overlap_s}")
        self.model = model
        self.dictionary = dict(dictionary)
        self.name = name
        self.blank = blank
        self.hop_samples = hop_samples
        self.receptive_field = receptive_field
        self.window_s = float(window_s)
        self.overlap_s = float(overlap_s)
        self.window = max(
            receptive_field, round(window_s * SAMPLE_RATE / hop_samples) * hop_samples
        )
        # at least two frames of overlap so every frame is whole inside some window
        overlap = round(overlap_s * SAMPLE_RATE / hop_samples) * hop_samples
        self.overlap = min(max(overlap, 2 * hop_samples), self.window // 2)
        self.max_cells = max_cells
        self.device = device

    @property
    def frame_s(self) -> float:
        return self.hop_samples / SAMPLE_RATE

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_state_dict(
        cls,
        state_dict: Mapping[str, Any],
        config: Wav2Vec2Config | None = None,
        dictionary: Mapping[str, int] | None = None,
        **kwargs: Any,
    ) -> CtcAligner:
        """Build the network for `config` (default: sizes inferred from the state dict,
        the rest MMS_FA's) and load `state_dict` into it (strict: every key must match)."""
        dictionary = dict(dictionary if dictionary is not None else MMS_FA_DICTIONARY)
        sd = _strip_prefix(state_dict)
        num_labels = len([k for k in dictionary if k != "*"])
        sd = _drop_fairseq_specials(sd, num_labels if config is None else config.num_out)
        cfg = config if config is not None else Wav2Vec2Config.infer(sd)
        net = build_network(cfg)
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise ModelError(f"the state dict does not fit the wav2vec2 CTC network: {e}") from None
        device = kwargs.pop("device", "cpu")
        net.to(device).eval()
        kwargs.setdefault("hop_samples", cfg.hop_samples)
        kwargs.setdefault("receptive_field", cfg.receptive_field)
        return cls(net, dictionary, device=device, **kwargs)

    @classmethod
    def load(
        cls,
        path_or_name: str | os.PathLike[str],
        config: Wav2Vec2Config | None = None,
        dictionary: Mapping[str, int] | None = None,
        **kwargs: Any,
    ) -> CtcAligner:
        """A local state-dict file (`.pt`, e.g. MMS_FA's model.pt), or a hub name
        (`mms_fa`, or an https URL) fetched through torch.hub's cache."""
        try:
            import torch
        except ImportError as e:
            raise ModelError("the ctc aligner needs torch: pip install 'speechmill[ctc]'") from e
        ref = os.fspath(path_or_name)
        if os.path.isfile(ref):
            try:
                sd = torch.load(ref, map_location="cpu", weights_only=True)
            except Exception as e:
                raise ModelError(f"cannot read {ref} as a torch state dict: {e}") from None
            label = os.path.basename(ref)
        else:
            url = HUB_MODELS.get(ref.lower(), ref if ref.startswith("https://") else None)
            if url is None:
                raise ModelError(
                    f"CTC model {ref!r} is neither a file nor a known hub name "
                    f"({', '.join(sorted(HUB_MODELS))}) or an https URL"
                )
            try:
                sd = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False)
            except Exception as e:
                raise ModelError(
                    f"could not load CTC model {ref!r}: it is not a local file and torch.hub "
                    f"could not fetch {url} ({type(e).__name__}: {e}). Offline, copy MMS_FA's "
                    f"model.pt to this machine and pass its path (or place it in "
                    f"{os.path.join(torch.hub.get_dir(), 'checkpoints')})."
                ) from None
            label = ref.lower() if ref.lower() in HUB_MODELS else url
        kwargs.setdefault("name", f"ctc:{label}")
        return cls.from_state_dict(sd, config, dictionary, **kwargs)

    # ------------------------------------------------------------------ inference

    def _forward(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
            out = self.model(x.unsqueeze(0).to(self.device))
            if isinstance(out, tuple):  # torchaudio-style (emissions, lengths)
                out = out[0]
            out = torch.log_softmax(out.float(), dim=-1)  # no-op on log-probs
            return np.asarray(out[0].cpu().numpy(), dtype=np.float32)

    def log_probs(self, audio: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Per-frame CTC log-probs [T, V] of 16 kHz mono audio, through overlapping windows."""
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if len(x) < self.receptive_field:
            raise ValueError(
                f"{len(x)} samples are shorter than one frame ({self.receptive_field} samples)"
            )
        if len(x) <= self.window:
            return self._forward(x)
        pieces: list[tuple[int, npt.NDArray[np.float32]]] = []
        for start in window_starts(len(x), self.window, self.overlap, self.hop_samples):
            pieces.append(
                (start // self.hop_samples, self._forward(x[start : start + self.window]))
            )
        total = max(first + len(e) for first, e in pieces)
        vocab = pieces[0][1].shape[1]
        out = np.zeros((total, vocab), dtype=np.float32)
        best = np.full(total, -1, dtype=np.int64)  # distance to the nearest window edge
        for first, e in pieces:
            n = len(e)
            j = np.arange(n)
            margin = np.minimum(j, n - 1 - j)
            take = margin > best[first : first + n]
            out[first + j[take]] = e[take]
            best[first + j[take]] = margin[take]
        if (best < 0).any():  # pragma: no cover - windows overlap by >= 2 frames
            raise RuntimeError("windowed emissions left frames uncovered")
        return out

    def align(
        self, audio: npt.NDArray[np.float32], text: str, language: str | None = None
    ) -> Alignment:
        """One AlignedWord per whitespace-separated word of `text`, as given, with times
        in seconds from the start of `audio` (16 kHz mono); unplaceable words are
        interpolated with score 0 and counted in `unaligned` (see `align_words`).

        `language` is not used: MMS_FA is one model for all languages, given
        romanised text.
        """
        words = text.split()
        if not words:
            return empty_alignment()
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"audio must be 1-D (16 kHz mono), got shape {x.shape}")
        duration_s = x.size / SAMPLE_RATE
        if x.size < self.receptive_field:
            return finish(words, [None] * len(words), duration_s)
        lp = self.log_probs(x)
        n_frames, vocab = lp.shape
        tokens = tokenize_words(words, self.dictionary, self.blank, vocab)
        n_tokens = sum(len(t) for t in tokens)
        if n_frames * (2 * n_tokens + 1) <= self.max_cells:
            return align_words(lp, words, tokens, self.frame_s, self.blank, duration_s)

        def window(start_s: float, end_s: float, ws: Sequence[str]) -> list[AlignedWord | None]:
            f0 = min(n_frames, round(start_s / self.frame_s))
            f1 = min(n_frames, round(end_s / self.frame_s))
            toks = tokenize_words(ws, self.dictionary, self.blank, vocab)
            offset = f0 * self.frame_s - start_s
            return place_words(lp[f0:f1], ws, toks, self.frame_s, self.blank, offset, free_end=True)

        return align_long_form(
            words, duration_s, window, window_s=self.window_s, overlap_s=self.overlap_s
        )
