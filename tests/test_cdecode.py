"""The decode loop in C (speechlm.cdecode): the network's numbers, generate's sampling rules."""

from __future__ import annotations

import pytest
import torch

from speechlm import cdecode
from speechlm.decode import (
    NATIVE_FP32_MAX_BYTES,
    PackedLM,
    decoder_for,
    default_weights,
    native_decoder,
    quantize_int8,
)
from speechlm.generate import SamplingOptions, _filter_top_k_top_p, generate
from speechlm.lm import LanguageModel, LMConfig, UnitLM
from speechlm.units import special_id

pytestmark = pytest.mark.skipif(not cdecode.available(), reason="no C compiler here")

CONFIGS = {  # the C kernel's blocks of 64 and 16 outputs and their tails; head dims 16, 10 and
    # 48: attention's blocks of 32 and 8 dimensions and its plain loop (10 is not a multiple of 8)
    "2x32": LMConfig(n_units=20, block_size=64, n_layer=2, n_head=2, n_embd=32),
    "3x40": LMConfig(n_units=37, block_size=80, n_layer=3, n_head=4, n_embd=40),
    "1x96": LMConfig(n_units=23, block_size=100, n_layer=1, n_head=2, n_embd=96),
}


def _model(cfg: LMConfig) -> UnitLM:
    torch.manual_seed(0)
    m = UnitLM(cfg).eval()
    with torch.no_grad():  # non-trivial norm gains and larger weights: peaked distributions
        for name, p in m.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.mul_(8.0)
    return m


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def model(request) -> UnitLM:
    return _model(CONFIGS[request.param])


@pytest.fixture(scope="module")
def small() -> UnitLM:
    return _model(CONFIGS["2x32"])


@torch.inference_mode()
@pytest.mark.parametrize("int8,tol", [(False, 2e-4), (True, 3e-2)])
def test_logits_are_the_networks(model, int8, tol):
    torch.manual_seed(1)
    idx = torch.randint(0, model.cfg.vocab_size, (2, 37))
    ref = model(idx)[0]
    nat = native_decoder(model, int8=int8)
    got = nat(idx)[0]
    assert got.shape == ref.shape and nat.weights == ("native-int8" if int8 else "native")
    assert torch.allclose(got, ref, atol=tol * float(ref.abs().max()))
    if int8:  # not the float32 numbers: the int8 path really runs
        assert not torch.allclose(got, ref, atol=2e-4 * float(ref.abs().max()))
        # the same int8 numbers as the torch int8 decoder's weights, dequantized
        assert nat.weight_bytes < native_decoder(model).weight_bytes / 3


@torch.inference_mode()
def test_whole_contexts_cross_tiles_of_keys(model):
    # keys live in tiles of 32 positions: every length up to the context, tails included
    torch.manual_seed(2)
    T = model.cfg.block_size
    idx = torch.randint(0, model.cfg.vocab_size, (1, T))
    ref = model(idx)[0]
    got = native_decoder(model)(idx)[0]
    assert torch.allclose(got, ref, atol=2e-4 * float(ref.abs().max()))
    prompt = torch.randint(0, model.cfg.n_units, (33,))
    opts = SamplingOptions(max_new_tokens=T - 35, temperature=0.0, seed=0, stop_at_eos=False)
    assert torch.equal(generate(native_decoder(model), prompt, opts).tokens,
                       generate(model, prompt, opts).tokens)


def test_greedy_decoding_is_the_networks(model):
    prompt = torch.tensor([1, 2, 3, 4, 5, 6, 7])
    nat = native_decoder(model)
    for penalty in (1.0, 1.5):
        opts = SamplingOptions(max_new_tokens=30, temperature=0.0, seed=0, stop_at_eos=False,
                               repetition_penalty=penalty, penalty_window=4)
        assert torch.equal(generate(nat, prompt, opts).tokens, generate(model, prompt, opts).tokens)


@torch.inference_mode()
def test_logprobs_are_the_networks_at_the_drawn_units(model):
    prompt = torch.tensor([3, 1, 4, 1, 5])
    opts = SamplingOptions(max_new_tokens=25, temperature=1.3, num_samples=3, seed=5,
                           stop_at_eos=False)
    out = generate(native_decoder(model), prompt, opts)
    assert bool((out.lengths == 25).all()) and not bool(out.ended.any())
    bos = special_id("<bos>", model.cfg.n_units)
    for i in range(3):
        seq = torch.cat([torch.tensor([bos]), prompt, out.tokens[i]])
        lp = torch.log_softmax(model(seq[None])[0][0], -1)[len(prompt):-1]
        ref = lp.gather(1, out.tokens[i][:, None]).squeeze(1)
        assert torch.allclose(out.logprobs[i], ref, atol=1e-4)


