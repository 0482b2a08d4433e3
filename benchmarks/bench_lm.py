"""Unit-LM speed: sampling (units/s) and training (tokens/s), against Hugging Face GPT-2.

speechlm: :func:`speechlm.generate.generate` (prefill + KV-cache decode loop) on what sampling
ships with, :class:`speechlm.cdecode.NativeLM` (the decode loop in C, float32 and int8, on
the threads ``NativeLM.num_threads`` picks, and on one thread where that is more than one;
``decoder_for``'s default where a C compiler builds it), on :class:`speechlm.decode.PackedLM` in
int8 and fp32 (torch), and on the plain :class:`speechlm.lm.UnitLM` network for reference; beside
each, the floor of its weights: the step's bare matrix products alone in that decoder's own
kernel (``NativeLM.bare_matmul_seconds``, :func:`speechlm.decode.bare_matmul_seconds`; the best
of ``--floor-repeats`` runs of 100 steps), and how far the step is above it. And a training
step of that model as the training loop takes it
(``batch_offsets`` + ``get_batch`` windows, forward, backward, grad clipping, AdamW).
Peer: transformers' ``GPT2LMHeadModel`` randomly initialised with the SAME dimensions (n_layer,
n_head, n_embd, vocab = n_units + 3, n_positions = the LM's block_size, tied embeddings, tanh
GELU, SDPA attention, no dropout when the LM has none), its ``generate(do_sample=True, top_k=0,
use_cache=True, min_new_tokens=max_new_tokens)`` and ``model(input_ids=x, labels=x)`` for
training. transformers is a benchmark-only peer, not a dependency of speechlm.

Both models run in float32 on the CPU under ``torch.inference_mode`` (sampling), in one process,
so with the same ``torch.get_num_threads()``; both get the identical prompt (<bos> + P random
units) and generate exactly the same number of units (speechlm ``stop_at_eos=False``, HF
``min_new_tokens = max_new_tokens``), plain sampling at temperature 1 on both sides. Each side
gets a warm-up pass, then the repeats of the two are interleaved (ours, peer, ours, peer, ...)
so that a drifting background load hits both alike; the best pass of each is reported. A
sampling pass is timed whole: prefill of the prompt + the decode steps; each decoder's call is
also timed for one unit (the prefill and a draw), so that the decode steps' own cost over the
floor shows apart from the prefill's (``*_decode_step_over_floor``).

Model: the bundled default LM (``phone-lm``) when it is in ``speechlm/pretrained/``, else a random
``LMConfig(n_units=100, block_size=512, n_layer=6, n_head=6, n_embd=384)``; any of
``--layers/--width/--heads`` picks a random model of those dimensions instead.

    .venv/bin/python benchmarks/bench_lm.py [--batches 1,8,32] [--new-tokens 250] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_DIMS = {"n_units": 100, "block_size": 512, "n_layer": 6, "n_head": 6, "n_embd": 384}


# --------------------------------------------------------------------------- models


def make_speechlm(args, min_block: int):
    """(UnitLM in eval mode, description of where it came from)."""
    import torch

    from speechlm.checkpoint import PRETRAINED_DIR
    from speechlm.lm import DEFAULT_LM, LanguageModel, LMConfig, UnitLM

    chosen = any(v is not None for v in (args.layers, args.width, args.heads))
    if not chosen and (PRETRAINED_DIR / DEFAULT_LM).is_dir():
        model = LanguageModel.load(DEFAULT_LM).model
        if model.cfg.block_size < min_block:
            raise SystemExit(f"bench_lm: the bundled LM's context ({model.cfg.block_size}) is "
                             f"shorter than <bos> + prompt + new tokens ({min_block})")
        return model.float().eval(), f"bundled {DEFAULT_LM}"
    dims = dict(DEFAULT_DIMS)
    if args.layers is not None:
        dims["n_layer"] = args.layers
    if args.width is not None:
        dims["n_embd"] = args.width
    if args.heads is not None:
        dims["n_head"] = args.heads
    dims["block_size"] = max(dims["block_size"], min_block)
    torch.manual_seed(0)
    return UnitLM(LMConfig(**dims)).float().eval(), "random init"


def make_peer(cfg):
    """GPT2LMHeadModel with the dimensions of the speechlm config ``cfg``, random init."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    from speechlm.units import special_id

    hf_logging.set_verbosity_error()
    hcfg = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
        n_layer=cfg.n_layer, n_head=cfg.n_head, n_inner=4 * cfg.n_embd,
        activation_function="gelu_new",  # tanh GELU, as speechlm's MLP
        resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
        tie_word_embeddings=True,
        bos_token_id=special_id("<bos>", cfg.n_units),
        eos_token_id=special_id("<eos>", cfg.n_units),
        pad_token_id=special_id("<pad>", cfg.n_units),
    )
    torch.manual_seed(0)
    try:
        model = GPT2LMHeadModel(hcfg, attn_implementation="sdpa")
    except TypeError:  # older transformers: set it on the config
        hcfg._attn_implementation = "sdpa"
        model = GPT2LMHeadModel(hcfg)
    return model.float().eval()


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights count once


