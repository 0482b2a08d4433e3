"""Speed and memory of a phone-encoder tokenizer, in x real time, against two peers in the same run.

speechlm: ``Tokenizer.load(DIR).tokenize_file(path)`` per file: the phone encoder in 8 s windows
with 1 s of context each side, posteriors, nearest centroid, the unit-change smoothing; the same
with ``with_precision("bf16")`` (the encoder under bfloat16 autocast), with the share of frames
whose unit it changes; and ``tokenize_files(paths)`` (what ``speechlm tokenize`` runs): one
worker thread per torch thread, each encoding whole files or chunks on one core; and that
path with the input band-limited (``with_band_limit``, ``--band-limit``: one FFT low-pass per
chunk before the encoder), against the full band; and that path with the speed ensemble
(``with_speeds``, ``--speeds``: one encoder pass per speed), against one pass.
Peers, on the same files:
  * naive: what a user would write with the same model: one whole-file forward pass
    (``model(wav)``, attention over every frame), softmax, nearest centroid by ``torch.cdist``;
  * mfcc-k100: the bundled default tokenizer it would replace.
A second part measures the peak memory of tokenizing a one-hour file in a fresh process.

    .venv/bin/python benchmarks/bench_phone_tokenize.py [--tokenizer phone-k100] \\
        [--files data/corpus-v2/test.tsv] [--seconds 120]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tokenize import best_time, pick_files, write_hour_file  # noqa: E402


def naive(tok_dir: str):
    import torch

    from speechlm.audio import load_audio
    from speechlm.tokenizer import Tokenizer

    tok = Tokenizer.load(tok_dir)
    enc, q = tok.encoder, tok.quantizer
    cents = q.centroids * q.std + q.mean  # back in feature space

    def run(files):
        out = []
        with torch.inference_mode():
            for f in files:
                x, _ = enc.model(load_audio(f)[None])
                post = enc.head(x)[0].softmax(-1)
                d = torch.cdist((post - q.mean) / q.std, (cents - q.mean) / q.std)
                out.append(d.argmin(-1).numpy())
        return out

    return run


def peak_memory_one_hour(tok_dir: str, tmpdir: str, workers: bool = False) -> dict:
    """Tokenize a one-hour file in a fresh process: frames, peak RSS, wall time with load
    (``workers``: its chunks spread over worker threads by ``tokenize_files``)."""
    path, sr = write_hour_file(tmpdir), 16000
    call = "next(t.tokenize_files([sys.argv[1]]))" if workers else "t.tokenize_file(sys.argv[1])"
    code = ("import resource,sys; from speechlm.tokenizer import Tokenizer;"
            f"t=Tokenizer.load(sys.argv[2]); n=len({call});"
            "print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, path, tok_dir], capture_output=True,
                       text=True, check=True)
    wall = time.perf_counter() - t0
    frames, kb = r.stdout.split()
    return {"frames": int(frames), "peak_rss_mb": round(int(kb) / 1024, 1),
            "wall_s_incl_load": round(wall, 1), "audio_float32_mb": round(sr * 3600 * 4 / 2**20, 1)}


def memory_one_hour(tok_dir: str) -> dict:
    """``memory_1h`` and ``memory_1h_workers``: :func:`peak_memory_one_hour` through
    ``tokenize_file`` and through ``tokenize_files``, on one temporary one-hour file."""
    with tempfile.TemporaryDirectory() as d:
        return {"memory_1h": peak_memory_one_hour(tok_dir, d),
                "memory_1h_workers": peak_memory_one_hour(tok_dir, d, workers=True)}

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default="phone-k100",
                    help="a phone-encoder tokenizer directory")
    ap.add_argument("--files", default="data/corpus-v2/test.tsv",
                    help="folder of wavs or a manifest")
    ap.add_argument("--seconds", type=float, default=120.0, help="audio per pass")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--band-limit", type=float, default=6400.0,
                    help="cut-off (Hz) of the band-limited workers row")
    ap.add_argument("--speeds", default="0.85,1,1.15",
                    help="speed factors of the speed-ensemble workers row")
    ap.add_argument("--no-memory", action="store_true", help="skip the one-hour memory test")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()

    import soundfile as sf
    import torch

    from speechlm.tokenizer import Tokenizer

    tok, mfcc = Tokenizer.load(args.tokenizer), Tokenizer.load("mfcc-k100")
    files = pick_files(args.files, args.seconds)
    audio_s = sum(sf.info(str(f)).duration for f in files)
    peer = naive(args.tokenizer)

    tok16 = tok.with_precision("bf16")
    tok_band = tok.with_band_limit(args.band_limit)
    tok_speeds = tok.with_speeds(args.speeds)

    def ours(fs):
        return [tok.tokenize_file(f).ids.numpy() for f in fs]

    def ours_bf16(fs):
        return [tok16.tokenize_file(f).ids.numpy() for f in fs]

    def default(fs):
        return [mfcc.tokenize_file(f).ids.numpy() for f in fs]

    def ours_workers(fs):
        return [u.ids.numpy() for u in tok.tokenize_files(fs)]

    def ours_band(fs):
        return [u.ids.numpy() for u in tok_band.tokenize_files(fs)]

    def ours_speeds(fs):
        return [u.ids.numpy() for u in tok_speeds.tokenize_files(fs)]

    ours(files[:3]), ours_bf16(files[:3]), peer(files[:3]), default(files[:3])  # warm-up
    ours_workers(files[:3]), ours_band(files[:3]), ours_speeds(files[:3])
    t_ours = best_time(ours, files, args.repeats)
    t_workers = best_time(ours_workers, files, args.repeats)
    t_band = best_time(ours_band, files, args.repeats)
    t_speeds = best_time(ours_speeds, files, args.repeats)
    same = all((x == y).all() for x, y in zip(ours_workers(files), ours(files)))
    t_bf16 = best_time(ours_bf16, files, args.repeats)
    a, b = ours(files), ours_bf16(files)
    agreement = sum(int((x == y).sum()) for x, y in zip(a, b)) / sum(len(x) for x in a)
    t_naive = best_time(peer, files, args.repeats)
    t_mfcc = best_time(default, files, args.repeats)
    result = {
        "tokenizer": tok.unit_space, "files": len(files), "audio_seconds": round(audio_s, 1),
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # the CLI sets PASSIVE (speechlm/cli/__init__.py); a script or the API gets OpenMP's
        # default unless the environment says otherwise: the two differ ~2x here
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "speechlm_x_realtime": round(audio_s / t_ours, 1),
        "speechlm_bf16_x_realtime": round(audio_s / t_bf16, 1),
        # tokenize_files: one worker thread per torch thread, one core each (the CLI's path)
        "speechlm_workers_x_realtime": round(audio_s / t_workers, 1),
        "ratio_workers_over_per_file": round(t_ours / t_workers, 2),
        "workers_units_equal_per_file": bool(same),
        "band_limit_hz": args.band_limit,
        "speechlm_workers_band_limit_x_realtime": round(audio_s / t_band, 1),
        "ratio_band_limit_over_full_band": round(t_workers / t_band, 3),
        "speeds": list(tok_speeds.speeds or ()),
        "speechlm_workers_speeds_x_realtime": round(audio_s / t_speeds, 1),
        "ratio_speeds_over_one_pass": round(t_workers / t_speeds, 3),
        "bf16_frame_agreement_with_fp32": round(agreement, 4),
        "ratio_bf16_over_fp32": round(t_ours / t_bf16, 2),
        "naive_whole_file_x_realtime": round(audio_s / t_naive, 1),
        "mfcc_k100_x_realtime": round(audio_s / t_mfcc, 1),
        "ratio_over_naive": round(t_naive / t_ours, 2),
        "ratio_workers_over_naive": round(t_naive / t_workers, 2),
        "ratio_over_mfcc_k100": round(t_mfcc / t_ours, 3),
    }
    if not args.no_memory:
        result.update(memory_one_hour(args.tokenizer))
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
