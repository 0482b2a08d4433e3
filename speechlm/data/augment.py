"""On-the-fly augmentation: make clean synthetic speech sound recorded, in batches, from a seed.

Stateless functions on ``[B, T]`` float tensors (one row per utterance, 16 kHz) and one thin
:class:`Augmenter` that draws their parameters from a seed and chains them the way a recording
happens: room (reverberation) -> noise in the room (coloured noise, babble of the other
utterances of the batch) -> microphone (EQ) -> channel (band-limit or telephone band) ->
level (gain, mild clipping) -> optional lossy codec (ogg/mp3 through libsndfile, per item, not
vectorised, off by default).

Everything except the codec is vectorised over the batch: impulse responses are generated for
the whole batch at once, convolution and filtering are FFT products, so one call costs a few
FFTs of the batch (``benchmarks/bench_augment.py`` measures it against torchaudio's own ops).

Same seed, same output; a different seed gives different rooms, noises and filters.

Example::

    aug = Augmenter(AugmentConfig())
    noisy = aug(clean, seed=step)            # clean: [B, T] float32 at 16 kHz
    noisy = aug(clean, seed=step, lengths=lengths)   # padded batch: padding stays zero
"""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import torch

from speechlm.audio import SAMPLE_RATE

LN1000 = math.log(1000.0)  # energy falls by 60 dB (a factor 10^6 = 1000^2 in amplitude^2)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (per utterance) and parameter ranges of each augmentation."""

    p_reverb: float = 0.5  # share of utterances put in a simulated room
    rt60: tuple[float, float] = (0.15, 1.0)  # reverberation time range, seconds
    drr_db: tuple[float, float] = (-3.0, 12.0)  # direct-to-reverberant ratio range, dB
    p_noise: float = 0.5  # share with coloured noise (white .. brown)
    p_babble: float = 0.2  # share with babble of other utterances of the batch
    snr_db: tuple[float, float] = (5.0, 30.0)  # signal-to-noise ratio range, dB
    babble_talkers: int = 3  # utterances summed into babble
    p_eq: float = 0.3  # share with a microphone-like EQ curve
    eq_db: float = 6.0  # largest EQ boost/cut, dB
    p_bandlimit: float = 0.15  # share low-passed at a random cutoff
    cutoff_hz: tuple[float, float] = (2500.0, 7000.0)  # band-limit cutoff range
    p_telephone: float = 0.1  # share reduced to the telephone band (300-3400 Hz)
    gain_db: tuple[float, float] = (-12.0, 6.0)  # level change range, dB (applied to all)
    p_clip: float = 0.05  # share mildly clipped
    clip_level: tuple[float, float] = (0.5, 0.9)  # clip at this fraction of the peak
    p_codec: float = 0.0  # share through a lossy codec (slow: per item, CPU)
    sample_rate: int = SAMPLE_RATE


# ----------------------------------------------------------------------------- helpers

def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _freqs(n_fft: int, sr: int) -> torch.Tensor:
    return torch.fft.rfftfreq(n_fft, 1.0 / sr)


