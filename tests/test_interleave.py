"""Text + speech interleaving: the text vocabulary, the mixed shard, training and sampling on it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from speechlm.data.interleave import build_mix, dedup_shard, interleave_utterance
from speechlm.data.shards import SHARD_FORMAT, open_shard, utterances
from speechlm.errors import DataError
from speechlm.generate import SamplingOptions, generate
from speechlm.lm import LMConfig, UnitLM
from speechlm.units import (
    DEFAULT_TEXT_VOCAB,
    N_SPECIAL,
    TEXT_MARKERS,
    encode_words,
    marker_id,
    normalize_text,
    special_id,
    text_prompt_ids,
    text_vocab_size,
)

K = 10
V = DEFAULT_TEXT_VOCAB


def decode_text(ids, n_units=K, vocab=V):
    base = n_units + N_SPECIAL + len(TEXT_MARKERS)
    return "".join(vocab[i - base] for i in ids)


def test_text_vocabulary_sits_above_the_specials():
    assert text_vocab_size(K, "") == K + N_SPECIAL
    assert text_vocab_size(K, V) == K + N_SPECIAL + 2 + len(V)
    assert marker_id("<text>", K) == K + N_SPECIAL
    assert marker_id("<speech>", K) == K + N_SPECIAL + 1
    assert normalize_text("Don't stop-now! 42x", V) == ["don't", "stop", "now", "42x"]
    ids = encode_words(["hi", "you"], K, V)
    assert decode_text(ids) == "hi you "
    assert min(ids) >= K + N_SPECIAL + 2
    p = text_prompt_ids("Hi, you.", K, V)
    assert p[0] == marker_id("<text>", K) and p[-1] == marker_id("<speech>", K)
    assert decode_text(p[1:-1]) == "hi you "
    with pytest.raises(ValueError, match="units only"):
        text_prompt_ids("hi", K, "")
    with pytest.raises(ValueError, match="no word"):
        text_prompt_ids("?!", K, V)


def test_interleaved_utterance_alternates_at_word_boundaries():
    rate, sr = 50.0, 16000
    # three words: frames 0-9 unit 1 (and 2), 10-19 unit 3, 20-29 unit 4
    frames = np.array([1] * 5 + [2] * 5 + [3] * 10 + [4] * 10)
    words = [(0, 3200, "one"), (3200, 6400, "two"), (6400, 9600, "three")]
    seen = set()
    for seed in range(40):
        seq = interleave_utterance(frames, words, rate, sr, K, V, np.random.default_rng(seed),
                                   max_span=1)  # one word per span: the modality alternates
        assert seq[0] == special_id("<bos>", K) and seq[-1] == special_id("<eos>", K)
        body = seq[1:-1]
        t, s = marker_id("<text>", K), marker_id("<speech>", K)
        if body[0] == t:  # text, speech, text
            i = body.index(s)
            assert decode_text(body[1:i]) == "one "
            j = body.index(t, i)
            assert body[i + 1:j] == [3]
            assert decode_text(body[j + 1:]) == "three "
            seen.add("text first")
        else:  # speech (unmarked after <bos>), text, speech
            assert body[:2] == [1, 2]
            i = body.index(s)
            assert decode_text(body[3:i]) == "two "
            assert body[i + 1:] == [4]
            seen.add("speech first")
    assert seen == {"text first", "speech first"}


def _shard(d: Path, split: str, utts: list[list[int]], dedup: bool):
    bos, eos = special_id("<bos>", K), special_id("<eos>", K)
    toks = np.concatenate([[bos, *u, eos] for u in utts]).astype(np.uint16)
    d.mkdir(parents=True, exist_ok=True)
    toks.tofile(d / f"{split}.bin")
    (d / f"{split}.json").write_text(json.dumps({
        "format": SHARD_FORMAT, "version": 1, "split": split, "unit_space": "toy", "n_units": K,
        "frame_rate": 50.0, "dedup": dedup, "dtype": "uint16", "tokens": len(toks),
        "units": sum(map(len, utts)), "utterances": len(utts), "seconds": 1.0,
        "units_per_second": 1.0, "corpus": "toy"}))


@pytest.fixture
def toy(tmp_path):
    """A corpus of 6 train utterances (two with word times) and frame-rate unit shards."""
    corpus = tmp_path / "corpus"
    (corpus / "audio" / "v").mkdir(parents=True)
    rng = np.random.default_rng(0)
    frames = {s: [rng.integers(0, K, size=30).repeat(2).tolist() for _ in range(n)]
              for s, n in (("train", 6), ("valid", 2))}
    for split, utts in frames.items():
        lines = [str(corpus)] + [f"audio/v/{split}{i}.flac\t19200" for i in range(len(utts))]
        (corpus / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    for i in (0, 3):
        (corpus / "audio" / "v" / f"train{i}.wbd").write_text(
            "0 6400 hello\n6400 12800 big\n12800 19200 world\n")
    (corpus / "text").mkdir()
    (corpus / "text" / "sentences.tsv").write_text(
        "id\tsplit\tsource\tsentence\n"
        + "".join(f"t{i}\ttrain\tx\tThe cat number {i} sat.\n" for i in range(50))
        + "v0\tvalid\tx\tA valid sentence never trained on.\n"
        + "s0\ttest\tx\tZebra quartz test only.\n")
    fr = tmp_path / "frames"
    for split, utts in frames.items():
        _shard(fr, split, utts, dedup=False)
    return corpus, fr, frames


def test_dedup_shard_equals_collapsing_each_utterance(toy, tmp_path):
    _, fr, frames = toy
    dedup_shard(fr, tmp_path / "dedup")
    toks, meta = open_shard(tmp_path / "dedup", "train")
    got = utterances(np.asarray(toks), K)
    for g, f in zip(got, frames["train"]):
        assert g.tolist() == [x for i, x in enumerate(f) if i == 0 or f[i - 1] != x]
    assert meta["dedup"] and meta["units"] == sum(map(len, got))
    with pytest.raises(DataError, match="already deduplicated"):
        dedup_shard(tmp_path / "dedup", tmp_path / "again")


def test_mix_holds_units_interleaved_and_only_training_text(toy, tmp_path):
    corpus, fr, frames = toy
    dedup_shard(fr, tmp_path / "dedup")
    meta = build_mix(fr, tmp_path / "dedup", corpus, tmp_path / "mix", V, text_ratio=0.5,
                     max_span=1, progress=False)
    toks = np.asarray(open_shard(tmp_path / "mix", "train")[0])
    assert meta["mix"]["interleaved_utterances"] == 2
    assert meta["mix"]["units"] + meta["mix"]["interleaved"] + meta["mix"]["text"] == len(toks)
    text_budget = 0.5 * meta["mix"]["units"]
    assert text_budget <= meta["mix"]["text"] < text_budget + 40
    seqs = [s.tolist() for s in utterances(toks, K)]
    t, sp = marker_id("<text>", K), marker_id("<speech>", K)
    kinds = [("interleaved" if t in s and sp in s else "text" if s[:1] == [t] else
              "units" if max(s) < K else "?") for s in seqs]
    assert kinds.count("units") == 6 and kinds.count("interleaved") == 2
    assert kinds.count("text") >= 1 and "?" not in kinds
    assert kinds != sorted(kinds)  # shuffled together
    text = " ".join(decode_text([t for t in s if t >= K + N_SPECIAL + 2]) for s in seqs)
    assert "the cat number" in text and "hello" in text
    assert "valid" not in text and "zebra" not in text  # held-out sentences never enter
    # validation is the units-only valid shard, byte for byte
    assert (tmp_path / "mix" / "valid.bin").read_bytes() == \
        (tmp_path / "dedup" / "valid.bin").read_bytes()
    # built once: a second call keeps it, another vocabulary is refused
    same = dict(text_ratio=0.5, max_span=1)
    assert build_mix(fr, tmp_path / "dedup", corpus, tmp_path / "mix", V, **same) == meta
    with pytest.raises(DataError, match="another text_vocab"):
        build_mix(fr, tmp_path / "dedup", corpus, tmp_path / "mix", " ab", **same)
    with pytest.raises(DataError, match="another copies"):
        build_mix(fr, tmp_path / "dedup", corpus, tmp_path / "mix", V, copies=2, **same)
    # copies: each utterance with word times interleaved that many times, cut differently
    m3 = build_mix(fr, tmp_path / "dedup", corpus, tmp_path / "mix3", V, copies=3, **same)
    assert m3["mix"]["interleaved_utterances"] == 2
    seqs3 = [s.tolist() for s in utterances(np.asarray(open_shard(tmp_path / "mix3",
                                                                  "train")[0]), K)]
    assert sum(t in s and sp in s for s in seqs3) == 6


def test_train_an_interleaved_lm_then_sample_units_after_a_text_prompt(toy, tmp_path):
    from speechlm.lm import LanguageModel
    from speechlm.train.lm import load_config, train_lm

    corpus, fr, _ = toy
    cfg = load_config(None, [
        f"--data.corpus={corpus}", f"--data.frames_dir={fr}", "--data.tokenizer=",
        f"--data.units_dir={tmp_path / 'dedup'}", f"--data.mix_dir={tmp_path / 'mix'}",
        "--data.interleave=true", "--data.text_ratio=1.0", "--model.block_size=32",
        "--model.n_layer=1", "--model.n_head=2", "--model.n_embd=16", "--train.batch_size=4",
        "--train.max_steps=6", "--train.eval_interval=3", "--train.eval_batches=1",
        "--train.ckpt_interval=3", "--train.log_interval=3", "--train.warmup_steps=1",
        f"--train.out={tmp_path / 'run'}", "--train.threads=1"])
    run = train_lm(cfg, progress=False)
    lm = LanguageModel.load(run / "model")
    assert lm.model.cfg.text_vocab == V
    assert lm.model.cfg.vocab_size == text_vocab_size(K, V)
    assert lm.training["mix"]["interleaved_utterances"] == 2
    assert lm.training["units_dir"] == str(tmp_path / "dedup")  # what eval lm scores
    then = text_prompt_ids("hello big", K, V)
    g = generate(lm.model, torch.tensor([1, 2, 3]),
                 SamplingOptions(max_new_tokens=8, seed=0, stop_at_eos=False), then)
    assert g.tokens.shape == (1, 8) and int(g.tokens.max()) < K  # only units are sampled
    with pytest.raises(ValueError, match="vocabulary"):
        generate(lm.model, torch.tensor([1]), SamplingOptions(max_new_tokens=2),
                 [lm.model.cfg.vocab_size])
    # the text-context test scores the second half after each context, on utterances with word
    # times (train0 and train3 of the toy corpus)
    from speechlm.eval.lm import text_context

    tc = text_context(lm.model, fr, corpus, split="train", min_words=3)
    assert tc["utterances"] == 2 and tc["target_units"] > 0
    assert set(tc["nll_per_unit"]) == {"speech", "text", "other_text", "none"}
    assert all(v > 0 for v in tc["nll_per_unit"].values())
    with pytest.raises(DataError, match="word times"):
        text_context(lm.model, fr, corpus, split="train", min_words=4)
    # the probe pairs read as text: one trial per distinct pair, good beats bad by log-prob
    from speechlm.eval.probes import score_text_pairs
    from speechlm.generate import sequence_logprob

    tsv = tmp_path / "pairs.tsv"
    rows = [("p1", "v1", "hello", "hellp"), ("p1", "v2", "hello", "hellp"),
            ("p2", "v1", "big world", "world big"), ("p3", "v1", "cat", "zzq")]
    tsv.write_text("pair_id\tvoice\tgood_path\tbad_path\tgood_text\tbad_text\n" + "".join(
        f"{i}\t{v}\ta.flac\tb.flac\t{g}\t{b}\n" for i, v, g, b in rows))
    r = score_text_pairs(lm.model, tsv)

    def lp(text):
        return sequence_logprob(lm.model, torch.tensor(text_prompt_ids(text, K, V)[:-1]))

    want = [1.0 if lp(g) > lp(b) else 0.0 for g, b in
            (("big world", "world big"), ("cat", "zzq"), ("hello", "hellp"))]
    assert r["n"] == 3 and r["accuracy"] == pytest.approx(sum(want) / 3)
    unit_only = UnitLM(LMConfig(n_units=K, block_size=16, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match="units only"):
        score_text_pairs(unit_only, tsv)


def test_then_tokens_are_read_after_the_prompt():
    """Sampling after ``then`` equals sampling from the prompt with those tokens appended, as
    the network scores it without a cache."""
    torch.manual_seed(0)
    m = UnitLM(LMConfig(n_units=K, block_size=32, n_layer=1, n_head=2, n_embd=16,
                        text_vocab=V)).eval()
    prompt, then = torch.tensor([4, 5]), text_prompt_ids("ok", K, V)
    g = generate(m, prompt, SamplingOptions(max_new_tokens=1, temperature=0), then)
    x = torch.tensor([[special_id("<bos>", K), 4, 5, *then]])
    logits = m(x)[0][0, -1]
    allowed = torch.full_like(logits, float("-inf"))
    allowed[:K] = 0
    allowed[special_id("<eos>", K)] = 0
    first = int((logits + allowed).argmax())
    assert (int(g.tokens[0, 0]) if g.lengths[0] else special_id("<eos>", K)) == first


def test_scaling_table_reads_runs_and_refuses_what_is_not_one(toy, tmp_path):
    from speechlm.cli import main
    from speechlm.eval.scaling import plot_scaling, scaling_markdown, scaling_report
    from speechlm.train.lm import load_config, train_lm

    corpus, fr, _ = toy
    runs = []
    for name, width, steps in (("a", 16, 4), ("b", 32, 2)):
        cfg = load_config(None, [
            f"--data.corpus={corpus}", f"--data.frames_dir={fr}", "--data.tokenizer=",
            f"--data.units_dir={tmp_path / 'dedup'}", "--model.block_size=16",
            "--model.n_layer=1", "--model.n_head=2", f"--model.n_embd={width}",
            "--train.batch_size=2", f"--train.max_steps={steps}", "--train.eval_interval=2",
            "--train.eval_batches=1", "--train.ckpt_interval=2", "--train.log_interval=1",
            "--train.warmup_steps=1", f"--train.out={tmp_path / name}", "--train.threads=1"])
        runs.append(train_lm(cfg, progress=False))
    rep = scaling_report(runs)
    a = next(r for r in rep["runs"] if r["run"].endswith("a"))
    n = a["params_non_embedding"]
    assert n == a["params"] - (K + N_SPECIAL) * 16  # the tied embedding is left out
    assert a["steps"] == 4 and a["tokens"] == 4 * 2 * 16 and a["flops"] == 6.0 * n * 128
    assert [c[0] for c in a["curve"]] == [2, 4] and not a["text"]
    assert [r["flops"] for r in rep["runs"]] == sorted(r["flops"] for r in rep["runs"])
    md = scaling_markdown(rep)
    assert md.count("\n") == 4 and "1 x 16" in md
    plot_scaling(tmp_path / "s.png", rep)
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["eval", "scaling", str(tmp_path / "nothing")]) == 2
    # two runs of one name (the same recipe on two corpora) are told apart by their parent
    twin = dict(a, run=str(tmp_path / "big" / "a"), data="data/units/big-dedup")
    md2 = scaling_markdown({"runs": [a, twin]})
    assert f"| {tmp_path.name}/a | dedup |" in md2 and "| big/a | big-dedup |" in md2
