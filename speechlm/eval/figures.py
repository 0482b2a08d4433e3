"""Figures for evaluation reports (matplotlib, imported only when a figure is drawn).

:func:`plot_continuation` draws one generated speech continuation: waveform, log-magnitude
spectrogram and unit sequence on a shared time axis, with the prompt / continuation boundary
marked. Figures are rendered with matplotlib's Agg canvas directly (no pyplot), so drawing never
changes the caller's matplotlib backend or global figure state, and works without a display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from speechlm.errors import ModelError
from speechlm.eval.continuation import as_mono_wav
from speechlm.io import atomic_path
from speechlm.units import Units

__all__ = ["log_spectrogram", "plot_continuation", "plot_spectrograms"]

_WIN_MS = 25.0  # spectrogram analysis window
_HOP_MS = 10.0  # spectrogram hop
_DYNAMIC_RANGE_DB = 80.0  # spectrogram colours span this many dB below the peak
_MAX_LABELLED_UNITS = 40  # up to this many deduplicated units: step plot with id labels
_PROMPT_SHADE = "#1f77b4"  # shading of the prompt region
_BOUNDARY_COLOR = "#d62728"  # the prompt / continuation boundary line


def log_spectrogram(wav: np.ndarray | torch.Tensor, sr: int, win_ms: float = _WIN_MS,
                    hop_ms: float = _HOP_MS) -> tuple[np.ndarray, float, float]:
    """Log-magnitude STFT of a waveform (Hann window, power-of-two FFT, no centre padding).

    Args:
        wav: ``[T]`` or ``[1, T]`` mono waveform.
        sr: sample rate in Hz.
        win_ms: window length in milliseconds.
        hop_ms: hop in milliseconds.

    Returns:
        ``(spec, hop_s, win_s)``: ``spec`` is ``[n_fft // 2 + 1, F]`` magnitudes in dB (20 log10,
        floored at 1e-8), frame ``f`` covering ``[f hop_s, f hop_s + win_s)`` seconds; a
        waveform shorter than one window is zero-padded to one frame.
    """
    x = as_mono_wav(wav)
    win = max(int(round(sr * win_ms / 1000.0)), 2)
    hop = max(int(round(sr * hop_ms / 1000.0)), 1)
    n_fft = 1 << (win - 1).bit_length()
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]  # [F, win]
    spec = np.abs(np.fft.rfft(frames * np.hanning(win), n=n_fft, axis=-1))  # [F, n_fft/2+1]
    return 20.0 * np.log10(spec.T + 1e-8), hop / sr, win / sr


def _frame_ids(units: Units | Sequence[int] | np.ndarray | torch.Tensor,
               unit_frame_rate: float) -> tuple[np.ndarray, float, int | None]:
    """Frame-level ids ``[F]``, their frame rate, and the vocabulary size when known."""
    if isinstance(units, Units):
        expanded = units.expand()
        return expanded.ids.numpy().astype(np.int64), float(units.frame_rate), units.n_units
    if isinstance(units, torch.Tensor):
        units = units.detach().cpu().numpy()
    ids = np.asarray(units, dtype=np.int64).reshape(-1)
    return ids, float(unit_frame_rate), None


def plot_continuation(path: str | os.PathLike, wav: np.ndarray | torch.Tensor, sr: int,
                      units: Units | Sequence[int], prompt_seconds: float, title: str = "",
                      unit_frame_rate: float = 50.0) -> None:
    """Draw a prompt + continuation as a PNG: waveform, spectrogram and units, stacked.

    Three panels share the time axis (seconds): the waveform; its log-magnitude spectrogram
    (25 ms Hann window, 10 ms hop, 80 dB range); and the unit sequence -- a step plot of ids with
    each deduplicated unit's id written above it when there are at most 40 deduplicated units,
    else a colour strip with one colour per id. The prompt region ``[0, prompt_seconds)`` is
    shaded and labelled "prompt", the rest "continuation", and a vertical line marks the
    boundary on every panel. The file is written atomically; its folder is created.

    Args:
        path: output ``.png`` path.
        wav: ``[T]`` or ``[1, T]`` mono waveform of prompt followed by continuation.
        sr: sample rate of ``wav`` in Hz.
        units: the units of ``wav``: a :class:`~speechlm.units.Units` (deduplicated or not; its
            own frame rate is used), or frame-level ids ``[F]`` at ``unit_frame_rate``.
        prompt_seconds: where the prompt ends, in seconds from the start.
        title: figure title.
        unit_frame_rate: frames per second of ``units`` when given as plain ids.

    Raises:
        ModelError: matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ModelError("plotting needs matplotlib; install it with pip install -e '.[eval]'"
                         ) from e
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    x = as_mono_wav(wav)
    ids, frame_rate, n_units = _frame_ids(units, unit_frame_rate)
    if frame_rate <= 0:
        raise ValueError(f"unit frame rate must be positive, got {frame_rate}")
    wav_s = len(x) / sr
    units_s = len(ids) / frame_rate
    t_end = max(wav_s, units_s, prompt_seconds, 1e-3)

    fig = Figure(figsize=(12, 7), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_wav, ax_spec, ax_units = fig.subplots(3, 1, sharex=True,
                                             gridspec_kw={"height_ratios": [1, 2, 1]})

    # waveform
    ax_wav.plot(np.arange(len(x)) / sr, x, lw=0.5, color="k")
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    lim = peak * 1.05 if peak > 0 else 1.0
    ax_wav.set_ylim(-lim, lim)
    ax_wav.set_ylabel("amplitude")

    # spectrogram
    spec, hop_s, win_s = log_spectrogram(x, sr)
    vmax = float(spec.max())
    ax_spec.imshow(spec, origin="lower", aspect="auto", cmap="magma",
                   vmin=vmax - _DYNAMIC_RANGE_DB, vmax=vmax, interpolation="nearest",
                   extent=(0.0, (spec.shape[1] - 1) * hop_s + win_s, 0.0, sr / 2000.0))
    ax_spec.set_ylabel("frequency (kHz)")

    # units
    _draw_units(ax_units, ids, frame_rate, n_units)
    ax_units.set_xlabel("time (s)")

    # prompt / continuation
    for ax in (ax_wav, ax_spec, ax_units):
        ax.axvspan(0.0, prompt_seconds, color=_PROMPT_SHADE, alpha=0.12, lw=0)
        ax.axvline(prompt_seconds, color=_BOUNDARY_COLOR, lw=1.8, ls="--", zorder=5)
    trans = ax_wav.get_xaxis_transform()  # x in data, y in axes fraction
    ax_wav.text(prompt_seconds / 2, 1.02, "prompt", transform=trans, ha="center", va="bottom",
                fontsize=10)
    ax_wav.text((prompt_seconds + t_end) / 2, 1.02, "continuation", transform=trans,
                ha="center", va="bottom", fontsize=10)
    ax_units.set_xlim(0.0, t_end)
    if title:
        fig.suptitle(title)

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def plot_spectrograms(path: str | os.PathLike,
                      rows: Sequence[tuple[str, np.ndarray | torch.Tensor]], sr: int,
                      title: str = "") -> None:
    """Draw several recordings of the same speech as stacked log spectrograms on one time axis
    (the original over its resyntheses, for example), each with its label; 25 ms Hann window,
    10 ms hop, 80 dB below each panel's peak. Written atomically as a PNG.

    Raises:
        ValueError: no rows, or a non-positive sample rate.
        ModelError: matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ModelError("plotting needs matplotlib; install it with pip install -e '.[eval]'"
                         ) from e
    if not rows:
        raise ValueError("no recordings to draw")
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    fig = Figure(figsize=(12, 2.2 * len(rows) + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (label, wav) in zip(axes, rows):
        spec, hop_s, win_s = log_spectrogram(as_mono_wav(wav), sr)
        vmax = float(spec.max())
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma",
                  vmin=vmax - _DYNAMIC_RANGE_DB, vmax=vmax, interpolation="nearest",
                  extent=(0.0, (spec.shape[1] - 1) * hop_s + win_s, 0.0, sr / 2000.0))
        ax.set_ylabel("kHz")
        ax.set_title(label, loc="left", fontsize=10)
    axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _draw_units(ax, ids: np.ndarray, frame_rate: float, n_units: int | None) -> None:
    """Draw frame-level ``ids`` ``[F]`` on ``ax``: labelled step plot if few runs, else a strip."""
    ax.set_ylabel("unit")
    if len(ids) == 0:
        ax.set_yticks([])
        return
    change = np.concatenate([[True], ids[1:] != ids[:-1]])
    starts = np.flatnonzero(change)  # [U] first frame of each deduplicated unit
    ends = np.append(starts[1:], len(ids))
    if len(starts) <= _MAX_LABELLED_UNITS:
        edges = np.append(np.arange(len(ids)), len(ids)) / frame_rate
        ax.stairs(ids, edges, color="#2ca02c", lw=1.2, baseline=None)
        for s, e in zip(starts, ends):
            ax.text((s + e) / 2 / frame_rate, ids[s], str(int(ids[s])), ha="center",
                    va="bottom", fontsize=7)
        lo, hi = int(ids.min()), int(ids.max())
        pad = max(1.0, 0.15 * (hi - lo))
        ax.set_ylim(lo - pad, hi + 2 * pad)
        return
    k = n_units if n_units else int(ids.max()) + 1
    ax.imshow(ids[None, :], aspect="auto", cmap="nipy_spectral", vmin=0, vmax=max(k - 1, 1),
              interpolation="nearest", extent=(0.0, len(ids) / frame_rate, 0.0, 1.0))
    ax.set_yticks([])
    ax.set_ylabel(f"units ({len(starts)} runs)")
