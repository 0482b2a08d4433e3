"""``speechlm eval resynth``: judge the unit vocoder on held-out speech.

For each utterance: tokenize, decode in the utterance's own voice, and compare with the original:
pocketsphinx WER (output and original against the transcript), Resemblyzer speaker similarity
(original vs output), DNSMOS overall (both), F0 correlation / RMSE, and the real-time factor of
tokenize + voice + decode. Voices the vocoder never trained on are reported as their own group.

Methods:
    world-f0    the source F0 contour is given to the vocoder (resynthesis proper)
    world       F0 predicted from units + voice (what LM output gets)
    griffinlim  the log-mel head, inverted by torchaudio Griffin-Lim (32 iterations), F0 given
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from speechlm.audio import load_audio, save_audio
from speechlm.errors import DataError

log = logging.getLogger(__name__)

METHODS = ("world-f0", "world", "griffinlim")
TARGETS = {"wer_ratio_max": 2.0, "similarity_min": 0.80, "dnsmos_drop_max": 0.3}


def select_items(data: str | os.PathLike, corpus: str | os.PathLike | None, per_voice: int,
                 seed: int) -> list[dict[str, Any]]:
    """Utterances to judge: ``{name, path, voice, text}``; ``per_voice`` per voice (0: all),
    drawn with ``seed``. ``data`` is a split name, a manifest or a folder of wav + txt."""
    from speechlm.data.manifest import read_manifest, resolve_manifest

    p = Path(data)
    if p.is_dir():
        items = []
        for wav in sorted(p.glob("*.wav")):
            txt = wav.with_suffix(".txt")
            items.append({"name": wav.stem, "path": wav, "voice": wav.parent.name,
                          "text": txt.read_text().strip() if txt.exists() else None})
        if not items:
            raise DataError(f"{p} has no .wav files")
    else:
        items = [{"name": u.name, "path": u.path, "voice": u.speaker or u.name.split("/")[0],
                  "text": u.text} for u in read_manifest(resolve_manifest(data, corpus))]
    if per_voice:
        rng = np.random.default_rng(seed)
        by_voice: dict[str, list] = {}
        for it in items:
            by_voice.setdefault(it["voice"], []).append(it)
        items = []
        for v in sorted(by_voice):
            group = by_voice[v]
            pick = sorted(rng.choice(len(group), size=min(per_voice, len(group)), replace=False))
            items += [group[i] for i in pick]
    return items


def _safe(judge, *args):
    """A judge's score, or None when it refuses the audio (silent or too short)."""
    from speechlm.errors import AudioError

    try:
        return judge(*args)
    except AudioError as err:
        log.warning("judge skipped: %s", err)
        return None


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    return round(float(np.mean(xs)), 4) if xs else None