# --------------------------------------------------------------------------- sampling


def sampling_runners(model, peer, prompt, new_tokens: int, batch: int, packed=()):
    """Zero-argument callables that each sample ``batch`` x ``new_tokens`` units: the network,
    the peer, then each of ``packed`` (decoders: NativeLM, PackedLM)."""
    import torch

    from speechlm.generate import SamplingOptions, generate
    from speechlm.units import special_id

    cfg = model.cfg
    opts = SamplingOptions(max_new_tokens=new_tokens, temperature=1.0, top_k=None, top_p=None,
                           num_samples=batch, seed=0, stop_at_eos=False)
    bos = special_id("<bos>", cfg.n_units)
    ids = torch.cat([torch.tensor([bos]), prompt]).expand(batch, -1).contiguous()
    mask = torch.ones_like(ids)
    pad = special_id("<pad>", cfg.n_units)
    eos = special_id("<eos>", cfg.n_units)

    def ours_with(net):
        def run():
            g = generate(net, prompt, opts)
            assert int(g.lengths.min()) == new_tokens, "speechlm stopped early"
        return run

    ours = ours_with(model)

    def theirs():
        torch.manual_seed(0)
        with torch.inference_mode():
            out = peer.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0,
                                top_p=1.0, temperature=1.0, max_new_tokens=new_tokens,
                                min_new_tokens=new_tokens, use_cache=True, pad_token_id=pad,
                                eos_token_id=eos, num_beams=1)
        assert out.shape == (batch, ids.shape[1] + new_tokens), f"peer gave {tuple(out.shape)}"

    return [ours, theirs, *(ours_with(p) for p in packed)]


