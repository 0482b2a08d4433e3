"""Unit vocoder: units (+ a reference voice, + optional F0) -> 16 kHz waveform.

The network predicts the parameters of a source-filter vocoder rather than samples::

    units [B, T] (50 Hz) --embed + conv--> x2 upsample --conv, FiLM(speaker), + F0 in-->
        [B, 2T, *] at 100 Hz: coded spectral envelope, band aperiodicity, log F0, voicing, log-mel
    WORLD (pyworld.synthesize) turns envelope + aperiodicity + F0 into the waveform (default);
    Griffin-Lim on the log-mel head is the measured baseline (``method="griffinlim"``).

The speaker conditioning comes from our own speaker encoder, trained with the vocoder on the
log-mel of a *different* utterance of the same voice (so it cannot carry content), plus the
reference's log-F0 mean and spread. A duration model expands deduplicated units (what the LM
produces) back to frame rate.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechlm import checkpoint
from speechlm.audio import (
    F0_CEIL_HZ,
    F0_FLOOR_HZ,
    F0_FRAME_PERIOD_MS,
    FRAME_SIZE,
    NO_SIGNAL_PEAK,
    SAMPLE_RATE,
    as_mono,
    check_length,
    f0_track,
    pyworld_module,
)
from speechlm.errors import AudioError, ModelError
from speechlm.mel import HOP, LOG_FLOOR, N_FFT, MelSpectrogram  # noqa: F401  (re-exported)
from speechlm.stage import Stage
from speechlm.units import Units

DEFAULT_VOCODER = "whisper-phone-vocoder"
FRAME_PERIOD_MS = F0_FRAME_PERIOD_MS  # WORLD frame period: two vocoder frames per unit frame
UPSAMPLE = 2  # vocoder frames per unit frame
MIN_VOICE_SAMPLES = N_FFT  # 64 ms: the shortest reference the speaker encoder's STFT can frame
WAVEFORM_DIR = "waveform"  # a mel-only vocoder's harmonic-plus-noise stage, inside its directory
CONTOUR_DIR = "contour"  # the drawn-F0 path's intonation model (optional), inside its directory
MAX_DECODE_SECONDS = 600.0  # the most speech one decode call makes (about 2 GB at the peak)


# --------------------------------------------------------------------------- signal analysis


def world_analysis(wav: np.ndarray, sr: int = SAMPLE_RATE,
                   sp_dim: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WORLD parameters every 10 ms: F0 ``[N]``, coded envelope ``[N, sp_dim]``, coded
    aperiodicity ``[N, A]`` (A = 1 band at 16 kHz)."""
    pw = pyworld_module()
    x = np.ascontiguousarray(np.asarray(wav, dtype=np.float64).reshape(-1))
    f0, t = pw.dio(x, sr, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ, frame_period=FRAME_PERIOD_MS)
    f0 = pw.stonemask(x, f0, t, sr)
    sp = pw.cheaptrick(x, f0, t, sr)
    ap = pw.d4c(x, f0, t, sr)
    return f0, pw.code_spectral_envelope(sp, sr, sp_dim), pw.code_aperiodicity(ap, sr)


# --------------------------------------------------------------------------- network


@dataclasses.dataclass(frozen=True)
class VocoderConfig:
    n_units: int  # K of the unit space (from the tokenizer)
    unit_space: str  # the tokenizer's unit space id; other spaces are refused
    frame_rate: float = 50.0  # unit frames per second
    sample_rate: int = SAMPLE_RATE
    sp_dim: int = 60  # coded spectral envelope dimensions (pyworld.code_spectral_envelope);
    #                   0 with ap_dim 0: a mel-only vocoder (no WORLD; speaks through its
    #                   harmonic-plus-noise waveform stage, method "hn")
    ap_dim: int = 1  # coded aperiodicity bands (1 at 16 kHz)
    n_mels: int = 80  # log-mel bins: reference encoder input and Griffin-Lim head
    channels: int = 256  # width of the decoder conv stack
    pre_blocks: int = 3  # residual blocks at unit rate (50 Hz)
    post_blocks: int = 5  # residual blocks at vocoder rate (100 Hz)
    kernel: int = 5  # conv kernel of the decoder blocks
    spk_dim: int = 128  # speaker vector size
    spk_channels: int = 192  # width of the reference encoder
    dur_channels: int = 192  # width of the duration model
    dur_blocks: int = 3  # residual blocks of the duration model
    dropout: float = 0.1
    f0_bins: int = 0  # 0: log F0 regressed (L1); N: a distribution over N log-F0 bins
    #                   (cross-entropy), sampled with a seed when no F0 is given
    spk_net: dict | None = None  # the SpeakerConfig of a pretrained speaker-verification
    #                   network (speechlm.speaker) frozen inside the vocoder as its reference
    #                   encoder; None: a reference encoder trained with the decoder

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def f0_width(self) -> int:
        """Output channels of the log-F0 head: 1 (regression) or ``f0_bins`` (logits)."""
        return self.f0_bins or 1

    @property
    def out_dim(self) -> int:
        return self.sp_dim + self.ap_dim + self.f0_width + 1 + self.n_mels  # + voicing logit

    @property
    def mel_only(self) -> bool:
        """No WORLD heads: log-mel, log F0 and voicing only (speaks with method "hn")."""
        return self.sp_dim == 0 and self.ap_dim == 0


def _channel_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    return norm(x.transpose(1, 2)).transpose(1, 2)


