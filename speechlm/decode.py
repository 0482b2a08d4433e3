"""Fast decoding for the unit LM: packed weights, a static KV cache, a lean step.

A batch-1 decode step of a small LM on a CPU is bound by two things: the bytes of weights it
streams (every step reads every matrix once) and the per-operator overhead of the framework.
:class:`PackedLM` attacks both. It copies a trained :class:`speechlm.lm.UnitLM` into

* weights in one of two formats: ``"fp32"`` (the model's own numbers) or ``"int8"``:
  symmetric int8 with one scale per output channel, multiplied by torch's weight-only int8
  kernel (``aten._weight_int8pack_mm``), a quarter of the bytes per step. That kernel is fast
  with bfloat16 activations (0.24 ms for the 25 products of a 6 x 256 step on 2 cores here,
  against 2.5 ms with float32 activations and 0.91 ms for plain float32), so the int8 path
  feeds its products bfloat16 activations and keeps the residual stream, the rotary
  embedding, the KV cache and attention in float32; and
* a step with as few operators as the maths allows: real-valued rotary tables (no complex
  views), the QKV projection split once into q, k, v, keys and values written into the
  preallocated :class:`speechlm.lm.KVCache`, and the tied output head as one more packed matrix.

``PackedLM`` answers the same call as the network, ``packed(idx, cache=cache) -> (logits,
None)``, and carries ``cfg``, so :func:`speechlm.generate.generate` drives either.
:func:`bare_matmul_seconds` times the floor: the step's matrix products alone, in the same
format, which ``benchmarks/bench_lm.py`` prints beside the ratio.
"""

from __future__ import annotations

import functools
import math
import time
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from speechlm.lm import KVCache, LMConfig, UnitLM

if TYPE_CHECKING:
    from speechlm.cdecode import NativeLM

WEIGHT_FORMATS = ("fp32", "int8")


@functools.cache
def int8_kernel_available() -> bool:
    """Whether this torch has the CPU weight-only int8 matmul that ``"int8"`` needs."""
    try:
        x = torch.zeros(1, 8, dtype=torch.bfloat16)
        w = torch.zeros(8, 8, dtype=torch.int8)
        torch.ops.aten._weight_int8pack_mm(x, w, torch.ones(8, dtype=torch.bfloat16))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


# what decoder_for builds: the C loop (float32 or int8 matrices), or a PackedLM
DECODERS = ("native", "native-int8", *WEIGHT_FORMATS)


# Above this many bytes of float32 matrices the C loop reads them as int8: one thread streaming
# float32 is then bound by memory bandwidth (at 6 x 256, 19 MB: 0.98 ms a step in float32,
# 0.68 in int8; at the bundled 4 x 128, 3.2 MB, float32 stays within 1.5x of its floor)
NATIVE_FP32_MAX_BYTES = 8_000_000


