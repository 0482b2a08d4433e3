"""Base voices x deterministic perturbations = voice identities.

A :class:`BaseVoice` is one engine voice (31 of them, 7 engines). A :class:`Perturbation`
changes four things of a voice: vocal-tract length (``formant``: all formants scaled), f0 level
(``pitch``), f0 spread (``range``) and speaking rate (``rate``). An :class:`Identity` is the
pair; its name is a pure function of the pair (``mbrola_us1-f108p90g130r95``; the neutral
perturbation keeps the base name), so the same identity is the same speaker in every build.

How a perturbation is made, cheaply: the engine synthesizes with its f0 scaled natively by
``pitch / formant`` (flite, festival diphones, MBROLA, espeak-ng, Pico and RHVoice can; the f0
range only where the engine can: festival diphones, MBROLA, espeak-ng), then sox ``speed
formant`` scales every frequency (formants and f0) by ``formant`` and ``tempo rate / formant``
(WSOLA, which keeps the spectrum) brings the duration to ``1 / rate`` of the original. Engines
with no native f0 control (piper, festival's HTS voice) get ``pitch == formant``: their pitch
follows the vocal tract. Alignments are rescaled by the measured change of duration.

Whole base voices are held out (:data:`HELD_OUT`): all their identities read only the
``heldout`` split, never a training one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

import numpy as np

from speechlm.audio import SAMPLE_RATE
from speechlm.data.engines import ENGINES, Segments, Synthesis, sox

IDENTITIES_PER_VOICE = 8  # identities per base voice (the first is the unperturbed voice)
UNALIGNED_WEIGHT = 0.15  # share of a voice without alignments relative to an aligned one
PEAK = 0.9  # every utterance is peak-normalised to this (augmentation varies the level)

FORMANTS = (0.88, 0.92, 0.96, 1.0, 1.04, 1.08, 1.12)  # vocal-tract length factors
PITCHES = (0.8, 0.88, 0.94, 1.0, 1.06, 1.14, 1.25)  # f0 level factors
RANGES = (0.6, 0.8, 1.0, 1.25, 1.5)  # f0 spread factors
RATES = (0.85, 0.92, 1.0, 1.08, 1.15)  # speaking-rate factors (>1 faster)


@dataclasses.dataclass(frozen=True)
class BaseVoice:
    """One voice of one engine."""

    name: str  # id used in identity names
    engine: str  # key of engines.ENGINES
    voice: str  # the engine's voice name
    sex: str  # "F" | "M"
    licence: str = ""  # voice data licence when it differs from the engine's

    @property
    def aligned(self) -> bool:
        """Whether the engine reports the times of the phones it synthesized. The share of text
        a voice reads follows this (Piper's predicted durations, read since 2026-12-04, do not
        change which identity reads which sentence)."""
        return self.engine in ("flite", "festival", "mbrola")

    @property
    def alignment(self) -> str:
        """Where the voice's ``.phn`` comes from: ``"engine"`` (segment times or durations the
        synthesizer used), ``"predicted"`` (Piper: its duration model's phoneme lengths, with
        the ``onnx`` package) or ``"none"``."""
        return "engine" if self.aligned else "predicted" if self.engine == "piper" else "none"

    @property
    def weight(self) -> float:
        """Relative share of the text this voice reads."""
        return 1.0 if self.aligned else UNALIGNED_WEIGHT


def _espeak(dialect: str, variant: str, sex: str) -> BaseVoice:
    short = dialect.replace("en-gb-x-", "").replace("en-gb-", "").replace("en-", "")
    return BaseVoice(f"espeak_{short}_{variant}", "espeak", f"{dialect}+{variant}", sex)


BASE_VOICES: tuple[BaseVoice, ...] = (
    BaseVoice("flite_kal", "flite", "kal", "M"),
    BaseVoice("flite_kal16", "flite", "kal16", "M"),
    BaseVoice("flite_awb", "flite", "awb", "M"),
    BaseVoice("flite_rms", "flite", "rms", "M"),
    BaseVoice("flite_slt", "flite", "slt", "F"),
    BaseVoice("fest_kal", "festival", "kal_diphone", "M"),
    BaseVoice("fest_slt_hts", "festival", "cmu_us_slt_arctic_hts", "F"),
    BaseVoice("fest_rab", "festival", "rab_diphone", "M"),
    BaseVoice("fest_don", "festival", "don_diphone", "M"),
    BaseVoice("mbrola_us1", "mbrola", "us1", "F"),
    BaseVoice("mbrola_us2", "mbrola", "us2", "M"),
    BaseVoice("mbrola_us3", "mbrola", "us3", "M"),
    BaseVoice("mbrola_en1", "mbrola", "en1", "M"),
    BaseVoice("rhvoice_alan", "rhvoice", "alan", "M"),
    BaseVoice("rhvoice_bdl", "rhvoice", "bdl", "M"),
    BaseVoice("rhvoice_clb", "rhvoice", "clb", "F"),
    BaseVoice("rhvoice_slt", "rhvoice", "slt", "F"),
    BaseVoice("pico_us", "pico", "en-US", "F"),
    BaseVoice("pico_gb", "pico", "en-GB", "F"),
    BaseVoice("piper_joe", "piper", "joe", "M"),
    _espeak("en-us", "m3", "M"),
    _espeak("en-us", "f2", "F"),
    _espeak("en-gb", "m1", "M"),
    _espeak("en-gb", "f4", "F"),
    _espeak("en-gb-scotland", "m2", "M"),
    _espeak("en-gb-x-rp", "f3", "F"),
    _espeak("en-gb-x-gbclan", "m4", "M"),
    _espeak("en-029", "m5", "M"),
    _espeak("en-us-nyc", "f5", "F"),
    _espeak("en-gb-x-gbcwmd", "m6", "M"),
    _espeak("en-us", "klatt2", "M"),
)

# Never in train or valid: two whole engines (Pico, Piper) and one aligned MBROLA voice.
HELD_OUT = frozenset({"pico_us", "pico_gb", "piper_joe", "mbrola_us3"})


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """Factors applied to a base voice (1.0 = unchanged)."""

    formant: float = 1.0  # vocal-tract length: every formant scaled by this
    pitch: float = 1.0  # f0 level
    range: float = 1.0  # f0 spread around its mean
    rate: float = 1.0  # speaking rate (>1 faster)

    @property
    def neutral(self) -> bool:
        return self == Perturbation()

    @property
    def code(self) -> str:
        """``f108p90g130r95``: the factors in percent."""
        return "f{:.0f}p{:.0f}g{:.0f}r{:.0f}".format(
            *(100 * v for v in (self.formant, self.pitch, self.range, self.rate)))


@dataclasses.dataclass(frozen=True)
class Identity:
    """A speaker of the corpus: a base voice under a perturbation."""

    base: BaseVoice
    perturbation: Perturbation

    @property
    def name(self) -> str:
        p = self.perturbation
        return self.base.name if p.neutral else f"{self.base.name}-{p.code}"

    @property
    def held_out(self) -> bool:
        return self.base.name in HELD_OUT


def _pick(key: str, choices: tuple[float, ...]) -> float:
    return choices[int(hashlib.sha1(key.encode()).hexdigest(), 16) % len(choices)]


def identities_of(base: BaseVoice, n: int = IDENTITIES_PER_VOICE) -> list[Identity]:
    """The ``n`` identities of ``base``: the voice itself, then perturbations drawn by a hash of
    (voice name, index), so the list is the same on every machine and grows by appending."""
    eng = ENGINES[base.engine]
    can_pitch = eng.pitch_control and base.voice != "cmu_us_slt_arctic_hts"
    can_range = eng.range_control and base.voice != "cmu_us_slt_arctic_hts"
    out = [Identity(base, Perturbation())]
    seen = {out[0].perturbation}
    k = 0
    while len(out) < n:
        k += 1
        f = _pick(f"{base.name}:{k}:formant", FORMANTS)
        p = _pick(f"{base.name}:{k}:pitch", PITCHES) if can_pitch else f
        g = _pick(f"{base.name}:{k}:range", RANGES) if can_range else 1.0
        r = _pick(f"{base.name}:{k}:rate", RATES)
        pert = Perturbation(f, p, g, r)
        if pert not in seen:
            seen.add(pert)
            out.append(Identity(base, pert))
    return out


def all_identities(bases: tuple[BaseVoice, ...] = BASE_VOICES,
                   n: int = IDENTITIES_PER_VOICE) -> list[Identity]:
    """Every identity of every base voice."""
    return [i for b in bases for i in identities_of(b, n)]


def base_name_of(speaker: str) -> str:
    """The base voice's name in an identity's name (``espeak_us-nyc_f5-f96p88g60r115`` ->
    ``espeak_us-nyc_f5``): the name less its perturbation code; other names unchanged."""
    return re.sub(r"-f\d+p\d+g\d+r\d+$", "", speaker)


def base_voice(name: str) -> BaseVoice:
    for b in BASE_VOICES:
        if b.name == name:
            return b
    raise KeyError(f"unknown base voice {name!r}")


def _scale(segs: Segments | None, factor: float, seconds: float) -> Segments | None:
    if segs is None:
        return None
    return tuple((min(a * factor, seconds), min(b * factor, seconds), p) for a, b, p in segs)


def render(identity: Identity, texts: list[str]) -> list[Synthesis]:
    """Synthesize ``texts`` in ``identity``: 16 kHz float32, peak :data:`PEAK`, segments
    rescaled to the final duration."""
    b, p = identity.base, identity.perturbation
    eng = ENGINES[b.engine]
    native = p.pitch / p.formant if eng.pitch_control else 1.0
    raws = eng.raw(texts, b.voice, native, p.range)
    effects: list[str] = []
    if p.formant != 1.0:
        effects += ["speed", f"{p.formant:g}"]
    if abs(p.rate / p.formant - 1.0) > 1e-6:
        effects += ["tempo", "-s", f"{p.rate / p.formant:.6f}"]
    out = []
    for s in raws:
        y = sox(s.audio, s.sample_rate, effects) if effects or s.sample_rate != SAMPLE_RATE \
            else s.audio
        peak = float(np.abs(y).max()) if len(y) else 0.0
        if peak > 0:
            y = (y * (PEAK / peak)).astype(np.float32)
        secs = len(y) / SAMPLE_RATE
        factor = secs / s.seconds if s.seconds else 1.0
        out.append(Synthesis(y, SAMPLE_RATE, _scale(s.phones, factor, secs),
                             _scale(s.words, factor, secs)))
    return out


def to_samples(segs: Segments, num_samples: int) -> list[tuple[int, int, str]]:
    """Segments in seconds -> contiguous ``(start, end, label)`` in samples covering
    ``[0, num_samples)``: gaps join the previous segment, the last runs to the end."""
    out: list[tuple[int, int, str]] = []
    start = 0
    for _, b, lab in segs:
        end = min(num_samples, round(b * SAMPLE_RATE))
        if end > start:
            out.append((start, end, lab))
            start = end
    if out and start < num_samples:
        out[-1] = (out[-1][0], num_samples, out[-1][2])
    return out
