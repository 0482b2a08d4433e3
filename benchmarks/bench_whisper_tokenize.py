"""Speed and memory of a Whisper-encoder tokenizer, in x real time, against peers in the same run.

speechlm: ``Tokenizer.load(DIR).tokenize_file(path)`` per file (Whisper tiny.en's audio encoder
in torch, float32, read to the tokenizer's layer, in windows of 20 s with 5 s of context each
side; nearest centroid) and ``tokenize_files(paths)`` (what ``speechlm tokenize`` runs: one
worker thread per torch thread). Peers, on the same files:
  * ct2-30s: what a user would write with the same model: faster-whisper's feature extractor
    and CTranslate2's own encoder (int8, the runtime the ASR judge uses), each file padded to
    Whisper's 30 s input, and the nearest centroid of its last layer. It gives other units (the
    last layer, not the tokenizer's): a speed peer only;
  * phone-k100: the phone bundle's tokenizer, and whisper-k100, the bundled k-means over layer 3
    (the default until the Whisper phone head's units, whisper-phone, replaced it).
A Whisper phone head's tokenizer (``--tokenizer whisper-phone``, the bundled default, layer 4:
what CTranslate2 gives) is measured the same way; its ct2 peer applies the head to CTranslate2's
last layer. The same tokenizer with ``precision="int8"`` (``speechlm tokenize --precision
int8``: Whisper's linear layers in int8) is timed on the workers' path in the same run, with the
share of its deduplicated units that differ from float32's (edit distance over the float32
string, all files pooled).
A second part measures the peak memory of tokenizing a one-hour file in a fresh process.

    .venv/bin/python benchmarks/bench_whisper_tokenize.py \\
        [--tokenizer whisper-phone] [--files data/corpus-v2/test.tsv]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from bench_phone_tokenize import memory_one_hour  # noqa: E402
from bench_tokenize import best_time, pick_files  # noqa: E402


def ct2_peer(tok, threads: int):
    import ctranslate2
    import numpy as np
    import torch

    from speechlm.audio import load_audio
    from speechlm.eval.asr import _load_whisper, whisper_model_dir

    model = _load_whisper(str(whisper_model_dir()), threads)
    q = tok.quantizer
    head = getattr(tok.encoder, "head", None)  # a Whisper phone head reads the last layer

    def features(h: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(h)
        if head is None:
            return x
        with torch.inference_mode():
            frame, ctc = head(x[None])
        return (ctc if tok.encoder.output == "ctc" else frame)[0].softmax(-1)

    def run(files):
        out = []
        for f in files:
            mel = model.feature_extractor(load_audio(f).numpy())
            n = mel.shape[1] // 2
            x = np.zeros((1, 80, 3000), np.float32)
            x[0, :, :min(3000, mel.shape[1])] = mel[:, :3000]
            h = model.model.encode(ctranslate2.StorageView.from_array(x), to_cpu=True)
            out.append(q.encode(features(np.array(h)[0, :n])).numpy())
        return out

    return run


def unit_edit_share(ref, hyp) -> float:
    """Edits (Levenshtein) turning each file's deduplicated ``ref`` units into ``hyp``'s, over
    the ``ref`` units, all files pooled."""
    from speechlm.eval.robustness import dedup_ids, levenshtein

    edits = total = 0
    for a, b in zip(ref, hyp):
        a, b = dedup_ids(a), dedup_ids(b)
        edits, total = edits + levenshtein(a, b), total + len(a)
    return edits / max(total, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default="whisper-phone",
                    help="a tokenizer over Whisper's encoder: the bundled default, or one "
                    "fitted with --features whisper (e.g. outputs/tokenizers/whisper-l3-k100)")
    ap.add_argument("--files", default="data/corpus-v2/test.tsv", help="folder or manifest")
    ap.add_argument("--seconds", type=float, default=120.0, help="audio per pass")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-memory", action="store_true", help="skip the one-hour memory test")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()

    import soundfile as sf
    import torch

    from speechlm.errors import SpeechLMError
    from speechlm.tokenizer import Tokenizer

    try:
        tok, phone = Tokenizer.load(args.tokenizer), Tokenizer.load("phone-k100")
        bundled = Tokenizer.load("whisper-k100")
    except SpeechLMError as e:
        print(f"bench_whisper_tokenize: {e} (make whisper-units fits one)", file=sys.stderr)
        return 2
    if tok.encoder.config().get("type") not in ("whisper", "whisper-phone"):
        print(f"bench_whisper_tokenize: {args.tokenizer} is not a Whisper tokenizer",
              file=sys.stderr)
        return 2
    files = pick_files(args.files if Path(args.files).exists() else None, args.seconds)
    audio_s = sum(sf.info(str(f)).duration for f in files)
    peer = ct2_peer(tok, torch.get_num_threads())

    def ours(fs):
        return [tok.tokenize_file(f).ids.numpy() for f in fs]

    def ours_workers(fs):
        return [u.ids.numpy() for u in tok.tokenize_files(fs)]

    fast = tok.with_precision("int8")

    def int8_workers(fs):
        return [u.ids.numpy() for u in fast.tokenize_files(fs)]

    def default(fs):
        return [u.ids.numpy() for u in phone.tokenize_files(fs)]

    def whisper_k100(fs):
        return [u.ids.numpy() for u in bundled.tokenize_files(fs)]

    for fn in (ours, ours_workers, int8_workers, default, whisper_k100, peer):  # warm-up
        fn(files[:3])
    t_ours = best_time(ours, files, args.repeats)
    t_workers = best_time(ours_workers, files, args.repeats)
    fp32_units = ours_workers(files)
    same = all((x == y).all() for x, y in zip(fp32_units, ours(files)))
    t_int8 = best_time(int8_workers, files, args.repeats)
    int8_edit = unit_edit_share(fp32_units, int8_workers(files))
    t_peer = best_time(peer, files, args.repeats)
    t_phone = best_time(default, files, args.repeats)
    t_bundled = best_time(whisper_k100, files, args.repeats)
    result = {
        "tokenizer": tok.unit_space, "files": len(files), "audio_seconds": round(audio_s, 1),
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "speechlm_x_realtime": round(audio_s / t_ours, 1),
        "speechlm_workers_x_realtime": round(audio_s / t_workers, 1),
        "workers_units_equal_per_file": bool(same),
        "speechlm_int8_workers_x_realtime": round(audio_s / t_int8, 1),
        "ratio_int8_over_fp32_workers": round(t_workers / t_int8, 3),
        "int8_dedup_unit_edit_share": round(int8_edit, 4),
        "ct2_int8_30s_x_realtime": round(audio_s / t_peer, 1),
        "phone_k100_workers_x_realtime": round(audio_s / t_phone, 1),
        "ratio_workers_over_ct2_30s": round(t_peer / t_workers, 2),
        "ratio_workers_over_phone_k100": round(t_phone / t_workers, 3),
        "whisper_k100_workers_x_realtime": round(audio_s / t_bundled, 1),
        "ratio_workers_over_whisper_k100": round(t_bundled / t_workers, 3),
        "ratio_int8_workers_over_phone_k100": round(t_phone / t_int8, 3),
    }
    if not args.no_memory:
        result.update(memory_one_hour(args.tokenizer))
    return emit(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
