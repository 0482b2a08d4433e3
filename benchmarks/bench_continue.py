"""Voice continuation speed: a 5 s continuation of a 3 s prompt, split by stage, after the
model is loaded; and the model load time in a fresh process.

Targets (issue 5, 2-core CPU): continuation under 2 s of wall time, load under 2 s. The stages
are timed inside one ``SpeechLM.continue_audio``-equivalent call: tokenize the prompt, compute the
voice, sample units with the LM, expand durations + vocode prompt and continuation.

    .venv/bin/python benchmarks/bench_continue.py [--model default] [--prompts 10]
        [--data test|MANIFEST.tsv] [--tokenizer T --lm L --vocoder V]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from _common import emit, speech_files  # noqa: E402  (benchmarks/ is on the path of a script)


def load_time(model: str, stages: dict[str, str | None]) -> float:
    code = ("import time; t=time.perf_counter(); from speechlm import SpeechLM; "
            f"SpeechLM.load({model!r}, **{stages!r}); print(time.perf_counter()-t)")
    runs = [float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                 text=True, cwd=REPO).stdout.strip()) for _ in range(3)]
    return min(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--tokenizer", help="replace the model's tokenizer")
    ap.add_argument("--lm", help="replace the model's LM")
    ap.add_argument("--vocoder", help="replace the model's vocoder")
    ap.add_argument("--data", default="test",
                    help="split of --corpus, or a manifest (.tsv), the prompts come from")
    ap.add_argument("--corpus", help="corpus directory (default: data/corpus)")
    ap.add_argument("--prompts", type=int, default=10, help="test prompts (3 s each)")
    ap.add_argument("--prompt-seconds", type=float, default=3.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--voice-adapt-steps", type=int,
                    help="the vocoder's voice adaptation steps (default: its own setting)")
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args()

    from speechlm.audio import load_audio
    from speechlm.decode import decoder_for
    from speechlm.generate import SamplingOptions, generate
    from speechlm.pipeline import SpeechLM

    swap = {"tokenizer": args.tokenizer, "lm": args.lm, "vocoder": args.vocoder}
    m = SpeechLM.load(args.model, **swap)
    if args.voice_adapt_steps is not None:
        m.vocoder.set_voice_adapt_steps(args.voice_adapt_steps)
    sr = m.sample_rate
    need = int(args.prompt_seconds * sr)
    prompts = []
    for path in speech_files(args.data, 1 if args.data.endswith(".tsv") else 23,
                             corpus=args.corpus):
        w = load_audio(path)
        if len(w) >= need:
            prompts.append(w[:need])
        if len(prompts) == args.prompts:
            break
    stages = {"tokenize": 0.0, "voice": 0.0, "lm": 0.0, "vocoder": 0.0}
    out_seconds = 0.0
    walls = []
    n_new = round(args.seconds * m.units_per_second)
    for k, wav in enumerate([prompts[0]] + prompts):  # the first is a warm-up
        t = [time.perf_counter()]
        units = m.tokenize(wav)
        t.append(time.perf_counter())
        voice = m.vocoder.voice(wav, tokenizer=m.tokenizer)
        t.append(time.perf_counter())
        gen = generate(decoder_for(m.lm, m.lm_weights), units.ids,
                       SamplingOptions(max_new_tokens=n_new, seed=k, stop_at_eos=False)).sample(0)
        t.append(time.perf_counter())
        y, _, _ = m.speak_continuation(units, gen, voice)  # duration model + vocoder
        t.append(time.perf_counter())
        if k == 0:
            continue
        for name, a, b in zip(stages, t[:-1], t[1:]):
            stages[name] += b - a
        walls.append(t[-1] - t[0])
        out_seconds += len(y) / sr - args.prompt_seconds
    n = len(walls)
    result = {
        "benchmark": "continue", "model": args.model, "data": args.data,
        **{k: v or "model's" for k, v in swap.items()},
        "voice_adapt_steps": m.vocoder.voice_adapt_steps,
        "prompts": n, "prompt_seconds": args.prompt_seconds, "requested_seconds": args.seconds,
        "units_sampled": n_new, "mean_continuation_seconds": round(out_seconds / n, 2),
        "threads": torch.get_num_threads(),
        "mean_wall_s": round(sum(walls) / n, 3), "max_wall_s": round(max(walls), 3),
        "stages_mean_s": {k: round(v / n, 4) for k, v in stages.items()},
        "x_real_time": round((out_seconds + n * args.prompt_seconds) / sum(walls), 1),
        "load_s": round(load_time(args.model, swap), 3),
        "targets": {"wall_s_max": 2.0, "load_s_max": 2.0},
    }
    return emit(result, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
