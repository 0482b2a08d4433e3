"""The phone oracle (speechlm.data.oracle): reference phones read as units, an LM trained on
them by the one trainer, and scored on probe items by ``eval lm``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from speechlm.data.oracle import (
    ORACLE_SPACE,
    ORACLE_TOKENIZER,
    PhoneLabels,
    dump_phone_shards,
    phone_ids,
)
from speechlm.data.phones import CLASSES
from speechlm.data.probes import PAIRS_COLUMNS
from speechlm.data.shards import open_shard, utterances
from speechlm.errors import DataError

IDX = {p: i for i, p in enumerate(CLASSES)}
WORDS = {"hello": "HH AH L OW", "world": "W ER L D", "big": "B IH G", "cat": "K AE T"}


def _write_phn(path, phones, hop=800):
    path.write_text("".join(f"{i * hop} {(i + 1) * hop} {p}\n" for i, p in enumerate(phones)))


def test_phone_ids_merge_repeats_and_drop_unknown(tmp_path):
    phn = tmp_path / "a.phn"
    phn.write_text("0 1600 SIL\n1600 3200 hh\n3200 4000 AH\n4000 4800 AH\n4800 6400 SPN\n"
                   "6400 8000 L\n8000 8000 OW\n")  # radio 'hh' maps; SPN and empty dropped
    ids, secs = phone_ids(phn)
    assert ids.tolist() == [IDX["SIL"], IDX["HH"], IDX["AH"], IDX["L"]]
    assert secs.tolist() == pytest.approx([0.1, 0.1, 0.1, 0.1])
    ids, _ = phone_ids(phn, dedup=False)
    assert ids.tolist() == [IDX[p] for p in ("SIL", "HH", "AH", "AH", "L")]
    with pytest.raises(DataError, match="no phone alignment"):
        phone_ids(tmp_path / "missing.phn")


def test_phone_labels_stand_in_for_a_tokenizer(tmp_path):
    _write_phn(tmp_path / "x.phn", ["SIL", "K", "AE", "AE", "T"])
    (tmp_path / "x.wav").write_bytes(b"never read")
    lab = PhoneLabels()
    (u,) = list(lab.tokenize_files([tmp_path / "x.wav"]))
    assert u.unit_space == ORACLE_SPACE and u.n_units == len(CLASSES)
    assert u.ids.tolist() == [IDX[p] for p in ("SIL", "K", "AE", "T")]
    assert u.durations.tolist() == [5, 5, 10, 5]  # 800 samples = 5 frames of 10 ms
    assert list(lab.tokenize_files([tmp_path / "x.wav"], dedup=False))[0].durations is None
    items = lab.tokenize_files([tmp_path / "x.wav", tmp_path / "y.wav"])
    next(items)
    with pytest.raises(DataError, match="y.phn"):  # raised in the missing file's turn
        next(items)


@pytest.fixture
def phone_corpus(tmp_path):
    """A corpus whose sentences are strings of four words (aligned), plus unaligned files."""
    root = tmp_path / "corpus"
    (root / "audio" / "v").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = list(WORDS)
    for split, n in (("train", 40), ("valid", 6), ("test", 6)):
        lines = [str(root)]
        for i in range(n):
            rel = f"audio/v/{split}{i}.flac"
            lines.append(f"{rel}\t16000")
            if i % 10 == 9:
                continue  # an engine without alignments: no .phn
            phones = ["SIL"]
            for w in rng.choice(names, size=6):
                phones += WORDS[w].split() + ["SIL"]
            _write_phn(root / rel.replace(".flac", ".phn"), phones)
        (root / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_dump_phone_shards_leave_out_unaligned_and_refuse_other_units(phone_corpus, tmp_path):
    out = tmp_path / "units"
    metas = dump_phone_shards(phone_corpus, out, progress=False)
    assert metas["train"]["utterances"] == 36 and metas["train"]["unaligned_left_out"] == 4
    toks, meta = open_shard(out, "train")
    utts = utterances(np.asarray(toks), len(CLASSES))
    assert len(utts) == 36 and meta["unit_space"] == ORACLE_SPACE and meta["dedup"]
    first = phone_ids(phone_corpus / "audio" / "v" / "train0.phn")[0]
    assert utts[0].tolist() == first.tolist()
    assert meta["units"] == sum(map(len, utts))
    assert dump_phone_shards(phone_corpus, out, progress=False)["train"] == metas["train"]
    meta_path = out / "valid.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "unit_space": "x"}))
    with pytest.raises(DataError, match="not the phone oracle's"):
        dump_phone_shards(phone_corpus, out, progress=False)


def _oracle_config(corpus, tmp_path, *extra):
    from speechlm.train.lm import load_config

    return load_config(None, [
        f"--data.corpus={corpus}", f"--data.tokenizer={ORACLE_TOKENIZER}",
        f"--data.units_dir={tmp_path / 'units'}", "--data.frames_dir=", "--model.block_size=64",
        "--model.n_layer=1", "--model.n_head=2", "--model.n_embd=32", "--model.dropout=0",
        "--train.batch_size=8", "--train.max_steps=120", "--train.lr=1e-2",
        "--train.warmup_steps=5", "--train.eval_interval=40", "--train.eval_batches=1",
        "--train.ckpt_interval=40", "--train.log_interval=40", f"--train.out={tmp_path / 'run'}",
        "--train.threads=1", *extra])


def test_oracle_lm_trains_on_phones_and_eval_lm_scores_phone_probes(phone_corpus, tmp_path):
    from speechlm.eval.lm import evaluate_lm
    from speechlm.train.lm import train_lm

    run = train_lm(_oracle_config(phone_corpus, tmp_path), progress=False)
    cfg = json.loads((run / "model" / "config.json").read_text())["model"]
    assert cfg["unit_space"] == ORACLE_SPACE
    # probe items: the words against scrambles of their phones
    probes = tmp_path / "probes" / "lexical"
    (probes / "v").mkdir(parents=True)
    rows = ["\t".join(PAIRS_COLUMNS)]
    for i, (w, phones) in enumerate(WORDS.items()):
        bad = phones.split()[::-1]
        _write_phn(probes / "v" / f"lex{i}_a.phn", ["SIL", *phones.split(), "SIL"])
        _write_phn(probes / "v" / f"lex{i}_b.phn", ["SIL", *bad, "SIL"])
        rows.append(f"lex{i}\tv\tv/lex{i}_a.wav\tv/lex{i}_b.wav\t{w}\t{''.join(bad)}")
    (probes / "pairs.tsv").write_text("\n".join(rows) + "\n")
    rep = evaluate_lm(run / "model", corpus=phone_corpus, probes=tmp_path / "probes",
                      progress=False, phone_noise=(0.0, 1.0))
    assert rep["unit_space"] == ORACLE_SPACE
    assert rep["perplexity"]["perplexity_per_unit"] < rep["baselines"]["unigram_perplexity"]
    lex = rep["lexical"]
    assert lex["n"] == 4 and lex["accuracy"] == 1.0  # it learned the four words' spellings
    # each trial's credit, for eval compare-lm
    assert lex["trials"] == [{"pair_id": f"lex{i}", "voice": "v", "credit": 1.0}
                             for i in range(4)]
    assert lex["baselines"]["bigram"]["accuracy"] == 1.0
    # with no noise the curve is the probe itself; with every phone hit, no better than chance
    # by much (3 draws x 4 pairs of random strings)
    noise = lex["phone_noise"]
    assert noise["0"] == {k: lex[k] for k in ("accuracy", "n", "ci95")}
    assert noise["1"]["n"] == 12 and noise["1"]["accuracy"] < 1.0
    # reference phones spell every item exactly, and the two items of a pair apart
    assert lex["spelling"] == {"v": {"pairs": 4, "same_units": 0.0, "items_aligned": 8,
                                     "phone_error_rate": 0.0, "exact": 1.0}}


def test_oracle_recipe_refuses_frames_or_interleaving(phone_corpus, tmp_path):
    from speechlm.train.lm import train_lm

    with pytest.raises(DataError, match="deduplicated phones only"):
        train_lm(_oracle_config(phone_corpus, tmp_path, f"--data.frames_dir={tmp_path / 'f'}"),
                 progress=False)


def test_spelling_counts_phone_errors_and_pairs_tokenized_alike(tmp_path):
    from speechlm.eval.probes import spelling

    class Fixed:  # a stand-in CTC tokenizer: fixed units per file, the phones its encoder knows
        blank = len(CLASSES)

        class encoder:  # noqa: N801
            phones = list(CLASSES)

        def __init__(self, units):
            self.units = units

        def tokenize_files(self, paths, dedup=True):
            from speechlm.units import Units

            for p in paths:
                ids = torch.tensor([IDX[x] for x in self.units[Path(p).name]])
                yield Units(ids=ids, frame_rate=50.0, n_units=len(CLASSES) + 1, unit_space="s")

    (tmp_path / "v").mkdir()
    _write_phn(tmp_path / "v" / "a.phn", ["SIL", "K", "AE", "T", "SIL"])
    _write_phn(tmp_path / "v" / "b.phn", ["SIL", "K", "AE", "P", "SIL"])
    rows = ["\t".join(PAIRS_COLUMNS), "p1\tv\tv/a.wav\tv/b.wav\tcat\tcap"]
    (tmp_path / "pairs.tsv").write_text("\n".join(rows) + "\n")
    # the good item spelled right (silence and repeats aside), the bad one as the good one
    tok = Fixed({"a.wav": ["SIL", "K", "AE", "AE", "T"], "b.wav": ["SIL", "K", "AE", "AE", "T"]})
    r = spelling(tok, tmp_path / "pairs.tsv", progress=False)["v"]
    assert r["pairs"] == 1 and r["same_units"] == 1.0 and r["items_aligned"] == 2
    assert r["phone_error_rate"] == pytest.approx(1 / 6, abs=1e-4) and r["exact"] == 0.5
    del Fixed.blank  # k-means units: only whether the pair's units differ
    r = spelling(tok, tmp_path / "pairs.tsv", progress=False)["v"]
    assert r["same_units"] == 1.0 and r["phone_error_rate"] is None and r["exact"] is None


def test_corrupt_phones_rates_and_silence():
    from speechlm.eval.probes import corrupt_phones

    rng = np.random.default_rng(0)
    ids = [40, 1, 2, 3, 4, 5, 40]
    assert corrupt_phones(ids, 0.0, 39, 40, rng) == ids
    # at rate 1 every phone is deleted, replaced or followed by an insertion; silence stays
    out = corrupt_phones(ids, 1.0, 39, 40, rng)
    assert out[0] == 40 and out[-1] == 40 and out != ids
    # the edit rate follows the rate: about one edit per phone at 1, a tenth at 0.1
    from speechlm.eval.robustness import levenshtein

    ref = list(range(39)) * 20
    per = levenshtein(corrupt_phones(ref, 0.1, 39, 40, rng), ref) / len(ref)
    assert 0.06 < per < 0.14


def test_phone_noise_refuses_a_unit_lm():
    from speechlm.errors import ModelError
    from speechlm.eval.probes import phone_noise_curve
    from speechlm.lm import LMConfig, UnitLM

    lm = UnitLM(LMConfig(n_units=100, block_size=16, n_layer=1, n_head=1, n_embd=8,
                         unit_space="mfcc-k100-x"))
    with pytest.raises(ModelError, match="phone oracle"):
        phone_noise_curve(lm, "nowhere.tsv", [0.1])
