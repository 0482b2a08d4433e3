"""Robustness of units: the unit edit distance (UED) under signal perturbations.

UED (Gat et al., 2023, "Augmentation invariant discrete representation for generative spoken
language modeling"): the Levenshtein distance between the deduplicated units of a clip and
those of a perturbed copy, divided by the length of the first. 0 means the perturbation left
the units untouched; around 1 means a new unit sequence (it can exceed 1 when the perturbed
copy is longer).

Perturbations (:data:`PERTURBATIONS`), made by sox except the noise:

==============  ===========================================================================
name            what
==============  ===========================================================================
pitch+300       ``sox pitch 300``: F0 and formants up 3 semitones, duration kept
pitch-300       down 3 semitones; ``pitch+400`` / ``pitch-400``: 4 semitones
tempo0.9        ``sox tempo 0.9``: 10 % slower (duration x 1/0.9), pitch kept
tempo1.1        10 % faster (duration x 1/1.1)
reverb          ``sox reverb`` (reverberance 50 %, room scale 100 %), cut to the input length
noise20dB       white Gaussian noise scaled to exactly 20 dB SNR over the whole clip (seeded)
==============  ===========================================================================

Example::

    u = tokenizer_units(wav)                       # [T] ids
    v = tokenizer_units(perturb(wav, sr, "pitch+300"))
    unit_edit_distance(u, v)                       # dedups both, then Levenshtein / len
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from speechlm.errors import AudioError, DataError, ModelError

if TYPE_CHECKING:
    import torch

__all__ = [
    "NOISE_SNR_DB",
    "PERTURBATIONS",
    "UedResult",
    "add_noise",
    "dedup_ids",
    "levenshtein",
    "measure_ued",
    "check_perturbation",
    "perturb",
    "perturbation_option",
    "perturbed_copy",
    "sox_effect",
    "unit_edit_distance",
]

NOISE_SNR_DB = 20.0  # the white-noise perturbation's signal-to-noise ratio

# name -> sox effect chain (None: the noise, made here)
_SOX_EFFECTS: dict[str, tuple[str, ...] | None] = {
    "pitch+300": ("pitch", "300"),
    "pitch-300": ("pitch", "-300"),
    "pitch+400": ("pitch", "400"),
    "pitch-400": ("pitch", "-400"),
    "tempo0.9": ("tempo", "0.9"),
    "tempo1.1": ("tempo", "1.1"),
    "reverb": ("reverb",),
    "noise20dB": None,
}
PERTURBATIONS: tuple[str, ...] = tuple(_SOX_EFFECTS)


# --------------------------------------------------------------------------------------------
# Edit distance
# --------------------------------------------------------------------------------------------


def dedup_ids(ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Collapse runs of equal ids: ``[5 5 7 7 7 5]`` -> ``[5 7 5]`` (int64 ``[N]``)."""
    x = np.asarray(ids, dtype=np.int64).reshape(-1)
    if x.size == 0:
        return x
    return x[np.concatenate(([True], x[1:] != x[:-1]))]