@pytest.mark.parametrize("int8", [False, True])
def test_a_seed_repeats_and_samples_differ(small, int8):
    nat = native_decoder(small, int8=int8)
    opts = SamplingOptions(max_new_tokens=20, temperature=1.0, num_samples=3, seed=11,
                           stop_at_eos=False)
    a, b = generate(nat, torch.tensor([2, 3]), opts), generate(nat, torch.tensor([2, 3]), opts)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logprobs, b.logprobs)
    assert not torch.equal(a.tokens[0], a.tokens[1])
    other = generate(nat, torch.tensor([2, 3]), SamplingOptions(
        max_new_tokens=20, temperature=1.0, num_samples=3, seed=12, stop_at_eos=False))
    assert not torch.equal(a.tokens, other.tokens)
    assert int(a.tokens.min()) >= 0 and int(a.tokens.max()) < small.cfg.n_units


def _first_draws(nat, options: SamplingOptions, prompt: torch.Tensor) -> torch.Tensor:
    """Frequencies of the first unit over ``options.num_samples`` samples."""
    model = nat.packed
    out = generate(nat, prompt, options)
    counts = torch.bincount(out.tokens[:, 0], minlength=model.cfg.vocab_size).float()
    return counts / len(out.tokens)


@torch.inference_mode()
@pytest.mark.parametrize("temperature,top_k,top_p,int8", [
    (1.0, None, None, False), (0.5, None, None, False), (1.0, 3, None, False),
    (1.0, None, 0.7, False), (2.0, 5, 0.9, False), (1.0, None, None, True)])
def test_draws_follow_the_filtered_distribution(small, temperature, top_k, top_p, int8):
    prompt = torch.tensor([4, 9, 1])
    n = 6000
    nat = native_decoder(small, int8=int8)
    freq = _first_draws(nat, SamplingOptions(max_new_tokens=1, temperature=temperature,
                                             top_k=top_k, top_p=top_p, num_samples=n,
                                             seed=3, stop_at_eos=False), prompt)
    bos = special_id("<bos>", small.cfg.n_units)
    logits = nat(torch.cat([torch.tensor([bos]), prompt])[None])[0][:, -1]  # its own
    logits[:, small.cfg.n_units:] = float("-inf")  # only units may be drawn
    p = _filter_top_k_top_p(logits / temperature, top_k, top_p).softmax(-1)[0]
    assert float(freq[p == 0].sum()) == 0.0  # nothing outside the kept set
    assert float((freq - p).abs().sum()) / 2 < 0.03  # total variation, ~4 sigma at n = 6000


def test_eos_ends_a_sample_and_specials_are_never_drawn(small):
    nat = native_decoder(small)
    V, eos = small.cfg.vocab_size, special_id("<eos>", small.cfg.n_units)
    prefix = torch.tensor([special_id("<bos>", small.cfg.n_units), 1, 2])
    only_eos = torch.full((V,), float("-inf"))
    only_eos[eos] = 0.0
    tokens, lengths, logprobs, ended = nat.generate(
        prefix, prefix[1:], only_eos, SamplingOptions(max_new_tokens=8, num_samples=2), seed=0)
    assert lengths.tolist() == [0, 0] and ended.tolist() == [True, True]
    assert bool((tokens == -1).all()) and bool((logprobs == 0).all())
    # generate's own mask: with <eos> disallowed no sample ends and no special appears
    g = generate(nat, torch.tensor([1]), SamplingOptions(max_new_tokens=40, temperature=3.0,
                                                         num_samples=4, seed=1,
                                                         stop_at_eos=False))
    assert not bool(g.ended.any()) and int(g.tokens.max()) < small.cfg.n_units