def default_weights(model: UnitLM | None = None) -> str:
    """The decoder sampling uses: the decode loop in C (:mod:`speechlm.cdecode`) where it builds
    here, ``"native"`` (float32) or, for a ``model`` whose float32 matrices exceed
    :data:`NATIVE_FP32_MAX_BYTES`, ``"native-int8"``; else ``"int8"`` where this torch has the
    kernel, else ``"fp32"``."""
    from speechlm import cdecode

    if cdecode.available():
        if model is not None:
            c = model.cfg
            matrices = c.n_layer * 12 * c.n_embd ** 2 + c.vocab_size * c.n_embd
            if 4 * matrices > NATIVE_FP32_MAX_BYTES:
                return "native-int8"
        return "native"
    return "int8" if int8_kernel_available() else "fp32"


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric int8: ``w ~= q * scale[:, None]`` with ``q`` in [-127, 127].

    Args:
        w: ``[out, in]`` float weight.

    Returns:
        (``q`` ``[out, in]`` int8, ``scale`` ``[out]`` float32).
    """
    w = w.detach().float()
    scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


class Linear:
    """A bias-free linear map in one weight format."""

    __slots__ = ("fmt", "w", "scale")

    def __init__(self, weight: torch.Tensor, fmt: str):
        self.fmt = fmt
        if fmt == "int8":  # bfloat16 activations in, bfloat16 out
            q, scale = quantize_int8(weight)
            self.w, self.scale = q, scale.to(torch.bfloat16)
        else:
            self.w, self.scale = weight.detach().float().contiguous(), None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is None:
            return F.linear(x, self.w)
        shape = x.shape
        y = torch.ops.aten._weight_int8pack_mm(x.reshape(-1, shape[-1]), self.w, self.scale)
        return y.view(*shape[:-1], self.w.shape[0])

    @property
    def act_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.scale is not None else torch.float32

    @property
    def nbytes(self) -> int:
        extra = self.scale.numel() * self.scale.element_size() if self.scale is not None else 0
        return self.w.numel() * self.w.element_size() + extra

    def dequantized(self) -> torch.Tensor:
        """The float weight this map multiplies by."""
        return self.w if self.scale is None else self.w.float() * self.scale.float()[:, None]


class _Layer:
    __slots__ = ("qkv", "proj", "fc", "out")


def _pair_swap_rows(w: torch.Tensor, hd: int) -> torch.Tensor:
    """Rows of ``w`` ``[H * hd, C]`` rearranged so that ``x @ result.T`` is ``x @ w.T`` with
    each pair ``(a, b)`` of every head replaced by ``(-b, a)``: the rotary embedding's
    quarter turn, folded into the projection."""
    pairs = w.reshape(-1, hd // 2, 2, w.shape[1])
    return torch.stack((-pairs[:, :, 1], pairs[:, :, 0]), dim=2).reshape_as(w)


class PackedLM:
    """Inference copy of a :class:`UnitLM` in a weight format, for decoding.

    Besides the weight format, rewrites that keep the maths and cut the operators of a step:

    * the query and key rows of the QKV matrix are stored a second time with the rotary quarter
      turn folded in (``[q, k, v, rot(q), rot(k)]``, 5C x C), so the rotary embedding is one
      multiply-add of the projection's outputs with cos / sin tables;
    * each RMSNorm's gain is folded into the columns of the matrix that reads it (QKV, the
      MLP's first matrix, the head), and attention's 1/sqrt(head dim) into the query rows, so
      a norm is ``x / hypot(|x|, sqrt(C eps))`` times a constant folded in too (two cheap
      operators: torch's ``rms_norm`` costs ~20-50 us a call on small CPU tensors, then the
      largest share of a step's overhead);
    * the residual stream stays float32 while the products run in the weight format's
      activation dtype.

    Args:
        model: the trained network (left untouched).
        weights: ``"fp32"`` or ``"int8"`` (see the module docstring).

    Raises:
        ValueError: an unknown format, or ``"int8"`` where torch lacks the kernel.
    """

    def __init__(self, model: UnitLM, weights: str = "int8"):
        if weights not in WEIGHT_FORMATS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHT_FORMATS)}, got {weights!r}")
        if weights == "int8" and not int8_kernel_available():
            raise ValueError("this torch build lacks the CPU int8 weight kernel; "
                             "use weights='fp32'")
        self.cfg: LMConfig = model.cfg
        self.weights = weights
        self.device = model.embed.weight.device
        self.act = torch.bfloat16 if weights == "int8" else torch.float32
        cfg = self.cfg
        C = cfg.n_embd
        self.n_head, self.hd = cfg.n_head, C // cfg.n_head
        self.eps = model.norm.eps
        # RMSNorm(x) = sqrt(C) x / sqrt(|x|^2 + C eps): the norm is one vector_norm and one
        # hypot with this floor, and sqrt(C) goes into the next matrix with the gain
        self.norm_floor = torch.tensor(math.sqrt(C * self.eps))
        gain = math.sqrt(C)
        self.embed = model.embed.weight.detach().float().contiguous()
        self.layers = []
        for b in model.blocks:
            layer = _Layer()
            w = b.attn.qkv.weight.detach().float() * b.norm1.weight.detach().float() * gain
            w[:C] /= math.sqrt(self.hd)  # attention's scale, on the queries
            layer.qkv = Linear(torch.cat([w, _pair_swap_rows(w[: 2 * C], self.hd)]), weights)
            layer.proj = Linear(b.attn.proj.weight, weights)
            layer.fc = Linear(b.fc.weight.detach().float() * b.norm2.weight.detach().float()
                              * gain, weights)
            layer.out = Linear(b.out.weight, weights)
            self.layers.append(layer)
        self.head = Linear(model.head.weight.detach().float() * model.norm.weight.detach().float()
                           * gain, weights)
        rot = model.rot  # [block, hd/2] complex
        # per position: [2, H, hd] tables for q and k together, each angle on both of its pair
        cos = rot.real.float().repeat_interleave(2, dim=-1)  # [block, hd]
        sin = rot.imag.float().repeat_interleave(2, dim=-1)
        shape = (cfg.block_size, 2, self.n_head, self.hd)
        self.cos = cos[:, None, None, :].expand(shape).contiguous()
        self.sin = sin[:, None, None, :].expand(shape).contiguous()

    # the decode loop asks these of the network it drives
    def parameters(self):
        yield self.embed

    @property
    def cache_dtype(self) -> torch.dtype:
        """dtype of the keys and values (:class:`KVCache`) this decoder writes: float32 in
        every format (torch's CPU attention is ~4x slower on bfloat16 at one query)."""
        return torch.float32

    def eval(self) -> PackedLM:
        return self

    def linears(self) -> list[Linear]:
        """Every matrix a decode step multiplies by, in order (the head last)."""
        out = []
        for layer in self.layers:
            out += [layer.qkv, layer.proj, layer.fc, layer.out]
        return out + [self.head]

    @property
    def weight_bytes(self) -> int:
        """Bytes one decode step streams through the matrix products."""
        return sum(lin.nbytes for lin in self.linears())

    @torch.inference_mode()
    def __call__(self, idx: torch.Tensor, targets=None,
                 cache: KVCache | None = None) -> tuple[torch.Tensor, None]:
        """Float32 logits after feeding ``idx`` ``[N, T]``, as the network answers: with a
        ``cache`` (``idx`` continues it) those of the last position ``[N, 1, V]``; without,
        those of every position ``[N, T, V]`` (scoring, e.g. perplexity in this format)."""
        if targets is not None:
            raise ValueError("PackedLM scores and decodes; it computes no loss (targets)")
        N, T = idx.shape
        every = cache is None
        if every:
            cache = KVCache(self.cfg, N, T, device=idx.device, dtype=self.cache_dtype)
        p = cache.pos
        if p + T > self.cfg.block_size or p + T > cache.max_len:
            raise ValueError(f"sequence of {p + T} tokens exceeds the context "
                             f"{min(self.cfg.block_size, cache.max_len)}")
        H, hd, C = self.n_head, self.hd, self.cfg.n_embd
        act = self.act
        cos, sin = self.cos[p : p + T], self.sin[p : p + T]  # [T, 2, H, hd]
        x = F.embedding(idx, self.embed)
        mask = None
        if T > 1 and p > 0:
            mask = torch.ones(T, p + T, dtype=torch.bool, device=x.device).tril(p)
        floor = self.norm_floor

        def norm(x):  # RMSNorm / sqrt(C), without its gain (both folded into the next matrix)
            return (x / torch.hypot(torch.linalg.vector_norm(x, dim=-1, keepdim=True),
                                    floor)).to(act)

        for i, L in enumerate(self.layers):
            y = L.qkv(norm(x)).float().view(N, T, 5, H, hd)
            qk = torch.addcmul(y[:, :, :2] * cos, y[:, :, 3:], sin)  # [N, T, 2, H, hd]
            q = qk[:, :, 0].transpose(1, 2)
            cache.k[i][:, :, p : p + T] = qk[:, :, 1].transpose(1, 2)
            cache.v[i][:, :, p : p + T] = y[:, :, 2].transpose(1, 2)
            k, v = cache.k[i][:, :, : p + T], cache.v[i][:, :, : p + T]
            if T == 1:  # queries are pre-scaled: scale=1
                a = F.scaled_dot_product_attention(q, k, v, scale=1.0)
            elif p == 0:
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)
            else:
                a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
            x = x + L.proj(a.transpose(1, 2).reshape(N, T, C).to(act))
            x = x + L.out(F.gelu(L.fc(norm(x)), approximate="tanh"))
        cache.pos = p + T
        return self.head(norm(x if every else x[:, -1:])).float(), None


def native_decoder(model: UnitLM, int8: bool = False, threads: int | None = None) -> NativeLM:
    """The :class:`speechlm.cdecode.NativeLM` of ``model``: this module's float32 packing,
    decoded by the C loop, its matrices in float32 or (``int8``) int8, on ``threads`` threads
    (default: :meth:`~speechlm.cdecode.NativeLM.num_threads`'s choice per call).

    Raises:
        speechlm.cdecode.NativeUnavailable: no C compiler builds it here.
    """
    from speechlm.cdecode import NativeLM

    return NativeLM(PackedLM(model, "fp32"), quantize=quantize_int8 if int8 else None,
                    threads=threads)


def decoder_for(lm, weights: str | None = None) -> PackedLM | NativeLM:
    """The decoder of a loaded LM stage (:class:`speechlm.lm.LanguageModel`): its
    :class:`speechlm.cdecode.NativeLM` for ``"native"`` / ``"native-int8"``, else its
    :class:`PackedLM` in ``weights`` (default: :func:`default_weights` of its network), built
    on first use and kept on the stage.

    Raises:
        ValueError: an unknown decoder.
        speechlm.cdecode.NativeUnavailable: ``"native"`` asked for where it cannot be built.
    """
    w = weights or default_weights(lm.model)
    if w not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {w!r}")
    packed = getattr(lm, "_packed", None)
    if packed is None or packed.weights != w:
        if w.startswith("native"):
            packed = native_decoder(lm.model, int8=w == "native-int8")
        else:
            packed = PackedLM(lm.model, w)
        lm._packed = packed
    return packed


def bare_matmul_seconds(packed: PackedLM, batch: int = 1, steps: int = 200,
                        repeats: int = 3) -> float:
    """The floor of one decode step: its matrix products alone (``[batch, in] x W^T`` for every
    matrix of :meth:`PackedLM.linears`, in the packed format), best mean over ``repeats`` runs
    of ``steps`` steps, in seconds per step."""
    lins = packed.linears()
    xs = [torch.randn(batch, lin.w.shape[1]).to(lin.act_dtype) for lin in lins]
    best = float("inf")
    with torch.inference_mode():
        for lin, x in zip(lins, xs):  # warm-up
            lin(x)
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(steps):
                for lin, x in zip(lins, xs):
                    lin(x)
            best = min(best, (time.perf_counter() - t) / steps)
    return best


__all__ = ["DECODERS", "NATIVE_FP32_MAX_BYTES", "Linear", "PackedLM", "WEIGHT_FORMATS",
           "bare_matmul_seconds", "decoder_for", "default_weights", "int8_kernel_available",
           "native_decoder", "quantize_int8"]
