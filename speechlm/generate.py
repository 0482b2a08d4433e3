"""Sampling from the unit LM: a KV-cache decode loop kept apart from the network.

``generate(model, prompt, options) -> Generation``: the prompt is prefilled once, then each step
feeds one token per sample and reads the next-token distribution, shaped by temperature, top-k,
top-p, a repetition penalty and n-gram blocking. All samples of a call run as one batch. A seed
makes the result reproducible bit for bit on the same machine.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import TYPE_CHECKING

import torch

from speechlm.lm import KVCache, UnitLM

if TYPE_CHECKING:
    from speechlm.cdecode import NativeLM
    from speechlm.decode import PackedLM
from speechlm.units import special_id


@dataclasses.dataclass(frozen=True)
class SamplingOptions:
    max_new_tokens: int = 250  # units to generate at most (per sample)
    temperature: float = 0.8  # 0 = greedy
    top_k: int | None = None  # keep the k most likely units (None = all)
    top_p: float | None = None  # nucleus: smallest set with this much probability (None = off)
    repetition_penalty: float = 1.0  # > 1 discourages units seen in the last `penalty_window`
    penalty_window: int = 32  # tokens the repetition penalty looks back over
    no_repeat_ngram: int = 0  # forbid repeating any n-gram of this size (0 = off)
    num_samples: int = 1  # continuations sampled in one batch
    seed: int | None = None  # None: nondeterministic
    stop_at_eos: bool = True  # end a sample when it emits <eos>

    def __post_init__(self) -> None:
        def real(name: str, lo: float, lo_open: bool) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) \
                    or v < lo or (lo_open and v == lo):
                raise ValueError(f"{name} must be a finite number {'>' if lo_open else '>='} "
                                 f"{lo:g}, got {v!r}")

        def whole(name: str, lo: int, optional: bool = False) -> None:
            v = getattr(self, name)
            if optional and v is None:
                return
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")

        real("temperature", 0.0, False)
        whole("top_k", 1, optional=True)
        if self.top_p is not None:
            real("top_p", 0.0, True)
            if self.top_p > 1:
                raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        whole("num_samples", 1)
        whole("max_new_tokens", 1)
        real("repetition_penalty", 0.0, True)
        whole("penalty_window", 1)
        whole("no_repeat_ngram", 0)
        if self.no_repeat_ngram == 1:
            raise ValueError("no_repeat_ngram must be 0 (off) or >= 2: with 1 no unit could "
                             "ever recur")
        if self.seed is not None:
            whole("seed", -(2**63))
            if self.seed > 2**63 - 1:
                raise ValueError(f"seed must be in [-2**63, 2**63), got {self.seed}")


@dataclasses.dataclass(frozen=True)
class Generation:
    """Sampled continuations.

    Attributes:
        tokens: ``[N, L]`` generated unit ids; positions past a sample's end hold -1.
        lengths: ``[N]`` units per sample (without <eos>).
        logprobs: ``[N, L]`` the model's log-probability (temperature 1, before any filtering)
            of each generated unit; 0 past the end.
        ended: ``[N]`` whether the sample stopped at <eos>.
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    logprobs: torch.Tensor
    ended: torch.Tensor

    def sample(self, i: int) -> torch.Tensor:
        """Units of sample ``i`` (``[lengths[i]]``)."""
        return self.tokens[i, : int(self.lengths[i])]


def _filter_top_k_top_p(logits: torch.Tensor, top_k: int | None,
                        top_p: float | None) -> torch.Tensor:
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        # drop a token when the mass before it already reaches top_p (the first always stays)
        drop = (probs.cumsum(-1) - probs) >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def _apply_repetition_penalty(logits: torch.Tensor, history: torch.Tensor,
                              penalty: float) -> torch.Tensor:
    # CTRL-style: shrink positive logits and grow negative ones of recently seen tokens
    counts = torch.zeros_like(logits).scatter_add_(1, history.clamp(min=0),
                                                   (history >= 0).to(logits.dtype))
    seen = counts > 0
    scaled = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, scaled, logits)


def _banned_ngram_tokens(seq: list[int], n: int) -> list[int]:
    if len(seq) < n - 1 or n < 1:
        return []
    prefix = tuple(seq[len(seq) - (n - 1):]) if n > 1 else ()
    banned = []
    for i in range(len(seq) - n + 1):
        if tuple(seq[i : i + n - 1]) == prefix:
            banned.append(seq[i + n - 1])
    return banned


