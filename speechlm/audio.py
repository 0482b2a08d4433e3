"""Audio in and out: load, mix to mono, resample, validate, save.

All of speechlm works on 16 kHz mono float32 waveforms in [-1, 1]. Files of any rate and channel
count that libsndfile reads (wav, flac, ogg, mp3 where the build supports it) are converted on
load. Long files are read in bounded memory through :class:`AudioReader`, whose chunked reads give
the same samples as a whole-file read.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from speechlm.errors import AudioError
from speechlm.io import atomic_path, stat_input

log = logging.getLogger(__name__)

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


# torchaudio builds one [new, orig + 2 * width] sinc kernel for the rates reduced by their gcd:
# tiny for 44.1 / 48 / 22.05 / 8 kHz, but gigabytes for rates with no common factor (15,999 Hz,
# 44,101 Hz). Past this many kernel entries the streaming resampler below is used instead.
_MAX_KERNEL = 1_000_000
_RESAMPLE_BLOCK = 8192  # output samples per block of the streaming resampler


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int = SAMPLE_RATE) -> torch.Tensor:
    """Resample ``wav`` ([..., T]) from ``orig_sr`` to ``new_sr`` with a windowed-sinc filter.

    Memory stays bounded for any pair of rates: where torchaudio's polyphase kernel would be
    large the same filter (Hann-windowed sinc, width 6, roll-off 0.99) is evaluated per output
    sample, a block at a time. Output length ``ceil(T * new_sr / orig_sr)`` either way.
    """
    orig_sr, new_sr = int(orig_sr), int(new_sr)
    if orig_sr <= 0 or new_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return wav
    g = math.gcd(orig_sr, new_sr)
    width = math.ceil(_LOWPASS_WIDTH * orig_sr / (min(orig_sr, new_sr) * 0.99))
    if (new_sr // g) * (orig_sr // g + 2 * width) <= _MAX_KERNEL:
        return AF.resample(wav, orig_sr, new_sr, lowpass_filter_width=_LOWPASS_WIDTH)
    return _resample_streaming(wav, orig_sr, new_sr)


def _resample_streaming(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """torchaudio's ``sinc_interp_hann`` filter for any rate pair, ``_RESAMPLE_BLOCK`` output
    samples at a time: memory ``O(block * filter taps)`` whatever ``gcd(orig_sr, new_sr)``."""
    shape = wav.shape
    x = wav.reshape(-1, shape[-1]).to(torch.float64)
    n_in = x.shape[-1]
    n_out = -(-n_in * new_sr // orig_sr)  # ceil
    base = min(orig_sr, new_sr) * 0.99
    reach = _LOWPASS_WIDTH * orig_sr / base  # input samples either side of an output sample
    taps = 2 * math.ceil(reach) + 2
    pad = math.ceil(reach) + 1
    xp = torch.nn.functional.pad(x, (pad, pad + taps))
    out = torch.empty(x.shape[0], n_out, dtype=torch.float64)
    offs = torch.arange(taps, dtype=torch.long)
    for a in range(0, n_out, _RESAMPLE_BLOCK):
        j = torch.arange(a, min(n_out, a + _RESAMPLE_BLOCK), dtype=torch.long)
        whole = (j * orig_sr) // new_sr  # the input sample at or before output sample j
        frac = ((j * orig_sr) % new_sr).to(torch.float64) / new_sr
        first = whole - math.ceil(reach)  # first tap, in input samples
        idx = first[:, None] + offs[None, :]  # [B, taps]
        # time from each tap to the output sample, in units of the filter's cut-off period
        t = (idx.to(torch.float64) - (whole.to(torch.float64) + frac)[:, None]) * base / orig_sr
        t = t.clamp(-_LOWPASS_WIDTH, _LOWPASS_WIDTH)
        window = torch.cos(t * math.pi / _LOWPASS_WIDTH / 2) ** 2
        t = t * math.pi
        kern = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window * (base / orig_sr)
        out[:, a : a + len(j)] = (xp[:, idx + pad] * kern).sum(-1)
    return out.to(wav.dtype if wav.is_floating_point() else torch.float32).reshape(
        *shape[:-1], n_out)


def to_mono(wav: np.ndarray) -> np.ndarray:
    """Average channels: ``[T, C]`` or ``[T]`` -> ``[T]`` float32."""
    if wav.ndim == 2:
        wav = wav[:, 0] if wav.shape[1] == 1 else wav.mean(axis=1)
    return np.ascontiguousarray(wav, dtype=np.float32)


# integer PCM -> float in [-1, 1): what the sample value 1.0 is for each integer type
_PCM_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2.0**31,
              np.dtype(np.int8): 128.0, np.dtype(np.uint8): 128.0}


def as_mono(audio: torch.Tensor | np.ndarray, what: str = "the waveform") -> torch.Tensor:
    """A waveform handed to the API -> ``[T]`` float32, or a clear :class:`AudioError`
    (a ``ValueError``).

    Accepted: mono float ``[T]`` (or ``[1, T]`` / ``[T, 1]``); stereo ``[2, T]`` / ``[T, 2]``,
    mixed down to mono by averaging the channels; integer PCM (int16, int32, int8, uint8),
    scaled to [-1, 1). Refused: a batch ``[B, T]`` with ``B > 2``, more than two dimensions,
    bool, complex, int64 (no PCM width to scale by), and NaN or infinite samples. A 1-D float32
    tensor is returned as it is.
    """
    if isinstance(audio, torch.Tensor):
        if audio.dim() == 1 and audio.dtype == torch.float32:
            x = audio.detach()
            check_finite(x, what)
            return x
        arr = audio.detach().cpu().numpy()
    elif isinstance(audio, np.ndarray):
        arr = audio
    elif isinstance(audio, (list, tuple)):
        arr = np.asarray(audio)
    else:
        raise AudioError(f"{what} must be a path, a numpy array or a torch tensor, got "
                         f"{type(audio).__name__}")
    dt = arr.dtype
    if arr.size == 0:
        raise AudioError(f"{what} contains no audio samples")
    if dt == np.bool_ or dt.kind in "cOUSV":
        raise AudioError(f"{what} has dtype {dt}: give float samples in [-1, 1] or integer PCM")
    if dt.kind in "iu":
        if dt not in _PCM_SCALE:
            raise AudioError(f"{what} has dtype {dt}: integer PCM must be int16, int32, int8 or "
                             "uint8 (convert to float in [-1, 1] otherwise)")
        f = arr.astype(np.float32)
        arr = (f - 128.0) / 128.0 if dt == np.uint8 else f / np.float32(_PCM_SCALE[dt])
    if arr.ndim == 2:
        short, long_ = sorted(arr.shape)
        if short > 2 or arr.shape[0] == arr.shape[1]:
            raise AudioError(f"{what} has shape {tuple(arr.shape)}: give one mono [T] waveform "
                             "or a stereo [2, T] / [T, 2] one (a batch: one call per item)")
        arr = arr.mean(axis=0 if arr.shape[0] == short else 1)  # channels: the short axis
    elif arr.ndim != 1:
        raise AudioError(f"{what} has shape {tuple(arr.shape)}: give one mono [T] waveform or "
                         "a stereo [2, T] / [T, 2] one")
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    check_finite(x, what)
    return x


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


_SPOOL_MEMORY = 64 * 2**20  # bytes of a piped input kept in memory; the rest goes to a temp file


def _spool_stream(path: Path):
    """Copy an unseekable input (pipe, FIFO, device) into a seekable temporary file that
    stays in memory up to ``_SPOOL_MEMORY`` bytes and spills to disk beyond."""
    import shutil
    import tempfile

    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)
    try:
        with open(path, "rb") as f:
            shutil.copyfileobj(f, spool, 2**20)
    except OSError as err:
        spool.close()
        raise AudioError(f"cannot read {path}: {err.strerror}") from None
    if spool.tell() == 0:
        spool.close()
        raise AudioError(f"{path} contains no audio samples (the stream was empty)")
    spool.seek(0)
    return spool


def _warn_if_truncated(f: sf.SoundFile, path: Path) -> None:
    """libsndfile reads a cut-off file up to where it ends and says so only in its log:
    ``data : 32000 (should be 15978)``. Say it as a warning."""
    import re

    try:
        info = f.extra_info
    except Exception:  # not every format keeps a log
        return
    m = re.search(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)", info)
    if m and int(m.group(2)) < int(m.group(1)):
        log.warning("%s is truncated: its header promises %s bytes of audio but the file "
                    "holds %s; reading what is there", path, m.group(1), m.group(2))


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
        self._spool = None
        st = stat_input(self.path, "audio file", AudioError)
        try:
            if stat.S_ISREG(st.st_mode):
                self._file = sf.SoundFile(str(self.path))
            else:  # a pipe, /dev/stdin, <(...): copy it where reads can seek, in bounded memory
                self._spool = _spool_stream(self.path)
                self._file = sf.SoundFile(self._spool)
        except AudioError:
            raise
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
        _warn_if_truncated(self._file, self.path)
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
        if self._spool is not None:
            self._spool.close()

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
