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
"""

from __future__ import annotations

import torch
import torchaudio

from speechlm.audio import SAMPLE_RATE

LOGMEL = "logmel"  # the extractor_mode value
LOGMEL_CMN = "logmel_cmn"  # the same with per-input mean normalisation of each band
LOGMEL_MODES = (LOGMEL, LOGMEL_CMN)
F_MIN = 20.0  # lowest filter edge (Hz)
F_MAX = 7600.0  # highest filter edge (Hz)
FLOOR = 1e-6  # added to the mel power before the log


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

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if wav.ndim != 2:
            raise ValueError(f"expected waveforms [B, T], got {list(wav.shape)}")
        if wav.shape[1] < self.window:
            raise ValueError(f"waveform of {wav.shape[1]} samples is shorter than one frame "
                             f"({self.window} samples)")
        frames = wav.float().unfold(1, self.window, self.hop)  # [B, F, window]
        power = torch.fft.rfft(frames * self.hann, dim=-1).abs().square()  # [B, F, bins]
        feats = torch.log(power @ self.fbank + FLOOR).to(wav.dtype)  # [B, F, n_mels]
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
