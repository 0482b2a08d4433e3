"""The packed decoder (speechlm.decode): same maths as the network, in fp32 and int8."""

from __future__ import annotations

import pytest
import torch

from speechlm.decode import (
    PackedLM,
    _pair_swap_rows,
    bare_matmul_seconds,
    decoder_for,
    default_weights,
    int8_kernel_available,
    quantize_int8,
)
from speechlm.generate import SamplingOptions, generate
from speechlm.lm import KVCache, LanguageModel, LMConfig, UnitLM, apply_rope, rope_table

needs_int8 = pytest.mark.skipif(not int8_kernel_available(), reason="no int8 CPU kernel")


@pytest.fixture(scope="module")
def model() -> UnitLM:
    torch.manual_seed(0)
    m = UnitLM(LMConfig(n_units=20, block_size=64, n_layer=2, n_head=2, n_embd=32)).eval()
    with torch.no_grad():  # non-trivial norm gains, so that folding them is exercised
        for name, p in m.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return m


def test_pair_swap_rows_is_the_rotary_quarter_turn():
    torch.manual_seed(1)
    hd, C = 8, 16
    w = torch.randn(2 * hd, C)
    x = torch.randn(3, C)
    swapped = (x @ _pair_swap_rows(w, hd).T).view(3, 2, hd // 2, 2)
    plain = (x @ w.T).view(3, 2, hd // 2, 2)
    assert torch.allclose(swapped[..., 0], -plain[..., 1])
    assert torch.allclose(swapped[..., 1], plain[..., 0])
    # and cos * x + sin * swap(x) is apply_rope's complex rotation
    rot = rope_table(hd, 5, 10_000.0)[3:4]  # one position
    y = (x @ w.T).view(3, 2, 1, hd)  # [N, heads, T, hd]
    cos = rot.real.repeat_interleave(2, -1)
    sin = rot.imag.repeat_interleave(2, -1)
    mine = y * cos + (x @ _pair_swap_rows(w, hd).T).view(3, 2, 1, hd) * sin
    assert torch.allclose(mine, apply_rope(y, rot), atol=1e-5)


def test_quantize_int8_error_is_at_most_half_a_step():
    torch.manual_seed(2)
    w = torch.randn(24, 40) * torch.linspace(0.01, 3, 24)[:, None]
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and scale.shape == (24,)
    assert int(q.abs().max()) <= 127
    err = (q.float() * scale[:, None] - w).abs()
    assert bool((err <= scale[:, None] / 2 + 1e-7).all())


def _logits(net, seq: torch.Tensor, step: torch.Tensor, dtype=None):
    cache = KVCache(net.cfg, seq.shape[0], 40, dtype=dtype)
    a = net(seq, cache=cache)[0][:, -1]
    b = net(step, cache=cache)[0][:, -1]
    c = net(torch.cat([step, step], 1), cache=cache)[0][:, -1]  # a block after a prefix
    return a, b, c


def test_fp32_packed_matches_the_network(model):
    packed = PackedLM(model, "fp32")
    g = torch.Generator().manual_seed(3)
    seq = torch.randint(0, 20, (2, 9), generator=g)
    step = torch.randint(0, 20, (2, 1), generator=g)
    for mine, ref in zip(_logits(packed, seq, step), _logits(model, seq, step)):
        assert torch.allclose(mine, ref, atol=1e-4), float((mine - ref).abs().max())
    # without a cache it scores every position, as the network does
    assert torch.allclose(packed(seq)[0], model(seq)[0], atol=1e-4)


@needs_int8
def test_int8_packed_is_close_and_four_times_smaller(model):
    fp, q8 = PackedLM(model, "fp32"), PackedLM(model, "int8")
    assert q8.cache_dtype == torch.float32 and q8.act == torch.bfloat16
    assert q8.weight_bytes < 0.3 * fp.weight_bytes
    g = torch.Generator().manual_seed(4)
    seq = torch.randint(0, 20, (1, 12), generator=g)
    with torch.no_grad():
        ref = model(seq)[0].log_softmax(-1)
    mine = q8(seq)[0].log_softmax(-1)
    # same predictions, probabilities within a few percent
    assert (mine.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.9
    assert float((mine.exp() - ref.exp()).abs().max()) < 0.05


def test_greedy_decoding_is_the_networks(model):
    opts = SamplingOptions(max_new_tokens=20, temperature=0.0, seed=0, stop_at_eos=False)
    prompt = torch.tensor([1, 2, 3, 4])
    ref = generate(model, prompt, opts).tokens
    assert torch.equal(generate(PackedLM(model, "fp32"), prompt, opts).tokens, ref)


@pytest.mark.parametrize("weights", ["fp32", pytest.param("int8", marks=needs_int8)])
def test_seeded_sampling_repeats(model, weights):
    packed = PackedLM(model, weights)
    opts = SamplingOptions(max_new_tokens=15, num_samples=3, seed=7, stop_at_eos=False)
    a = generate(packed, torch.tensor([5, 6]), opts)
    b = generate(packed, torch.tensor([5, 6]), opts)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logprobs, b.logprobs)
    assert int(a.tokens.min()) >= 0 and int(a.tokens.max()) < 20


def test_refuses_what_it_cannot_do(model):
    with pytest.raises(ValueError, match="weights must be one of"):
        PackedLM(model, "int4")
    packed = PackedLM(model, "fp32")
    with pytest.raises(ValueError, match="computes no loss"):
        packed(torch.zeros(1, 3, dtype=torch.long), targets=torch.zeros(1, 3, dtype=torch.long))
    cache = KVCache(model.cfg, 1, 4)
    with pytest.raises(ValueError, match="exceeds the context"):
        packed(torch.zeros(1, 5, dtype=torch.long), cache=cache)


def test_decoder_for_a_stage_is_built_once_per_format(model):
    lm = LanguageModel(model, {"units_per_second": 25.0})
    d = decoder_for(lm, "fp32")
    assert d.weights == "fp32" and decoder_for(lm, "fp32") is d  # built once
    assert decoder_for(lm).weights == default_weights()


def test_bare_matmul_floor_is_positive(model):
    assert 0 < bare_matmul_seconds(PackedLM(model, "fp32"), steps=3, repeats=1) < 1.0


def test_sample_categorical_draws_the_distribution():
    from speechlm.generate import sample_categorical

    p = torch.tensor([[0.5, 0.0, 0.2, 0.3], [0.0, 0.0, 1.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_categorical(p, g) for _ in range(20_000)])  # [n, 2]
    freq = torch.bincount(draws[:, 0], minlength=4).float() / len(draws)
    assert torch.allclose(freq, p[0], atol=0.015)  # ~4.5 standard errors
    assert int(freq[1] * len(draws)) == 0  # zero mass is never drawn
    assert bool((draws[:, 1] == 2).all())
