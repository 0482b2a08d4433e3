import hashlib
import json
import shutil

import pytest

from speechlm.data.corpus import (
    DEFAULT_VOICES,
    default_text_path,
    read_sentences,
    split_of,
    synth_corpus,
    voices_by_name,
)
from speechlm.data.manifest import read_manifest, read_phn
from speechlm.errors import DataError

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


# --------------------------------------------------------------------------- the world preset

def _pool_file(path):
    from speechlm.data.text import number_words

    lines = [f"The {number_words(i)} little birds sang in the garden." for i in range(1, 500)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def world_small(tmp_path_factory):
    if not all(shutil.which(t) for t in ("flite", "festival", "espeak-ng", "sox")):
        pytest.skip("synthesizers missing: run scripts/setup.sh")
    from speechlm.data.build import synth_world

    tmp = tmp_path_factory.mktemp("world")
    pool = _pool_file(tmp / "pool.txt")
    out = tmp / "corpus"
    summary = synth_world(out, small=True, jobs=1, text_pool_file=pool, progress=False)
    return out, pool, summary


def _tree(root):
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted((root / "audio").rglob("*")) if p.is_file()}


def _manifests(root):
    out = {}
    for p in sorted(root.glob("*.*")):
        if p.suffix in (".tsv", ".wrd", ".spk"):
            lines = p.read_text().splitlines()
            is_manifest = p.name.endswith(".tsv") and not p.name.endswith(".utt.tsv")
            out[p.name] = lines[1:] if is_manifest else lines
    return out


def test_world_small_layout(world_small):
    from speechlm.data.voices import HELD_OUT

    out, _, summary = world_small
    assert summary["complete"] and summary["aligned_share"] > 0.5
    names = {}
    for split in ("train", "valid", "test", "heldout", "arctic"):
        items = read_manifest(out / f"{split}.tsv")
        assert items and all(u.path.exists() and u.path.suffix == ".flac" for u in items)
        names[split] = {u.name.split("/")[1] for u in items}
        for u in items:
            held = u.speaker.split("-")[0] in HELD_OUT
            assert held == (split == "heldout")
            if u.speaker.startswith(("flite", "fest", "mbrola")):
                phn = read_phn(u.phn_path)
                assert phn[0][0] == 0 and phn[-1][1] == u.num_samples
                assert all(a[1] == b[0] for a, b in zip(phn, phn[1:]))
    assert not names["test"] & names["train"] and not names["valid"] & names["train"]
    assert names["heldout"] == names["test"]


def test_world_plan_holds_out_whole_voices():
    from speechlm.data.build import plan
    from speechlm.data.text import TextSentence, number_words
    from speechlm.data.voices import HELD_OUT, all_identities

    pool = [TextSentence(f"Here are {number_words(i)} apples on the table.", "t")
            for i in range(3000)]
    utts = plan(pool, [], all_identities())
    for u in utts:
        assert (u.identity.base.name in HELD_OUT) == (u.split == "heldout")
    bases = {s: {u.identity.base.name for u in utts if u.split == s} for s in ("train", "heldout")}
    assert bases["heldout"] == set(HELD_OUT) and len(bases["train"]) >= 25
    assert len({u.identity.name for u in utts if u.split == "train"}) >= 180


def test_world_deterministic_and_resumable(world_small, tmp_path):
    from speechlm.data.build import synth_world

    ref, pool, _ = world_small
    out = tmp_path / "corpus"
    part = synth_world(out, small=True, jobs=1, text_pool_file=pool, shard="0/2",
                       progress=False)
    assert part["complete"] is False and not (out / "train.tsv").exists()
    victim = next((out / "audio").rglob("*.flac"))
    victim.unlink()  # as if killed before this file was renamed into place
    (victim.parent / f".{victim.stem}.tmp.flac").write_bytes(b"partial")
    synth_world(out, small=True, jobs=2, text_pool_file=pool, progress=False)
    assert not list((out / "audio").rglob(".*.tmp.flac"))  # the resumed run cleaned it up
    assert _tree(out) == _tree(ref)
    assert _manifests(out) == _manifests(ref)


def test_piper_labels_come_with_its_audio_and_an_old_build_gains_them(world_small, tmp_path):
    """Piper's held-out utterances carry .phn labels (its predicted durations) that tile the
    audio; a corpus built without them gains them on the next run, its audio unchanged."""
    import importlib.util

    from speechlm.data.build import synth_world
    from speechlm.data.engines import engine

    if engine("piper").missing() or importlib.util.find_spec("onnx") is None:
        pytest.skip("piper or onnx not installed: run scripts/setup.sh")
    _, pool, _ = world_small
    out = tmp_path / "corpus"
    synth_world(out, small=True, voices=("flite_slt", "piper_joe"), jobs=1,
                text_pool_file=pool, progress=False)
    piper = [u for u in read_manifest(out / "heldout.tsv") if u.speaker.startswith("piper")]
    assert piper
    for u in piper:
        phn = read_phn(u.phn_path)
        assert phn[0][0] == 0 and phn[-1][1] == u.num_samples
        assert all(a[1] == b[0] for a, b in zip(phn, phn[1:]))
        assert sum(p not in ("SIL", "SPN") for _, _, p in phn) >= 5
    before = _tree(out)
    piper[0].phn_path.unlink()  # as built before Piper's durations were read
    synth_world(out, small=True, voices=("flite_slt", "piper_joe"), jobs=1,
                text_pool_file=pool, progress=False)
    assert _tree(out) == before


@pytest.mark.slow
def test_world_killed_build_resumes_to_the_same_bytes(world_small, tmp_path):
    """A real build process (and its workers) killed with SIGKILL mid-way, then run again,
    gives the same files and manifests as an uninterrupted build."""
    import os
    import signal
    import subprocess
    import sys
    import time

    ref, pool, _ = world_small
    out = tmp_path / "corpus"
    cmd = [sys.executable, "-m", "speechlm", "corpus", "synth", "--preset", "world", "--small",
           "--out", str(out), "--text-pool", str(pool), "--jobs", "2", "-q"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / "audio").rglob("*.flac"))) >= 3:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its worker processes
    proc.wait()
    done = len([p for p in (out / "audio").rglob("*.flac") if not p.name.startswith(".")])
    assert 0 < done < len(list((ref / "audio").rglob("*.flac"))), "not killed mid-way"
    assert not (out / "train.tsv").exists()
    from speechlm.cli import main

    assert main(cmd[3:]) == 0  # the same command again resumes
    assert not list((out / "audio").rglob(".*.tmp.flac"))
    assert _tree(out) == _tree(ref)
    assert _manifests(out) == _manifests(ref)


def test_world_cli_writes_card(world_small, tmp_path):
    from speechlm.cli import main

    out, pool, _ = world_small
    card = tmp_path / "card.md"
    assert main(["corpus", "synth", "--preset", "world", "--small", "--out", str(out),
                 "--text-pool", str(pool), "--card", str(card), "--jobs", "1", "-q"]) == 0
    text = card.read_text()
    assert "Held-out voices" in text and "| train |" in text and "mbrola_us3" in text
