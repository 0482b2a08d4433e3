"""``speechlm corpus real`` (:mod:`speechlm.data.real`): the Asterisk prompts as a folder every
report harness reads, and ``--reference-voices`` (:func:`speechlm.eval.harness.reference_pool`):
other speakers that only calibrate the speaker similarity."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm.data.real import build_real_voice, decode, judgeable, read_texts
from speechlm.errors import DataError
from speechlm.eval.harness import SpeakerReferences, reference_pool, select_items

TEXTS = """; Core Asterisk Sounds in English

agent-pass: Please enter your password followed by the pound key.
auth-thankyou: Thank you.
beep: [this is a simple beep tone]
conf-menu: Please press 1 to mute or unmute yourself.
digits/oclock: o'clock and some more words
missing-audio: This prompt has no file at all.
"""


def _tone(seconds: float, sr: int, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _g722(path: Path, y: np.ndarray) -> None:
    """Encode ``y`` (16 kHz float) as raw G.722 with PyAV, as the package holds it."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w", format="g722") as out:
        stream = out.add_stream("g722", rate=16000, layout="mono")
        pcm = (np.clip(y, -1, 1) * 32767).astype(np.int16)
        for start in range(0, len(pcm), 1600):
            frame = av.AudioFrame.from_ndarray(pcm[None, start:start + 1600], format="s16",
                                               layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _package(tmp_path: Path, fmt: str) -> tuple[Path, Path]:
    """A stand-in for the unpacked package: the sounds folder and a gzipped transcript file."""
    sounds = tmp_path / f"sounds-{fmt}"
    (sounds / "digits").mkdir(parents=True)
    lengths = {"agent-pass": 1.5, "auth-thankyou": 0.5, "beep": 0.3, "conf-menu": 1.0,
               "digits/oclock": 0.8}
    for i, (name, sec) in enumerate(lengths.items()):
        if fmt == "g722":
            _g722(sounds / f"{name}.g722", _tone(sec, 16000, 200 + 50 * i))
        else:
            sf.write(sounds / f"{name}.wav", _tone(sec, 8000, 200 + 50 * i), 8000,
                     subtype="PCM_16")
    texts = tmp_path / "core-sounds-en.txt.gz"
    with gzip.open(texts, "wt", encoding="utf-8") as f:
        f.write(TEXTS)
    return sounds, texts


def test_read_texts_and_what_a_wer_can_judge(tmp_path):
    _, texts = _package(tmp_path, "wav")
    t = read_texts(texts)
    assert t["digits/oclock"] == "o'clock and some more words"
    assert len(t) == 6
    assert judgeable(t["agent-pass"], 3)
    assert not judgeable(t["auth-thankyou"], 3)  # two words
    assert not judgeable(t["beep"], 1)  # a sound description
    assert not judgeable(t["conf-menu"], 3)  # digits: "press 1" is spoken "one"
    bad = tmp_path / "bad.txt"
    bad.write_text("ok: fine words here\nno colon on this line\n")
    with pytest.raises(DataError, match=r"bad.txt:2: expected"):
        read_texts(bad)
    with pytest.raises(DataError, match="no such transcript"):
        read_texts(tmp_path / "absent.txt")


@pytest.mark.parametrize("fmt", ["wav", "g722"])
def test_build_writes_the_judgeable_prompts_at_16k(tmp_path, fmt):
    sounds, texts = _package(tmp_path, fmt)
    out = tmp_path / "real" / "allison"
    summary = build_real_voice(sounds, texts, out, fmt=fmt, min_words=3)
    rows = (out / "texts.tsv").read_text().splitlines()
    assert rows == ["agent-pass.wav\tPlease enter your password followed by the pound key.",
                    "digits-oclock.wav\to'clock and some more words"]
    for name, sec in (("agent-pass.wav", 1.5), ("digits-oclock.wav", 0.8)):
        y, sr = sf.read(out / name)
        assert sr == 16000
        assert abs(len(y) / sr - sec) < 0.02
        assert 0.1 < np.abs(y).max() < 0.4  # the tone's level survives the codec
    assert summary["utterances"] == 2 and summary["words"] == 14
    assert json.loads((out / "source.json").read_text()) == summary
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left
    # the harness reads it as one held-out speaker named after the folder, with transcripts
    items = select_items(out, None, 0, 0)
    assert [(it.voice, it.text is not None) for it in items] == [("allison", True)] * 2
    # and eval tokenizer reads it through its manifest (paths at the folder's final place)
    from speechlm.data.manifest import read_manifest

    utts = read_manifest(out / "allison.tsv")
    assert [(u.name, u.speaker, u.path) for u in utts] == [
        ("agent-pass", "allison", out.resolve() / "agent-pass.wav"),
        ("digits-oclock", "allison", out.resolve() / "digits-oclock.wav")]
    assert summary["aligner"].startswith("pocketsphinx") and 0 <= summary["phone_aligned"] <= 2


def test_build_without_transcripts_keeps_the_largest_files(tmp_path):
    sounds, _ = _package(tmp_path, "wav")
    (sounds / "is.wav").write_bytes(b"")  # an empty file in the package is no prompt
    out = tmp_path / "others" / "it_IT_m_Carlo"
    summary = build_real_voice(sounds, None, out, fmt="wav", max_utterances=2)
    assert sorted(p.name for p in out.glob("*.wav")) == ["agent-pass.wav", "conf-menu.wav"]
    assert not (out / "texts.tsv").exists() and summary["files"] == 5
    assert summary["transcribed"] is False and summary["words"] == 0


def test_build_refuses_bad_input_and_leaves_nothing(tmp_path):
    sounds, texts = _package(tmp_path, "wav")
    out = tmp_path / "out"
    with pytest.raises(DataError, match="not a folder"):
        build_real_voice(tmp_path / "nope", texts, out, fmt="wav")
    with pytest.raises(DataError, match="no .g722 files"):
        build_real_voice(sounds, texts, out, fmt="g722")
    with pytest.raises(DataError, match="no prompt with audio"):
        build_real_voice(sounds, texts, out, fmt="wav", min_words=50)
    with pytest.raises(DataError, match="unknown format"):
        build_real_voice(sounds, texts, out, fmt="mp3")
    (sounds / "agent-pass.wav").write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="agent-pass.wav: unreadable audio"):
        build_real_voice(sounds, texts, out, fmt="wav")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_decode_refuses_what_is_not_g722(tmp_path):
    pytest.importorskip("av")
    p = tmp_path / "x.g722"
    p.write_bytes(b"")
    with pytest.raises(DataError, match="x.g722"):
        decode(p, "g722")


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    _, texts = _package(tmp_path, "wav")
    proc = subprocess.run([sys.executable, "-m", "speechlm", "corpus", "real", "--sounds",
                           str(tmp_path / "nope"), "--texts", str(texts), "--out",
                           str(tmp_path / "o"), "--format", "wav"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a folder" in proc.stderr
    assert not (tmp_path / "o").exists()


class _Judge:
    """Embeds a waveform as its normalised first two samples' signs (voices differ by sign)."""

    def embed(self, wav, sr, name=""):
        v = np.asarray(wav, dtype=np.float64)[:2]
        return v / np.linalg.norm(v)


def _voice(root: Path, name: str, sign: tuple[float, float], n: int) -> None:
    (root / name).mkdir(parents=True)
    for i in range(n):
        sf.write(root / name / f"u{i}.wav", np.array([*sign, 0, 0], dtype=np.float32) * 0.5,
                 16000)


def test_reference_voices_calibrate_a_lone_real_voice(tmp_path):
    real, others = tmp_path / "real", tmp_path / "others"
    _voice(real, "allison", (1, 1), 3)
    _voice(others, "carlo", (1, -1), 2)
    _voice(others, "june", (-1, 1), 2)
    items = select_items(real / "allison", None, 0, 0)

    def load(p):
        return sf.read(p, dtype="float32")[0]

    alone = SpeakerReferences(_Judge(), items, load, 16000)
    out = np.array([1, 1, 0, 0], dtype=np.float32)
    assert alone.calibrate(out, out, "allison", items[0].name) is None  # no other voice
    pool = reference_pool(items, others, None, 0)
    assert {it.voice for it in pool} == {"allison", "carlo", "june"}
    cal = SpeakerReferences(_Judge(), pool, load, 16000).calibrate(out, out, "allison",
                                                                   items[0].name)
    assert cal is not None and cal.to_prompt == pytest.approx(1.0)
    assert cal.others_max == pytest.approx(0.0) and cal.verdict == "voice kept"
    assert reference_pool(items, None, None, 0) == items
    with pytest.raises(DataError, match="also evaluated: allison"):
        reference_pool(items, real, None, 0)


def test_eval_resynth_names_its_reference_voices_in_the_report(tmp_path):
    """The option reaches the harness: a missing folder is one line and exit 2."""
    proc = subprocess.run([sys.executable, "-m", "speechlm", "eval", "resynth", "--wav-dir",
                           str(tmp_path), "--reference-voices", str(tmp_path / "none.tsv"),
                           "--methods", "floor"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0


SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "flite_slt_arctic_a0004.wav"
SAMPLE_TEXT = "Lord, but I'm glad to see you again, Phil."


def test_pocketsphinx_aligns_a_sample_in_order_and_refuses_unknown_words():
    from speechlm.audio import load_audio
    from speechlm.data.phones import ARPABET, SILENCE
    from speechlm.data.real import PhoneAligner

    pytest.importorskip("pocketsphinx")
    wav = load_audio(SAMPLE).numpy()
    al = PhoneAligner()
    phones = al.align(wav, SAMPLE_TEXT)
    assert phones is not None
    names = [p for _, _, p in phones if p != SILENCE]
    assert names[:3] == ["L", "AO", "R"] and names[-3:] == ["F", "IH", "L"]  # lord ... phil
    assert all(p in ARPABET or p == SILENCE for _, _, p in phones)
    assert all(s < e for s, e, _ in phones)
    assert all(a[1] <= b[0] for a, b in zip(phones, phones[1:]))  # in order, no overlap
    assert phones[-1][1] <= len(wav) + 160
    assert al.align(wav, "zzqxv blorpt") is None  # not in the dictionary


def test_relabel_links_audio_with_aligner_labels_and_measures_agreement(tmp_path):
    from speechlm.data.manifest import Utterance, read_manifest, read_phn
    from speechlm.data.real import PhoneAligner, relabel

    pytest.importorskip("pocketsphinx")
    src = tmp_path / "corpus" / "slt"
    src.mkdir(parents=True)
    wav = src / "a0004.wav"
    wav.write_bytes(SAMPLE.read_bytes())
    y, _ = sf.read(wav, dtype="float32")
    # the engine's labels: here the aligner's own, so agreement must be 1
    phones = PhoneAligner().align(y, SAMPLE_TEXT)
    wav.with_suffix(".phn").write_text("".join(f"{s} {e} {p}\n" for s, e, p in phones))
    items = [Utterance("slt/a0004", wav, len(y), "slt", SAMPLE_TEXT),
             Utterance("slt/none", wav, len(y), "slt", None)]  # no transcript: left out
    stats = relabel(items, tmp_path / "ps")
    st = stats["slt"]
    assert list(stats) == ["slt"] and st["engine_agreement"] == 1.0
    assert (st["utterances"], st["aligned"]) == (1, 1) and st["agree"] == st["frames"] > 50
    (u,) = read_manifest(tmp_path / "ps" / "ps.tsv")
    assert u.path.is_symlink() and u.speaker == "slt" and u.text == SAMPLE_TEXT
    assert read_phn(u.phn_path)[0][2] == phones[0][2]
    with pytest.raises(DataError, match="no utterance with a transcript"):
        relabel(items[1:], tmp_path / "none")
