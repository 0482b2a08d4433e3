"""Audio in and out: load, mix to mono, resample, validate, save.

All of speechlm works on 16 kHz mono float32 waveforms in [-1, 1]. Files of any rate and channel
count that libsndfile reads (wav, flac, ogg, mp3 where the build supports it) are converted on
load. Long files are read in bounded memory through :class:`AudioReader`, whose chunked reads give
the same samples as a whole-file read.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from speechlm.errors import AudioError
from speechlm.io import atomic_path

SAMPLE_RATE = 16_000  # Hz, the rate of every model in speechlm
FRAME_SIZE = 400  # samples (25 ms): analysis window of one feature frame
HOP_SIZE = 320  # samples (20 ms): one unit frame, as HuBERT's convolutional front end
FRAME_RATE = SAMPLE_RATE / HOP_SIZE  # 50 frames per second

F0_FLOOR_HZ = 60.0  # pitch search range of the F0 analysis (WORLD's DIO + StoneMask); the
F0_CEIL_HZ = 700.0  # vocoder was trained on F0 tracked in this range
F0_FRAME_PERIOD_MS = 10.0  # one F0 value every 10 ms (two per 20 ms unit frame)

SILENCE_PEAK = 1e-3  # peak amplitude (-60 dBFS) below which a prompt counts as silent
NO_SIGNAL_PEAK = 1e-4  # peak amplitude (-80 dBFS) below which there is no voice to analyse

_LOWPASS_WIDTH = 6  # torchaudio's default sinc width, named so chunk margins can be derived


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int = SAMPLE_RATE) -> torch.Tensor:
    """Resample ``wav`` ([..., T]) from ``orig_sr`` to ``new_sr`` with a windowed-sinc filter."""
    if orig_sr == new_sr:
        return wav
    return AF.resample(wav, orig_sr, new_sr, lowpass_filter_width=_LOWPASS_WIDTH)


def to_mono(wav: np.ndarray) -> np.ndarray:
    """Average channels: ``[T, C]`` or ``[T]`` -> ``[T]`` float32."""
    if wav.ndim == 2:
        wav = wav[:, 0] if wav.shape[1] == 1 else wav.mean(axis=1)
    return np.ascontiguousarray(wav, dtype=np.float32)


def check_finite(wav: torch.Tensor | np.ndarray, name: str) -> None:
    """Raise :class:`AudioError` if ``wav`` has NaN or infinite samples."""
    finite = torch.isfinite(wav).all() if isinstance(wav, torch.Tensor) else np.isfinite(wav).all()
    if not bool(finite):
        raise AudioError(f"{name} contains NaN or infinite samples; re-export it as PCM audio")


def pyworld_module():
    """The ``pyworld`` module (WORLD analysis / synthesis), or a clear error if missing."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyworld imports pkg_resources
            import pyworld
    except ImportError:
        raise AudioError("F0 analysis needs pyworld: pip install pyworld") from None
    return pyworld


def f0_track(wav: np.ndarray | torch.Tensor, sr: int = SAMPLE_RATE, *,
             floor: float = F0_FLOOR_HZ, ceil: float = F0_CEIL_HZ,
             frame_period_ms: float = F0_FRAME_PERIOD_MS) -> np.ndarray:
    """F0 in Hz every ``frame_period_ms`` (0 = unvoiced), DIO + StoneMask:
    ``[T]`` -> ``[T // (sr * frame_period_ms / 1000) + 1]`` float64."""
    pw = pyworld_module()
    x = np.ascontiguousarray(np.asarray(wav, dtype=np.float64).reshape(-1))
    f0, t = pw.dio(x, int(sr), f0_floor=floor, f0_ceil=ceil, frame_period=frame_period_ms)
    return pw.stonemask(x, f0, t, int(sr))