def power(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Mean square per row ``[B]`` over the valid samples."""
    if lengths is None:
        return x.pow(2).mean(-1)
    return x.pow(2).sum(-1) / lengths.clamp(min=1).to(x.dtype)


def _valid(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    if lengths is None:
        return x
    return x * (torch.arange(x.shape[-1], device=x.device) < lengths[:, None]).to(x.dtype)


def fft_filter(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """Zero-phase filter ``x`` [B, T] by a magnitude response ``gain`` [B, T // 2 + 1]."""
    return torch.fft.irfft(torch.fft.rfft(x) * gain, n=x.shape[-1])


# ----------------------------------------------------------------------------- room

def room_impulse_responses(rt60: torch.Tensor, drr_db: torch.Tensor, sample_rate: int,
                           generator: torch.Generator, length: int | None = None
                           ) -> torch.Tensor:
    """Simulated room impulse responses ``[B, L]``: a direct path at t=0, a few discrete early
    reflections (1-20 ms) and a diffuse tail of exponentially decaying noise whose energy falls
    60 dB in ``rt60`` [B] seconds, decaying faster at high frequencies (air and wall
    absorption); the tail's energy is ``drr_db`` [B] below the direct path."""
    b = rt60.shape[0]
    n = length or int(sample_rate * float(rt60.max()) * 1.1) + 1
    t = torch.arange(n, dtype=torch.float32) / sample_rate
    noise = torch.randn(b, n, generator=generator)
    # two bands with different decay: the high band dies 1.6x faster
    n_fft = n
    f = _freqs(n_fft, sample_rate)
    spec = torch.fft.rfft(noise)
    low = torch.fft.irfft(spec * (f < 2000).float(), n=n)
    high = noise - low
    env_low = torch.exp(-LN1000 * t[None] / rt60[:, None])
    env_high = torch.exp(-LN1000 * 1.6 * t[None] / rt60[:, None])
    tail = low * env_low + high * env_high
    tail[:, : max(1, int(0.001 * sample_rate))] = 0.0  # the tail starts after 1 ms
    # early reflections: 6 taps at random delays with decaying random-sign gains
    delays = (_uniform(generator, b * 6, 0.001, 0.02) * sample_rate).long().view(b, 6)
    signs = torch.where(torch.rand(b, 6, generator=generator) < 0.5, -1.0, 1.0)
    gains = signs * _uniform(generator, b * 6, 0.2, 0.6).view(b, 6) * \
        torch.exp(-LN1000 * (delays / sample_rate) / rt60[:, None])
    early = torch.zeros(b, n).scatter_add_(1, delays.clamp(max=n - 1), gains)
    reverb = tail + early
    reverb = reverb / reverb.pow(2).sum(-1, keepdim=True).sqrt().clamp(min=1e-9)
    reverb = reverb * (10 ** (-drr_db / 20))[:, None]
    reverb[:, 0] += 1.0  # direct path
    return reverb


def reverberate(x: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
    """Convolve ``x`` [B, T] with ``rir`` [B, L] (FFT), keep the first T samples and the
    input's RMS level."""
    n = x.shape[-1] + rir.shape[-1] - 1
    n_fft = 1 << (n - 1).bit_length()
    y = torch.fft.irfft(torch.fft.rfft(x, n=n_fft) * torch.fft.rfft(rir, n=n_fft), n=n_fft)
    y = y[:, : x.shape[-1]]
    scale = (x.pow(2).mean(-1) / y.pow(2).mean(-1).clamp(min=1e-12)).sqrt()
    return y * scale[:, None]


def decay_time(rir: torch.Tensor, sample_rate: int = SAMPLE_RATE, db: float = 20.0) -> float:
    """Reverberation time (RT60) of one impulse response ``[L]`` from the Schroeder backward
    integral, extrapolated from its -5 to -(5 + ``db``) dB decay (T20 by default)."""
    e = rir.double().pow(2).flip(0).cumsum(0).flip(0)
    edc = 10 * torch.log10(e / e[0] + 1e-30)
    i0 = int((edc <= -5).nonzero()[0])
    i1 = int((edc <= -5 - db).nonzero()[0]) if (edc <= -5 - db).any() else len(edc) - 1
    if i1 <= i0 + 1:  # an impulse: no decay to fit
        return 0.0
    t = torch.arange(i0, i1 + 1, dtype=torch.float64) / sample_rate
    y = edc[i0 : i1 + 1]
    slope = ((t - t.mean()) * (y - y.mean())).sum() / ((t - t.mean()).pow(2).sum() + 1e-30)
    return float(-60.0 / slope) if slope < 0 else float("inf")


# ----------------------------------------------------------------------------- noise

def coloured_noise(shape: tuple[int, int], exponent: torch.Tensor, generator: torch.Generator
                   ) -> torch.Tensor:
    """Noise ``[B, T]`` with power spectrum ~ 1 / f^exponent [B] (0 white, 1 pink, 2 brown),
    unit power."""
    b, t = shape
    white = torch.randn(b, t, generator=generator)
    f = torch.arange(t // 2 + 1, dtype=torch.float32).clamp(min=1.0)
    shaped = fft_filter(white, f[None].pow(-exponent[:, None] / 2))
    return shaped / shaped.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-12)


def babble(x: torch.Tensor, talkers: int, generator: torch.Generator,
           lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Babble ``[B, T]``: for each row, the sum of ``talkers`` other rows of the batch, each
    circularly shifted by a random offset (a batch of one babbles with itself, shifted)."""
    b, t = x.shape
    out = torch.zeros_like(x)
    idx = torch.arange(t)
    for k in range(1, talkers + 1):
        other = x.roll(k % b if b > 1 else 0, dims=0)
        shift = torch.randint(0, t, (b,), generator=generator)
        out += other.gather(1, (idx[None] + shift[:, None]) % t)
    return _valid(out, lengths)


def add_noise(x: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor,
              lengths: torch.Tensor | None = None) -> torch.Tensor:
    """``x + a * noise`` with ``a`` chosen per row so that 10 log10(P(x) / P(a noise)) equals
    ``snr_db`` [B] over the valid samples."""
    noise = _valid(noise, lengths)
    a = (power(x, lengths) / power(noise, lengths).clamp(min=1e-12)
         / 10 ** (snr_db / 10)).sqrt()
    return x + a[:, None] * noise


# ----------------------------------------------------------------------------- channel

def band_gain(n: int, sample_rate: int, low_hz: torch.Tensor | None, high_hz: torch.Tensor,
              width_hz: float = 100.0) -> torch.Tensor:
    """Magnitude response ``[B, n // 2 + 1]`` passing ``low_hz``..``high_hz`` [B], with a
    raised-cosine transition of ``width_hz`` just inside each edge (nothing leaks past them)."""
    f = _freqs(n, sample_rate)[None]

    def ramp(d: torch.Tensor) -> torch.Tensor:  # 0 at d <= 0, 1 at d >= width
        return 0.5 - 0.5 * torch.cos(math.pi * (d / width_hz).clamp(0, 1))

    g = ramp(high_hz[:, None] - f)
    if low_hz is not None:
        g = g * ramp(f - low_hz[:, None])
    return g


def lowpass(x: torch.Tensor, cutoff_hz: torch.Tensor, sample_rate: int = SAMPLE_RATE
            ) -> torch.Tensor:
    """Remove everything above ``cutoff_hz`` [B] from ``x`` [B, T]."""
    return fft_filter(x, band_gain(x.shape[-1], sample_rate, None, cutoff_hz))


def lowpass_at(x: torch.Tensor, cutoff_hz: float, sample_rate: int = SAMPLE_RATE
               ) -> torch.Tensor:
    """:func:`lowpass` with one cut-off for every row of ``x`` [B, T] (the band limit of a
    tokenizer's input, ``speechlm tokenize --band-limit``)."""
    return lowpass(x.float(), torch.full((x.shape[0],), float(cutoff_hz)), sample_rate)


def telephone(x: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """The telephone band: keep 300-3400 Hz of ``x`` [B, T]."""
    b = x.shape[0]
    return fft_filter(x, band_gain(x.shape[-1], sample_rate, torch.full((b,), 300.0),
                                   torch.full((b,), 3400.0)))


def mic_eq(x: torch.Tensor, generator: torch.Generator, max_db: float = 6.0,
           sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """A microphone-like colouring: a random spectral tilt plus three smooth bumps or dips over
    log frequency, at most ``max_db`` each, drawn per row."""
    b, n = x.shape
    f = _freqs(n, sample_rate).clamp(min=20.0)
    logf = torch.log2(f / 1000.0)[None]  # octaves re 1 kHz
    tilt = _uniform(generator, b, -max_db / 4, max_db / 4)[:, None] * logf.clamp(-3, 3) / 3
    centres = _uniform(generator, b * 3, -2.5, 3.0).view(b, 3, 1)
    widths = _uniform(generator, b * 3, 0.3, 1.2).view(b, 3, 1)
    heights = _uniform(generator, b * 3, -max_db, max_db).view(b, 3, 1)
    bumps = (heights * torch.exp(-0.5 * ((logf[:, None] - centres) / widths) ** 2)).sum(1)
    return fft_filter(x, 10 ** ((tilt + bumps) / 20))


def gain_and_clip(x: torch.Tensor, gain_db: torch.Tensor, clip: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Scale rows by ``gain_db`` [B]; where ``clip`` [B] < 1, hard-clip at that fraction of
    the row's new peak."""
    y = x * (10 ** (gain_db / 20))[:, None]
    if clip is not None:
        lim = (y.abs().amax(-1) * clip).clamp(min=1e-9)[:, None]
        y = torch.maximum(torch.minimum(y, lim), -lim)
    return y


def codec(x: np.ndarray, fmt: str = "ogg", sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Encode ``x`` [T] with a lossy codec through libsndfile (``ogg``: Vorbis, ``mp3``: MPEG
    layer III where libsndfile has it) and decode it again; same length."""
    import soundfile as sf

    fmt_, sub = {"ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}[fmt]
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1, 1), sample_rate, format=fmt_, subtype=sub)
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    y = y[: len(x)]
    return np.pad(y, (0, len(x) - len(y))).astype(np.float32)


# ----------------------------------------------------------------------------- the chain

class Augmenter:
    """Draw the augmentations of a batch from a seed and apply them (see the module doc)."""

    def __init__(self, config: AugmentConfig | None = None):
        self.config = config or AugmentConfig()

    def __call__(self, x: torch.Tensor, seed: int, lengths: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """Augment ``x`` [B, T] (float, 16 kHz); ``lengths`` [B] marks padding. Returns a new
        [B, T] tensor of ``x``'s dtype."""
        c, dtype = self.config, x.dtype
        g = torch.Generator().manual_seed(int(seed))
        x = x.detach().float().cpu()
        b, t = x.shape
        sr = c.sample_rate

        def pick(p: float) -> torch.Tensor:
            return torch.rand(b, generator=g) < p

        def where(m: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return torch.where(m[:, None], y, x)

        m = pick(c.p_reverb)
        rt60, drr = _uniform(g, b, *c.rt60), _uniform(g, b, *c.drr_db)
        if m.any():
            rir = room_impulse_responses(rt60[m], drr[m], sr, g)
            y = x.clone()
            y[m] = reverberate(x[m], rir)
            x = _valid(y, lengths)
        m_noise, m_bab = pick(c.p_noise), pick(c.p_babble)
        snr, snr_b, expo = _uniform(g, b, *c.snr_db), _uniform(g, b, *c.snr_db), \
            _uniform(g, b, 0.0, 2.0)
        if m_bab.any():
            x = where(m_bab, add_noise(x, babble(x, c.babble_talkers, g, lengths), snr_b,
                                       lengths), x)
        if m_noise.any():
            x = where(m_noise, add_noise(x, coloured_noise((b, t), expo, g), snr, lengths), x)
        m = pick(c.p_eq)
        if m.any():
            x = where(m, mic_eq(x, g, c.eq_db, sr), x)
        m_tel, m_low = pick(c.p_telephone), pick(c.p_bandlimit)
        cut = _uniform(g, b, *c.cutoff_hz)
        if m_low.any():
            x = where(m_low & ~m_tel, lowpass(x, cut, sr), x)
        if m_tel.any():
            x = where(m_tel, telephone(x, sr), x)
        gain = _uniform(g, b, *c.gain_db)
        clip = torch.where(pick(c.p_clip), _uniform(g, b, *c.clip_level), torch.ones(b))
        x = gain_and_clip(x, gain, clip)
        m, fmt = pick(c.p_codec), torch.rand(b, generator=g) < 0.5
        for i in m.nonzero().flatten().tolist():
            n = t if lengths is None else int(lengths[i])
            x[i, :n] = torch.from_numpy(codec(x[i, :n].numpy(), "mp3" if fmt[i] else "ogg", sr))
        return _valid(x, lengths).to(dtype)
