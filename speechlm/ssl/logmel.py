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
"""

from __future__ import annotations

import torch
import torchaudio

from speechlm.audio import SAMPLE_RATE

LOGMEL = "logmel"  # the extractor_mode value
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
    """

    def __init__(self, n_mels: int, window: int = 400, hop: int = 320):
        super().__init__()
        self.n_mels, self.window, self.hop = n_mels, window, hop
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
        return feats, lengths
