"""The unit language model: a decoder-only transformer over speech units (:class:`UnitLM`, the
network) and :class:`LanguageModel`, the loadable stage that wraps it.

Pre-norm blocks (RMSNorm), rotary position embeddings, fused QKV projection, PyTorch's
scaled-dot-product attention, a GELU MLP, and input/output embedding tying. The vocabulary
is the ``n_units`` speech units followed by the special tokens of :mod:`speechlm.units` and, in
an LM trained with text (``text_vocab``, :mod:`speechlm.data.interleave`), the two modality
markers and one token per character.

``forward(idx, targets=None, cache=None) -> (logits, loss)``. With a :class:`KVCache` the model
appends the new keys and values to the cache and attends over everything cached so far; the
sampling loop that drives it lives in :mod:`speechlm.generate`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.audio import SAMPLE_RATE
from speechlm.errors import ModelError
from speechlm.stage import Stage
from speechlm.units import text_vocab_size


@dataclasses.dataclass
class LMConfig:
    n_units: int = 100  # speech units (K of the tokenizer); specials sit above them
    block_size: int = 512  # longest context in tokens
    n_layer: int = 6  # transformer blocks
    n_head: int = 6  # attention heads
    n_embd: int = 384  # model width; must divide by n_head
    dropout: float = 0.0  # dropout on attention output, MLP output and embeddings
    rope_base: float = 10_000.0  # rotary embedding base
    dedup: bool = True  # trained on deduplicated units (GSLM) rather than frame-rate units
    unit_space: str = ""  # the tokenizer's unit space; the pipeline refuses a mismatch
    frame_rate: float = 50.0  # unit frame rate of the tokenizer
    text_vocab: str = ""  # characters of the text tokens (interleaved training); "" = units only

    @property
    def vocab_size(self) -> int:
        return text_vocab_size(self.n_units, self.text_vocab)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LMConfig:
        from speechlm.checkpoint import config_from_dict

        return config_from_dict(cls, d, "LM config")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


def rope_table(head_dim: int, length: int, base: float) -> torch.Tensor:
    """Rotations ``[length, head_dim / 2]`` as unit complex numbers."""
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    ang = torch.outer(torch.arange(length, dtype=torch.float32), inv)
    return torch.polar(torch.ones_like(ang), ang)


def apply_rope(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate each pair ``(x[2i], x[2i+1])`` of ``x`` ``[..., T, hd]`` by ``rot`` ``[T, hd/2]``."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * rot).flatten(-2).type_as(x)


class KVCache:
    """Preallocated keys and values for every layer: ``[B, H, max_len, hd]`` each."""

    def __init__(self, cfg: LMConfig, batch: int, max_len: int, device=None, dtype=None):
        hd = cfg.n_embd // cfg.n_head
        shape = (batch, cfg.n_head, max_len, hd)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.pos = 0  # tokens cached so far
        self.max_len = max_len

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (e.g. after dropping finished samples)."""
        self.k = [k[index] for k in self.k]
        self.v = [v[index] for v in self.v]


class Attention(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.n_head, self.hd = cfg.n_head, cfg.n_embd // cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x, rot, cache: KVCache | None = None, layer: int = 0):
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_head, self.hd).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(qkv[:2], rot)  # [B, H, T, hd] each, rotated together
        v = qkv[2]
        if cache is None:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        else:
            p = cache.pos
            cache.k[layer][:, :, p : p + T] = k
            cache.v[layer][:, :, p : p + T] = v
            k_all, v_all = cache.k[layer][:, :, : p + T], cache.v[layer][:, :, : p + T]
            if T == 1:
                y = F.scaled_dot_product_attention(q, k_all, v_all)
            else:  # prefill after earlier tokens: causal within the new block
                mask = torch.ones(T, p + T, dtype=torch.bool, device=x.device).tril(p)
                y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        y = self.proj(y.transpose(1, 2).reshape(B, T, C))
        return F.dropout(y, self.dropout, True) if self.training and self.dropout else y


class Block(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.norm1 = RMSNorm(cfg.n_embd)
        self.attn = Attention(cfg)
        self.norm2 = RMSNorm(cfg.n_embd)
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=False)
        self.out = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x, rot, cache=None, layer=0):
        x = x + self.attn(self.norm1(x), rot, cache, layer)
        h = self.out(F.gelu(self.fc(self.norm2(x)), approximate="tanh"))
        if self.training and self.dropout:
            h = F.dropout(h, self.dropout, True)
        return x + h


