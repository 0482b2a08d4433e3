"""Zero-shot probes: the hand-made lists, the overlap check, Wilson intervals, build and score."""

from __future__ import annotations

import csv
import shutil

import pytest
import soundfile as sf
import torch

from speechlm.data.corpus import default_text_path
from speechlm.data.manifest import read_phn
from speechlm.data.phones import CLASSES
from speechlm.data.probe_pairs import LEXICAL_PAIRS, SYNTACTIC_PAIRS
from speechlm.data.probes import (
    PAIRS_COLUMNS,
    build_probe_set,
    check_not_in_training,
    probe_pairs,
)
from speechlm.errors import ModelError
from speechlm.eval.probes import score_pairs, wilson_interval
from speechlm.lm import LMConfig, UnitLM
from speechlm.tokenizer import Tokenizer

HAVE_FLITE = all(shutil.which(t) for t in ("flite", "sox"))
needs_flite = pytest.mark.skipif(not HAVE_FLITE, reason="flite and sox are needed to synthesize "
                                 "probe items (apt-get install flite sox)")
needs_arctic = pytest.mark.skipif(not default_text_path().exists(),
                                  reason=f"ARCTIC prompts not found at {default_text_path()}")


# --------------------------------------------------------------------------- the lists


def test_list_sizes_and_no_duplicates():
    assert len(LEXICAL_PAIRS) >= 150
    assert len(SYNTACTIC_PAIRS) >= 100
    words = [w for w, _ in LEXICAL_PAIRS]
    non_words = [n for _, n in LEXICAL_PAIRS]
    assert len(set(words)) == len(words)
    assert len(set(non_words)) == len(non_words)
    assert not set(words) & set(non_words)
    good = [g for g, _, _ in SYNTACTIC_PAIRS]
    bad = [b for _, b, _ in SYNTACTIC_PAIRS]
    assert len(set(good)) == len(good)
    assert len(set(bad)) == len(bad)
    assert not set(good) & set(bad)


def test_non_words_are_minimal_changes_of_their_words():
    for word, non_word in LEXICAL_PAIRS:
        assert word != non_word
        assert word.isalpha() and word.islower() and non_word.isalpha() and non_word.islower()
        assert len(word) == len(non_word), (word, non_word)
        changed = sum(a != b for a, b in zip(word, non_word))
        assert 1 <= changed <= 2, (word, non_word)


def test_sentence_pairs_differ_and_are_labelled():
    for good, bad, phenomenon in SYNTACTIC_PAIRS:
        assert good != bad and phenomenon
        assert "\t" not in good + bad and "\n" not in good + bad


def test_pair_ids_are_stable():
    lex = probe_pairs("lexical")
    assert lex[0].id == "lex0001" and (lex[0].good, lex[0].bad) == LEXICAL_PAIRS[0]
    assert probe_pairs("syntactic")[-1].id == f"syn{len(SYNTACTIC_PAIRS):04d}"
    with pytest.raises(ValueError):
        probe_pairs("semantic")


@needs_arctic
def test_no_probe_text_occurs_in_the_arctic_prompts():
    sentences = [g for g, _, _ in SYNTACTIC_PAIRS] + [b for _, b, _ in SYNTACTIC_PAIRS]
    assert check_not_in_training(sentences) == []
    # the real words are not taken from the prompts either (and the non-words not at all)
    assert check_not_in_training([w for pair in LEXICAL_PAIRS for w in pair]) == []


def test_check_not_in_training_flags_substrings():
    prompts = ["For the twentieth time that evening the two men shook hands.",
               "Will we ever forget it."]
    texts = ["the two men shook hands", "Will we EVER forget", "the dogs bark",
             "men shook", "hand", "forgets it", "it"]
    assert check_not_in_training(texts, prompts) == [
        "the two men shook hands", "Will we EVER forget", "men shook", "it"]
    # a match may not run across two prompts
    assert check_not_in_training(["hands will we"], prompts) == []


@needs_arctic
def test_check_not_in_training_reads_the_arctic_prompts():
    # arctic_a0003: "For the twentieth time that evening the two men shook hands."
    assert check_not_in_training(["the two men shook hands", "the two dogs shook paws"]) == [
        "the two men shook hands"]


# --------------------------------------------------------------------------- statistics


