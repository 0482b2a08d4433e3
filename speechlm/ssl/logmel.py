"""A log-mel front end that stands in for the CNN of a HuBERT-architecture model.

MelHuBERT (Lin et al., 2022) showed that masked prediction on filterbank frames instead of raw
waveform trains far more cheaply, because the 7-layer CNN over 16 kHz samples is most of the
compute of a small model. A native speechlm checkpoint selects this front end with
``"extractor_mode": "logmel"``; its ``extractor_conv_layer_config`` is then one triple
``(n_mels, window, hop)``, which must be ``(n, 400, 320)`` so frames line up with HuBERT's
(``F = (T - 400) // 320 + 1``). The front end has no weights: the torchaudio model's feature
projection (layer norm + linear) is the first learned layer.

    wav [B, T] --|rfft| of Hann-windowed 400-sample frames every 320--> [B, F, 201]
        --power, mel filterbank--> [B, F, n_mels] --log(. + 1e-6)--> [B, F, n_mels]

``"extractor_mode": "logmel_cmn"`` adds cepstral-style mean normalisation per input: each band
loses its mean over the input's louder half of frames (those at or above the median frame
energy, so that the share of silence in a crop does not move it), which removes what stays put
over an utterance (the channel's and much of the speaker's average spectral envelope). The
feature projection's layer norm already removes each frame's own level; this removes the
long-term spectral shape. Inputs longer than one window are normalised per window (the phone
encoder's 8 s windows with their context).

``forward(..., warp=a)`` warps the frequency axis of the filterbank (vocal-tract length
normalisation, as in Lee and Rose 1996 and Kaldi's VTLN): each filter, made for frequency
``c``, reads the physical frequency ``f`` whose warped value ``w(f)`` is ``c``, where ``w(f)
= a f`` up to a cut-off of 85 % of Nyquist (over ``max(a, 1)``) and a straight line from there to
Nyquist, so every band keeps its input. ``a < 1`` makes a voice with high formants look like one
with lower ones. ``a = 1`` is the plain filterbank.
"""

from __future__ import annotations

import math

import torch
import torchaudio

from speechlm.audio import SAMPLE_RATE

LOGMEL = "logmel"  # the extractor_mode value
LOGMEL_CMN = "logmel_cmn"  # the same with per-input mean normalisation of each band
LOGMEL_MODES = (LOGMEL, LOGMEL_CMN)
F_MIN = 20.0  # lowest filter edge (Hz)
F_MAX = 7600.0  # highest filter edge (Hz)
FLOOR = 1e-6  # added to the mel power before the log
WARP_CUTOFF = 0.85  # share of Nyquist (over max(warp, 1)) below which the warp is linear


def _hz_to_mel(f: torch.Tensor) -> torch.Tensor:  # Slaney's scale (librosa's default)
    lin = f / (200.0 / 3)
    return torch.where(f >= 1000.0, 15.0 + torch.log(f.clamp(min=1e-10) / 1000.0)
                       / (math.log(6.4) / 27.0), lin)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return torch.where(m >= 15.0, 1000.0 * torch.exp((math.log(6.4) / 27.0) * (m - 15.0)),
                       (200.0 / 3) * m)


def warp_frequencies(freqs: torch.Tensor, warp: float, nyquist: float) -> torch.Tensor:
    """``w(f)``: ``warp * f`` up to the cut-off, then linear to ``nyquist`` at ``nyquist``."""
    cut = WARP_CUTOFF * nyquist / max(warp, 1.0)
    upper = warp * cut + (nyquist - warp * cut) * (freqs - cut) / (nyquist - cut)
    return torch.where(freqs <= cut, warp * freqs, upper)


