"""HuBERT masked prediction around torchaudio's :class:`~torchaudio.models.Wav2Vec2Model`.

The encoder is a plain ``wav2vec2_model(**arch)``, so what training produces loads through
:mod:`speechlm.ssl` like any HuBERT checkpoint. The pre-training head lives beside it:

    wav [B, T] --CNN--> [B, F, C] --projection--> [B, F, D]
        --frames where mask[B, F] is true replaced by a learned mask embedding-->
        --transformer--> [B, F, D] --final_proj--> [B, F, E]
        --cosine similarity with K learned label embeddings / temperature--> logits [B, F, K]

The loss is cross-entropy of the logits against the frame-rate unit targets on masked frames
(plus, optionally, a small weight on unmasked ones) and a penalty on the CNN features' scale,
as in the HuBERT paper (Hsu et al., 2021).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchaudio.models import Wav2Vec2Model
from torchaudio.models.wav2vec2 import components

from speechlm.audio import FRAME_SIZE, HOP_SIZE
from speechlm.errors import DataError
from speechlm.ssl.common import build_model, check_arch

_BASE_CONV = [[512, 10, 5]] + [[512, 3, 2]] * 4 + [[512, 2, 2]] * 2

# [model] keys of a recipe; the defaults are HuBERT Base's.
MODEL_DEFAULTS: dict[str, Any] = {
    "conv_layers": _BASE_CONV,  # CNN front end: (channels, kernel, stride) per layer;
    #                             logmel: [[n_mels, 400, 320]]
    "conv_bias": False,  # bias in the CNN layers
    "extractor_mode": "group_norm",  # group_norm (HuBERT Base) | layer_norm (Large) |
    #                                  logmel (MelHuBERT-style filterbank input, no CNN) |
    #                                  logmel_cmn (the same, each band less its input's mean)
    "dim": 768,  # transformer width D
    "layers": 12,  # transformer blocks
    "heads": 12,  # attention heads
    "ffn": 3072,  # feed-forward inner width
    "pos_conv_kernel": 128,  # convolutional positional embedding: kernel (frames)
    "pos_conv_groups": 16,  # ... and groups
    "layer_norm_first": False,  # pre-norm blocks (Large) instead of post-norm (Base)
    "dropout": 0.1,  # residual dropout in the transformer
    "attention_dropout": 0.1,  # on attention weights
    "activation_dropout": 0.0,  # inside the feed-forward block
    "projection_dropout": 0.1,  # on the projected CNN features
    "layer_drop": 0.05,  # probability of skipping a whole block in training
    "final_dim": 256,  # width E of the projection the logits compare
    "logit_temp": 0.1,  # temperature of the cosine-similarity logits
    "mask_prob": 0.8,  # frames chosen as span starts = mask_prob * F / mask_length
    "mask_length": 10,  # frames per masked span
    "unmasked_weight": 0.0,  # loss weight of unmasked frames (masked frames: 1)
    "feature_pen": 10.0,  # weight of the mean squared CNN feature
    "feature_grad_mult": 0.1,  # gradient scale into the CNN front end
}


def conv_geometry(conv: list) -> tuple[int, int]:
    """(receptive field, total stride) in samples of a ``(channels, kernel, stride)`` list."""
    field, stride = 1, 1
    for _, k, s in conv:
        field += (k - 1) * stride
        stride *= s
    return field, stride


def build_arch(m: dict[str, Any]) -> dict[str, Any]:
    """The :func:`torchaudio.models.wav2vec2_model` arguments of a ``[model]`` section.

    Raises:
        DataError: the CNN does not make 400-sample frames every 320 samples (the units' grid),
            or the transformer's width does not divide by its heads.
    """
    conv = [tuple(int(v) for v in layer) for layer in m["conv_layers"]]
    geometry = conv_geometry(conv)
    if geometry != (FRAME_SIZE, HOP_SIZE):
        raise DataError(f"model.conv_layers: receptive field {geometry[0]} and stride "
                        f"{geometry[1]} samples; need {FRAME_SIZE} and {HOP_SIZE} (HuBERT's) so "
                        "frames line up with the target units")
    if m["dim"] % m["heads"] or m["dim"] % m["pos_conv_groups"]:
        raise DataError(f"model.dim {m['dim']} must divide by model.heads {m['heads']} and "
                        f"model.pos_conv_groups {m['pos_conv_groups']}")
    arch = {
        "extractor_mode": m["extractor_mode"],
        "extractor_conv_layer_config": conv,
        "extractor_conv_bias": bool(m["conv_bias"]),
        "encoder_embed_dim": int(m["dim"]),
        "encoder_projection_dropout": float(m["projection_dropout"]),
        "encoder_pos_conv_kernel": int(m["pos_conv_kernel"]),
        "encoder_pos_conv_groups": int(m["pos_conv_groups"]),
        "encoder_num_layers": int(m["layers"]),
        "encoder_num_heads": int(m["heads"]),
        "encoder_attention_dropout": float(m["attention_dropout"]),
        "encoder_ff_interm_features": int(m["ffn"]),
        "encoder_ff_interm_dropout": float(m["activation_dropout"]),
        "encoder_dropout": float(m["dropout"]),
        "encoder_layer_norm_first": bool(m["layer_norm_first"]),
        "encoder_layer_drop": float(m["layer_drop"]),
        "aux_num_out": None,
    }
    return check_arch(arch, "[model]")


def span_mask(rng: np.random.Generator, batch: int, frames: int, prob: float,
              length: int) -> np.ndarray:
    """HuBERT / wav2vec 2.0 span masking.

    Each row gets ``round_random(prob * frames / length)`` (at least one) distinct span starts,
    drawn uniformly, and every span covers ``length`` frames; spans may overlap, so about
    ``1 - exp(-prob)`` of the frames end up masked for ``prob`` near 0.8 (~50 %).

    Returns:
        ``[batch, frames]`` bool.
    """
    length = max(1, min(length, frames))
    n_starts = frames - length + 1
    mask = np.zeros((batch, frames), dtype=bool)
    for b in range(batch):
        n = int(prob * frames / length + rng.random())
        n = min(max(n, 1), n_starts)
        starts = rng.choice(n_starts, size=n, replace=False)
        idx = (starts[:, None] + np.arange(length)[None, :]).ravel()
        mask[b, idx] = True
    return mask


def _init_weights(module: torch.nn.Module) -> None:
    """HuBERT's initialisation: Kaiming for the CNN, BERT-style for the transformer."""
    if isinstance(module, components.ConvLayerBlock):
        torch.nn.init.kaiming_normal_(module.conv.weight)
    elif isinstance(module, components.SelfAttention):
        for proj in (module.k_proj, module.v_proj, module.q_proj):
            torch.nn.init.xavier_uniform_(proj.weight, gain=1 / math.sqrt(2))
        torch.nn.init.xavier_uniform_(module.out_proj.weight)
        torch.nn.init.zeros_(module.out_proj.bias)
    elif isinstance(module, components.FeedForward):
        for lin in (module.intermediate_dense, module.output_dense):
            torch.nn.init.normal_(lin.weight, std=0.02)
            torch.nn.init.zeros_(lin.bias)


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; gradient times ``scale`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged, its gradient multiplied by ``scale`` on the way back (a negative scale
    reverses it: the phone trainer's speaker adversary)."""
    return _ScaleGrad.apply(x, scale)


class HubertPretrainer(torch.nn.Module):
    """A :class:`Wav2Vec2Model` (``self.encoder``) plus HuBERT's masked-prediction head.

    Args:
        arch: :func:`torchaudio.models.wav2vec2_model` arguments (see :func:`build_arch`).
        n_classes: Number of target units K.
        final_dim: Width E of the projection compared with the label embeddings.
        logit_temp: Temperature dividing the cosine similarities.
        feature_grad_mult: Gradient scale into the CNN (1: none, 0: frozen CNN).
    """

    def __init__(self, arch: dict[str, Any], n_classes: int, final_dim: int = 256,
                 logit_temp: float = 0.1, feature_grad_mult: float = 0.1):
        super().__init__()
        self.encoder: Wav2Vec2Model = build_model(arch)
        self.encoder.apply(_init_weights)
        dim = arch["encoder_embed_dim"]
        self.mask_emb = torch.nn.Parameter(torch.rand(dim))
        self.final_proj = torch.nn.Linear(dim, final_dim)
        self.label_emb = torch.nn.Parameter(torch.rand(n_classes, final_dim))
        self.logit_temp = logit_temp
        self.feature_grad_mult = feature_grad_mult

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, wav: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of every frame and the CNN feature penalty.

        Args:
            wav: ``[B, T]`` 16 kHz waveforms.
            mask: ``[B, F]`` bool, ``F = num_frames(T)``: frames to hide from the transformer.

        Returns:
            ``(logits [B, F, K], feature_penalty [])``.
        """
        x, _ = self.encoder.feature_extractor(wav, None)  # [B, F, C]
        if x.shape[1] != mask.shape[1]:
            raise ValueError(f"mask has {mask.shape[1]} frames, the CNN made {x.shape[1]}")
        # the penalty keeps a learned CNN's output small; a log-mel front end has no weights
        penalty = (x.float().pow(2).mean() if x.requires_grad
                   else x.new_zeros((), dtype=torch.float32))
        if self.feature_grad_mult != 1.0:
            x = scale_grad(x, self.feature_grad_mult)
        x, _ = self.encoder.encoder._preprocess(x, None)  # [B, F, D]
        x = torch.where(mask[..., None], self.mask_emb.to(x.dtype), x)
        x = self.encoder.encoder.transformer(x)  # [B, F, D]
        with torch.autocast(x.device.type, enabled=False):  # logits up to 1/temp: keep float32
            z = F.normalize(self.final_proj(x.float()), dim=-1)  # [B, F, E]
            e = F.normalize(self.label_emb.float(), dim=-1)  # [K, E]
            return z @ e.T / self.logit_temp, penalty
