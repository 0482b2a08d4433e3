"""``speechlm eval continue``: judge voice continuations of held-out prompts.

For each prompt (the first ``prompt_seconds`` of a held-out utterance) the model samples
``num_samples`` continuations. Each continuation (the audio after the prompt) is judged on:

* voice kept: Resemblyzer similarity between the *original* prompt audio and the continuation;
* quality: DNSMOS overall of the continuation, next to the original prompt's;
* content: the pocketsphinx transcript, and whether it is non-empty;
* loops and diversity: auto-BLEU (bigrams) and the longest repeated n-gram of the generated
  units, a loop detector, self-BLEU over the samples of one prompt, the silence ratio;
* speaking rate: deduplicated units per second of non-silent speech, with prompt and
  continuation both re-tokenized from audio by the same tokenizer, as a ratio.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from speechlm.audio import FRAME_SIZE, load_audio, save_audio
from speechlm.eval.resynth import _safe, select_items

log = logging.getLogger(__name__)

TARGETS = {"similarity_min": 0.75, "dnsmos_drop_max": 0.3, "rate_ratio_within": 0.2,
           "loops_max": 0, "silent_max": 0}


def _mean(xs) -> float | None:
    xs = [float(x) for x in xs if x is not None and np.isfinite(x)]
    return round(float(np.mean(xs)), 4) if xs else None


def evaluate_continuation(model: str = "default", data: str = "test",
                          corpus: str | None = "data/corpus", per_voice: int = 4,
                          num_samples: int = 3, prompt_seconds: float = 3.0,
                          seconds: float = 5.0, temperature: float = 0.8, seed: int = 0,
                          figures: str | None = None, audio_out: str | None = None,
                          progress: bool = True, vocoder: str | None = None,
                          max_figures: int = 0) -> dict[str, Any]:
    """Run the continuation report; returns the JSON report.

    With ``figures``, one PNG is drawn for the first sample of the first prompt of each voice
    (at most ``max_figures``; 0: no limit)."""
    from speechlm.eval import continuation as cm
    from speechlm.eval.judges import Judges
    from speechlm.pipeline import SpeechLM

    m = SpeechLM.load(model, vocoder=vocoder)
    sr = m.sample_rate
    held_out = set(m.vocoder.training.get("holdout_voices") or [])
    need = int((prompt_seconds + 0.5) * sr)
    items = select_items(data, corpus, 0, seed)
    rng = np.random.default_rng(seed)
    by_voice: dict[str, list] = {}
    for it in items:
        by_voice.setdefault(it["voice"], []).append(it)
    chosen = []
    for v in sorted(by_voice):
        group = by_voice[v]
        order = rng.permutation(len(group))
        picked = 0
        for i in order:
            if per_voice and picked >= per_voice:
                break
            info_len = load_audio(group[i]["path"]).numel()
            if info_len >= need:
                chosen.append(group[i])
                picked += 1
    judges = Judges()
    rows = []
    drawn: set[str] = set()
    for k, it in enumerate(tqdm(chosen, desc="eval continue", disable=not progress)):
        wav = load_audio(it["path"])[: int(prompt_seconds * sr)]
        wav_np = wav.numpy()
        p_units = m.tokenize(wav)
        p_rate = cm.speaking_rate(p_units, wav_np, sr)
        p_dnsmos = judges.quality.score(wav_np, sr)["ovrl"]
        t0 = time.perf_counter()
        outs = m.continue_audio(wav, seconds=seconds, temperature=temperature,
                                num_samples=num_samples, seed=seed * 1000 + 10 * k)
        elapsed = time.perf_counter() - t0
        outs = outs if isinstance(outs, list) else [outs]
        samples = []
        for j, o in enumerate(outs):
            start = int(round(o.prompt_seconds * sr))
            cont = o.waveform[start:].numpy()
            c_units = m.tokenize(cont) if len(cont) > FRAME_SIZE else None
            gen = o.generated_units.ids.numpy()
            s: dict[str, Any] = {
                "seed": o.seed, "seconds": round(len(cont) / sr, 3),
                "asr": judges.asr.transcribe(cont, sr) if len(cont) > FRAME_SIZE else "",
                "similarity": _safe(judges.speaker.similarity, wav_np, sr, cont, sr),
                "dnsmos": (_safe(judges.quality.score, cont, sr) or {}).get("ovrl"),
                "auto_bleu2": cm.auto_bleu(gen, 2),
                "longest_repeat": cm.longest_repeated_ngram(gen),
                "loop": bool(cm.is_loop(gen)), "silence_ratio": cm.silence_ratio(cont, sr),
                "silent": bool(cm.is_silent(cont, sr)),
                "rate": cm.speaking_rate(c_units, cont, sr) if c_units is not None else None,
                "units": gen.tolist()}
            s["nonempty"] = bool(s["asr"].strip())
            s["rate_ratio"] = (cm.rate_ratio(s["rate"], p_rate) if s["rate"] is not None
                               else None)
            samples.append(s)
            if audio_out:
                save_audio(Path(audio_out) / f"{it['name'].replace('/', '_')}-{j + 1}.wav",
                           o.waveform, sr)
        if figures and it["voice"] not in drawn and (not max_figures
                                                     or len(drawn) < max_figures):
            drawn.add(it["voice"])
            from speechlm.eval.figures import plot_continuation
            from speechlm.units import Units

            o = outs[0]
            full = Units(torch.cat([o.prompt_units.ids, o.generated_units.ids]),
                         o.prompt_units.frame_rate, o.prompt_units.n_units,
                         o.prompt_units.unit_space,
                         torch.cat([o.prompt_units.durations, o.generated_units.durations]))
            plot_continuation(Path(figures) / f"{it['name'].replace('/', '_')}.png",
                              o.waveform, sr, full, o.prompt_seconds,
                              title=f"{it['name']} (seed {o.seed})")
        rows.append({"name": it["name"], "voice": it["voice"], "held_out": it["voice"] in held_out,
                     "prompt_text": it["text"], "prompt_dnsmos": p_dnsmos,
                     "prompt_rate": p_rate, "self_bleu4": cm.self_bleu(
                         [s["units"] for s in samples], 4) if len(samples) > 1 else None,
                     "seconds_compute": round(elapsed, 3), "samples": samples})

    def aggregate(sel: list[dict]) -> dict[str, Any]:
        ss = [s for r in sel for s in r["samples"]]
        if not ss:
            return {"prompts": 0}
        agg = {"prompts": len(sel), "continuations": len(ss),
               "similarity": _mean(s["similarity"] for s in ss),
               "dnsmos": _mean(s["dnsmos"] for s in ss),
               "prompt_dnsmos": _mean(r["prompt_dnsmos"] for r in sel),
               "nonempty_share": round(float(np.mean([s["nonempty"] for s in ss])), 4),
               "auto_bleu2": _mean(s["auto_bleu2"] for s in ss),
               "self_bleu4": _mean(r["self_bleu4"] for r in sel),
               "longest_repeat": _mean(s["longest_repeat"] for s in ss),
               "loops": int(sum(s["loop"] for s in ss)),
               "silent": int(sum(s["silent"] for s in ss)),
               "silence_ratio": _mean(s["silence_ratio"] for s in ss),
               "rate_ratio": _mean(s["rate_ratio"] for s in ss),
               "rate_within_20pct": round(float(np.mean([
                   s["rate_ratio"] is not None and abs(s["rate_ratio"] - 1) <= 0.2
                   for s in ss])), 4)}
        agg["dnsmos_drop"] = (round(agg["prompt_dnsmos"] - agg["dnsmos"], 4)
                              if agg["dnsmos"] is not None else None)
        agg["targets"] = {
            "similarity": (agg["similarity"] or 0) >= TARGETS["similarity_min"],
            "dnsmos": agg["dnsmos_drop"] is not None
            and agg["dnsmos_drop"] <= TARGETS["dnsmos_drop_max"],
            "speaking_rate": agg["rate_ratio"] is not None
            and abs(agg["rate_ratio"] - 1) <= TARGETS["rate_ratio_within"],
            "no_loops": agg["loops"] <= TARGETS["loops_max"],
            "no_silence": agg["silent"] <= TARGETS["silent_max"]}
        return agg

    groups = {"training voices": [r for r in rows if not r["held_out"]],
              "held-out voices": [r for r in rows if r["held_out"]]}
    return {"format": "speechlm.eval-continue", "version": 1, "model": str(model),
            "vocoder": str(vocoder or "model's"),
            "unit_space": m.unit_space, "data": str(data), "per_voice": per_voice,
            "num_samples": num_samples, "prompt_seconds": prompt_seconds, "seconds": seconds,
            "temperature": temperature, "seed": seed, "targets": TARGETS,
            "held_out_voices": sorted(held_out),
            "groups": {k: aggregate(v) for k, v in groups.items() if v},
            "voices": {v: aggregate([r for r in rows if r["voice"] == v])
                       for v in sorted({r["voice"] for r in rows})},
            "prompts": rows}


def continuation_markdown(report: dict[str, Any]) -> str:
    def f(x, spec=".3f"):
        return "-" if x is None else format(x, spec)

    head = ("| voices | prompts x samples | speaker sim | DNSMOS prompt | DNSMOS cont. | "
            "ASR non-empty | auto-BLEU-2 | self-BLEU-4 | longest repeat | loops | silent | "
            "silence ratio | rate ratio | rate within 20% |")
    lines = [head, "|" + "---|" * 14]

    def add(label, a):
        lines.append(f"| {label} | {a['prompts']} x {report['num_samples']} | "
                     f"{f(a['similarity'])} | {f(a['prompt_dnsmos'], '.2f')} | "
                     f"{f(a['dnsmos'], '.2f')} | {f(a['nonempty_share'], '.2f')} | "
                     f"{f(a['auto_bleu2'])} | {f(a['self_bleu4'])} | "
                     f"{f(a['longest_repeat'], '.1f')} | {a['loops']} | {a['silent']} | "
                     f"{f(a['silence_ratio'])} | "
                     f"{f(a['rate_ratio'], '.2f')} | {f(a['rate_within_20pct'], '.2f')} |")

    for g, a in report["groups"].items():
        add(g, a)
    lines += ["", "Targets (training voices): " + ", ".join(
        f"{k} {'met' if v else 'missed'}" for k, v in
        report["groups"].get("training voices", {}).get("targets", {}).items()), "",
        "| voice | prompts | speaker sim | DNSMOS cont. | loops | silent | rate ratio |",
        "|---|---|---|---|---|---|---|"]
    for v, a in report["voices"].items():
        if a.get("prompts"):
            lines.append(f"| {v}{' (held out)' if v in report['held_out_voices'] else ''} | "
                         f"{a['prompts']} | {f(a['similarity'])} | {f(a['dnsmos'], '.2f')} | "
                         f"{a['loops']} | {a['silent']} | {f(a['rate_ratio'], '.2f')} |")
    return "\n".join(lines)