def warped_fbank(n_freqs: int, n_mels: int, warp: float,
                 sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """``[n_freqs, n_mels]`` Slaney-normalised mel filterbank (torchaudio's
    ``melscale_fbanks(..., norm="slaney", mel_scale="slaney")`` at ``warp = 1``) read at the
    warped frequencies of :func:`warp_frequencies`."""
    nyquist = sample_rate / 2
    freqs = warp_frequencies(torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64),
                             float(warp), nyquist)
    m = torch.linspace(float(_hz_to_mel(torch.tensor(F_MIN, dtype=torch.float64))),
                       float(_hz_to_mel(torch.tensor(F_MAX, dtype=torch.float64))), n_mels + 2,
                       dtype=torch.float64)
    pts = _mel_to_hz(m)  # filter edges and centres [n_mels + 2]
    diff = pts[1:] - pts[:-1]
    slopes = pts[None, :] - freqs[:, None]  # [n_freqs, n_mels + 2]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    fb = torch.clamp(torch.minimum(down, up), min=0.0)
    fb = fb * (2.0 / (pts[2:] - pts[:-2]))[None, :]
    return fb.float()


class LogMelFrontEnd(torch.nn.Module):
    """``forward(wav [B, T], lengths [B] | None) -> (features [B, F, n_mels], frames [B] | None)``,
    the call signature of torchaudio's ``FeatureExtractor``.

    Args:
        n_mels: Mel bands (the feature width).
        window: Frame length in samples (400: 25 ms).
        hop: Frame step in samples (320: 20 ms).
        cmn: Subtract each band's mean over the input's louder half of frames
            (``extractor_mode = "logmel_cmn"``).
    """

    def __init__(self, n_mels: int, window: int = 400, hop: int = 320, cmn: bool = False):
        super().__init__()
        self.n_mels, self.window, self.hop, self.cmn = n_mels, window, hop, bool(cmn)
        fbank = torchaudio.functional.melscale_fbanks(
            window // 2 + 1, F_MIN, F_MAX, n_mels, SAMPLE_RATE, norm="slaney", mel_scale="slaney")
        # not persistent: derived from the config, so the state dict stays the torchaudio one
        self.register_buffer("fbank", fbank, persistent=False)  # [window // 2 + 1, n_mels]
        self.register_buffer("hann", torch.hann_window(window), persistent=False)

    @property
    def geometry(self) -> tuple[int, int]:
        """(receptive field, stride) in samples, as for a CNN front end."""
        return self.window, self.hop

    def warped(self, warp: float) -> torch.Tensor:
        """The filterbank warped by ``warp`` (cached per value; ``fbank`` itself at 1)."""
        if warp == 1.0:
            return self.fbank
        cache = self.__dict__.setdefault("_warped", {})  # not a buffer: not in state dicts
        key = (float(warp), str(self.fbank.device))
        fb = cache.get(key)
        if fb is None:
            fb = cache[key] = warped_fbank(self.window // 2 + 1, self.n_mels, warp).to(
                self.fbank.device)
        return fb

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None,
                warp: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
        if wav.ndim != 2:
            raise ValueError(f"expected waveforms [B, T], got {list(wav.shape)}")
        if wav.shape[1] < self.window:
            raise ValueError(f"waveform of {wav.shape[1]} samples is shorter than one frame "
                             f"({self.window} samples)")
        frames = wav.float().unfold(1, self.window, self.hop)  # [B, F, window]
        power = torch.fft.rfft(frames * self.hann, dim=-1).abs().square()  # [B, F, bins]
        feats = torch.log(power @ self.warped(warp) + FLOOR).to(wav.dtype)  # [B, F, n_mels]
        if lengths is not None:
            lengths = torch.div(lengths - self.window, self.hop, rounding_mode="floor") + 1
            lengths = lengths.clamp(min=0)
        if self.cmn:
            feats = mean_normalise(feats, lengths)
        return feats, lengths


def mean_normalise(feats: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
    """``feats [B, F, n]`` less each item's per-band mean over its valid frames (the first
    ``frames[b]``; all when None) whose mean log power is at or above the item's median."""
    b, f, _ = feats.shape
    valid = (torch.ones(b, f, dtype=torch.bool, device=feats.device) if frames is None
             else torch.arange(f, device=feats.device)[None, :] < frames[:, None])
    energy = feats.float().mean(-1)  # [B, F]
    median = torch.nanquantile(energy.masked_fill(~valid, float("nan")), 0.5, dim=1,
                               keepdim=True, interpolation="lower")
    chosen = valid & (energy >= median)  # an item with no valid frame: nothing chosen
    weight = chosen.to(feats.dtype)[..., None]
    mean = (feats * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp(min=1)
    return feats - mean
