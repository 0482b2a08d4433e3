"""Vocoder speed, in x real time (seconds of audio produced per second), against torchaudio's
Griffin-Lim (32 iterations) in the same run.

speechlm: ``Vocoder.decode(units, voice)`` on frame-rate units of held-out utterances (the
network + its default waveform method: the harmonic-plus-noise stage for the bundled mel-only
vocoders (the default ``whisper-phone-vocoder``, ``phone-vocoder``), WORLD synthesis for a WORLD
vocoder), with each utterance's voice computed beforehand (a voice is computed once per
speaker); the voice cost is reported separately. A vocoder with an intonation model
(:mod:`speechlm.prosody`, in the bundled default) draws its F0 through it; the same vocoder
without it (``use_contour(None)``) is timed too, and the share the model adds is reported.
Peers: ``torchaudio.transforms.GriffinLim(n_iter=32, power=1)`` on the magnitude spectrogram of
the same utterances (given to it for free), with torchaudio's default frames (n_fft 400, hop 200:
the faster, and the ratio's reference) and with the vocoder's own frames (n_fft 1024, hop 160:
what the Griffin-Lim baseline of ``eval resynth`` runs). All use all of torch's threads; the best
of ``--repeats`` passes counts.

With ``--waveform DIR`` (a harmonic-plus-noise waveform stage, :mod:`speechlm.waveform`) two more
sides: ``Vocoder.decode(units, voice, method="hn")`` (the unit network + the waveform stage), and
the waveform stage alone on each utterance's log-mel + F0 (given to it for free, as the
magnitudes are to Griffin-Lim), whose ratio against Griffin-Lim at the same frames (n_fft 1024,
hop 160) is the waveform stage's speed target (>= 2x, >= 150x real time).

    .venv/bin/python benchmarks/bench_vocoder.py [--vocoder whisper-phone-vocoder] [--utterances 30]
        [--waveform outputs/waveform-hn-cpu/model] [--data heldout --corpus data/corpus-v2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from _common import emit, speech_files  # noqa: E402  (benchmarks/ is on the path of a script)

from speechlm.vocoder import DEFAULT_VOCODER  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocoder", default=DEFAULT_VOCODER)
    ap.add_argument("--data", default="test", help="split of data/corpus or a manifest")
    ap.add_argument("--utterances", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--waveform", help="also time this harmonic-plus-noise waveform stage")
    ap.add_argument("--corpus", help="corpus of --data (default data/corpus)")
    args = ap.parse_args()

    import torchaudio

    from speechlm.audio import load_audio
    from speechlm.tokenizer import Tokenizer
    from speechlm.vocoder import HOP, N_FFT, MelSpectrogram, Vocoder

    voc = Vocoder.load(args.vocoder)
    if args.waveform:
        voc.use_waveform(args.waveform)
    tok = Tokenizer.load(voc.training.get("tokenizer") or "mfcc-k100")
    wavs = [load_audio(p) for p in speech_files(args.data, 37, args.utterances, args.corpus)]
    units = [tok.tokenize_wave(w) for w in wavs]
    t0 = time.perf_counter()
    voices = [voc.voice(w) for w in wavs]
    t_voice = time.perf_counter() - t0
    mel = MelSpectrogram()
    with torch.no_grad():
        mags = [mel.magnitude(w[None])[0].T.contiguous() for w in wavs]  # [F, N]
        spec = torchaudio.transforms.Spectrogram(n_fft=400, hop_length=200, power=1.0)
        mags_default = [spec(w) for w in wavs]
    gl = torchaudio.transforms.GriffinLim(n_fft=N_FFT, hop_length=HOP, power=1.0, n_iter=32,
                                          rand_init=False)
    gl_default = torchaudio.transforms.GriffinLim(n_fft=400, hop_length=200, power=1.0, n_iter=32,
                                                  rand_init=False)
    seconds = sum(u.num_frames for u in units) / voc.frame_rate

    def ours():
        for u, v in zip(units, voices):
            voc.decode(u, v)

    def peer():
        with torch.inference_mode():
            for m in mags:
                gl(m)

    def peer_default():
        with torch.inference_mode():
            for m in mags_default:
                gl_default(m)

    sides = [("speechlm", ours), ("griffinlim_32", peer), ("griffinlim_32_default", peer_default)]
    contour = voc.contour
    if contour is not None:
        def ours_without_contour():
            voc.use_contour(None)
            try:
                ours()
            finally:
                voc.contour = contour

        sides.append(("speechlm_no_contour", ours_without_contour))
    if args.waveform:
        from speechlm.audio import f0_track

        with torch.no_grad():
            feats = [(mel(w[None])[0], f0_track(w.numpy())) for w in wavs]

        def ours_hn():
            for u, v in zip(units, voices):
                voc.decode(u, v, method="hn")

        def hn_stage():
            for m, f0 in feats:
                n = min(len(m), len(f0))
                voc.waveform.synthesize(m[:n], f0[:n])

        sides += [("speechlm_hn", ours_hn), ("hn_waveform_stage", hn_stage)]
    best = {}
    for name, fn in sides:
        if name.startswith(("speechlm", "hn")):
            fn()  # warm-up
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        best[name] = min(times)
    result = {
        "benchmark": "vocoder", "vocoder": args.vocoder, "utterances": len(units),
        "audio_seconds": round(seconds, 2), "threads": torch.get_num_threads(),
        "speechlm_x_real_time": round(seconds / best["speechlm"], 1),
        "griffinlim32_default_frames_x_real_time": round(seconds / best["griffinlim_32_default"],
                                                         1),
        "griffinlim32_vocoder_frames_x_real_time": round(seconds / best["griffinlim_32"], 1),
        "ratio_vs_griffinlim_default": round(best["griffinlim_32_default"] / best["speechlm"], 2),
        "ratio_vs_griffinlim_vocoder_frames": round(best["griffinlim_32"] / best["speechlm"], 2),
        "voice_seconds_per_utterance": round(t_voice / len(units), 4),
        "targets": {"x_real_time_min": 50, "ratio_min": 2.0},
    }
    if contour is not None:
        result.update({
            "speechlm_no_contour_x_real_time": round(seconds / best["speechlm_no_contour"], 1),
            "contour_time_share": round(1 - best["speechlm_no_contour"] / best["speechlm"], 3)})
    if args.waveform:
        result.update({
            "waveform": args.waveform,
            "speechlm_hn_x_real_time": round(seconds / best["speechlm_hn"], 1),
            "hn_waveform_stage_x_real_time": round(seconds / best["hn_waveform_stage"], 1),
            "ratio_hn_stage_vs_griffinlim_same_frames": round(
                best["griffinlim_32"] / best["hn_waveform_stage"], 2),
            "hn_targets": {"x_real_time_min": 150, "ratio_min": 2.0}})
    return emit(result, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
