import hashlib
import json

import pytest

from speechlm.errors import DataError
from speechlm.data.manifest import read_manifest, read_phn
from speechlm.data.corpus import (
    DEFAULT_VOICES,
    default_text_path,
    read_sentences,
    split_of,
    synth_corpus,
    voices_by_name,
)

pytestmark = pytest.mark.slow


def test_default_speaker_set_is_big_enough():
    assert len({v.name for v in DEFAULT_VOICES}) >= 12
    assert {v.engine for v in DEFAULT_VOICES} == {"flite", "festival", "espeak"}


def test_arctic_text_and_split_sizes():
    sents = read_sentences(default_text_path())
    assert len(sents) == 1132 and sents[0].id == "arctic_a0001"
    counts = {s: sum(x.split == s for x in sents) for s in ("train", "valid", "test")}
    assert 30 < counts["test"] < 90 and 30 < counts["valid"] < 90
    assert split_of("arctic_a0001") == split_of("arctic_a0001")


def test_small_corpus_layout(small_corpus):
    summary = json.loads((small_corpus / "corpus.json").read_text())
    assert summary["speakers"] == 4
    sentences = {}
    for split in ("train", "valid", "test"):
        items = read_manifest(small_corpus / f"{split}.tsv")
        assert items and all(u.path.exists() and u.speaker and u.text for u in items)
        sentences[split] = {u.name.split("/")[1] for u in items}
        for u in items:
            if u.speaker.startswith(("flite", "fest")):
                phn = read_phn(u.phn_path)
                assert phn[0][0] == 0 and phn[-1][1] == u.num_samples
                assert all(a[1] == b[0] for a, b in zip(phn, phn[1:]))
            else:
                assert not u.phn_path.exists()
    # no test sentence is heard in training, in any voice
    assert not sentences["test"] & sentences["train"]
    assert not sentences["valid"] & sentences["train"]


def test_resume_skips_existing_and_is_deterministic(small_corpus, tmp_path):
    voices = voices_by_name(["flite_slt_b", "fest_kal"])
    synth_corpus(tmp_path, voices=voices, limit=3, progress=False)
    f = tmp_path / "wav" / "flite_slt_b" / "arctic_a0001.wav"
    digest = hashlib.sha1(f.read_bytes()).hexdigest()
    mtime = f.stat().st_mtime_ns
    f2 = tmp_path / "wav" / "fest_kal" / "arctic_a0002.wav"
    f2.unlink()
    synth_corpus(tmp_path, voices=voices, limit=3, progress=False)
    assert f.stat().st_mtime_ns == mtime  # untouched: resumed, not redone
    assert f2.exists()
    # same voice and sentence -> same bytes on a fresh build
    synth_corpus(tmp_path / "again", voices=voices[:1], limit=1, progress=False)
    again = tmp_path / "again" / "wav" / "flite_slt_b" / "arctic_a0001.wav"
    assert hashlib.sha1(again.read_bytes()).hexdigest() == digest


def test_unknown_voice():
    with pytest.raises(DataError, match="unknown voice"):
        voices_by_name(["nobody"])


def test_bad_prompt_file(tmp_path):
    p = tmp_path / "t.data"
    p.write_text("not a prompt line\n")
    with pytest.raises(DataError, match="expected"):
        read_sentences(p)