class _Block(nn.Module):
    """Residual dilated conv block with FiLM conditioning on the speaker vector."""

    def __init__(self, ch: int, kernel: int, dilation: int, cond_dim: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(ch, ch, kernel, dilation=dilation,
                              padding=dilation * (kernel - 1) // 2)
        self.norm = nn.LayerNorm(ch)
        self.film = nn.Linear(cond_dim, 2 * ch)
        self.proj = nn.Conv1d(ch, ch, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cond: torch.Tensor,
                film_offset: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` [B, C, T], ``cond`` [B, S] -> [B, C, T]; ``film_offset`` [2C] (a voice's
        adapted offset to the FiLM scale and shift, :meth:`Vocoder.adapt_voice`) or None."""
        film = self.film(cond)
        if film_offset is not None:
            film = film + film_offset
        h = _channel_norm(self.conv(x), self.norm)
        scale, shift = film.unsqueeze(-1).chunk(2, dim=1)
        return x + self.drop(self.proj(F.gelu(h * (1 + scale) + shift)))


class SpeakerEncoder(nn.Module):
    """Log-mel of a reference ``[B, N, n_mels]`` (+ log-F0 stats ``[B, 2]``) -> ``[B, spk_dim]``."""

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        c = cfg.spk_channels
        self.inp = nn.Conv1d(cfg.n_mels, c, 5, padding=2)
        self.convs = nn.ModuleList(nn.Conv1d(c, c, 5, padding=2 * d, dilation=d) for d in (1, 2, 4))
        self.norms = nn.ModuleList(nn.LayerNorm(c) for _ in range(3))
        self.out = nn.Linear(2 * c + 2, cfg.spk_dim)

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor, f0_stats: torch.Tensor):
        x = self.inp(mel.transpose(1, 2))
        for conv, norm in zip(self.convs, self.norms):
            x = x + F.gelu(_channel_norm(conv(x), norm))
        mask = (torch.arange(x.shape[2], device=x.device)[None] < lengths[:, None]).float()
        n = mask.sum(1, keepdim=True).clamp(min=1)
        mean = (x * mask[:, None]).sum(2) / n
        var = ((x - mean[..., None]) ** 2 * mask[:, None]).sum(2) / n
        stats = torch.cat([mean, var.clamp(min=1e-6).sqrt(), f0_stats], dim=1)
        return torch.tanh(self.out(stats))


class PretrainedSpeakerEncoder(nn.Module):
    """A frozen speaker-verification network (:class:`speechlm.speaker.SpeakerNet`, trained
    over the corpus's identities) + a trained projection of its embedding and the log-F0 stats.

    The network reads the *raw* log-mel and stays in eval mode (its BatchNorm statistics and
    weights never change while the vocoder trains); only :attr:`out` learns.
    """

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        from speechlm.speaker import SpeakerConfig, SpeakerNet

        self.net = SpeakerNet(SpeakerConfig.from_dict(cfg.spk_net))
        if self.net.cfg.n_mels != cfg.n_mels:
            raise ValueError(f"the speaker network reads {self.net.cfg.n_mels} mels, the "
                             f"vocoder makes {cfg.n_mels}")
        self.net.requires_grad_(False)
        self.out = nn.Linear(self.net.cfg.dim + 2, cfg.spk_dim)

    def train(self, mode: bool = True) -> PretrainedSpeakerEncoder:
        super().train(mode)
        self.net.eval()
        return self

    def embed(self, mel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Raw log-mel ``[B, N, n_mels]`` (valid up to ``lengths``) -> ``[B, dim]``; items of
        one length run together, each over its own frames only."""
        out = mel.new_zeros(mel.shape[0], self.net.cfg.dim)
        with torch.no_grad():
            for n in lengths.unique().tolist():
                idx = (lengths == n).nonzero()[:, 0]
                out[idx] = self.net(mel[idx, : max(int(n), 1)])
        return out

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor, f0_stats: torch.Tensor):
        return torch.tanh(self.out(torch.cat([self.embed(mel, lengths), f0_stats], dim=1)))


class DurationModel(nn.Module):
    """Deduplicated units ``[B, N]`` + speaker ``[B, S]`` -> log frame counts ``[B, N]``."""

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        c = cfg.dur_channels
        self.embed = nn.Embedding(cfg.n_units, c)
        self.blocks = nn.ModuleList(_Block(c, 3, d, cfg.spk_dim, cfg.dropout)
                                    for d in (1, 2, 4)[: cfg.dur_blocks])
        self.out = nn.Conv1d(c, 1, 1)

    def forward(self, ids: torch.Tensor, spk: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids).transpose(1, 2)
        for b in self.blocks:
            x = b(x, spk)
        return self.out(x)[:, 0]


class UnitVocoder(nn.Module):
    """The trainable network. Outputs are normalized; :meth:`denormalize` undoes it."""

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.embed = nn.Embedding(cfg.n_units, c)
        self.f0_in = nn.Linear(3, c)  # [z-scored log F0, voiced, has_f0]
        dil = (1, 2, 4, 8)
        self.pre = nn.ModuleList(_Block(c, cfg.kernel, dil[i % 4], cfg.spk_dim, cfg.dropout)
                                 for i in range(cfg.pre_blocks))
        self.up = nn.ConvTranspose1d(c, c, 2 * UPSAMPLE, stride=UPSAMPLE, padding=UPSAMPLE // 2)
        self.post = nn.ModuleList(_Block(c, cfg.kernel, dil[i % 4], cfg.spk_dim, cfg.dropout)
                                  for i in range(cfg.post_blocks))
        self.out = nn.Conv1d(c, cfg.out_dim, 1)
        self.speaker = PretrainedSpeakerEncoder(cfg) if cfg.spk_net else SpeakerEncoder(cfg)
        self.duration = DurationModel(cfg)
        # normalization statistics of the targets (set from the training data)
        self.register_buffer("sp_stats", torch.stack([torch.zeros(cfg.sp_dim),
                                                      torch.ones(cfg.sp_dim)]))
        self.register_buffer("ap_stats", torch.stack([torch.zeros(cfg.ap_dim),
                                                      torch.ones(cfg.ap_dim)]))
        self.register_buffer("mel_stats", torch.stack([torch.zeros(cfg.n_mels),
                                                       torch.ones(cfg.n_mels)]))
        self.register_buffer("lf0_stats", torch.tensor([5.0, 0.4]))

    def forward(self, units: torch.Tensor, spk: torch.Tensor,
                f0_in: torch.Tensor | None = None,
                film_offsets: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Decode.

        Args:
            units: ``[B, T]`` frame-rate unit ids.
            spk: ``[B, spk_dim]`` from :meth:`speaker_vector`.
            f0_in: ``[B, 2T, 3]`` (z-scored log F0, voiced, 1) or None (F0 predicted).
            film_offsets: one ``[2C]`` offset per pre and post block (pre first), a voice's
                adaptation (:meth:`Vocoder.adapt_voice`), or None.

        Returns:
            ``[B, 2T, out_dim]`` normalized envelope | aperiodicity | log F0 | voicing | mel.
        """
        return self.decode_upsampled(self.upsampled(units, spk, film_offsets), spk, f0_in,
                                     film_offsets)

    def _offsets(self, film_offsets: Sequence[torch.Tensor] | None,
                 part: str) -> list[torch.Tensor | None]:
        n_pre, n_post = len(self.pre), len(self.post)
        if film_offsets is None:
            return [None] * (n_pre if part == "pre" else n_post)
        if len(film_offsets) != n_pre + n_post:
            raise ModelError(f"a voice adapted to another vocoder: {len(film_offsets)} FiLM "
                             f"offsets for {n_pre + n_post} blocks")
        return list(film_offsets[:n_pre] if part == "pre" else film_offsets[n_pre:])

    def upsampled(self, units: torch.Tensor, spk: torch.Tensor,
                  film_offsets: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """The part of :meth:`forward` before the F0 enters: ``[B, T]`` ids -> ``[B, C, 2T]``."""
        x = self.embed(units).transpose(1, 2)  # [B, C, T]
        for b, off in zip(self.pre, self._offsets(film_offsets, "pre")):
            x = b(x, spk, off)
        return self.up(x)[..., : UPSAMPLE * units.shape[1]]  # [B, C, 2T]

    def decode_upsampled(self, x: torch.Tensor, spk: torch.Tensor,
                         f0_in: torch.Tensor | None = None,
                         film_offsets: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """The rest of :meth:`forward`: ``[B, C, 2T]`` (+ F0) -> ``[B, 2T, out_dim]``."""
        if f0_in is not None:
            x = x + self.f0_in(f0_in).transpose(1, 2)
        for b, off in zip(self.post, self._offsets(film_offsets, "post")):
            x = b(x, spk, off)
        return self.out(x).transpose(1, 2)

    def speaker_vector(self, mel: torch.Tensor, lengths: torch.Tensor,
                       lf0_mean_std: torch.Tensor) -> torch.Tensor:
        """Reference log-mel ``[B, N, n_mels]`` (raw), lengths ``[B]``, log-F0 mean/std ``[B, 2]``
        -> ``[B, spk_dim]``."""
        f0s = torch.stack([(lf0_mean_std[:, 0] - self.lf0_stats[0]) / self.lf0_stats[1],
                           lf0_mean_std[:, 1] / self.lf0_stats[1]], dim=1)
        if self.cfg.spk_net:  # the pretrained network normalizes its own input
            return self.speaker(mel, lengths, f0s)
        m = (mel - self.mel_stats[0]) / self.mel_stats[1]
        return self.speaker(m, lengths, f0s)

    def split(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split and denormalize an output ``[B, N, out_dim]``. With ``f0_bins`` the log F0
        is the distribution's mean and ``lf0_logits`` ``[B, N, f0_bins]`` comes along."""
        c = self.cfg
        sp, ap, lf0, vuv, mel = torch.split(
            y, [c.sp_dim, c.ap_dim, c.f0_width, 1, c.n_mels], dim=-1)
        out = {"sp": sp * self.sp_stats[1] + self.sp_stats[0],
               "ap": ap * self.ap_stats[1] + self.ap_stats[0],
               "vuv": torch.sigmoid(vuv[..., 0]),
               "mel": mel * self.mel_stats[1] + self.mel_stats[0]}
        if c.f0_bins:
            z = (lf0.softmax(-1) * f0_bin_centres(c.f0_bins).to(lf0)).sum(-1)
            out["lf0_logits"] = lf0
        else:
            z = lf0[..., 0]
        out["lf0"] = z * self.lf0_stats[1] + self.lf0_stats[0]
        return out


F0_Z_RANGE = 3.5  # f0_bins span log F0 (normalized by lf0_stats) over [-3.5, 3.5]
F0_SAMPLE_SMOOTH = 15  # frames (150 ms) over which a sampled F0 contour's quantile drifts
VOICING_SMOOTH = 9  # frames (90 ms): the majority vote that smooths a predicted voicing decision


def f0_bin_centres(bins: int) -> torch.Tensor:
    """Normalized log-F0 value of each bin ``[bins]``."""
    edges = torch.linspace(-F0_Z_RANGE, F0_Z_RANGE, bins + 1)
    return (edges[:-1] + edges[1:]) / 2


def f0_bin_of(z: torch.Tensor, bins: int) -> torch.Tensor:
    """The bin of normalized log-F0 values ``z`` (clamped into the range)."""
    i = torch.floor((z + F0_Z_RANGE) / (2 * F0_Z_RANGE) * bins).long()
    return i.clamp(0, bins - 1)


def sample_f0_contour(logits: torch.Tensor, generator: torch.Generator,
                      smooth: int = F0_SAMPLE_SMOOTH, spread: float = 1.0) -> torch.Tensor:
    """Draw a contour from per-frame log-F0 distributions ``[N, bins]`` -> bin values ``[N]``.

    Independent draws per frame would jitter. Here one Gaussian field, smoothed over
    ``smooth`` frames and rescaled to unit variance, gives each frame a quantile
    ``u = Phi(field)``; the frame takes the value at quantile ``u`` of its own distribution.
    Each frame is still a draw from its distribution, and neighbouring frames move together, so
    the contour rises and falls as speech does instead of flickering. ``spread`` in [0, 1]
    scales the field before it becomes quantiles: 1 draws, 0 gives each frame its median, and
    between them each frame keeps nearer its median (a narrower draw, not a different mean)."""
    n, bins = logits.shape
    noise = torch.randn(n + 2 * smooth, generator=generator)
    kernel = torch.hann_window(2 * smooth + 1, periodic=False)
    field = F.conv1d(noise[None, None], kernel[None, None])[0, 0][:n]
    field = field / kernel.square().sum().sqrt()
    u = 0.5 * (1 + torch.erf(spread * field / 2**0.5))  # [N] quantiles, uniform at spread 1
    cdf = logits.float().softmax(-1).cumsum(-1)
    idx = (cdf < (u * cdf[:, -1])[:, None]).sum(-1).clamp(max=bins - 1)
    return f0_bin_centres(bins)[idx]


def median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Running median of a 1-D tensor over ``width`` (odd) frames, edges repeated; for a
    boolean tensor, the majority vote (a voicing decision without one-frame flicker)."""
    if width <= 1 or x.numel() == 0:
        return x
    h = width // 2
    xf = x.float()
    padded = torch.cat([xf[:1].expand(h), xf, xf[-1:].expand(h)])
    med = padded.unfold(0, width, 1).median(dim=1).values
    return med > 0.5 if x.dtype == torch.bool else med.to(x.dtype)


def f0_conditioning(f0: np.ndarray | torch.Tensor, n: int) -> torch.Tensor:
    """An F0 track (Hz, 0 = unvoiced) -> ``[n, 3]`` vocoder input: log F0 z-scored over the
    utterance's voiced frames (so the level and range come from the speaker), voiced, 1."""
    f0 = torch.from_numpy(np.array(f0, dtype=np.float32))
    f0 = F.pad(f0, (0, max(0, n - len(f0))))[:n]
    voiced = f0 > 0
    lf0 = torch.log(f0.clamp(min=1.0))
    if voiced.sum() >= 2:
        mu, sd = lf0[voiced].mean(), lf0[voiced].std().clamp(min=0.02)
        z = torch.where(voiced, (lf0 - mu) / sd, torch.zeros_like(lf0))
    else:
        z = torch.zeros_like(lf0)
    return torch.stack([z, voiced.float(), torch.ones_like(z)], dim=1)


def mix_source_log_f0(lf0: torch.Tensor, f0: np.ndarray | torch.Tensor,
                      lf0_mean_std: torch.Tensor, weight: float) -> torch.Tensor:
    """A predicted log-F0 track ``[n]`` mixed with a source F0 track (Hz, 0 = unvoiced) in the
    source's voiced frames: ``(1 - weight) * lf0 + weight * target``, the target being the
    source's log F0 z-scored over its voiced frames, then scaled and shifted to ``lf0_mean_std``
    (a voice's log-F0 mean and spread). Unvoiced frames, and a source with fewer than two voiced
    frames, keep ``lf0``."""
    n = len(lf0)
    src = torch.from_numpy(np.array(f0, dtype=np.float32))
    src = F.pad(src, (0, max(0, n - len(src))))[:n]
    voiced = src > 0
    if int(voiced.sum()) < 2:
        return lf0
    ls = torch.log(src.clamp(min=1.0))
    mu, sd = ls[voiced].mean(), ls[voiced].std().clamp(min=0.02)
    target = lf0_mean_std[0] + lf0_mean_std[1] * (ls - mu) / sd
    return torch.where(voiced, (1 - weight) * lf0 + weight * target.to(lf0), lf0)


def log_f0_stats(f0: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation of log F0 over voiced frames: ``[2]``."""
    f0 = torch.from_numpy(np.array(f0, dtype=np.float32))
    v = f0[f0 > 0]
    if len(v) < 2:
        return torch.tensor([5.0, 0.15])  # about 150 Hz; only for a reference with no voicing
    lf = torch.log(v)
    return torch.stack([lf.mean(), lf.std().clamp(min=0.02)])


# --------------------------------------------------------------------------- inference


@dataclasses.dataclass(frozen=True)
class Voice:
    """A speaker conditioning computed once from a reference recording."""

    vector: torch.Tensor  # [spk_dim]
    lf0_mean_std: torch.Tensor  # [2]
    log_mel_mean: torch.Tensor | None = None  # [n_mels]: the reference's denoised LTAS
    # fitted to the reference by Vocoder.adapt_voice (None: not adapted): the decoder's speaker
    # vector [spk_dim] (the duration model keeps `vector`), and one [2C] offset to the FiLM
    # scale and shift per decoder block (pre, then post)
    adapted_vector: torch.Tensor | None = None
    film_offsets: tuple[torch.Tensor, ...] | None = None
    # the speaker's pace against the duration model's: predicted durations are multiplied by it
    # (Vocoder.fit_tempo measures it on units whose durations are known; 1: as trained)
    tempo: float = 1.0

    @property
    def decoder_vector(self) -> torch.Tensor:
        """The speaker vector the decoder hears: :attr:`adapted_vector` where adapted."""
        return self.vector if self.adapted_vector is None else self.adapted_vector


# Vocoder.adapt_voice, chosen on the world corpus's valid split (16 known voices pitched down
# 3 semitones, reference and content from two utterances; throwaway script): 20 steps at these
# rates gave Resemblyzer similarity +0.036 (source F0) / +0.033 (F0 drawn) and Whisper WER
# 0.690 -> 0.702; the FiLM offsets at 0.05 or 40 steps gained a little more and lost words
# (WER 0.78-0.83); the vector alone gained +0.014; a log-F0 loss beside the log-mel's lost
VOICE_ADAPT_LR = 0.05  # Adam's rate for the speaker vector
VOICE_ADAPT_FILM_LR = 0.015  # and for the FiLM offsets
VOICE_ADAPT_MAX_SECONDS = 4.0  # the reference's first seconds that voice() adapts to

# Vocoder.fit_tempo. The duration model learned the pace of synthetic voices: on real speech
# (Allison) it predicts 14 % too few frames for both the phone and the Whisper bundle. Fitted on
# an utterance's first half (without its first run) and applied to its second half, the tempo
# took the mean log error of the second half's length from -0.156 to -0.046 (RMS 0.189 -> 0.145;
# 60 utterances) and left the held-out engines as they were (-0.049 -> -0.054, RMS 0.157 ->
# 0.150); the median of per-unit ratios, or the ratio of sums without the longest runs, did
# worse (scripts/check_tempo.py, docs/tempo-fit.md; docs/tempo-allison-continue-compare.md: the
# effect on continuations' speaking rate).
TEMPO_RANGE = (0.5, 2.0)  # a fitted tempo is clamped to this
TEMPO_MIN_UNITS = 8  # fewer known runs (after the first) than this: tempo 1

LTAS_FLOOR_NATS = 6.9  # long_term_log_mel's frames: within 60 dB (ln 1000) of the loudest
# long_term_log_mel(denoise=True), chosen on the world corpus's valid split (24 known voices,
# white noise at 20 and 10 dB SNR in the reference only; throwaway script): the mean of the
# quietest 10 % of frames as the noise beat the 5th-30th percentile of each band
LTAS_NOISE_SHARE = 0.1  # the quietest frames whose mean power is the noise floor
LTAS_NOISE_MARGIN = 4.0  # frames 6 dB above the noise floor count as speech
LTAS_SUBTRACT_KEEP = 0.05  # subtraction leaves at least 5 % of a band's power (-13 dB)


def long_term_log_mel(log_mel: torch.Tensor, denoise: bool = False) -> torch.Tensor:
    """The long-term average spectrum of a log-mel ``[N, M]`` (natural-log magnitudes, as
    :class:`~speechlm.mel.MelSpectrogram` gives): the mean over the frames whose mean log
    magnitude lies within :data:`LTAS_FLOOR_NATS` of the loudest frame's (not silence), ``[M]``.

    With ``denoise`` (a voice reference, which may be a noisy recording) a stationary noise
    floor is taken out first: the noise power of each band is the mean over the quietest
    :data:`LTAS_NOISE_SHARE` of the frames; it is subtracted from every frame's power (keeping
    at least :data:`LTAS_SUBTRACT_KEEP` of it), and only frames whose power is at least
    :data:`LTAS_NOISE_MARGIN` times the noise's count. A clean recording, whose quietest frames
    are near silence, keeps its spectrum; with white noise at 20 dB SNR in the reference, the
    timbre gain comes back (``eval resynth --reference-perturb noise20dB``)."""
    level = log_mel.mean(-1)
    keep = level >= level.max() - LTAS_FLOOR_NATS
    if not denoise or len(log_mel) < 2:
        return log_mel[keep].mean(0)
    power = torch.exp(2 * log_mel.double())
    total = power.sum(-1)
    quiet = torch.argsort(total)[: max(1, int(LTAS_NOISE_SHARE * len(total)))]
    noise = power[quiet].mean(0)
    speech = keep & (total >= LTAS_NOISE_MARGIN * noise.sum())
    if not bool(speech.any()):  # all noise, as far as this can tell: the plain average
        return log_mel[keep].mean(0)
    clean = torch.maximum(power[speech] - noise, LTAS_SUBTRACT_KEEP * power[speech])
    return (0.5 * torch.log(clean)).mean(0).to(log_mel.dtype)


class Vocoder(Stage):
    """Units -> waveform in a reference voice.

    Args:
        model: a trained :class:`UnitVocoder`.
        training: how it was trained (recorded in ``config.json``).
    """

    def __init__(self, model: UnitVocoder, training: dict[str, Any] | None = None,
                 waveform: Any = None):
        self.model = model.eval()
        self.cfg = model.cfg
        self.training = dict(training or {})
        self.waveform = waveform  # a speechlm.waveform.WaveformModel for method="hn"
        # a speechlm.prosody.ContourModel: the drawn-F0 path's pitch shape (None: the first
        # pass's per-frame distributions)
        self.contour: Any = None
        self.mel = MelSpectrogram(self.cfg.n_mels)
        # timbre matching (parameters_for): how far the output's long-term average log-mel is
        # moved towards the voice reference's, 0 (off) to 1; config.json's "timbre_match"
        self.timbre_match = 0.0
        # contrast (parameters_for): the output log-mel's deviations from its long-term average
        # are scaled by this, 1 (off) to 2; config.json's "mel_contrast"
        self.mel_contrast = 1.0
        # the waveform stage (method hn) mutes its noise below this many Hz in voiced frames,
        # 0 (off) to 4000; config.json's "voiced_noise_cut_hz"
        self.voiced_noise_cut = 0.0
        # voice adaptation (voice): Adam steps fitting the speaker vector and the decoder's FiLM
        # offsets to the reference's own log-mel, 0 (off) to 200; config.json's
        # "voice_adapt_steps"
        self.voice_adapt_steps = 0
        # a drawn F0 contour (parameters_for without f0): how far each frame's quantile may
        # stray from its median, 0 (the medians) to 1 (a draw); config.json's "f0_spread"
        self.f0_spread = 1.0
        # a drawn F0 contour's voicing: frames whose predicted voicing probability exceeds this
        # are voiced, (0, 1); config.json's "drawn_voicing_threshold" (0.5 where absent)
        self.drawn_voicing_threshold = 0.5
        # given a source F0 (resynthesis), the output's log F0 in voiced frames: 0 the decoder's
        # estimate, 1 the source contour moved to the voice's level and range, between them a
        # mix; config.json's "source_f0_weight" (0 where absent)
        self.source_f0_weight = 0.0
        # with no source F0 (the drawn path), the output's log F0 in the drawn contour's voiced
        # frames: 0 the decoder's estimate given the drawn contour, 1 the drawn contour itself
        # (a known prefix's own F0 there), between them a mix; config.json's "drawn_f0_weight"
        # (0 where absent)
        self.drawn_f0_weight = 0.0
        self._adapt_tokenizer: Any = None  # loaded on first use when voice() is given none

    def use_waveform(self, name_or_path: str | os.PathLike) -> Vocoder:
        """Load the harmonic-plus-noise waveform stage that ``method="hn"`` synthesizes with
        (:mod:`speechlm.waveform`); it reads this vocoder's log-mel head and F0."""
        from speechlm.waveform import WaveformModel

        w = WaveformModel.load(name_or_path)
        if w.model.cfg.n_mels != self.cfg.n_mels or w.sample_rate != self.sample_rate:
            raise ModelError(f"{name_or_path}: the waveform stage reads {w.model.cfg.n_mels} mels "
                             f"at {w.sample_rate} Hz; this vocoder makes {self.cfg.n_mels} at "
                             f"{self.sample_rate} Hz")
        self.waveform = w
        return self

    def use_contour(self, name_or_path: str | os.PathLike | None) -> Vocoder:
        """Load the intonation model (:mod:`speechlm.prosody`) whose distributions the drawn-F0
        path samples its pitch shape from, in place of the first pass's (its level and range
        come from the voice, its voicing from this vocoder); None goes back to the first pass's.
        The model must read this vocoder's unit space."""
        if name_or_path is None:
            self.contour = None
            return self
        from speechlm.prosody import ContourModel

        c = ContourModel.load(name_or_path)
        if c.unit_space != self.unit_space:
            raise ModelError(f"{name_or_path}: the contour model reads units "
                             f"{c.unit_space!r}; this vocoder reads {self.unit_space!r}")
        if not self.cfg.f0_bins:
            raise ModelError("a contour model needs a vocoder that draws its F0 (f0_bins)")
        self.contour = c
        return self

    # --- the contract every stage exposes
    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.cfg.frame_rate

    @property
    def n_units(self) -> int:
        return self.cfg.n_units

    @property
    def unit_space(self) -> str:
        return self.cfg.unit_space

    @classmethod
    def load(cls, name_or_path: str | os.PathLike = DEFAULT_VOCODER) -> Vocoder:
        """Load a bundled vocoder by name or a vocoder directory (strict)."""
        cfg, tensors, path = checkpoint.load_stage(name_or_path, "vocoder")
        try:
            vc = VocoderConfig(**cfg["model"])
        except (KeyError, TypeError) as err:
            raise ModelError(f"{path}: bad vocoder config ({err})") from None
        if (vc.sp_dim == 0) != (vc.ap_dim == 0):
            raise ModelError(f"{path}: sp_dim and ap_dim must both be 0 (a mel-only vocoder) or "
                             "both positive")
        model = UnitVocoder(vc)
        try:
            model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                   for k, v in tensors.items()}, strict=True)
        except RuntimeError as err:
            raise ModelError(f"{path}: weights do not match config.json: "
                             f"{str(err).splitlines()[0]}") from None
        voc = cls(model, cfg.get("training"))
        try:
            voc.set_timbre_match(cfg.get("timbre_match", 0.0))
            voc.set_mel_contrast(cfg.get("mel_contrast", 1.0))
            voc.set_voiced_noise_cut(cfg.get("voiced_noise_cut_hz", 0.0))
            voc.set_voice_adapt_steps(cfg.get("voice_adapt_steps", 0))
            voc.set_f0_spread(cfg.get("f0_spread", 1.0))
            voc.set_drawn_voicing_threshold(cfg.get("drawn_voicing_threshold", 0.5))
            voc.set_source_f0_weight(cfg.get("source_f0_weight", 0.0))
            voc.set_drawn_f0_weight(cfg.get("drawn_f0_weight", 0.0))
        except ValueError as err:
            raise ModelError(f"{path}: {err}") from None
        if (path / WAVEFORM_DIR).is_dir():
            voc.use_waveform(path / WAVEFORM_DIR)
        elif vc.mel_only:
            raise ModelError(f"{path}: a mel-only vocoder needs its waveform stage in "
                             f"{WAVEFORM_DIR}/")
        if (path / CONTOUR_DIR).is_dir():
            voc.use_contour(path / CONTOUR_DIR)
        return voc

    def save(self, path: str | os.PathLike, half: bool = False,
             int8: tuple[str, ...] = ()) -> os.PathLike:
        """Write the stage directory; ``half`` stores the weights (not the normalization
        statistics) in float16; ``int8`` names prefixes of weights (``"speaker."``, or ``""``
        for all) stored in int8 with a scale per row, the rest then in float16
        (:func:`speechlm.checkpoint.quantize_int8`; the waveform stage and the contour model
        in float16) --
        inference computes in float32 either way."""
        sd = self.model.state_dict()
        if int8:
            sd = checkpoint.quantize_int8(sd, keep=lambda k: k.endswith("_stats"),
                                          select=lambda k: k.startswith(tuple(int8)))
            half = True
        else:
            sd = {k: (v.half() if half and v.is_floating_point() and not k.endswith("_stats")
                      else v) for k, v in sd.items()}
        stored = ("int8 (" + ", ".join(p or "all" for p in int8) + "), float16") if int8 else \
            "float16" if half else "float32"
        cfg = {"model": self.cfg.to_dict(), "unit_space": self.unit_space,
               "training": self.training, "stored_dtype": stored,
               "default_method": self.default_method, "timbre_match": self.timbre_match,
               "mel_contrast": self.mel_contrast, "voiced_noise_cut_hz": self.voiced_noise_cut,
               "voice_adapt_steps": self.voice_adapt_steps, "f0_spread": self.f0_spread,
               "drawn_voicing_threshold": self.drawn_voicing_threshold,
               "source_f0_weight": self.source_f0_weight,
               "drawn_f0_weight": self.drawn_f0_weight}
        if self.cfg.mel_only and self.waveform is None:
            raise ModelError("a mel-only vocoder is saved with its waveform stage "
                             "(Vocoder.use_waveform first)")
        waveform, contour = self.waveform, self.contour

        def write_extra(tmp):
            if waveform is not None:
                waveform.save(tmp / WAVEFORM_DIR, half=half)
            if contour is not None:
                contour.save(tmp / CONTOUR_DIR, half=half)

        return checkpoint.save_stage(path, "vocoder", cfg, sd, write_extra=write_extra)

    def set_timbre_match(self, strength: float) -> Vocoder:
        """Set :attr:`timbre_match`, in [0, 1]: the share of the gap between the voice
        reference's long-term average log-mel and the output's that :meth:`parameters_for`
        closes (a per-mel-band gain, the same over the whole output; the log-mel methods, hn and
        griffinlim, hear it, WORLD does not)."""
        self.timbre_match = _setting("timbre_match", strength, 0.0, 1.0)
        return self

    def set_mel_contrast(self, factor: float) -> Vocoder:
        """Set :attr:`mel_contrast`, in [1, 2]: :meth:`parameters_for` scales each frame's
        log-mel deviation from the output's long-term average by it (per band, around the mean
        over speech frames), undoing part of the flattening a regression to the mean gives the
        predicted spectrum -- a global-variance post-filter with one factor. 1 leaves the log-mel
        alone; the log-mel methods hear it, WORLD does not."""
        self.mel_contrast = _setting("mel_contrast", factor, 1.0, 2.0)
        return self

    def set_voiced_noise_cut(self, hz: float) -> Vocoder:
        """Set :attr:`voiced_noise_cut`, in [0, 4000] Hz: the waveform stage (method hn) mutes
        its noise filter below it in voiced frames
        (:meth:`speechlm.waveform.WaveformModel.synthesize`); 0 leaves the noise alone."""
        self.voiced_noise_cut = _setting("voiced_noise_cut_hz", hz, 0.0, 4000.0)
        return self

    def set_voice_adapt_steps(self, steps: int) -> Vocoder:
        """Set :attr:`voice_adapt_steps`, a whole number in [0, 200]: how many steps
        :meth:`adapt_voice` takes when :meth:`voice` computes a voice; 0 leaves a voice as the
        speaker encoder gives it."""
        x = _setting("voice_adapt_steps", steps, 0, 200)
        if isinstance(steps, bool) or x != int(x):
            raise ValueError(f"voice_adapt_steps must be a whole number in [0, 200], got "
                             f"{steps!r}")
        self.voice_adapt_steps = int(x)
        return self

    def set_f0_spread(self, spread: float) -> Vocoder:
        """Set :attr:`f0_spread`, in [0, 1]: how widely :meth:`parameters_for` draws a log-F0
        contour when given no F0 (:func:`sample_f0_contour`'s ``spread``): 1 draws from each
        frame's distribution, 0 takes its median (the same contour for every seed)."""
        self.f0_spread = _setting("f0_spread", spread, 0.0, 1.0)
        return self

    def set_drawn_voicing_threshold(self, threshold: float) -> Vocoder:
        """Set :attr:`drawn_voicing_threshold`, in [0.05, 0.95]: where :meth:`parameters_for`
        draws the F0 (no source F0 given), a frame is voiced when its predicted voicing
        probability exceeds it, in the contour drawn and in the output's voicing; 0.5 is the
        plain decision. The source-F0 path is left alone."""
        self.drawn_voicing_threshold = _setting("drawn_voicing_threshold", threshold, 0.05, 0.95)
        return self

    def set_source_f0_weight(self, weight: float) -> Vocoder:
        """Set :attr:`source_f0_weight`, in [0, 1]: where :meth:`parameters_for` is given a
        source F0, the output's log F0 in the source's voiced frames mixes the decoder's
        estimate (0) with the source contour (1), z-scored over the source's voiced frames and
        moved to the voice's log-F0 mean and spread (the source's own when the voice is the
        source speaker's). The drawn-F0 path is left alone."""
        self.source_f0_weight = _setting("source_f0_weight", weight, 0.0, 1.0)
        return self

    def set_drawn_f0_weight(self, weight: float) -> Vocoder:
        """Set :attr:`drawn_f0_weight`, in [0, 1]: where :meth:`parameters_for` draws its F0
        (no source F0; ``f0_bins``), the output's log F0 in the drawn contour's voiced frames
        mixes the decoder's estimate given that contour (0) with the drawn contour itself (1),
        which is at the voice's level already, and is a known prefix's own F0 where one is
        given. The source-F0 path is left alone."""
        self.drawn_f0_weight = _setting("drawn_f0_weight", weight, 0.0, 1.0)
        return self

    @property
    def default_method(self) -> str:
        """What :meth:`decode` synthesizes with when not told: ``hn`` for a mel-only vocoder,
        else ``world``."""
        return "hn" if self.cfg.mel_only else "world"

    # --- conditioning
    def voice(self, ref: torch.Tensor | np.ndarray, what: str = "the voice reference",
              tokenizer: Any = None) -> Voice:
        """A 16 kHz reference recording ``[T]`` (at least 64 ms) -> its :class:`Voice`;
        ``what`` names the recording in errors. With :attr:`voice_adapt_steps` the voice is
        then fitted to the recording (:meth:`adapt_voice`), whose units ``tokenizer`` (a
        :class:`~speechlm.tokenizer.Tokenizer` of this vocoder's unit space) gives; None: the
        tokenizer this vocoder was trained on, loaded once."""
        voice = self._voice(ref, what)
        if not self.voice_adapt_steps:
            return voice
        ref = as_mono(ref, what)
        ref = ref[: int(VOICE_ADAPT_MAX_SECONDS * self.sample_rate)]
        if tokenizer is None:
            if self._adapt_tokenizer is None:
                from speechlm.tokenizer import Tokenizer

                name = self.training.get("tokenizer")
                if not name:
                    raise ModelError("voice adaptation needs the reference's units: this "
                                     "vocoder does not record its tokenizer; pass one")
                self._adapt_tokenizer = Tokenizer.load(name)
            tokenizer = self._adapt_tokenizer
        return self.adapt_voice(voice, ref, tokenizer.tokenize_wave(ref))

    def adapt_voice(self, voice: Voice, ref: torch.Tensor | np.ndarray, units: Units,
                    steps: int | None = None) -> Voice:
        """Fit ``voice`` to its reference recording ``ref`` ``[T]``: Adam takes ``steps``
        (None: :attr:`voice_adapt_steps`) steps on the L1 distance between the log-mel this
        vocoder predicts for the reference's own frame-rate ``units`` and F0, and the reference's
        log-mel, moving the speaker vector and one offset to each decoder block's FiLM scale and
        shift (the network's weights stay as they are). The speaker encoder summarizes a voice it
        never heard in a vector; this lets the decoder match what it misses, as speaker
        adaptation does, at the cost of a few forward and backward passes over the reference.
        The returned voice keeps its speaker vector for the duration model, its F0 statistics
        and its long-term spectrum. Deterministic."""
        from speechlm.audio import f0_track

        steps = self.voice_adapt_steps if steps is None else steps
        ref = as_mono(ref, "the voice reference")
        self.check_units(units)
        if units.deduped:
            raise ModelError("adapt_voice needs the reference's frame-rate units (not "
                             "deduplicated)")
        mel = self.mel(ref[None])[0]
        n = min(UPSAMPLE * len(units), len(mel)) // UPSAMPLE * UPSAMPLE
        if not steps or n == 0:
            return voice
        ids = units.ids[: n // UPSAMPLE].long().clone()[None]
        f0 = f0_track(ref.numpy())[:n]
        f0 = np.pad(f0, (0, n - len(f0)))
        f0_in = f0_conditioning(f0, n)[None]
        m = self.model
        target = (mel[:n] - m.mel_stats[0]) / m.mel_stats[1]
        vec = voice.decoder_vector.detach().clone().requires_grad_(True)
        width = 2 * self.cfg.channels
        offsets = [torch.zeros(width, requires_grad=True)
                   for _ in range(len(m.pre) + len(m.post))]
        opt = torch.optim.Adam([{"params": [vec], "lr": VOICE_ADAPT_LR},
                                {"params": offsets, "lr": VOICE_ADAPT_FILM_LR}])
        frozen = [p for p in m.parameters() if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            with torch.enable_grad():
                for _ in range(steps):
                    y = m(ids, vec[None], f0_in, offsets)[0, :, -self.cfg.n_mels:]
                    loss = (y - target).abs().mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        finally:
            for p in frozen:
                p.requires_grad_(True)
        return dataclasses.replace(voice, adapted_vector=vec.detach(),
                                   film_offsets=tuple(o.detach() for o in offsets))

    @torch.inference_mode()
    def _voice(self, ref: torch.Tensor | np.ndarray, what: str) -> Voice:
        ref = as_mono(ref, what)
        check_length(ref.numel(), FRAME_SIZE, what)
        if ref.numel() < MIN_VOICE_SAMPLES:
            raise AudioError(f"{what} is {ref.numel() / SAMPLE_RATE * 1000:.1f} ms long: a voice "
                             f"needs at least {MIN_VOICE_SAMPLES / SAMPLE_RATE * 1000:.0f} ms of "
                             "speech")
        if float(ref.abs().max()) < NO_SIGNAL_PEAK:
            raise AudioError(f"{what} is silent (peak below -80 dBFS): there is no voice in it")
        mel = self.mel(ref[None])
        stats = log_f0_stats(f0_track(ref.numpy()))
        vec = self.model.speaker_vector(mel, torch.tensor([mel.shape[1]]), stats[None])
        return Voice(vec[0], stats, long_term_log_mel(mel[0], denoise=True))

    @torch.inference_mode()
    def predict_durations(self, ids: torch.Tensor, voice: Voice) -> torch.Tensor:
        """Deduplicated unit ids ``[T]`` -> frames each one lasts ``[T]`` (int64, >= 1) in
        ``voice``, from the duration model."""
        logd = self.model.duration(ids[None].long(), voice.vector[None])[0]
        # the model predicts the mean of log durations: exp() of it is the geometric mean, so
        # add half the residual variance (log-normal mean; the validation MSE of log durations)
        # and round the running total rather than each unit, which would bias lengths down
        # (measured on test: -13% with per-unit rounding, -4% like this)
        ends = torch.round(torch.cumsum(torch.exp(logd + self._dur_var / 2) * voice.tempo, 0))
        return torch.clamp(torch.diff(ends, prepend=torch.zeros(1)), min=1).long()

    @property
    def _dur_var(self) -> float:
        return float((self.training.get("valid_loss") or {}).get("dur", 0.0))

    @torch.inference_mode()
    def fit_tempo(self, units: Units, voice: Voice) -> float:
        """The pace of deduplicated ``units`` with known durations (a prompt's) against what
        the duration model predicts for them in ``voice``: frames they last / frames predicted,
        clamped to :data:`TEMPO_RANGE`. The first run is left out (where a recording starts
        cuts its leading silence anywhere); with fewer than :data:`TEMPO_MIN_UNITS` runs left,
        1.0. Set it as ``dataclasses.replace(voice, tempo=...)`` for :meth:`predict_durations`
        to speak new units at the prompt's pace."""
        if not units.deduped or units.durations is None:
            raise ValueError("fit_tempo needs deduplicated units with their durations")
        self.check_units(units)
        if len(units) - 1 < TEMPO_MIN_UNITS:
            return 1.0
        logd = self.model.duration(units.ids[None].long(), voice.vector[None])[0]
        pred = float(torch.exp(logd[1:] + self._dur_var / 2).sum())
        tempo = float(units.durations[1:].sum()) / max(pred, 1e-6)
        return min(TEMPO_RANGE[1], max(TEMPO_RANGE[0], tempo))

    def expand(self, units: Units, voice: Voice) -> Units:
        """Deduplicated units -> frame-rate units, with durations from the duration model."""
        self.check_units(units)
        if not units.deduped:
            return units
        dur = self.predict_durations(units.ids, voice)
        self._check_frames(int(dur.sum()))
        return Units(ids=torch.repeat_interleave(units.ids, dur), frame_rate=units.frame_rate,
                     n_units=units.n_units, unit_space=units.unit_space)

    def check_units(self, units: Units, use_durations: bool = True) -> None:
        """Refuse units this vocoder cannot decode, before any work: another unit space, frame
        rate or vocabulary, ids out of range, durations < 1, or (with ``use_durations``) more
        than :data:`MAX_DECODE_SECONDS` of speech."""
        if not isinstance(units, Units):
            raise ValueError(f"expected Units, got {type(units).__name__}")
        if units.unit_space != self.unit_space:
            raise ModelError(f"unit space mismatch: the units are {units.unit_space!r}, the "
                             f"vocoder was trained on {self.unit_space!r}")
        if units.frame_rate != self.frame_rate or units.n_units != self.n_units:
            raise ModelError(f"the units are {units.n_units} units at {units.frame_rate:g} "
                             f"frames/s; the vocoder decodes {self.n_units} at "
                             f"{self.frame_rate:g}")
        if units.ids.is_floating_point() or units.ids.dtype == torch.bool:
            raise ModelError(f"unit ids must be integers, got {units.ids.dtype}")
        if len(units) and (int(units.ids.min()) < 0 or int(units.ids.max()) >= self.n_units):
            raise ModelError(f"unit ids must be in [0, {self.n_units}), got "
                             f"[{int(units.ids.min())}, {int(units.ids.max())}]")
        if units.durations is not None and len(units):
            if units.durations.is_floating_point() or int(units.durations.min()) < 1:
                raise ModelError("unit durations must be whole frame counts >= 1")
        if use_durations or not units.deduped:
            self._check_frames(units.num_frames)

    def _check_frames(self, frames: int) -> None:
        limit = int(MAX_DECODE_SECONDS * self.frame_rate)
        if frames > limit:
            raise ModelError(f"the units last {frames / self.frame_rate:.0f} s ({frames} frames); "
                             f"the vocoder decodes at most {MAX_DECODE_SECONDS:.0f} s at a time: "
                             "split the units")

    def _first_pass(self, units: Units, voice: Voice, f0: np.ndarray | None,
                    use_durations: bool, known_f0: np.ndarray | None = None
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The decoder's blocks before the F0 enters (``[1, C, 2T]``, reused by a second pass)
        and its parameters ``{name: [2T, ...]}`` given ``f0`` (None: no F0), for ``units`` at
        the frame rate (:meth:`_frame_units`); the contour model reads ``known_f0``."""
        units = self._frame_units(units, voice, use_durations)
        n = UPSAMPLE * len(units)
        f0_in = None if f0 is None else f0_conditioning(f0, n)[None]
        spk, film = voice.decoder_vector[None], voice.film_offsets
        h = self.model.upsampled(units.ids[None].long(), spk, film)  # the F0 enters after this
        params = {k: v[0] for k, v in self.model.split(
            self.model.decode_upsampled(h, spk, f0_in, film)).items()}
        if f0 is None and self.contour is not None:
            params["shape_logits"] = self.contour.logits(units.ids, known_f0)[:n]  # z log F0
        return h, params

    def _frame_units(self, units: Units, voice: Voice, use_durations: bool) -> Units:
        """``units`` checked and at the frame rate (deduplicated ones expanded with their
        durations when ``use_durations``, else by the duration model)."""
        self.check_units(units, use_durations)
        if units.deduped:
            if use_durations and units.durations is not None:
                units = Units(ids=torch.repeat_interleave(units.ids, units.durations),
                              frame_rate=units.frame_rate, n_units=units.n_units,
                              unit_space=units.unit_space)
            else:
                units = self.expand(units, voice)
        if len(units) == 0:
            raise ModelError("no units to vocode")
        return units

    def _drawn_contour(self, params: dict[str, torch.Tensor], voice: Voice, seed: int | None,
                       known_f0: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The F0 contour drawn from a pass without F0: its log F0 on every frame (sampled
        with ``seed``, 0 when None) and its voicing (above :attr:`drawn_voicing_threshold`,
        median-smoothed). With a :attr:`contour` model the pitch shape is drawn from its
        distributions (z-scored log F0, put at the voice's log-F0 mean and spread).
        ``known_f0`` (Hz, 0 unvoiced) replaces the first frames: its voicing, and its shape
        z-scored over its own voiced frames and put at the voice's mean and spread (the
        prompt's own F0 when the voice is the prompt's)."""
        g = torch.Generator().manual_seed(0 if seed is None else int(seed))
        if "shape_logits" in params:
            z = sample_f0_contour(params["shape_logits"], g, spread=self.f0_spread)
            lf0 = z * voice.lf0_mean_std[1] + voice.lf0_mean_std[0]
        else:
            z = sample_f0_contour(params["lf0_logits"], g, spread=self.f0_spread)
            lf0 = z * self.model.lf0_stats[1] + self.model.lf0_stats[0]
        voiced = median_filter(params["vuv"] > self.drawn_voicing_threshold, VOICING_SMOOTH)
        if known_f0 is not None:
            from speechlm.prosody import z_scored

            k = min(len(known_f0), len(lf0))
            zk, vk = z_scored(np.asarray(known_f0)[:k])
            if vk.any():
                vk_t = torch.from_numpy(vk)
                lf0[:k] = torch.where(vk_t, torch.from_numpy(zk).to(lf0) * voice.lf0_mean_std[1]
                                      + voice.lf0_mean_std[0], lf0[:k])
                voiced[:k] = vk_t
        return lf0, voiced

    @torch.inference_mode()
    def draw_f0(self, units: Units, voice: Voice, use_durations: bool = True,
                seed: int | None = None, known_f0: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """The F0 contour :meth:`parameters_for` draws when given none (a vocoder with
        ``f0_bins``), at its output frame rate (``2T``): the sampled F0 in Hz on every frame
        and the voicing mask. ``decode(units, voice, f0=np.where(voiced, hz, 0))`` speaks it
        through the source-F0 path (a diagnostic: which of pitch and voicing costs words).

        Raises:
            ModelError: a vocoder that draws no contour (no ``f0_bins``), or bad units.
        """
        if not self.cfg.f0_bins:
            raise ModelError("this vocoder predicts F0 without drawing a contour (no f0_bins)")
        _, params = self._first_pass(units, voice, None, use_durations, known_f0)
        lf0, voiced = self._drawn_contour(params, voice, seed, known_f0)
        return torch.exp(lf0).numpy(), voiced.numpy()

    @torch.inference_mode()
    def parameters_for(self, units: Units, voice: Voice,
                       f0: np.ndarray | None = None,
                       use_durations: bool = True,
                       seed: int | None = None,
                       known_f0: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Predicted vocoder parameters ``{name: [2T, ...]}`` for ``units``.

        Deduplicated units with durations are expanded with those durations when
        ``use_durations`` (resynthesis); otherwise the duration model decides. A vocoder with
        ``f0_bins`` given no ``f0`` samples its log-F0 contour (:func:`sample_f0_contour`)
        with ``seed`` (0 when None), rather than taking the distribution's mean. There,
        ``known_f0`` (Hz every 10 ms, 0 unvoiced; a continuation's prompt) is the F0 of the
        first frames: they are spoken with it, and a contour model that reads a known prefix
        carries its intonation on (ignored with ``f0`` or without ``f0_bins``).
        """
        if f0 is not None or not self.cfg.f0_bins:
            known_f0 = None
        h, params = self._first_pass(units, voice, f0, use_durations, known_f0)
        if self.cfg.f0_bins and f0 is None:
            # draw a contour, then decode again conditioned on it, as resynthesis is on the
            # source's: the log-mel of the first pass, predicted without any F0, does not match
            # a sampled contour, and the waveform stage then buzzes (eval resynth --methods hn on
            # 61 held-out-engine utterances: DNSMOS 1.93 in one pass, 2.66 in two; source F0 2.64).
            # The second pass reuses the first's blocks before the F0 enters.
            lf0, voiced = self._drawn_contour(params, voice, seed, known_f0)
            thr = self.drawn_voicing_threshold
            contour = torch.where(voiced, torch.exp(lf0), 0.0).numpy()
            spk, film = voice.decoder_vector[None], voice.film_offsets
            params = {k: v[0] for k, v in self.model.split(self.model.decode_upsampled(
                h, spk, f0_conditioning(contour, h.shape[-1])[None], film)).items()}
            if self.drawn_f0_weight > 0:  # speak the drawn contour itself, not an estimate of it
                w = self.drawn_f0_weight
                params["lf0"] = torch.where(voiced, (1 - w) * params["lf0"] + w * lf0.to(
                    params["lf0"]), params["lf0"])
            if thr != 0.5:  # the output's voicing (vuv > 0.5 downstream) at the same threshold
                params["vuv"] = torch.sigmoid(torch.logit(params["vuv"].clamp(1e-6, 1 - 1e-6))
                                              - math.log(thr / (1 - thr)))
        if f0 is not None and self.source_f0_weight > 0:
            params["lf0"] = mix_source_log_f0(params["lf0"], f0, voice.lf0_mean_std,
                                              self.source_f0_weight)
        if self.mel_contrast != 1.0:
            mean = long_term_log_mel(params["mel"])
            params["mel"] = (mean + self.mel_contrast * (params["mel"] - mean)).clamp(
                min=math.log(LOG_FLOOR))
        if self.timbre_match and voice.log_mel_mean is not None:
            # the reference's long-term spectrum: what the speaker vector leaves of a voice's
            # timbre (throwaway check, 30 held-out-engine voices, reference and content from two
            # utterances, no source F0: Resemblyzer similarity 0.656 -> 0.704 at 0.5, to other
            # voices 0.555 -> 0.570; the voice told from the closest other 20 % -> 47 %)
            gap = voice.log_mel_mean - long_term_log_mel(params["mel"])
            params["mel"] = params["mel"] + self.timbre_match * gap
        return params

    def synthesize(self, params: dict[str, torch.Tensor], method: str | None = None,
                   gl_iters: int = 32) -> torch.Tensor:
        """Vocoder parameters -> ``[2T * 160]`` waveform (``method`` None: the vocoder's
        :attr:`default_method`)."""
        method = method or self.default_method
        if method == "world" and self.cfg.mel_only:
            raise ModelError("this vocoder is mel-only (no WORLD heads): use method 'hn' or "
                             "'griffinlim'")
        if method == "world":
            f0 = torch.where(params["vuv"] > 0.5, torch.exp(params["lf0"]), 0.0)
            y = world_synthesize(f0.double().numpy(), params["sp"].double().numpy(),
                                 params["ap"].double().numpy(), self.sample_rate)
            y = torch.from_numpy(y.astype(np.float32))
        elif method == "griffinlim":
            y = griffin_lim(params["mel"], self.mel.fb, n_iter=gl_iters)
        elif method == "hn":
            if self.waveform is None:
                raise ModelError("method 'hn' needs a waveform stage: Vocoder.use_waveform(PATH) "
                                 "(speechlm train vocoder --config configs/vocoder/hn-cpu.toml)")
            f0 = torch.where(params["vuv"] > 0.5, torch.exp(params["lf0"]), 0.0)
            y = self.waveform.synthesize(params["mel"], f0,
                                         voiced_noise_cut=self.voiced_noise_cut)
        else:
            raise ValueError(f"unknown vocoder method {method!r} (world, griffinlim, hn)")
        return _limit(y)

    def decode(self, units: Units, voice: Voice, f0: np.ndarray | None = None,
               method: str | None = None, use_durations: bool = True,
               seed: int | None = None, known_f0: np.ndarray | None = None) -> torch.Tensor:
        """Units -> ``[T]`` float32 waveform at :attr:`sample_rate` in ``voice`` (``seed``: the
        sampled F0 contour of an ``f0_bins`` vocoder given no ``f0``; ``known_f0``: the F0 of
        its first frames there, see :meth:`parameters_for`)."""
        return self.synthesize(self.parameters_for(units, voice, f0, use_durations, seed,
                                                   known_f0), method)


def _setting(name: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a float in [lo, hi], else ValueError naming the setting ``name``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if not lo <= x <= hi:
        raise ValueError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return x


def _split_points(f0: np.ndarray, parts: int, min_frames: int = 50) -> list[int]:
    """Frames where the synthesis can be cut into ``parts`` pieces: unvoiced frames (WORLD's
    pulse phase restarts there) nearest to even splits; fewer pieces where there are none."""
    n = len(f0)
    cuts = []
    unvoiced = np.flatnonzero(f0 <= 0)
    for i in range(1, parts):
        target = i * n // parts
        if len(unvoiced) == 0:
            break
        k = int(unvoiced[np.argmin(np.abs(unvoiced - target))])
        if abs(k - target) < n // (2 * parts) and k - (cuts[-1] if cuts else 0) >= min_frames \
                and n - k >= min_frames:
            cuts.append(k)
    return cuts


def world_synthesize(f0: np.ndarray, sp_coded: np.ndarray, ap_coded: np.ndarray,
                     sr: int = SAMPLE_RATE, threads: int | None = None) -> np.ndarray:
    """WORLD synthesis of ``N`` frames (10 ms) -> ``[N * 160]`` float64 samples.

    Long inputs are cut at unvoiced frames and the pieces synthesized in parallel threads
    (pyworld releases the GIL), with a 10 ms cross-fade at each cut; ``threads`` defaults to
    torch's intra-op thread count.
    """
    pw = pyworld_module()
    fft = pw.get_cheaptrick_fft_size(sr)
    n = len(f0)
    sp = pw.decode_spectral_envelope(np.ascontiguousarray(sp_coded, dtype=np.float64), sr, fft)
    ap = pw.decode_aperiodicity(np.ascontiguousarray(ap_coded, dtype=np.float64), sr, fft)
    f0 = np.ascontiguousarray(f0, dtype=np.float64)
    cuts = _split_points(f0, threads or torch.get_num_threads())
    if not cuts:
        return pw.synthesize(f0, sp, ap, sr, FRAME_PERIOD_MS)[: n * HOP]
    from concurrent.futures import ThreadPoolExecutor

    bounds = [0, *cuts, n]
    spans = [(max(0, a - 1), b) for a, b in zip(bounds[:-1], bounds[1:])]  # 1 frame overlap

    def run(span):
        a, b = span
        return pw.synthesize(np.ascontiguousarray(f0[a:b]), np.ascontiguousarray(sp[a:b]),
                             np.ascontiguousarray(ap[a:b]), sr, FRAME_PERIOD_MS)

    with ThreadPoolExecutor(len(spans)) as ex:
        pieces = list(ex.map(run, spans))
    out = np.zeros(n * HOP)
    fade = np.linspace(0.0, 1.0, HOP)
    for (a, b), piece, lo in zip(spans, pieces, bounds[:-1]):
        seg = piece[: (b - a) * HOP].copy()
        start = a * HOP
        if a < lo:  # overlap one frame with the previous piece: cross-fade
            seg[:HOP] *= fade
            out[start : start + HOP] *= fade[::-1]
        out[start : start + len(seg)] += seg
    return out[: n * HOP]


def griffin_lim(log_mel: torch.Tensor, fb: torch.Tensor, n_iter: int = 32) -> torch.Tensor:
    """Log-magnitude mel ``[N, M]`` -> waveform with torchaudio's Griffin-Lim (the baseline)."""
    import torchaudio

    mag = torch.clamp(torch.exp(log_mel) @ torch.linalg.pinv(fb), min=0.0)  # [N, F]
    gl = torchaudio.transforms.GriffinLim(n_fft=N_FFT, hop_length=HOP, power=1.0, n_iter=n_iter,
                                          rand_init=False)
    with torch.inference_mode():
        return gl(mag.T.contiguous())


def _limit(y: torch.Tensor) -> torch.Tensor:
    peak = float(y.abs().max()) if y.numel() else 0.0
    return y * (0.99 / peak) if peak > 0.99 else y


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["DEFAULT_VOCODER", "MelSpectrogram", "TEMPO_RANGE", "UnitVocoder", "Vocoder",
           "VocoderConfig", "Voice", "f0_bin_centres", "f0_bin_of", "f0_conditioning",
           "griffin_lim",
           "LTAS_FLOOR_NATS", "LTAS_NOISE_MARGIN", "LTAS_NOISE_SHARE", "LTAS_SUBTRACT_KEEP",
           "log_f0_stats", "long_term_log_mel", "mix_source_log_f0", "sample_f0_contour",
           "world_analysis"]
