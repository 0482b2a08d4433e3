"""Tokenization speed, in x real time, against the peer a user would write by hand.

speechlm: ``Tokenizer.load("mfcc-k100").tokenize_file(path)`` per file (read, resample, MFCC +
deltas in torch, nearest centroid by one matrix product).
Peer: what a user would write by hand for the same units: ``librosa.load(sr=16000)``,
``librosa.stft`` + ``librosa.filters.mel`` (same window, hop, HTK mel scale), ``scipy.fft.dct``,
``librosa.feature.delta`` twice, and scikit-learn ``KMeans.predict`` with the same centroids and
statistics. The two agree on the units (``unit_agreement_with_peer``), so only speed differs.

Both read the same files in the same run; the best of ``--repeats`` passes is reported. A second
part measures the peak memory of tokenizing a one-hour file in a fresh process.

    .venv/bin/python benchmarks/bench_tokenize.py [--files DIR_OR_MANIFEST] [--seconds 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def pick_files(src: str | None, seconds: float) -> list[Path]:
    import soundfile as sf

    if src and src.endswith(".tsv"):
        from speechlm.data.manifest import read_manifest

        files = [u.path for u in read_manifest(src)]
    else:
        root = Path(src) if src else REPO / "data" / "corpus" / "wav"
        if not root.exists():
            root = REPO / "samples"
        files = sorted(root.rglob("*.wav"))
    files = [files[i] for i in np.random.default_rng(0).permutation(len(files))]
    out, total = [], 0.0
    while total < seconds and files:
        for f in files:
            out.append(f)
            total += sf.info(str(f)).duration
            if total >= seconds:
                break
    return out


def run_ours(files):
    from speechlm.tokenizer import Tokenizer

    tok = Tokenizer.load("mfcc-k100")
    return [tok.tokenize_file(f).ids.numpy() for f in files]


def make_peer():
    """librosa + scipy + scikit-learn computing the same units as speechlm's mfcc-k100."""
    import librosa
    import scipy.fft
    from sklearn.cluster import KMeans

    from speechlm.tokenizer import Tokenizer

    q = Tokenizer.load("mfcc-k100").quantizer
    c = q.centroids.numpy().astype(np.float64)
    km = KMeans(n_clusters=len(c), init=c, n_init=1, max_iter=1).fit(c)
    km.cluster_centers_ = c
    mean, std = q.mean.numpy(), q.std.numpy()
    # the same front end: 25 ms periodic Hann, 20 ms hop, no padding, HTK mel, natural log
    mel = librosa.filters.mel(sr=16000, n_fft=400, n_mels=40, fmin=20, fmax=7600, htk=True,
                              norm=None)

    def peer(files):
        out = []
        for f in files:
            y, _ = librosa.load(str(f), sr=16000)
            power = np.abs(librosa.stft(y, n_fft=400, hop_length=320, win_length=400,
                                        window="hann", center=False)) ** 2
            logmel = np.log(np.maximum(mel @ power, 1e-10))
            m = scipy.fft.dct(logmel, type=2, norm="ortho", axis=0)[:13]
            d1 = librosa.feature.delta(m, width=5, mode="nearest")
            d2 = librosa.feature.delta(d1, width=5, mode="nearest")
            feats = np.concatenate([m, d1, d2]).T
            out.append(km.predict(((feats - mean) / std).astype(np.float64)))
        return out

    return peer


def best_time(fn, files, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(files)
        best = min(best, time.perf_counter() - t)
    return best


def write_hour_file(tmpdir: str, sr: int = 16000) -> str:
    """A one-hour 16 kHz PCM16 file of seeded noise, written a minute at a time."""
    import soundfile as sf

    path = os.path.join(tmpdir, "hour.wav")
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sr, 1, "PCM_16") as f:
        for _ in range(60):
            f.write((rng.normal(0, 0.1, sr * 60)).astype(np.float32))
    return path


def peak_memory_one_hour(tmpdir: str) -> dict:
    """Peak RSS of tokenizing a 1-hour 16 kHz file in chunks vs loading it whole."""
    path = write_hour_file(tmpdir)
    head = ("import resource,sys,torch; from speechlm.tokenizer import Tokenizer;"
            "from speechlm.audio import load_audio; t=Tokenizer.load();")
    tail = "; print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    cases = {
        "import_only": "n=0",
        "tokenize_file_1h": "n=len(t.tokenize_file(sys.argv[1]))",
        "whole_file_1h": "n=len(t.tokenize_wave(load_audio(sys.argv[1])))",
    }
    out = {}
    for name, body in cases.items():
        r = subprocess.run([sys.executable, "-c", head + body + tail, path], capture_output=True,
                           text=True, check=True)
        frames, kb = r.stdout.split()
        out[name] = {"frames": int(frames), "peak_rss_mb": round(int(kb) / 1024, 1)}
    out["audio_float32_mb"] = round(os.path.getsize(path) * 2 / 2**20, 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", help="folder of wavs or a manifest (default: data/corpus)")
    ap.add_argument("--seconds", type=float, default=300.0, help="audio per pass")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-memory", action="store_true", help="skip the one-hour memory test")
    args = ap.parse_args()

    import soundfile as sf
    import torch

    files = pick_files(args.files, args.seconds)
    audio_s = sum(sf.info(str(f)).duration for f in files)
    peer = make_peer()
    ours_units, peer_units = run_ours(files[:20]), peer(files[:20])  # warm-up + agreement
    agree = np.mean(np.concatenate([a == b[: len(a)] for a, b in zip(ours_units, peer_units)]))
    t_ours = best_time(run_ours, files, args.repeats)
    t_peer = best_time(peer, files, args.repeats)
    result = {
        "files": len(files), "audio_seconds": round(audio_s, 1),
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "speechlm_x_realtime": round(audio_s / t_ours, 1),
        "peer_x_realtime": round(audio_s / t_peer, 1),
        "ratio_speechlm_over_peer": round(t_peer / t_ours, 2),
        "unit_agreement_with_peer": round(float(agree), 3),
    }
    if not args.no_memory:
        with tempfile.TemporaryDirectory() as d:
            result["memory"] = peak_memory_one_hour(d)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