def best_of_interleaved(fns, repeats: int) -> list[float]:
    """Warm each callable once, then time ``repeats`` interleaved rounds; best seconds each."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def bench_sampling(model, peer, args) -> dict:
    import torch

    from speechlm import cdecode
    from speechlm.decode import (
        PackedLM,
        bare_matmul_seconds,
        default_weights,
        int8_kernel_available,
        native_decoder,
    )

    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, model.cfg.n_units, (args.prompt_units,), generator=g)
    # what sampling ships with first (the C loop where it builds), then the torch decoders
    native = ["native", "native-int8"] if cdecode.available() else []
    names = list(dict.fromkeys([default_weights(model), *native,
                                "int8" if int8_kernel_available() else "fp32", "fp32"]))
    # and the C loop on one thread, where the default would share a step over more
    names += [f"{n}@1" for n in native
              if native_decoder(model, int8=n == "native-int8").num_threads(min(args.batches)) > 1]
    decoders = [native_decoder(model, int8=n.startswith("native-int8"),
                               threads=1 if n.endswith("@1") else None) if n.startswith("native")
                else PackedLM(model, n) for n in names]
    label = {n: (n.replace("-", "_").replace("@1", "_1thread") if n.startswith("native")
                 else f"packed_{n}") for n in names}
    out = {"prompt_units": args.prompt_units, "new_units": args.new_tokens,
           "repeats": args.repeats, "timed": "whole generate call: prefill + decode "
           "(*_step_over_floor: that over the new units); *_decode_*: the call less the same "
           "call for one unit (the prefill and a draw), over the new units less one",
           "shipped_decoder": f"NativeLM {names[0]} (C loop)" if names[0].startswith("native")
           else f"PackedLM {names[0]}",
           "floors": "bare matrix products of a step in the decoder's own kernel (native: the C "
                     "kernel on the decoder's threads, with the barrier after each product; "
                     "packed: torch, torch's threads); the best of "
                     f"{args.floor_repeats} runs of 100 steps",
           "weights_mb": {label[n]: round(d.weight_bytes / 1e6, 2)
                          for n, d in zip(names, decoders)}}
    for b in args.batches:
        runners = sampling_runners(model, peer, prompt, args.new_tokens, b, decoders)
        times = best_of_interleaved(runners, args.repeats)
        t_net, t_peer, t_dec = times[0], times[1], times[2:]
        # the same calls for one unit: the prefill and one draw, no decode step; what the
        # whole call takes beyond it is the N - 1 decode steps alone
        t_one = best_of_interleaved(sampling_runners(model, peer, prompt, 1, b, decoders)[2:],
                                    args.repeats) if args.new_tokens > 1 else []
        fr = args.floor_repeats
        floors = [d.bare_matmul_seconds(batch=b, steps=100, repeats=fr) if n.startswith("native")
                  else bare_matmul_seconds(d, batch=b, steps=100, repeats=fr)
                  for n, d in zip(names, decoders)]
        units = b * args.new_tokens
        row = {"peer_units_per_s": round(units / t_peer, 1),
               "peer_ms_per_unit_step": round(1000 * t_peer / args.new_tokens, 3),
               "network_fp32_ms_per_unit_step": round(1000 * t_net / args.new_tokens, 3),
               "ratio_network_fp32_over_peer": round(t_peer / t_net, 2)}
        for n, t, floor in zip(names, t_dec, floors):
            step, w = t / args.new_tokens, label[n]
            row[f"{w}_units_per_s"] = round(units / t, 1)
            row[f"{w}_ms_per_unit_step"] = round(1000 * step, 3)
            row[f"ratio_{w}_over_peer"] = round(t_peer / t, 2)
            row[f"floor_{w}_ms_bare_matmuls"] = round(1000 * floor, 3)
            row[f"{w}_step_over_floor"] = round(step / floor, 2)
            if t_one:
                one = t_one[names.index(n)]
                decode = max(t - one, 0.0) / (args.new_tokens - 1)
                row[f"{w}_prefill_ms"] = round(1000 * one, 3)
                row[f"{w}_decode_ms_per_step"] = round(1000 * decode, 3)
                row[f"{w}_decode_step_over_floor"] = round(decode / floor, 2)
            if n.startswith("native"):
                row[f"{w}_threads"] = decoders[names.index(n)].num_threads(b)
        out[f"batch_{b}"] = row
    return out


# --------------------------------------------------------------------------- training


def make_optimizer(model):
    """AdamW as the training loop builds it (decay on matrices only, betas 0.9/0.95)."""
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=1e-4, betas=(0.9, 0.95))


def bench_training(model_cfg, peer_factory, args) -> dict:
    import torch

    from speechlm.lm import UnitLM
    from speechlm.train.lm import batch_offsets, get_batch

    B, T = args.train_batch, args.train_block
    if T > model_cfg.block_size:
        raise SystemExit(f"bench_lm: --train-block {T} exceeds the LM's block_size "
                         f"{model_cfg.block_size}")
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, model_cfg.n_units, size=max(100_000, 4 * B * (T + 1)),
                          dtype=np.int64).astype(np.uint16)
    dev = torch.device("cpu")
    batches = [get_batch(tokens, batch_offsets(0, s, len(tokens), T, B), T, dev)
               for s in range(args.train_steps + 1)]

    # fresh copies: training the sampled-from models would be harmless but keep them apart
    torch.manual_seed(0)
    ours = UnitLM(model_cfg).float().train()
    peer = peer_factory().train()

    def stepper(model, call):
        opt = make_optimizer(model)
        state = {"i": 0}

        def step():
            x, y = batches[state["i"] % len(batches)]
            state["i"] += 1
            loss = call(model, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            assert torch.isfinite(loss), "non-finite loss"
        return step

    step_ours = stepper(ours, lambda m, x, y: m(x, y)[1])
    step_peer = stepper(peer, lambda m, x, y: m(input_ids=x, labels=x).loss)
    t_ours, t_peer = best_of_interleaved([step_ours, step_peer], args.train_steps)
    n = B * T
    return {
        "batch": B, "block": T, "steps": args.train_steps,
        "step": "forward + backward + clip_grad_norm + AdamW step, float32",
        "speechlm_tokens_per_s": round(n / t_ours, 1),
        "peer_tokens_per_s": round(n / t_peer, 1),
        "ratio_speechlm_over_peer": round(t_peer / t_ours, 2),
        "speechlm_s_per_step": round(t_ours, 3),
        "peer_s_per_step": round(t_peer, 3),
    }


# --------------------------------------------------------------------------- main


def cpu_model() -> str:
    """The CPU's name and vector extensions (ratios differ between machines; compare in one)."""
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    vec = [f for f in ("avx512f", "avx2", "fma") if f in flags]
    return f"{name or 'unknown'} ({', '.join(vec) or 'no AVX'})"



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, help="random model: transformer blocks (default 6)")
    ap.add_argument("--width", type=int, help="random model: n_embd (default 384)")
    ap.add_argument("--heads", type=int, help="random model: attention heads (default 6)")
    ap.add_argument("--prompt-units", type=int, default=75, help="prompt length (3 s at ~25/s)")
    ap.add_argument("--new-tokens", type=int, help="units generated per sample (default 250, or "
                    "what the bundled LM's context leaves after the prompt; --quick: 50)")
    ap.add_argument("--batches", help="sampling batch sizes, comma-separated (default 1,8; "
                    "e.g. 1,8,32)")
    ap.add_argument("--repeats", type=int, help="timed passes per side, best kept (default 3; "
                    "--quick: 1)")
    ap.add_argument("--train-batch", type=int, help="training sequences per step (default 32; "
                    "--quick: 4)")
    ap.add_argument("--train-block", type=int, default=256, help="training window in tokens")
    ap.add_argument("--train-steps", type=int, help="timed training steps per side after one "
                    "warm-up step (default 3; --quick: 1)")
    ap.add_argument("--floor-repeats", type=int,
                    help="runs of 100 bare steps per floor, the best kept (default 15: a run is "
                         "a few ms, and one slowed by the machine would flatter the ratio; "
                         "--quick: 3)")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--no-sampling", action="store_true", help="skip the sampling part")
    ap.add_argument("--no-training", action="store_true", help="skip the training part")
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 50 new units, batches 1,8, 1 repeat, train batch 4, 1 step")
    args = ap.parse_args()
    q = args.quick
    explicit_new = args.new_tokens is not None
    args.new_tokens = args.new_tokens or (50 if q else 250)
    args.repeats = args.repeats or (1 if q else 3)
    args.floor_repeats = args.floor_repeats or (3 if q else 15)
    args.train_batch = args.train_batch or (4 if q else 32)
    args.train_steps = args.train_steps or (1 if q else 3)
    args.batches = [int(b) for b in (args.batches or "1,8").split(",") if b.strip()]
    if min(args.batches) < 1 or args.new_tokens < 1 or args.prompt_units < 1:
        ap.error("batch sizes, --new-tokens and --prompt-units must be >= 1")

    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    if not explicit_new:  # the default must fit the bundled model's context
        from speechlm.checkpoint import PRETRAINED_DIR
        from speechlm.lm import DEFAULT_LM

        cfg_path = PRETRAINED_DIR / DEFAULT_LM / "config.json"
        chosen = any(v is not None for v in (args.layers, args.width, args.heads))
        if cfg_path.is_file() and not chosen:
            block = json.loads(cfg_path.read_text())["model"]["block_size"]
            args.new_tokens = max(1, min(args.new_tokens, block - 1 - args.prompt_units))
    min_block = 1 + args.prompt_units + args.new_tokens
    model, source = make_speechlm(args, min_block)
    cfg = model.cfg
    peer = make_peer(cfg)
    p_ours, p_peer = n_params(model), n_params(peer)
    diff = p_peer / p_ours - 1
    wpe = peer.transformer.wpe.weight.numel()
    result = {
        "quick": q,
        "model": {"source": source, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
                  "n_embd": cfg.n_embd, "n_units": cfg.n_units, "vocab_size": cfg.vocab_size,
                  "block_size": cfg.block_size},
        "peer": f"transformers {transformers.__version__} GPT2LMHeadModel (random init, "
                f"attn {peer.config._attn_implementation})",
        "params": {
            "speechlm": p_ours, "peer": p_peer,
            "peer_over_speechlm": round(p_peer / p_ours, 4),
            "peer_position_table": wpe,
            "note": (f"{'close' if abs(diff) <= 0.05 else 'NOT close'}: peer has "
                     f"{100 * diff:+.1f}% parameters (GPT-2's learned position table, "
                     f"{wpe} of them, biases and LayerNorm shifts; speechlm uses RoPE and "
                     "bias-free RMSNorm)"),
        },
        "dtype": "float32", "device": "cpu",
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "cpu": cpu_model(),
        "torch_version": torch.__version__, "transformers_version": transformers.__version__,
    }
    if not args.no_sampling:
        result["sampling"] = bench_sampling(model, peer, args)
    if not args.no_training:
        result["training"] = bench_training(cfg, lambda: make_peer(cfg), args)
    print(json.dumps(result, indent=2))
    if args.json:
        from speechlm.io import write_json_atomic

        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