def levenshtein(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> int:
    """Edit distance (insertions, deletions, substitutions, each cost 1) of two id sequences.

    Row by row over the shorter sequence, each row vectorised over the longer one: a row's
    insertion chain ``d[j] = min(d[j], d[j-1] + 1)`` is a running minimum of ``d[j] - j``,
    so a row costs a few numpy calls. O(len(a) * len(b)) work, O(min) Python steps.
    """
    a = np.asarray(a).reshape(-1)
    b = np.asarray(b).reshape(-1)
    if len(a) < len(b):
        a, b = b, a  # the distance is symmetric; iterate over the shorter one
    if len(b) == 0:
        return len(a)
    offsets = np.arange(len(a) + 1)
    prev = offsets.copy()
    cur = np.empty_like(prev)
    for i, x in enumerate(b, start=1):
        cur[0] = i
        np.minimum(prev[1:] + 1, prev[:-1] + (a != x), out=cur[1:])  # deletion / substitution
        cur = np.minimum.accumulate(cur - offsets) + offsets  # insertions
        prev, cur = cur, prev
    return int(prev[-1])


def unit_edit_distance(reference: Sequence[int] | np.ndarray,
                       perturbed: Sequence[int] | np.ndarray) -> float:
    """UED: ``levenshtein(dedup(reference), dedup(perturbed)) / len(dedup(reference))``.

    Raises:
        ValueError: ``reference`` is empty.
    """
    r, p = dedup_ids(reference), dedup_ids(perturbed)
    if len(r) == 0:
        raise ValueError("the reference unit sequence is empty; UED is undefined")
    return levenshtein(r, p) / len(r)


# --------------------------------------------------------------------------------------------
# Perturbations
# --------------------------------------------------------------------------------------------


def _check_wav(wav: np.ndarray) -> np.ndarray:
    x = np.asarray(wav, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise AudioError(f"a perturbation needs a non-empty mono waveform [T], got shape "
                         f"{tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise AudioError("the waveform contains NaN or infinite samples")
    return x


def sox_effect(wav: np.ndarray, sr: int, effect: Sequence[str]) -> np.ndarray:
    """Run ``wav`` (mono float ``[T]`` at ``sr``) through a sox effect chain; returns ``[T']``.

    Raw 32-bit float goes through pipes (no temporary files); ``-G`` lets sox lower the gain
    where an effect would clip, ``-V1`` keeps its warnings off stderr.

    Raises:
        ModelError: sox is not installed.
        AudioError: sox failed (the message carries its stderr).
    """
    sox = shutil.which("sox")
    if sox is None:
        raise ModelError("the unit-robustness perturbations need sox: apt-get install sox")
    x = _check_wav(wav)
    fmt = ["-t", "f32", "-r", str(int(sr)), "-c", "1"]
    cmd = [sox, "-V1", "-G", *fmt, "-", *fmt, "-", *effect]
    out = subprocess.run(cmd, input=x.astype("<f4").tobytes(), capture_output=True)
    if out.returncode != 0:
        raise AudioError(f"sox {' '.join(effect)} failed: {out.stderr.decode().strip()}")
    return np.frombuffer(out.stdout, dtype="<f4").astype(np.float32)


def add_noise(wav: np.ndarray, snr_db: float = NOISE_SNR_DB, seed: int = 0) -> np.ndarray:
    """``wav`` plus white Gaussian noise at exactly ``snr_db`` dB SNR.

    The signal power is the mean square over the whole clip; the drawn noise is rescaled so its
    mean square is exactly ``power / 10 ** (snr_db / 10)``.

    Raises:
        AudioError: a silent, empty or non-finite waveform (no SNR can be defined).
    """
    x = _check_wav(wav).astype(np.float64)
    power = float(np.mean(x**2))
    if power == 0.0:
        raise AudioError("the waveform is silent; a signal-to-noise ratio needs a signal")
    noise = np.random.default_rng(seed).standard_normal(len(x))
    noise *= np.sqrt(power / 10 ** (snr_db / 10) / np.mean(noise**2))
    return (x + noise).astype(np.float32)


_NOISE_NAME = re.compile(r"noise(-?\d+(?:\.\d+)?)dB")


def check_perturbation(name: str) -> str:
    """``name`` if :func:`perturb` knows it: one of :data:`PERTURBATIONS`, or ``noise<SNR>dB``
    for white noise at any SNR (``noise10dB``, ``noise-5dB``, ``noise12.5dB``).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if name in _SOX_EFFECTS or _NOISE_NAME.fullmatch(name):
        return name
    raise ValueError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)} "
                     "or noise<SNR>dB (white noise at that SNR, e.g. noise10dB)")


def perturbed_copy(wav: torch.Tensor, sr: int, name: str | None, seed: int) -> torch.Tensor:
    """``wav`` ``[T]`` itself when ``name`` is None, else its perturbation ``name`` (what the
    eval harnesses' ``--reference-perturb`` / ``--prompt-perturb`` hand the model)."""
    if not name:
        return wav
    import torch

    return torch.from_numpy(perturb(wav.numpy(), sr, name, seed=seed))


def perturbation_option(name: str | None, flag: str) -> str | None:
    """A command-line perturbation (``flag`` names it in the error): None when not given,
    else the checked name.

    Raises:
        DataError: an unknown name (one line: the CLI exits 2).
    """
    if not name:
        return None
    try:
        return check_perturbation(name)
    except ValueError as err:
        raise DataError(f"{flag}: {err}") from None


def perturb(wav: np.ndarray, sr: int, name: str, seed: int = 0) -> np.ndarray:
    """The perturbation ``name`` (see :func:`check_perturbation`) of ``wav`` ``[T]`` at ``sr``.

    ``seed`` only matters for the noise. The reverberated copy is cut to the input length, so
    its tail does not add units the clip never had.

    Raises:
        ValueError: an unknown name.
        ModelError / AudioError: see :func:`sox_effect` and :func:`add_noise`.
    """
    noise = _NOISE_NAME.fullmatch(check_perturbation(name))  # noise20dB among them
    if noise:
        return add_noise(wav, float(noise.group(1)), seed)
    y = sox_effect(wav, sr, _SOX_EFFECTS[name])
    return y[: len(wav)] if name == "reverb" else y


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UedResult:
    """UED of one perturbation over a set of clips.

    Attributes:
        perturbation: its name.
        mean: mean UED over the clips.
        values: UED of each clip, in input order.
    """

    perturbation: str
    mean: float
    values: tuple[float, ...]


def measure_ued(encode: Callable[[np.ndarray], np.ndarray], wavs: Sequence[np.ndarray], sr: int,
                perturbations: Sequence[str] = PERTURBATIONS, seed: int = 0) -> list[UedResult]:
    """UED of each perturbation, averaged over ``wavs``.

    Args:
        encode: waveform ``[T]`` float32 at ``sr`` -> unit ids ``[N]`` (deduplicated or not).
        wavs: clips, each ``[T]`` at ``sr``.
        sr: their sample rate.
        perturbations: names from :data:`PERTURBATIONS`.
        seed: noise seed; clip ``i`` uses ``seed + i``.

    Returns:
        One result per perturbation, in the order given.

    Raises:
        ValueError: no clips, an unknown perturbation, or a clip whose units are empty.
    """
    if not wavs:
        raise ValueError("measure_ued needs at least one clip")
    for name in perturbations:
        if name not in _SOX_EFFECTS:
            raise ValueError(f"unknown perturbation {name!r}; choose from "
                             f"{', '.join(PERTURBATIONS)}")
    refs = [encode(np.asarray(w, dtype=np.float32)) for w in wavs]
    results = []
    for name in perturbations:
        values = tuple(unit_edit_distance(ref, encode(perturb(w, sr, name, seed + i)))
                       for i, (w, ref) in enumerate(zip(wavs, refs)))
        results.append(UedResult(name, float(np.mean(values)), values))
    return results