def evaluate_resynth(vocoder: str = "unit-vocoder", data: str = "test",
                     corpus: str | None = "data/corpus", per_voice: int = 10,
                     methods: tuple[str, ...] = METHODS, seed: int = 0, progress: bool = True,
                     audio_out: str | None = None) -> dict[str, Any]:
    """Run the harness; returns the JSON report (per utterance and aggregated)."""
    from speechlm.audio import f0_track
    from speechlm.eval.judges import Judges, f0_metrics, utterance_wer, word_error_rate
    from speechlm.tokenizer import Tokenizer
    from speechlm.vocoder import Vocoder

    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise DataError(f"unknown methods {bad}; choose from {', '.join(METHODS)}")
    voc = Vocoder.load(vocoder)
    tok = Tokenizer.load(voc.training.get("tokenizer") or "mfcc-k100")
    held_out = set(voc.training.get("holdout_voices") or [])
    items = select_items(data, corpus, per_voice, seed)
    judges = Judges()
    rows = []
    for it in tqdm(items, desc="eval resynth", disable=not progress):
        wav = load_audio(it["path"])
        sr = voc.sample_rate
        row: dict[str, Any] = {"name": it["name"], "voice": it["voice"], "text": it["text"],
                               "held_out": it["voice"] in held_out,
                               "seconds": round(len(wav) / sr, 3)}
        row["orig"] = {"asr": judges.asr.transcribe(wav.numpy(), sr),
                       "dnsmos": judges.quality.score(wav.numpy(), sr)["ovrl"]}
        if it["text"]:
            row["orig"]["wer"] = utterance_wer(it["text"], row["orig"]["asr"])
        for m in methods:
            t0 = time.perf_counter()
            units = tok.tokenize_wave(wav)
            voice = voc.voice(wav)
            f0 = f0_track(wav.numpy()) if m in ("world-f0", "griffinlim") else None
            y = voc.decode(units, voice, f0=f0,
                           method="griffinlim" if m == "griffinlim" else "world")
            elapsed = time.perf_counter() - t0
            y_np = y.numpy()
            res = {"asr": judges.asr.transcribe(y_np, sr),
                   "similarity": _safe(judges.speaker.similarity, wav.numpy(), sr, y_np, sr),
                   "dnsmos": judges.quality.score(y_np, sr)["ovrl"],
                   "seconds_compute": round(elapsed, 4),
                   **{k: (None if v is None or not np.isfinite(v) else round(float(v), 4))
                      for k, v in f0_metrics(wav.numpy(), y_np, sr).items()}}
            if it["text"]:
                res["wer"] = utterance_wer(it["text"], res["asr"])
            row[m] = res
            if audio_out:
                save_audio(Path(audio_out) / m / f"{it['name'].replace('/', '_')}.wav", y, sr)
        rows.append(row)

    def aggregate(sel: list[dict]) -> dict[str, Any]:
        texts = [r["text"] for r in sel if r["text"]]
        out: dict[str, Any] = {"n": len(sel), "seconds": round(sum(r["seconds"] for r in sel), 2)}
        orig: dict[str, Any] = {"dnsmos": _mean([r["orig"]["dnsmos"] for r in sel])}
        if texts:
            orig["wer"] = round(word_error_rate(texts, [r["orig"]["asr"] for r in sel
                                                        if r["text"]]), 4)
        out["orig"] = orig
        for m in methods:
            agg: dict[str, Any] = {
                "similarity": _mean([r[m]["similarity"] for r in sel]),
                "dnsmos": _mean([r[m]["dnsmos"] for r in sel]),
                "f0_corr": _mean([r[m]["f0_corr"] for r in sel]),
                "f0_rmse_hz": _mean([r[m]["f0_rmse_hz"] for r in sel]),
                "vuv_error": _mean([r[m]["vuv_error"] for r in sel]),
                "x_real_time": round(out["seconds"] / max(1e-9, sum(
                    r[m]["seconds_compute"] for r in sel)), 1)}
            if texts:
                agg["wer"] = round(word_error_rate(texts, [r[m]["asr"] for r in sel
                                                           if r["text"]]), 4)
                if orig.get("wer"):
                    agg["wer_ratio"] = round(agg["wer"] / orig["wer"], 3)
            if agg["dnsmos"] is not None and orig["dnsmos"] is not None:
                agg["dnsmos_drop"] = round(orig["dnsmos"] - agg["dnsmos"], 4)
            agg["meets_targets"] = bool(
                (agg.get("wer_ratio") is None or agg["wer_ratio"] <= TARGETS["wer_ratio_max"])
                and (agg["similarity"] or 0) >= TARGETS["similarity_min"]
                and (agg.get("dnsmos_drop") is None
                     or agg["dnsmos_drop"] <= TARGETS["dnsmos_drop_max"]))
            out[m] = agg
        return out

    groups = {"training voices": [r for r in rows if not r["held_out"]],
              "held-out voices": [r for r in rows if r["held_out"]]}
    voices = sorted({r["voice"] for r in rows})
    return {
        "format": "speechlm.eval-resynth", "version": 1, "vocoder": str(vocoder),
        "unit_space": voc.unit_space, "data": str(data), "per_voice": per_voice, "seed": seed,
        "methods": list(methods), "targets": TARGETS, "held_out_voices": sorted(held_out),
        "asr": "pocketsphinx (en-us, bundled model)", "speaker_judge": "Resemblyzer",
        "quality_judge": "DNSMOS (speechmos)",
        "groups": {k: aggregate(v) for k, v in groups.items() if v},
        "voices": {v: aggregate([r for r in rows if r["voice"] == v]) for v in voices},
        "utterances": rows, "threads": torch.get_num_threads(),
    }


def resynth_markdown(report: dict[str, Any]) -> str:
    """The aggregated tables of a report."""
    def fmt(x, spec=".3f"):
        return "-" if x is None else format(x, spec)

    lines = ["| voices | method | n | WER orig | WER out | speaker sim | DNSMOS orig | "
             "DNSMOS out | F0 corr | F0 RMSE Hz | x real time | targets |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def add(label: str, agg: dict[str, Any]) -> None:
        for m in report["methods"]:
            a = agg[m]
            lines.append(
                f"| {label} | {m} | {agg['n']} | {fmt(agg['orig'].get('wer'))} | "
                f"{fmt(a.get('wer'))} | {fmt(a['similarity'])} | "
                f"{fmt(agg['orig']['dnsmos'], '.2f')} | {fmt(a['dnsmos'], '.2f')} | "
                f"{fmt(a['f0_corr'])} | {fmt(a['f0_rmse_hz'], '.1f')} | "
                f"{fmt(a['x_real_time'], '.1f')} | {'met' if a['meets_targets'] else 'missed'} |")

    for g, agg in report["groups"].items():
        add(g, agg)
    lines += ["", "Per voice (" + report["methods"][0] + "):", "",
              "| voice | n | WER orig | WER out | speaker sim | DNSMOS orig | DNSMOS out |",
              "|---|---|---|---|---|---|---|"]
    m = report["methods"][0]
    for v, agg in report["voices"].items():
        a = agg[m]
        lines.append(f"| {v}{' (held out)' if v in report['held_out_voices'] else ''} | "
                     f"{agg['n']} | {fmt(agg['orig'].get('wer'))} | {fmt(a.get('wer'))} | "
                     f"{fmt(a['similarity'])} | {fmt(agg['orig']['dnsmos'], '.2f')} | "
                     f"{fmt(a['dnsmos'], '.2f')} |")
    return "\n".join(lines)