class UnitLM(nn.Module):
    """Decoder-only transformer over unit ids (+ specials)."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        if cfg.n_embd % cfg.n_head or (cfg.n_embd // cfg.n_head) % 2:
            raise ValueError(f"n_embd {cfg.n_embd} must split into {cfg.n_head} heads of even size")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # weight tying
        rot = rope_table(cfg.n_embd // cfg.n_head, cfg.block_size, cfg.rope_base)
        self.register_buffer("rot", rot, persistent=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # scaled init of residual projections (GPT-2)
            if name.endswith(("attn.proj.weight", "out.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    def _apply(self, fn, recurse=True):
        # .to(dtype) / .half() would cast the complex rotation table to real: keep it complex
        rot = self._buffers.pop("rot")
        try:
            super()._apply(fn, recurse)
        finally:
            self._buffers["rot"] = rot.to(self.embed.weight.device)
        return self

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next-token logits.

        Args:
            idx: ``[B, T]`` token ids.
            targets: ``[B, T]`` next tokens (-1 = ignore); when given, the mean cross-entropy.
            cache: decode state; ``idx`` then continues the cached tokens.

        Returns:
            logits ``[B, T, V]`` (only the last position ``[B, 1, V]`` when decoding with a
            cache and no targets), loss or None.
        """
        T = idx.shape[1]
        start = cache.pos if cache is not None else 0
        if start + T > self.cfg.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds block_size "
                             f"{self.cfg.block_size}")
        rot = self.rot[start : start + T]
        x = self.embed(idx)
        if self.training and self.cfg.dropout:
            x = F.dropout(x, self.cfg.dropout, True)
        for i, block in enumerate(self.blocks):
            x = block(x, rot, cache, i)
        if cache is not None:
            cache.pos += T
            if targets is None:
                x = x[:, -1:]
        logits = self.head(self.norm(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=-1)
        return logits, loss


DEFAULT_LM = "whisper-phone-lm"  # bundled in speechlm/pretrained/


class LanguageModel(Stage):
    """The unit LM as a loadable stage: the network plus what it was trained on.

    ``lm.model`` is the :class:`UnitLM` network that :func:`speechlm.generate.generate` samples
    from; the stage adds the contract every stage declares (:mod:`speechlm.stage`) and the
    LM's training unit rate, which turns seconds of speech into a number of units.

    Args:
        model: the network.
        config: the stage's ``config.json`` (``model``, ``unit_space``, ``units_per_second``,
            ``training``, ...).
    """

    def __init__(self, model: UnitLM, config: dict[str, Any]):
        self.model = model
        self.config = dict(config)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike = DEFAULT_LM,
             device: str | torch.device = "cpu") -> LanguageModel:
        """Load an LM stage directory (or a bundled name) strictly."""
        from speechlm import checkpoint

        cfg, tensors, path = checkpoint.load_stage(name_or_path, "lm")
        try:
            mcfg = LMConfig.from_dict(cfg["model"])
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"{path}: bad LM config ({err})") from None
        if not isinstance(cfg.get("units_per_second"), (int, float)):
            raise ModelError(f"{path}: config.json lacks units_per_second (the training unit "
                             "rate that turns seconds into units)")
        model = UnitLM(mcfg)
        sd = {k: v.float() for k, v in tensors.items()}
        if "embed.weight" in sd:
            sd["head.weight"] = sd["embed.weight"]  # tied: stored once
        expected = set(model.state_dict())
        missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
        if missing or unexpected:
            raise ModelError(f"{path}: weights do not fit the config (missing: "
                             f"{', '.join(missing[:5]) or 'none'}; unexpected: "
                             f"{', '.join(unexpected[:5]) or 'none'})")
        model.load_state_dict(sd, strict=True)  # shapes are checked here
        return cls(model.to(device).eval(), cfg)

    # --- the contract every stage exposes
    @property
    def sample_rate(self) -> int:
        return int(self.config.get("sample_rate", SAMPLE_RATE))

    @property
    def frame_rate(self) -> float:
        return self.model.cfg.frame_rate

    @property
    def n_units(self) -> int:
        return self.model.cfg.n_units

    @property
    def unit_space(self) -> str:
        return self.model.cfg.unit_space

    # --- what the LM adds
    @property
    def dedup(self) -> bool:
        """Trained on deduplicated units (the pipeline needs this)."""
        return self.model.cfg.dedup

    @property
    def block_size(self) -> int:
        """Longest context in tokens."""
        return self.model.cfg.block_size

    @property
    def units_per_second(self) -> float:
        """Units per second of speech in the LM's training data (after dedup when ``dedup``)."""
        return float(self.config["units_per_second"])

    @property
    def training(self) -> dict[str, Any]:
        return dict(self.config.get("training") or {})