class AudioReader:
    """Random access to a file's audio as 16 kHz mono float32, in bounded memory.

    ``reader.read(start, stop)`` returns output samples ``[start, stop)`` at ``sample_rate``.
    Reads are exact: any split of ``[0, num_samples)`` into reads gives the same samples as one
    read of the whole range (up to float rounding), because each read takes a margin of input
    around it that covers the resampling filter.

    Args:
        path: an audio file libsndfile can read.
        sample_rate: the output rate.

    Raises:
        AudioError: the file is missing, not audio, or empty.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int = SAMPLE_RATE):
        self.path = Path(path)
        self.sample_rate = sample_rate
        if not self.path.exists():
            raise AudioError(f"audio file not found: {self.path}")
        if self.path.is_dir():
            raise AudioError(f"{self.path} is a directory, not an audio file")
        try:
            self._file = sf.SoundFile(str(self.path))
        except Exception as err:  # libsndfile's error types vary between versions
            detail = str(err).splitlines()[-1] if str(err) else type(err).__name__
            raise AudioError(
                f"cannot read {self.path} as audio ({detail}); "
                "give a wav, flac or ogg file"
            ) from None
        self.orig_sr = int(self._file.samplerate)
        self.channels = int(self._file.channels)
        self.orig_frames = int(self._file.frames)
        if self.orig_frames <= 0:
            self.close()
            raise AudioError(f"{self.path} contains no audio samples")
        g = math.gcd(self.orig_sr, sample_rate)
        self._in_step = self.orig_sr // g  # input samples per output step
        self._out_step = sample_rate // g  # output samples per step
        # margin of input around each read, a whole number of steps, wider than the sinc kernel
        kernel = math.ceil(_LOWPASS_WIDTH * self.orig_sr / (min(self.orig_sr, sample_rate) * 0.99))
        self._margin = self._in_step * math.ceil((kernel + 8) / self._in_step)

    @property
    def num_samples(self) -> int:
        """Length of the file in output samples."""
        return math.ceil(self.orig_frames * self.sample_rate / self.orig_sr)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.orig_frames / self.orig_sr

    def close(self) -> None:
        """Close the file (reads after this fail)."""
        self._file.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        f = getattr(self, "_file", None)
        if f is not None and not f.closed:
            f.close()

    def _read_raw(self, start: int, stop: int) -> np.ndarray:
        self._file.seek(start)
        data = to_mono(self._file.read(stop - start, dtype="float32", always_2d=True))
        check_finite(data, str(self.path))
        return data

    def read(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Return output samples ``[start, stop)`` as a float32 tensor ``[T]``."""
        n = self.num_samples
        stop = n if stop is None else min(stop, n)
        start = max(0, start)
        if stop <= start:
            return torch.zeros(0)
        if self.orig_sr == self.sample_rate:
            return torch.from_numpy(self._read_raw(start, stop))
        # align the read to whole resampling steps so output indices map exactly to input ones
        step0 = start // self._out_step
        in_start = step0 * self._in_step
        out_start = step0 * self._out_step
        in_stop = math.ceil(stop / self._out_step) * self._in_step
        lo = max(0, in_start - self._margin)
        hi = min(self.orig_frames, in_stop + self._margin)
        raw = torch.from_numpy(self._read_raw(lo, hi))
        out = resample(raw, self.orig_sr, self.sample_rate)
        offset = (in_start - lo) // self._in_step * self._out_step
        a = offset + (start - out_start)
        return out[a : a + (stop - start)].contiguous()


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
               min_samples: int = 1) -> torch.Tensor:
    """Load a whole file as mono float32 at ``sample_rate``.

    Args:
        path: audio file.
        sample_rate: output rate.
        min_samples: raise if the result is shorter (e.g. one analysis frame).

    Returns:
        ``[T]`` float32 tensor.

    Raises:
        AudioError: missing, unreadable, empty, non-finite or too short audio.
    """
    with AudioReader(path, sample_rate) as reader:
        wav = reader.read()
    check_length(wav.numel(), min_samples, str(path), sample_rate)
    return wav


def check_length(num_samples: int, min_samples: int, name: str,
                 sample_rate: int = SAMPLE_RATE) -> None:
    """Raise :class:`AudioError` when audio is shorter than ``min_samples``."""
    if num_samples == 0:
        raise AudioError(f"{name} contains no audio samples")
    if num_samples < min_samples:
        raise AudioError(
            f"{name} is {num_samples / sample_rate * 1000:.1f} ms long, shorter than one "
            f"analysis frame ({min_samples / sample_rate * 1000:.1f} ms)"
        )


def save_audio(path: str | os.PathLike, wav: torch.Tensor | np.ndarray,
               sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono ``wav`` ([T]) as 16-bit PCM, atomically (temp file + rename).

    The format follows the file suffix (``.wav``, ``.flac``, ``.ogg``).
    """
    data = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    data = np.clip(data.astype(np.float32).reshape(-1), -1.0, 1.0)
    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower(), "WAV")
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data, sample_rate, format=fmt, subtype=subtype)
