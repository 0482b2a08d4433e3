"""The log-mel front end shared by the vocoder (its log-mel head, reference input and
Griffin-Lim baseline), the waveform stage and the speaker encoder: 1024-point STFT, 10 ms hop at
16 kHz, Slaney mel filters, natural-log magnitude floored at :data:`LOG_FLOOR`."""

from __future__ import annotations

import torch
from torch import nn

from speechlm.audio import SAMPLE_RATE

HOP = 160  # samples per vocoder frame (10 ms at 16 kHz)
N_FFT = 1024  # STFT size of the log-mel (reference encoder input, Griffin-Lim baseline)
LOG_FLOOR = 1e-5  # floor of the log-mel magnitude


class MelSpectrogram(nn.Module):
    """``[B, T]`` waveform -> ``[B, floor(T / 160) + 1, n_mels]`` log-magnitude mel (10 ms hop)."""

    def __init__(self, n_mels: int = 80):
        super().__init__()
        import torchaudio.functional as AF

        fb = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, n_mels, SAMPLE_RATE,
                                norm="slaney", mel_scale="slaney")
        self.register_buffer("fb", fb, persistent=False)  # [F, M]
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wav, N_FFT, HOP, window=self.window, center=True, return_complex=True)
        return spec.abs().transpose(1, 2)  # [B, N, F]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.clamp(self.magnitude(wav) @ self.fb, min=LOG_FLOOR))
