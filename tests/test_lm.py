import pytest
import torch

from speechlm.errors import ModelError
from speechlm.generate import SamplingOptions, generate, sequence_logprob
from speechlm.lm import KVCache, LanguageModel, LMConfig, UnitLM
from speechlm.train.lm import export_model
from speechlm.units import special_id


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return UnitLM(LMConfig(n_units=20, block_size=128, n_layer=2, n_head=2, n_embd=32,
                           unit_space="test-space")).eval()


def test_forward_shapes_and_loss(model):
    x = torch.randint(0, 20, (3, 17))
    logits, loss = model(x)
    assert logits.shape == (3, 17, 23) and loss is None
    _, loss = model(x, x)
    assert loss.ndim == 0 and 2.0 < float(loss) < 4.5  # about log(23) at init


def test_weights_are_tied(model):
    assert model.head.weight is model.embed.weight


def test_kv_cache_matches_full_forward(model):
    x = torch.randint(0, 20, (2, 40))
    full, _ = model(x)
    cache = KVCache(model.cfg, 2, 40)
    first, _ = model(x[:, :25], cache=cache)
    assert torch.allclose(first[:, -1], full[:, 24], atol=1e-5)
    steps = [model(x[:, t : t + 1], cache=cache)[0][:, -1] for t in range(25, 33)]
    assert torch.allclose(torch.stack(steps, 1), full[:, 25:33], atol=1e-5)
    chunk, _ = model(x[:, 33:40], cache=cache)  # prefill after cached tokens
    assert torch.allclose(chunk[:, -1], full[:, 39], atol=1e-5)


def test_causal(model):
    x = torch.randint(0, 20, (1, 30))
    y = x.clone()
    y[0, 20:] = (y[0, 20:] + 1) % 20
    assert torch.allclose(model(x)[0][:, :20], model(y)[0][:, :20], atol=1e-6)


def test_block_size_enforced(model):
    with pytest.raises(ValueError, match="exceeds block_size 128"):
        model(torch.zeros(1, 129, dtype=torch.long))


def test_same_seed_same_units_different_seed_differs(model):
    p = torch.tensor([1, 2, 3, 4])
    opts = SamplingOptions(max_new_tokens=30, seed=5, num_samples=3, temperature=1.0)
    a, b = generate(model, p, opts), generate(model, p, opts)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logprobs, b.logprobs)
    c = generate(model, p, SamplingOptions(max_new_tokens=30, seed=6, num_samples=3,
                                           temperature=1.0))
    assert not torch.equal(a.tokens, c.tokens)
    assert not torch.equal(a.tokens[0], a.tokens[1])  # samples in one batch differ


def test_greedy_equals_top_k_1_and_argmax(model):
    p = torch.tensor([3, 1, 4, 1, 5])
    g = generate(model, p, SamplingOptions(max_new_tokens=10, temperature=0, stop_at_eos=False))
    k = generate(model, p, SamplingOptions(max_new_tokens=10, top_k=1, seed=0,
                                           stop_at_eos=False))
    assert torch.equal(g.tokens, k.tokens)
    bos = special_id("<bos>", 20)
    seq = torch.cat([torch.tensor([bos]), p, g.tokens[0]])
    logits, _ = model(seq[None])
    pred = logits[0, len(p) : len(p) + 10, :20].argmax(-1)
    assert torch.equal(pred, g.tokens[0])


def test_logprobs_are_model_logprobs(model):
    p = torch.tensor([7, 8])
    g = generate(model, p, SamplingOptions(max_new_tokens=6, seed=1, stop_at_eos=False))
    bos = special_id("<bos>", 20)
    seq = torch.cat([torch.tensor([bos]), p, g.tokens[0]])
    lp = torch.log_softmax(model(seq[None])[0][0], -1)
    expect = lp[2:8].gather(1, g.tokens[0][:, None]).squeeze(1)
    assert torch.allclose(g.logprobs[0], expect, atol=1e-5)
    assert sequence_logprob(model, g.tokens[0]) == pytest.approx(
        float(torch.log_softmax(model(torch.cat([torch.tensor([bos]), g.tokens[0][:-1]])[None])[0]
                                [0], -1).gather(1, g.tokens[0][:, None]).sum()), abs=1e-4)


def test_no_repeat_ngram(model):
    g = generate(model, torch.tensor([1]), SamplingOptions(
        max_new_tokens=60, temperature=0, no_repeat_ngram=2, stop_at_eos=False))
    seq = [1] + g.tokens[0].tolist()
    bigrams = list(zip(seq, seq[1:]))
    assert len(bigrams) == len(set(bigrams))


def test_repetition_penalty_changes_greedy_path(model):
    p = torch.tensor([1, 2])
    a = generate(model, p, SamplingOptions(max_new_tokens=40, temperature=0, stop_at_eos=False))
    b = generate(model, p, SamplingOptions(max_new_tokens=40, temperature=0,
                                           repetition_penalty=5.0, stop_at_eos=False))
    assert len(set(b.tokens[0].tolist())) >= len(set(a.tokens[0].tolist()))
    assert not torch.equal(a.tokens, b.tokens)


def test_only_units_are_sampled_and_length_bounded(model):
    g = generate(model, torch.tensor([]), SamplingOptions(max_new_tokens=25, seed=2,
                                                          num_samples=4, temperature=2.0))
    assert g.tokens.shape == (4, 25)
    for i in range(4):
        s = g.sample(i)
        assert len(s) == int(g.lengths[i]) <= 25 and ((s >= 0) & (s < 20)).all()


def test_generation_errors(model):
    with pytest.raises(ValueError, match="exceed the model's context of 127 tokens"):
        generate(model, torch.zeros(100, dtype=torch.long), SamplingOptions(max_new_tokens=50))
    with pytest.raises(ValueError, match=r"prompt unit ids must lie in \[0, 20\)"):
        generate(model, torch.tensor([25]), SamplingOptions())
    with pytest.raises(ValueError, match="top_p"):
        SamplingOptions(top_p=1.5)


def test_stage_round_trip_is_strict(model, tmp_path):
    export_model(tmp_path, model, {"units_per_second": 30.0})
    stage = LanguageModel.load(tmp_path / "model")
    loaded, cfg = stage.model, stage.config
    assert cfg["unit_space"] == "test-space" and cfg["units_per_second"] == 30.0
    assert (stage.unit_space, stage.n_units, stage.units_per_second) == ("test-space", 20, 30.0)
    x = torch.randint(0, 20, (1, 9))
    assert torch.equal(loaded(x)[0], model(x)[0])
    from safetensors.torch import load_file, save_file

    sd = load_file(tmp_path / "model" / "model.safetensors")
    sd["extra.weight"] = torch.zeros(1)
    save_file(sd, tmp_path / "model" / "model.safetensors")
    with pytest.raises(ModelError, match="unexpected: extra.weight"):
        LanguageModel.load(tmp_path / "model")


def test_dtype_casts_keep_rotary_table(model):
    import copy

    x = torch.randint(0, 20, (1, 12))
    ref = model(x)[0]
    m64 = copy.deepcopy(model).to(torch.float64)
    assert m64.rot.is_complex() and m64.embed.weight.dtype == torch.float64
    assert torch.allclose(m64(x)[0].float(), ref, atol=1e-4)
    mbf = copy.deepcopy(model).to(torch.bfloat16)
    assert mbf.rot.is_complex()
    assert torch.allclose(mbf(x)[0].float(), ref, atol=0.1)