def test_wilson_interval_known_counts():
    # 8 of 10, z = 1.96 by hand: p = 0.8, z^2 = 3.8416, denominator 1 + 0.38416 = 1.38416,
    # centre (0.8 + 0.19208) / 1.38416 = 0.716738,
    # half-width 1.96 / 1.38416 * sqrt(0.8 * 0.2 / 10 + 3.8416 / 400) = 1.416021 * 0.160012
    # = 0.226580, so (0.490158, 0.943318).
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.490158, abs=2e-4)
    assert hi == pytest.approx(0.943318, abs=2e-4)
    # 0 of 10: low 0, high z^2/n / (1 + z^2/n) * 2 / 2 = 2 * 0.138770 = 0.277540
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(0.277540, abs=2e-4)
    # symmetric around 1/2, ties counted as halves
    lo, hi = wilson_interval(2.5, 5)
    assert lo + hi == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


# --------------------------------------------------------------------------- build and score


@pytest.fixture(scope="module")
def probe_tsv(tmp_path_factory):
    """A three-pair lexical probe set in one flite voice."""
    if not HAVE_FLITE:
        pytest.skip("flite and sox are needed to synthesize probe items")
    out = tmp_path_factory.mktemp("probes")
    return build_probe_set(out, voices=("flite_slt",), kind="lexical", jobs=1, progress=False,
                           limit=3)


