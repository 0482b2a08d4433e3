"""Augmentation speed, in x real time, against the peer a user would write with torchaudio.

speechlm: ``Augmenter`` with every vectorised augmentation switched on for every utterance
(reverberation, coloured noise, babble, EQ, band-limit/telephone, gain and clipping: the worst
case; the default config applies each to a share of the batch only).
Peer: the same chain from torchaudio's functional ops on the same batch: ``fftconvolve`` with a
room impulse response, ``add_noise`` (noise and babble), ``equalizer_biquad`` (three bands),
``lowpass_biquad`` / ``highpass_biquad`` (band-limit and telephone band), gain and clamp.

The lossy codec (per item, through libsndfile) is timed separately. The best of ``--repeats``
passes is reported; ``ratio`` > 1 means speechlm is faster than the peer.

    .venv/bin/python benchmarks/bench_augment.py [--batch 16] [--seconds 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torchaudio.functional as AF

from speechlm.data.augment import AugmentConfig, Augmenter, codec, room_impulse_responses

SR = 16000


def best(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def peer(x: torch.Tensor, rir: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    y = AF.fftconvolve(x, rir)[:, : x.shape[-1]]
    y = AF.add_noise(y, noise, torch.full((b,), 15.0))
    y = AF.add_noise(y, x.roll(1, 0), torch.full((b,), 15.0))
    for f, g in ((200.0, 3.0), (1500.0, -4.0), (5000.0, 2.0)):
        y = AF.equalizer_biquad(y, SR, f, g, 0.9)
    y = AF.lowpass_biquad(y, SR, 3400.0)
    y = AF.highpass_biquad(y, SR, 300.0)
    return (y * 0.8).clamp(-0.7, 0.7)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=16, help="utterances per batch")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds per utterance")
    ap.add_argument("--repeats", type=int, default=5, help="passes; the best is reported")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch, int(a.seconds * SR), generator=g) * 0.1
    all_on = AugmentConfig(p_reverb=1, p_noise=1, p_babble=1, p_eq=1, p_bandlimit=1,
                           p_telephone=0.5, p_clip=1)
    aug = Augmenter(all_on)
    default = Augmenter(AugmentConfig())
    rir = room_impulse_responses(torch.full((a.batch,), 0.6), torch.zeros(a.batch), SR, g)
    noise = torch.randn(x.shape, generator=g)
    audio_s = a.batch * a.seconds
    t_ours = best(lambda: aug(x, seed=0), a.repeats)
    t_default = best(lambda: default(x, seed=0), a.repeats)
    t_peer = best(lambda: peer(x, rir, noise), a.repeats)
    t_codec = best(lambda: codec(x[0].numpy(), "ogg"), a.repeats)
    print(json.dumps({
        "batch": a.batch, "seconds": a.seconds, "threads": a.threads,
        "speechlm_all_on_x_real_time": round(audio_s / t_ours, 1),
        "speechlm_default_config_x_real_time": round(audio_s / t_default, 1),
        "torchaudio_peer_x_real_time": round(audio_s / t_peer, 1),
        "ratio_all_on_vs_peer": round(t_peer / t_ours, 2),
        "ogg_codec_per_item_x_real_time": round(a.seconds / t_codec, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
