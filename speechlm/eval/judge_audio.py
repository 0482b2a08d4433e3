"""What every offline judge shares: its sample rate, optional imports and input checking.

The judges (:mod:`speechlm.eval.asr`, :mod:`speechlm.eval.judges`) take mono waveforms ``[T]``
(numpy arrays or 1-D torch tensors) at any sample rate and resample them to
``JUDGE_SAMPLE_RATE``. Their third-party packages (``pip install -e '.[eval]'``) are imported
with :func:`import_optional` when a judge is first built, so importing a judge module is cheap.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

import numpy as np

from speechlm.errors import AudioError, ModelError

__all__ = ["JUDGE_SAMPLE_RATE", "PIP_HINT", "as_mono_float32", "import_optional",
           "to_judge_rate"]

JUDGE_SAMPLE_RATE = 16_000  # Hz: the rate Whisper, pocketsphinx, Resemblyzer and DNSMOS expect
PIP_HINT = "pip install -e '.[eval]'"


def import_optional(module: str, package: str, what: str) -> ModuleType:
    """Import ``module`` (silencing pkg_resources deprecation warnings) or raise ModelError.

    Args:
        module: the module to import, e.g. ``"faster_whisper"``.
        package: the PyPI package that provides it, named in the error.
        what: the judge that needs it, named in the error.

    Raises:
        ModelError: the package is missing, or a dependency of it failed to import.
    """
    try:
        with warnings.catch_warnings():
            # pyworld and webrtcvad (Resemblyzer's VAD) import pkg_resources, which warns;
            # resemblyzer.audio imports a deprecated scipy.ndimage namespace
            warnings.filterwarnings("ignore", message=".*pkg_resources.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        if err.name is not None and err.name.split(".")[0] != top:  # a dependency of it failed
            raise ModelError(
                f"{what} needs {package}, whose import failed ({err}): {PIP_HINT}"
            ) from err
        raise ModelError(f"{what} needs {package}: {PIP_HINT}") from err


def as_mono_float32(wav: Any, name: str) -> np.ndarray:
    """``wav`` (numpy array or torch tensor ``[T]``) as a finite, non-empty float32 array.

    Raises:
        AudioError: not 1-D, empty, or holding NaN / infinite samples.
    """
    if hasattr(wav, "detach"):  # a torch tensor; torch itself is not imported here
        wav = wav.detach().cpu().numpy()
    x = np.asarray(wav)
    if x.ndim != 1:
        raise AudioError(f"{name} must be a mono waveform [T], got shape {tuple(x.shape)}")
    if x.size == 0:
        raise AudioError(f"{name} contains no audio samples")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise AudioError(f"{name} contains NaN or infinite samples; re-export it as PCM audio")
    return x


def to_judge_rate(wav: Any, sr: int, name: str) -> np.ndarray:
    """``wav`` ([T] at ``sr``) as float32 numpy ``[T']`` at 16 kHz, peak-limited to [-1, 1].

    Audio inside [-1, 1] is never rescaled: DNSMOS and the ASRs are level-sensitive, and the
    level of the audio under test is part of what is judged. Louder audio (resampling can
    overshoot) is scaled down to peak 1.

    Raises:
        AudioError: see :func:`as_mono_float32`.
    """
    x = as_mono_float32(wav, name)
    if sr != JUDGE_SAMPLE_RATE:
        import torch

        from speechlm.audio import resample

        # torch.tensor copies: x may be a read-only array, which torch.from_numpy warns about
        x = resample(torch.tensor(x), int(sr), JUDGE_SAMPLE_RATE).numpy()
    peak = float(np.abs(x).max())
    return x / peak if peak > 1.0 else x