@needs_flite
def test_build_probe_set_layout(probe_tsv):
    root = probe_tsv.parent
    assert probe_tsv.name == "pairs.tsv" and root.name == "lexical"
    with open(probe_tsv, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert tuple(rows[0]) == PAIRS_COLUMNS
    assert len(rows) == 4
    for (word, non_word), row in zip(LEXICAL_PAIRS, rows[1:]):
        pair_id, voice, good, bad, good_text, bad_text = row
        assert voice == "flite_slt" and (good_text, bad_text) == (word, non_word)
        assert good == f"flite_slt/{pair_id}_a.wav" and bad == f"flite_slt/{pair_id}_b.wav"
        for rel in (good, bad):
            info = sf.info(str(root / rel))
            assert info.samplerate == 16000 and info.channels == 1 and info.frames > 1600
            # flite reports its alignment: ARPAbet phones over the whole file, for the oracle
            segs = read_phn((root / rel).with_suffix(".phn"))
            assert segs[0][0] == 0 and segs[-1][1] == info.frames
            assert all(a < b for a, b, _ in segs) and all(
                segs[i][1] == segs[i + 1][0] for i in range(len(segs) - 1))
            assert {p for _, _, p in segs} <= set(CLASSES) and len(segs) >= 3


@needs_flite
def test_probe_items_are_a_manifest_for_eval_tokenizer(probe_tsv):
    from speechlm.data.manifest import read_manifest
    from speechlm.data.probes import items_manifest

    items = read_manifest(probe_tsv.parent / "items.tsv")  # written by build_probe_set
    assert [u.name for u in items[:2]] == ["flite_slt/lex0001_a", "flite_slt/lex0001_b"]
    assert len(items) == 6 and {u.speaker for u in items} == {"flite_slt"}
    assert [u.text for u in items[:2]] == list(LEXICAL_PAIRS[0])
    assert all(u.phn_path.exists() and u.num_samples == sf.info(str(u.path)).frames
               for u in items)
    for u in items[2:]:  # items without an alignment are left out
        u.phn_path.rename(u.phn_path.with_suffix(".bak"))
    try:
        assert len(read_manifest(items_manifest(probe_tsv))) == 2
    finally:
        for u in items[2:]:
            u.phn_path.with_suffix(".bak").rename(u.phn_path)
        items_manifest(probe_tsv)


@needs_flite
def test_build_probe_set_resumes(probe_tsv):
    wav = probe_tsv.parent / "flite_slt" / "lex0001_a.wav"
    other = probe_tsv.parent / "flite_slt" / "lex0002_b.wav"
    mtime, data = wav.stat().st_mtime_ns, other.read_bytes()
    other.unlink()
    build_probe_set(probe_tsv.parent.parent, voices=("flite_slt",), kind="lexical", jobs=1,
                    progress=False, limit=3)
    assert wav.stat().st_mtime_ns == mtime  # kept, not redone
    assert other.read_bytes() == data  # redone, same bytes


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.load("mfcc-k100")


def _tiny_lm(unit_space: str) -> UnitLM:
    torch.manual_seed(0)
    cfg = LMConfig(n_units=100, block_size=512, n_layer=1, n_head=2, n_embd=16,
                   unit_space=unit_space)
    return UnitLM(cfg).eval()


@needs_flite
@pytest.mark.parametrize("normalize", ["sum", "mean"])
def test_score_pairs_with_random_lm(probe_tsv, tokenizer, normalize):
    torch.set_num_threads(1)
    model = _tiny_lm(tokenizer.unit_space)
    res = score_pairs(model, tokenizer, probe_tsv, normalize=normalize, progress=False)
    assert res["n"] == 3 and res["normalize"] == normalize and res["kind"] == "lexical"
    assert 0.0 <= res["accuracy"] <= 1.0
    lo, hi = res["ci95"]
    assert 0.0 <= lo <= res["accuracy"] <= hi <= 1.0
    assert res["accuracy"] == res[normalize]["accuracy"]
    for block in (res["sum"], res["mean"]):
        assert block["per_voice"]["flite_slt"]["n"] == 3
        assert block["per_voice"]["flite_slt"]["accuracy"] == block["accuracy"]
    for p in res["pairs"]:
        assert p["good_sum"] < 0 and p["bad_sum"] < 0 and p["good_units"] > 0


@needs_flite
def test_score_pairs_over_the_tokenizers_likely_strings(probe_tsv):
    """With a beam, an item scores log sum_s P(s | audio) P_LM(s) over the CTC head's most
    likely unit strings (speechlm.nbest), the baselines alike; beam 0 is the best path's."""
    import math

    from speechlm.audio import FRAME_SIZE, load_audio
    from speechlm.data.probes import read_pairs
    from speechlm.generate import sequence_logprob
    from speechlm.nbest import logsumexp, unit_nbest

    torch.set_num_threads(1)
    tok = Tokenizer.load("whisper-phone")
    model = _tiny_lm(tok.unit_space)
    length = {"len": lambda ids: -float(len(ids))}  # a baseline that prefers short strings
    plain = score_pairs(model, tok, probe_tsv, progress=False, baselines=length)
    beam = score_pairs(model, tok, probe_tsv, progress=False, baselines=length, beam=4)
    assert "beam" not in plain
    assert beam["beam"]["k"] == 4 and 0.0 < beam["beam"]["mass"] <= 1.0 + 1e-9
    assert set(beam["baselines"]) == {"len"} and beam["n"] == plain["n"] == 3
    for p, q in zip(plain["pairs"], beam["pairs"]):
        assert p["good_ids"] == q["good_ids"] and p["bad_ids"] == q["bad_ids"]  # the best path
        # each item's expectation is below its best string's LM score plus nothing: it mixes
        # strings of probability below 1
        assert q["good_sum"] != p["good_sum"]
    row = read_pairs(probe_tsv)[0]
    wav = load_audio(row["good_path"], tok.sample_rate, min_samples=FRAME_SIZE)
    found = unit_nbest(tok.features(wav[None])[0].numpy(), tok.blank, 4)
    want = logsumexp([lp + sequence_logprob(model, torch.tensor(ids)) for ids, lp in found])
    assert beam["pairs"][0]["good_sum"] == pytest.approx(want, abs=1e-4)
    assert want <= max(sequence_logprob(model, torch.tensor(ids)) for ids, _ in found) + 1e-9
    assert math.isfinite(want)
    from speechlm.eval.probes import batch_logprob

    strings = [ids for ids, _ in found] + [[1, 2, 3] * 30, [5]]
    for eos in (False, True):
        alone = [sequence_logprob(model, torch.tensor(s), add_eos=eos) for s in strings]
        assert batch_logprob(model, strings, add_eos=eos, batch=2) == pytest.approx(alone,
                                                                                   abs=1e-4)
    with pytest.raises(ModelError, match="CTC"):  # k-means units have no strings to sum
        mfcc = Tokenizer.load("mfcc-k100")
        score_pairs(_tiny_lm(mfcc.unit_space), mfcc, probe_tsv, progress=False, beam=2)


def test_score_pairs_refuses_another_unit_space(tokenizer, tmp_path):
    model = _tiny_lm("mfcc-k100-00000000")
    with pytest.raises(ModelError) as err:
        score_pairs(model, tokenizer, tmp_path / "pairs.tsv", progress=False)
    assert tokenizer.unit_space in str(err.value) and "mfcc-k100-00000000" in str(err.value)


# --------------------------------------------------------------------------- world-corpus probes


def _tiny_world_corpus(root, train_text, valid_text=("nothing here",)):
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.wrd").write_text("\n".join(train_text) + "\n")
    (root / "valid.wrd").write_text("\n".join(valid_text) + "\n")
    return root


def test_in_vocabulary_keeps_pairs_whose_words_were_heard():
    from speechlm.data.probes import in_vocabulary

    lex, syn = probe_pairs("lexical"), probe_pairs("syntactic")
    words = {"apple", "the", "dogs", "bark", "at", "night"}
    assert [p.good for p in in_vocabulary(lex, words)] == ["apple"]
    assert [p.good for p in in_vocabulary(syn, words)] == ["the dogs bark at night"]
    assert in_vocabulary(lex, words | {"abble"}) == []  # a non-word that was heard is no probe


@pytest.mark.skipif(shutil.which("pico2wave") is None or shutil.which("sox") is None,
                    reason="pico2wave and sox speak the world corpus's held-out pico voices")
def test_world_probe_set_in_a_held_out_engine(tmp_path):
    from speechlm.errors import DataError

    corpus = _tiny_world_corpus(tmp_path / "c", ["At night, the dogs bark.", "An apple fell."])
    tsv = build_probe_set(tmp_path / "p", voices=("pico_us",), kind="syntactic",
                          corpus=corpus, progress=False, jobs=1)
    rows = list(csv.DictReader(open(tsv), delimiter="\t"))
    assert [(r["pair_id"], r["voice"], r["good_text"]) for r in rows] == [
        ("syn0001", "pico_us", "the dogs bark at night")]
    y, sr = sf.read(tsv.parent / rows[0]["good_path"])
    assert sr == 16000 and 0.3 < len(y) / sr < 5 and abs(y).max() > 0.5
    assert not list(tsv.parent.glob("pico_us/*.phn"))  # Pico reports no alignment
    lex = build_probe_set(tmp_path / "p", voices=("pico_us",), kind="lexical", corpus=corpus,
                          progress=False, jobs=1)
    assert [r["good_text"] for r in csv.DictReader(open(lex), delimiter="\t")] == ["apple"]
    heard = _tiny_world_corpus(tmp_path / "h", ["the dogs bark at night"],
                               ["the dogs barks at night"])
    with pytest.raises(DataError, match="validation sentences"):
        build_probe_set(tmp_path / "q", voices=("pico_us",), kind="syntactic", corpus=heard,
                        progress=False)
    with pytest.raises(DataError, match="vocabulary"):
        build_probe_set(tmp_path / "q", voices=("pico_us",), kind="lexical",
                        corpus=_tiny_world_corpus(tmp_path / "e", ["zzz"]), progress=False)


def test_ngram_scorers_prefer_what_training_repeats(tmp_path):
    """The bigram baseline of the probe table: fitted on the train shard, it scores a sequence
    it saw repeatedly above its reversal; the unigram baseline ignores order."""
    import json

    import numpy as np

    from speechlm.eval.lm import ngram_scorers
    from speechlm.generate import special_id

    n = 10
    bos, eos = special_id("<bos>", n), special_id("<eos>", n)
    utt = [1, 2, 3, 4, 5]
    tokens = np.array(([bos] + utt + [eos]) * 20, dtype=np.uint16)
    tokens.tofile(tmp_path / "train.bin")
    (tmp_path / "train.json").write_text(json.dumps({"tokens": len(tokens), "n_units": n}))
    s = ngram_scorers(tmp_path)
    fwd, rev = torch.tensor(utt), torch.tensor(utt[::-1])
    assert s["bigram"](fwd) > s["bigram"](rev) + 10
    assert abs(s["unigram"](fwd) - s["unigram"](rev)) < 1e-9
    assert s["bigram"](fwd) < 0
    assert s["unigram"](torch.tensor([7])) < s["unigram"](torch.tensor([1]))
