"""Every engine wrapper: 16 kHz mono float32, ARPAbet alignments where promised, deterministic;
skipped cleanly where the engine is not installed."""

import importlib.util

import numpy as np
import pytest

from speechlm.data.engines import ENGINES, Engine, scale_pho
from speechlm.data.phones import ARPABET, SILENCE, UNKNOWN, to_arpabet
from speechlm.data.voices import (
    BASE_VOICES,
    HELD_OUT,
    Identity,
    Perturbation,
    all_identities,
    identities_of,
    render,
)

TEXT = "The quick brown fox jumps over the lazy dog."
ONE_PER_VOICE_KIND = {}
for b in BASE_VOICES:
    ONE_PER_VOICE_KIND.setdefault((b.engine, b.voice.split("_")[0][:3]), b)
VOICES = list(ONE_PER_VOICE_KIND.values())


def usable(b):
    eng = ENGINES[b.engine]
    why = eng.missing() or (f"voice {b.voice} not installed" if eng.voice_missing(b.voice)
                            else None)
    if why:
        pytest.skip(why)
    return eng


@pytest.mark.parametrize("base", VOICES, ids=[b.name for b in VOICES])
def test_engine_synthesizes_16k_with_alignments(base):
    eng = usable(base)
    s = eng.synthesize(TEXT, base.voice)
    assert s.sample_rate == 16000 and s.audio.dtype == np.float32 and s.audio.ndim == 1
    assert 1.0 < s.seconds < 8.0 and np.abs(s.audio).max() > 0.05
    predicted = base.alignment == "predicted" and importlib.util.find_spec("onnx") is not None
    if base.aligned or predicted:
        labels = [p for _, _, p in s.phones]
        assert set(labels) <= ARPABET | {SILENCE}, set(labels) - ARPABET
        assert sum(p in ARPABET for p in labels) >= 25
        assert abs(s.phones[-1][1] - s.seconds) < 0.15
        assert all(a[1] == pytest.approx(b[0]) for a, b in zip(s.phones, s.phones[1:]))
    else:
        assert s.phones is None
    again = eng.synthesize(TEXT, base.voice)
    assert np.array_equal(s.audio, again.audio)


def test_missing_engine_says_how_to_install(monkeypatch):
    class Ghost(Engine):
        name, programs, install = "ghost", ("no-such-program-xyz",), "apt-get install ghost"

    msg = Ghost().missing()
    assert msg == "ghost: missing no-such-program-xyz; install with 'apt-get install ghost'"


def test_phone_maps():
    assert to_arpabet("pau", "radio") == SILENCE and to_arpabet("ax", "radio") == "AH"
    assert to_arpabet("@@", "mrpa") == "ER" and to_arpabet("#", "mrpa") == SILENCE
    assert to_arpabet("tS", "sampa") == "CH" and to_arpabet("t_h", "sampa") == "T"
    assert to_arpabet("3:", "sampa") == "ER" and to_arpabet("??x", "sampa") == UNKNOWN


def test_scale_pho_pitch_and_range():
    pho = "_ 50\nA 100 0 100 50 200\nb 60\n"
    out = [ln.split() for ln in scale_pho(pho, 1.5, 1.0).splitlines()]
    assert out[1][3] == "150" and out[1][5] == "300" and out[2] == ["b", "60"]
    flat = [ln.split() for ln in scale_pho(pho, 1.0, 0.0).splitlines()]
    assert flat[1][3] == flat[1][5] == "141"  # geometric mean of 100 and 200


def test_identities_are_pure_and_enough():
    ids = all_identities()
    names = [i.name for i in ids]
    assert len(BASE_VOICES) >= 30 and len(set(names)) == len(names) >= 200
    assert [i.name for i in identities_of(BASE_VOICES[0])] == names[:8]
    assert Identity(BASE_VOICES[0], Perturbation()).name == BASE_VOICES[0].name
    held = {b.engine for b in BASE_VOICES if b.name in HELD_OUT}
    whole = [e for e in held if all(b.name in HELD_OUT for b in BASE_VOICES if b.engine == e)]
    assert len(HELD_OUT) >= 3 and whole


def test_perturbation_rescales_alignments_and_shifts_formants():
    base = next(b for b in BASE_VOICES if b.name == "mbrola_us1")
    usable(base)
    plain = render(Identity(base, Perturbation()), [TEXT])[0]
    slow = render(Identity(base, Perturbation(formant=1.12, pitch=1.0, rate=0.85)), [TEXT])[0]
    assert slow.seconds == pytest.approx(plain.seconds / 0.85, rel=0.03)
    assert slow.phones[-1][1] == pytest.approx(slow.seconds, abs=0.02)
    assert [p for *_, p in slow.phones] == [p for *_, p in plain.phones]

    def centroid(x):
        spec = np.abs(np.fft.rfft(x)) ** 2
        return float((spec * np.fft.rfftfreq(len(x), 1 / 16000)).sum() / spec.sum())

    short = render(Identity(base, Perturbation(formant=1.12)), [TEXT])[0]
    assert short.seconds == pytest.approx(plain.seconds, rel=0.02)
    assert centroid(short.audio) > centroid(plain.audio) * 1.05  # shorter tract, higher formants


def test_ipa_segments_read_piper_durations_as_arpabet():
    """Piper's code points and durations: diphthongs, affricates and long vowels are one phone;
    padding, word breaks and stress marks go to the phone after them; pauses are silence; the
    segments tile the audio."""
    from speechlm.data.phones import ipa_segments

    # "^ fˈɑːks, dʒˈʌmpt $ n̩ q" (with Piper's padding after some) in 0.1 s units at 1,000 Hz
    toks = [("^", 100), ("_", 100), ("f", 100), ("ˈ", 200), ("ɑ", 100), ("_", 100), ("ː", 100),
            ("k", 100), ("s", 100), (",", 100), (" ", 100), ("d", 100), ("ʒ", 100), ("ˈ", 100),
            ("ʌ", 100), ("m", 100), ("p", 100), ("t", 100), ("$", 100), ("n", 100), ("̩", 100),
            ("q", 100)]
    segs = ipa_segments(toks, 1000)
    assert [p for _, _, p in segs] == ["SIL", "F", "AA", "K", "S", "SIL", "JH", "AH", "M", "P",
                                       "T", "SIL", "N", UNKNOWN]
    ends = {p: (round(a, 3), round(b, 3)) for a, b, p in segs}
    assert ends["SIL"] == (1.9, 2.0)  # "$" (the last silence)
    assert ends["F"] == (0.1, 0.3)  # the padding after "^" starts it
    assert ends["AA"] == (0.3, 0.8)  # the stress mark, "ɑ", the padding and the length mark
    assert ends["JH"] == (1.1, 1.4)  # the word break after the comma starts it
    assert ends["AH"] == (1.4, 1.6)  # and the stress mark this one
    assert ends["N"] == (2.0, 2.2)  # the syllabic mark lengthens it
    assert segs[0][0] == 0 and segs[-1][1] == pytest.approx(2.3)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(segs, segs[1:]))
    assert [p for _, _, p in ipa_segments([("a", 1), ("ɪ", 1), ("o", 1), ("ʊ", 1), ("t", 1),
                                           ("ʃ", 1), ("ɚ", 1)], 10)] == ["AY", "OW", "CH", "ER"]