def sample_categorical(probs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One draw per row of ``probs`` ``[N, V]`` (rows sum to 1) by inverting the cumulative
    distribution with one uniform number per row: the index ``i`` with
    ``cdf[i-1] <= u * cdf[-1] < cdf[i]``. Five small operators, where ``torch.multinomial``
    costs ~60 us a call on a CPU (a twentieth of a decode step of the bundled LM)."""
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, generator=gen, device=probs.device, dtype=cdf.dtype)
    return (cdf < u * cdf[:, -1:]).sum(-1)


@torch.inference_mode()
def generate(model: UnitLM | PackedLM | NativeLM, prompt: torch.Tensor, options: SamplingOptions,
             then: torch.Tensor | list[int] | None = None) -> Generation:
    """Continue ``prompt`` (``[P]`` unit ids, no specials) with ``options.num_samples`` samples.

    ``model`` is the network, its :class:`speechlm.decode.PackedLM` (faster weights) or its
    :class:`speechlm.cdecode.NativeLM` (the loop in C, which this hands the call to; it draws
    other samples than the torch decoders from the same seed).
    ``then``: token ids read after the prompt, before sampling: an interleaved LM's
    ``<text> words <speech>`` (:func:`speechlm.units.text_prompt_ids`) asks it to go on speaking
    after those words. Only units (and ``<eos>``) are ever sampled.

    Raises:
        ValueError: the prompt holds ids outside the unit range, the ``then`` ids outside
            the vocabulary, or prompt + ``then`` + continuation exceed the model's context.
    """
    cfg = model.cfg
    model.eval()
    prompt = torch.as_tensor(prompt, dtype=torch.long).flatten()
    if prompt.numel() and (prompt.min() < 0 or prompt.max() >= cfg.n_units):
        raise ValueError(f"prompt unit ids must lie in [0, {cfg.n_units})")
    pre = torch.as_tensor([] if then is None else then, dtype=torch.long).flatten()
    if pre.numel() and (pre.min() < 0 or pre.max() >= cfg.vocab_size):
        raise ValueError(f"token ids after the prompt must lie in the vocabulary [0, "
                         f"{cfg.vocab_size})")
    bos, eos = special_id("<bos>", cfg.n_units), special_id("<eos>", cfg.n_units)
    total = 1 + pre.numel() + prompt.numel() + options.max_new_tokens
    if total > cfg.block_size:
        raise ValueError(f"prompt ({pre.numel() + prompt.numel()} tokens) + continuation "
                         f"({options.max_new_tokens}) exceed the model's context of "
                         f"{cfg.block_size - 1} tokens; shorten the prompt or the continuation")
    device = next(model.parameters()).device
    N = options.num_samples
    gen = torch.Generator(device=device)
    if options.seed is not None:
        gen.manual_seed(options.seed)
    else:
        gen.seed()

    allowed = torch.full((cfg.vocab_size,), float("-inf"), device=device)
    allowed[: cfg.n_units] = 0.0
    if options.stop_at_eos:
        allowed[eos] = 0.0
    x = torch.cat([torch.tensor([bos]), prompt, pre]).to(device).expand(N, -1).contiguous()
    if str(getattr(model, "weights", "")).startswith("native"):  # speechlm.cdecode: C loop
        if not options.no_repeat_ngram:
            seed = int(torch.randint(0, 2**62, (1,), generator=gen))
            tokens, lengths, logprobs, ended = model.generate(x[0], prompt, allowed, options,
                                                              seed)
            return Generation(tokens=tokens, lengths=lengths, logprobs=logprobs, ended=ended)
        model = model.packed  # n-gram blocking is the torch loop's
    dtype = getattr(model, "cache_dtype", None) or next(model.parameters()).dtype
    cache = KVCache(cfg, N, total, device=device, dtype=dtype)
    logits = model(x, cache=cache)[0][:, -1].float()

    L = options.max_new_tokens
    tokens = torch.full((N, L), -1, dtype=torch.long, device=device)
    logprobs = torch.zeros(N, L, device=device)
    done = torch.zeros(N, dtype=torch.bool, device=device)
    ended = torch.zeros(N, dtype=torch.bool, device=device)
    lengths = torch.full((N,), L, dtype=torch.long, device=device)
    history = x[:, 1:1 + prompt.numel()] if prompt.numel() else torch.full((N, 1), -1,
                                                                             device=device)
    seqs = [prompt.tolist() for _ in range(N)] if options.no_repeat_ngram else None

    for t in range(L):
        raw = torch.log_softmax(logits, dim=-1)
        scores = logits + allowed
        if options.repetition_penalty != 1.0:
            scores = _apply_repetition_penalty(scores, history[:, -options.penalty_window:],
                                               options.repetition_penalty)
        if seqs is not None:
            for i, s in enumerate(seqs):
                banned = _banned_ngram_tokens(s, options.no_repeat_ngram)
                if banned and len(set(banned)) < cfg.n_units:
                    scores[i, banned] = float("-inf")
        if options.temperature == 0:
            nxt = scores.argmax(-1)
        else:
            scores = _filter_top_k_top_p(scores / options.temperature, options.top_k,
                                         options.top_p)
            nxt = sample_categorical(scores.softmax(-1), gen)
        is_eos = nxt == eos
        newly = is_eos & ~done
        lengths = torch.where(newly, torch.full_like(lengths, t), lengths)
        ended |= newly
        write = ~done & ~is_eos
        tokens[:, t] = torch.where(write, nxt, tokens[:, t])
        logprobs[:, t] = torch.where(write, raw.gather(1, nxt[:, None]).squeeze(1),
                                     logprobs[:, t])
        done |= is_eos
        if bool(done.all()) or t == L - 1:
            break
        if seqs is not None:
            for i in range(N):
                seqs[i].append(int(nxt[i]))
        if options.repetition_penalty != 1.0:
            history = torch.cat([history, nxt[:, None]], dim=1)
        logits = model(nxt[:, None], cache=cache)[0][:, -1].float()
    return Generation(tokens=tokens.cpu(), lengths=lengths.cpu(), logprobs=logprobs.cpu(),
                      ended=ended.cpu())


@torch.inference_mode()
def sequence_logprob(model: UnitLM, units: torch.Tensor, add_eos: bool = False) -> float:
    """Total log-probability of ``units`` (``[T]``) after <bos> (and of <eos> if asked)."""
    cfg = model.cfg
    model.eval()
    bos, eos = special_id("<bos>", cfg.n_units), special_id("<eos>", cfg.n_units)
    seq = [bos] + units.tolist() + ([eos] if add_eos else [])
    if len(seq) > cfg.block_size + 1:
        raise ValueError(f"{len(seq)} tokens exceed the context of {cfg.block_size}")
    device = next(model.parameters()).device
    x = torch.tensor(seq[:-1], device=device)[None]
    y = torch.tensor(seq[1:], device=device)[None]
    logits, _ = model(x)
    lp = torch.log_softmax(logits.float(), -1).gather(2, y[..., None]).squeeze(-1)
    return float(lp.sum())