def test_eos_stops_like_the_torch_loop(small):
    m = _model(CONFIGS["2x32"])
    eos = special_id("<eos>", m.cfg.n_units)
    with torch.no_grad():  # a head that prefers <eos> after unit 7 has been read
        m.head.weight[eos] = m.embed.weight[7] * 4.0
    prompt = torch.tensor([7, 7, 7])
    opts = SamplingOptions(max_new_tokens=10, temperature=0.0, num_samples=2, seed=0)
    ref, got = generate(m, prompt, opts), generate(native_decoder(m), prompt, opts)
    assert torch.equal(got.tokens, ref.tokens) and torch.equal(got.lengths, ref.lengths)
    assert torch.equal(got.ended, ref.ended)


def test_ngram_blocking_is_left_to_the_torch_loop(small):
    nat = native_decoder(small)
    opts = SamplingOptions(max_new_tokens=20, no_repeat_ngram=2, num_samples=2, seed=4,
                           stop_at_eos=False)
    prompt = torch.tensor([1, 2, 1])
    assert torch.equal(generate(nat, prompt, opts).tokens,
                       generate(PackedLM(small, "fp32"), prompt, opts).tokens)


def test_scoring_refuses_what_it_cannot_do(small):
    nat = native_decoder(small)
    with pytest.raises(ValueError, match="no targets, no cache"):
        nat(torch.zeros(1, 3, dtype=torch.long), targets=torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="exceeds the context"):
        nat(torch.zeros(1, small.cfg.block_size + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids must lie in"):
        nat(torch.full((1, 3), small.cfg.vocab_size))
    with pytest.raises(ValueError, match="exceed the model's context"):
        generate(nat, torch.ones(60, dtype=torch.long), SamplingOptions(max_new_tokens=10))


def test_decoder_for_builds_it_by_name_and_by_default(small):
    lm = LanguageModel(small, {"units_per_second": 25.0})
    d = decoder_for(lm, "native")
    assert isinstance(d, cdecode.NativeLM) and decoder_for(lm, "native") is d
    assert decoder_for(lm, "native-int8").weights == "native-int8"
    d = decoder_for(lm, "native")
    assert default_weights() == "native" and decoder_for(lm).weights == "native"
    with pytest.raises(ValueError, match="decoder must be one of"):
        decoder_for(lm, "int4")
    # a model whose float32 matrices pass the threshold decodes int8 matrices by default
    big = UnitLM(LMConfig(n_units=20, block_size=16, n_layer=1, n_head=4, n_embd=416))
    assert 4 * 12 * 416 ** 2 > NATIVE_FP32_MAX_BYTES > 4 * 12 * 32 ** 2 * 2
    assert default_weights(big) == "native-int8" and default_weights(small) == "native"
    assert decoder_for(LanguageModel(big, {"units_per_second": 25.0})).weights == "native-int8"
    assert 0 < d.bare_matmul_seconds(steps=3, repeats=1) < 1.0
    assert 0 < d.bare_matmul_seconds(batch=3, steps=3, repeats=1) < 1.0


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty kernel cache and no memory of earlier builds; restored afterwards."""
    monkeypatch.setenv("SPEECHLM_CACHE", str(tmp_path / "cache"))
    cdecode.library.cache_clear()
    cdecode.available.cache_clear()
    yield tmp_path
    cdecode.library.cache_clear()
    cdecode.available.cache_clear()


def test_unavailable_compiler_falls_back_to_torch(fresh, monkeypatch, small):
    monkeypatch.setattr(cdecode, "_compiler", lambda: None)
    with pytest.raises(cdecode.NativeUnavailable, match="no C compiler"):
        cdecode.build()
    assert not cdecode.available()
    assert default_weights() in ("int8", "fp32")
    lm = LanguageModel(small, {"units_per_second": 25.0})
    assert isinstance(decoder_for(lm), PackedLM)
    with pytest.raises(cdecode.NativeUnavailable):
        decoder_for(lm, "native")


def test_a_failing_compiler_is_one_clear_error(fresh, monkeypatch):
    monkeypatch.setattr(cdecode, "_compiler", lambda: "/bin/false")
    with pytest.raises(cdecode.NativeUnavailable, match="compiling lmdecode.c with /bin/false "
                       "failed.*--lm-weights int8 or fp32"):
        cdecode.build()
    assert not list((fresh / "cache").glob("*"))  # nothing half-written


def test_disabled_by_environment(fresh, monkeypatch):
    monkeypatch.setenv("SPEECHLM_NATIVE", "0")
    with pytest.raises(cdecode.NativeUnavailable, match="SPEECHLM_NATIVE=0"):
        cdecode.library()


def test_a_build_is_cached_by_source_and_cpu(fresh):
    a = cdecode.build()
    assert a.exists() and a.parent == fresh / "cache" and cdecode.build() == a
    assert cdecode.library().slm_abi_version() == cdecode.ABI_VERSION


@torch.inference_mode()
@pytest.mark.parametrize("int8", [False, True])
def test_the_thread_count_does_not_change_a_bit(model, int8):
    # every output column and head is computed by the same instructions whichever thread owns
    # it: 2 and 3 threads (uneven shares of columns and heads) give 1 thread's numbers exactly
    torch.manual_seed(2)
    idx = torch.randint(0, model.cfg.vocab_size, (2, 29))
    prompt = torch.tensor([3, 1, 4, 1, 5, 9, 2])
    opts = SamplingOptions(max_new_tokens=40, temperature=1.1, top_k=9, top_p=0.9,
                           num_samples=5, seed=11, stop_at_eos=True, repetition_penalty=1.2)
    runs = []
    for threads in (1, 2, 3):
        nat = native_decoder(model, int8=int8, threads=threads)
        assert nat.num_threads(5) == threads
        out = generate(nat, prompt, opts)
        runs.append((nat(idx)[0], out.tokens, out.logprobs, out.lengths))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)


def test_threads_are_chosen_by_the_work_of_a_step(small, monkeypatch):
    nat = native_decoder(small)
    assert nat.num_threads(1) == 1  # a few thousand multiply-adds: not worth a barrier
    monkeypatch.setattr(cdecode, "MIN_MACS_PER_THREAD", 1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    monkeypatch.setattr(cdecode.os, "cpu_count", lambda: 2)
    assert nat.num_threads(1) == 2  # torch's threads, at most the cores
    assert native_decoder(small, threads=3).num_threads(1) == 3  # asked for: as asked
    with pytest.raises(ValueError, match="threads"):
        native_decoder(small, threads=0)


@torch.inference_mode()
def test_a_wide_ffn_prefills_through_a_heap_panel():
    # an FFN input of 1,088 (> the 1,024 rows of the stack panel): the prefill's int8 panel
    # comes from the heap. Its logits are what the one-row step (int8 converted in registers)
    # gives the same units, on one thread or two
    cfg = LMConfig(n_units=20, block_size=32, n_layer=1, n_head=4, n_embd=272)
    m = _model(cfg)
    prompt = torch.tensor([3, 1, 4, 1, 5])
    opts = SamplingOptions(max_new_tokens=12, temperature=0.0, seed=0, stop_at_eos=False)
    one, two = (native_decoder(m, int8=True, threads=t) for t in (1, 2))
    out = generate(one, prompt, opts)  # every step after the prompt: one row
    seq = torch.cat([torch.tensor([special_id("<bos>", cfg.n_units)]), prompt,
                     out.tokens[0, :-1]])[None]
    logits = one(seq)[0]  # all positions at once: several rows, the panel
    assert torch.equal(logits, two(seq)[0])
    lp = torch.log_softmax(logits[0, len(prompt):], -1)
    drawn = lp.gather(1, out.tokens[0][:, None])[:, 0]
    assert torch.allclose(drawn, out.logprobs[0], atol=1e-4)


@torch.inference_mode()
def test_the_int8_path_caches_keys_and_values_in_half_floats(model):
    int8 = native_decoder(model, int8=True)
    if int8.kv_bytes != 2:
        pytest.skip("this C build has no half floats: the int8 path keeps a float32 cache")
    assert native_decoder(model).kv_bytes == 4  # float32 weights: the network's numbers
    assert int8._cache(1, 40)[0].dtype == torch.float16
    # the same int8 weights, dequantized, through the float32 cache: what the half cache changes
    packed = PackedLM(model, "fp32")
    for lin in packed.linears():
        q, scale = quantize_int8(lin.w)
        lin.w = (q.float() * scale[:, None]).contiguous()
    torch.manual_seed(3)
    idx = torch.randint(0, model.cfg.vocab_size, (2, model.cfg.block_size))
    ref = cdecode.NativeLM(packed)(idx)[0]
    err = float((int8(idx)[0] - ref).abs().max() / ref.abs().max())
    assert 1e-6 < err < 4e-3, err
