"""The phone oracle (speechlm.data.oracle): reference phones read as units, an LM trained on
them by the one trainer, and scored on probe items by ``eval lm``."""

from __future__ import annotations

import json

import numpy as np
import pytest

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
                      progress=False)
    assert rep["unit_space"] == ORACLE_SPACE
    assert rep["perplexity"]["perplexity_per_unit"] < rep["baselines"]["unigram_perplexity"]
    lex = rep["lexical"]
    assert lex["n"] == 4 and lex["accuracy"] == 1.0  # it learned the four words' spellings
    assert lex["baselines"]["bigram"]["accuracy"] == 1.0


def test_oracle_recipe_refuses_frames_or_interleaving(phone_corpus, tmp_path):
    from speechlm.train.lm import train_lm

    with pytest.raises(DataError, match="deduplicated phones only"):
        train_lm(_oracle_config(phone_corpus, tmp_path, f"--data.frames_dir={tmp_path / 'f'}"),
                 progress=False)
