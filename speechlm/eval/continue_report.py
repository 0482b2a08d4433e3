"""``speechlm eval continue``: judge voice continuations of held-out prompts.

For each prompt (the first ``prompt_seconds`` of a held-out utterance) the model samples
``num_samples`` continuations. Each continuation (the audio after the prompt) is judged on:

* voice kept: Resemblyzer similarity between the original prompt audio and the continuation,
  calibrated by the continuation's similarity to the *other* voices of the set and by that of
  two utterances of the prompt's own voice (:class:`~speechlm.eval.harness.SpeakerReferences`);
* quality: DNSMOS overall of the continuation, next to the original prompt's;
* content: what Whisper hears (:mod:`speechlm.eval.content`: mean word probability, share of
  confident words, confident dictionary words per second), placed between a **floor** and a
  **ceiling** measured in the same run and spoken by the same vocoder in the same voice:
  floors are units drawn from a unigram and a bigram model of the LM's training units, the
  ceiling is the true rest of the utterance (its own units, durations predicted as for the LM);
* loops and diversity: auto-BLEU (bigrams) and the longest repeated n-gram of the generated
  units, a loop detector, self-BLEU over the samples of one prompt, the silence ratio;
* speaking rate: deduplicated units per second of non-silent speech, with prompt and
  continuation both re-tokenized from audio by the same tokenizer, as a ratio.

The report has the seen and held-out voices as groups and one row per voice.

A prompt that is not clean (``prompt_perturb``, ``--prompt-perturb``): the model hears a
perturbed copy of each prompt (:func:`speechlm.eval.robustness.perturb`: ``noise20dB``,
``reverb``, ...; the noise seeded per prompt), so its units and its voice come from the
perturbed audio, while every judge compares with the clean prompt: what a user's recording in a
room costs the whole pipeline.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from speechlm.audio import FRAME_SIZE, load_audio, save_audio
from speechlm.eval.harness import (
    HELD_OUT,
    SEEN,
    Item,
    SpeakerReferences,
    by_group,
    cal_dict,
    calibration_summary,
    fmt,
    group_by,
    mark_held_out,
    mean,
    reference_pool,
    safe,
    select_items,
)

log = logging.getLogger(__name__)

TARGETS = {"similarity_min": 0.75, "dnsmos_drop_max": 0.3, "rate_ratio_within": 0.2,
           "loops_max": 0, "silent_max": 0}
FLOORS = ("unigram", "bigram")
CONTENT_KEYS = ("mean_word_prob", "confident_share", "dictionary_words_per_second")
CEILING_MIN_SECONDS = 1.0  # the true rest of an utterance must be this long to be a ceiling
BOOTSTRAP = 1000  # resamples of the prompts for the content positions' intervals
REPORT_VERSION = 3  # 3: intervals over whole voices beside those over prompts


def _content(transcript: Any, seconds: float) -> dict[str, Any]:
    """The counts of :class:`~speechlm.eval.content.ContentMetrics` (poolable) as JSON."""
    from speechlm.eval.content import content_metrics

    return dataclasses.asdict(content_metrics(transcript, seconds))


def _pooled(counts: list[dict[str, Any]]) -> dict[str, float | None]:
    from speechlm.eval.content import ContentMetrics, pool_content

    if not counts:
        return {k: None for k in CONTENT_KEYS}
    c = pool_content(ContentMetrics(**d) for d in counts)
    return {k: mean([getattr(c, k)]) for k in CONTENT_KEYS}


def content_table(rows: list[dict]) -> dict[str, Any]:
    """Pooled content of the LM's continuations, the floors and the ceiling over the prompt
    ``rows`` (the report's per-prompt records), and the LM's position between the higher floor
    (0) and the ceiling (1) per measure (None where undefined)."""
    from speechlm.eval.content import position

    content: dict[str, Any] = {"lm": _pooled([s["content"] for r in rows for s in r["samples"]
                                              if s["content"]])}
    for name in (*(f"floor_{f}" for f in FLOORS), "ceiling"):
        content[name] = _pooled([r["baselines"][name]["content"] for r in rows
                                 if r["baselines"][name]["content"]])
    content["position"], content["halfway_margin"] = {}, {}
    for k in CONTENT_KEYS:  # against the higher of the two floors
        floors = [content[f"floor_{f}"][k] for f in FLOORS
                  if content[f"floor_{f}"][k] is not None]
        vals = (content["lm"][k], max(floors) if floors else None, content["ceiling"][k])
        content["position"][k] = None if None in vals else mean([position(*vals)])
        # the issue's "at least halfway from floor to ceiling" as a difference, not a ratio:
        # LM - (floor + ceiling) / 2 >= 0; its interval does not blow up when the ceiling is
        # barely above the floor
        content["halfway_margin"][k] = (None if None in vals
                                        else round(vals[0] - (vals[1] + vals[2]) / 2, 4))
    return content


def content_intervals(rows: list[dict], fields: tuple[str, ...] = ("position", "halfway_margin"),
                      boot: int = BOOTSTRAP, seed: int = 0, by: str | None = None
                      ) -> dict[str, dict[str, list[float] | None]]:
    """95 % percentile-bootstrap interval of ``content_table(rows)[field]`` per measure, for
    each of ``fields``, from one set of resamples of the prompts, or with ``by`` (a row key,
    e.g. ``"voice"``) of the clusters of rows sharing its value, each drawn whole: prompts of
    one voice are not independent, and resampling them as if they were makes the interval too
    narrow. None where fewer than 2 prompts (clusters) or most resamples leave it undefined."""
    rng = np.random.default_rng(seed)
    draws = {fd: {k: [] for k in CONTENT_KEYS} for fd in fields}
    clusters = (list(group_by(rows, lambda r: r[by]).values()) if by
                else [[r] for r in rows])
    if len(clusters) < 2:
        return {fd: {k: None for k in CONTENT_KEYS} for fd in fields}
    for _ in range(boot):
        table = content_table([r for i in rng.integers(0, len(clusters), len(clusters))
                               for r in clusters[i]])
        for fd in fields:
            for k, v in table[fd].items():
                if v is not None:
                    draws[fd][k].append(v)
    return {fd: {k: ([round(float(np.percentile(d, 2.5)), 3),
                      round(float(np.percentile(d, 97.5)), 3)] if len(d) >= boot / 2 else None)
                 for k, d in per.items()} for fd, per in draws.items()}


def position_intervals(rows: list[dict], boot: int = BOOTSTRAP, seed: int = 0
                       ) -> dict[str, list[float] | None]:
    """95 % percentile-bootstrap interval of each content position, resampling the prompts
    (each with its continuations, floors and ceiling, all of which are sampled or heard
    anew per prompt). None where fewer than 2 prompts or most resamples leave it undefined."""
    return content_intervals(rows, ("position",), boot, seed)["position"]


def halfway_intervals(rows: list[dict], boot: int = BOOTSTRAP, seed: int = 0
                      ) -> dict[str, list[float] | None]:
    """95 % bootstrap interval (over prompts) of each measure's halfway margin, LM minus the
    midpoint of the higher floor and the ceiling: above 0, the LM is past halfway; below, short
    of it; across 0, these prompts cannot tell."""
    return content_intervals(rows, ("halfway_margin",), boot, seed)["halfway_margin"]


def halfway_verdict(ci: list[float] | None) -> str:
    """``"met"`` (the interval above 0), ``"missed"`` (below), else ``"undecided"``."""
    if not ci:
        return "undecided"
    return "met" if ci[0] > 0 else "missed" if ci[1] < 0 else "undecided"


def aggregate_prompts(sel: list[dict]) -> dict[str, Any]:
    """The summary of the prompt records ``sel`` (one group, or one voice)."""
    ss = [s for r in sel for s in r["samples"]]
    if not ss:
        return {"prompts": 0}
    agg: dict[str, Any] = {
        "prompts": len(sel), "continuations": len(ss),
        "similarity": mean(s["similarity"] for s in ss),
        "calibration": calibration_summary([s["calibration"] for s in ss]),
        "dnsmos": mean(s["dnsmos"] for s in ss),
        "prompt_dnsmos": mean(r["prompt_dnsmos"] for r in sel),
        "nonempty_share": round(float(np.mean([s["nonempty"] for s in ss])), 4),
        "auto_bleu2": mean(s["auto_bleu2"] for s in ss),
        "self_bleu4": mean(r["self_bleu4"] for r in sel),
        "longest_repeat": mean(s["longest_repeat"] for s in ss),
        "loops": int(sum(s["loop"] for s in ss)),
        "silent": int(sum(s["silent"] for s in ss)),
        "silence_ratio": mean(s["silence_ratio"] for s in ss),
        "rate_ratio": mean(s["rate_ratio"] for s in ss),
        "tempo": mean(s.get("tempo") for s in ss),  # the pace the vocoder spoke at
        # the pitch level after the prompt: how far the continuation's mean log F0 moves from the
        # prompt's (signed, cents), beside how far the original rest of the utterance moves, and
        # how far the two differ (old reports lack them: None)
        **pitch_summary(sel),
        "rate_within_20pct": round(float(np.mean([
            s["rate_ratio"] is not None and abs(s["rate_ratio"] - 1) <= 0.2
            for s in ss])), 4)}
    content = content_table(sel)
    ci = content_intervals(sel)  # one set of resamples for both
    content["position_ci95"], content["halfway_margin_ci95"] = (
        ci["position"], ci["halfway_margin"])
    civ = content_intervals(sel, by="voice")  # whole voices drawn: the wider, honest interval
    content["position_ci95_voices"], content["halfway_margin_ci95_voices"] = (
        civ["position"], civ["halfway_margin"])
    agg["content"] = content
    agg["dnsmos_drop"] = (round(agg["prompt_dnsmos"] - agg["dnsmos"], 4)
                          if agg["dnsmos"] is not None and agg["prompt_dnsmos"] is not None
                          else None)
    agg["targets"] = {
        "similarity": (agg["similarity"] or 0) >= TARGETS["similarity_min"],
        "dnsmos": agg["dnsmos_drop"] is not None
        and agg["dnsmos_drop"] <= TARGETS["dnsmos_drop_max"],
        "speaking_rate": agg["rate_ratio"] is not None
        and abs(agg["rate_ratio"] - 1) <= TARGETS["rate_ratio_within"],
        "no_loops": agg["loops"] <= TARGETS["loops_max"],
        "no_silence": agg["silent"] <= TARGETS["silent_max"]}
    return agg


PITCH_MIN_VOICED = 20  # voiced 10 ms frames a side needs for its mean log F0


def pitch_shift_cents(prompt: np.ndarray, other: np.ndarray, sr: int) -> float | None:
    """How far ``other``'s mean log F0 lies from ``prompt``'s, in cents (signed; None when
    either has fewer than :data:`PITCH_MIN_VOICED` voiced frames)."""
    from speechlm.audio import f0_track

    means = []
    for x in (prompt, other):
        f0 = f0_track(np.asarray(x, dtype=np.float64), sr) if len(x) > FRAME_SIZE else np.zeros(0)
        v = f0[f0 > 0]
        if len(v) < PITCH_MIN_VOICED:
            return None
        means.append(float(np.log(v).mean()))
    return round(1200.0 / np.log(2.0) * (means[1] - means[0]), 2)


def _mean_of(xs) -> float | None:
    """The mean of ``xs`` that are not None (None when none), to 0.01."""
    vals = [x for x in xs if x is not None]
    return round(float(np.mean(vals)), 2) if vals else None


def pitch_summary(sel: list[dict]) -> dict[str, float | None]:
    from speechlm.eval.compare import pitch_error

    """The pitch-level measures of the prompt records ``sel``: the mean signed move of the
    continuations and of the original rests; the mean error of the continuations against their
    prompt's original rest, and the same for the spoken ceiling and unigram floor and for a
    continuation that stays at the prompt's level (``flat``, the trivial baseline)."""
    ss = [(s.get("pitch_shift_cents"), r.get("rest_pitch_shift_cents"))
          for r in sel for s in r["samples"]]
    rest = [r.get("rest_pitch_shift_cents") for r in sel]
    out = {"pitch_shift_cents": _mean_of(x for x, _ in ss),
           "pitch_shift_cents_original_rest": _mean_of(rest),
           "pitch_error_cents": _mean_of(pitch_error(x, y) for x, y in ss),
           "pitch_error_cents_flat": _mean_of(pitch_error(0.0, y) for y in rest)}
    for b in ("ceiling", "floor_unigram"):
        out[f"pitch_error_cents_{b}"] = _mean_of(pitch_error(
            (r["baselines"].get(b) or {}).get("pitch_shift_cents"),
            r.get("rest_pitch_shift_cents")) for r in sel)
    return out


@dataclasses.dataclass
class Run:
    """What the model (and the baselines) made of one prompt."""

    prompt: np.ndarray  # [T] the prompt audio
    outs: list  # speechlm.pipeline.Continuation, one per sample
    elapsed: float  # seconds to sample and speak them
    baselines: dict[str, tuple[np.ndarray, Any]]  # floor / ceiling name -> (audio, units)
    rest: np.ndarray | None = None  # [T] the original utterance after the prompt


class ContinuationHarness:
    """Select -> run -> score -> aggregate for one model (see the module docstring)."""

    def __init__(self, model: str = "default", vocoder: str | None = None, num_samples: int = 3,
                 prompt_seconds: float = 3.0, seconds: float = 5.0, temperature: float = 0.8,
                 seed: int = 0, prompt_perturb: str | None = None):
        from speechlm.eval.judges import Judges
        from speechlm.eval.robustness import perturbation_option
        from speechlm.pipeline import SpeechLM

        self.prompt_perturb = perturbation_option(prompt_perturb, "--prompt-perturb")

        self.m = SpeechLM.load(model, vocoder=vocoder)
        self.sr = self.m.sample_rate
        self.judges = Judges()
        self.num_samples, self.prompt_seconds, self.seconds = num_samples, prompt_seconds, seconds
        self.temperature, self.seed = temperature, seed
        self.refs: SpeakerReferences | None = None
        self.floor_source = ""

    # --- select
    def select(self, data: str, corpus: str | None, per_voice: int,
               reference_voices: str | None = None) -> list[Item]:
        """``per_voice`` utterances of each voice long enough for a prompt and a ceiling
        (``reference_voices``: :func:`~speechlm.eval.harness.reference_pool`)."""
        items = mark_held_out(select_items(data, corpus, 0, self.seed), self.m.vocoder.training)
        need = int((self.prompt_seconds + CEILING_MIN_SECONDS) * self.sr)
        rng = np.random.default_rng(self.seed)
        chosen = []
        for voice in sorted({it.voice for it in items}):
            group = [it for it in items if it.voice == voice]
            picked = 0
            for i in rng.permutation(len(group)):
                if per_voice and picked >= per_voice:
                    break
                if load_audio(group[i].path).numel() >= need:
                    chosen.append(group[i])
                    picked += 1
        self.refs = SpeakerReferences(self.judges.speaker,
                                      reference_pool(items, reference_voices, corpus, self.seed),
                                      load_audio, self.sr, seed=self.seed)
        self._fit_floors(items)
        return chosen

    def _fit_floors(self, items: list[Item]) -> None:
        """Unigram and bigram samplers of the LM's training units (its unit shards), or of the
        evaluated set's units when the shards are not on this machine."""
        from speechlm.eval.content import BigramSampler, UnigramSampler

        n = self.m.n_units
        units_dir = self.m.lm.training.get("units_dir")
        try:
            from speechlm.data.shards import open_shard, utterances

            tokens, _ = open_shard(units_dir, "train")
            seqs = utterances(tokens, n)
            self.floor_source = f"LM training units ({units_dir}, {len(seqs)} utterances)"
        except Exception as err:  # noqa: BLE001 - any missing or unreadable shard
            log.warning("floors: the LM's training units are not readable (%s); fitting the "
                        "floors on the evaluated set instead", err)
            seqs = [self.m.tokenize(load_audio(it.path)).ids.numpy() for it in items]
            self.floor_source = f"units of the evaluated set ({len(seqs)} utterances)"
        self.floors = {"unigram": UnigramSampler.fit(seqs, n), "bigram": BigramSampler.fit(seqs, n)}

    # --- run
    def run(self, item: Item, k: int) -> Run:
        from speechlm.eval.robustness import perturbed_copy

        full = load_audio(item.path)
        n_prompt = int(self.prompt_seconds * self.sr)
        clean = full[:n_prompt]
        wav = perturbed_copy(clean, self.sr, self.prompt_perturb,  # what the model hears
                             self.seed * 1_000_003 + k)
        t0 = time.perf_counter()
        outs = self.m.continue_audio(wav, seconds=self.seconds, temperature=self.temperature,
                                     num_samples=self.num_samples, seed=self.seed * 1000 + 10 * k)
        elapsed = time.perf_counter() - t0
        outs = outs if isinstance(outs, list) else [outs]
        p_units = outs[0].prompt_units
        n_new = len(outs[0].generated_units.ids) or 1
        spk = self.m.vocoder.voice(wav, tokenizer=self.m.tokenizer)
        rest = self.m.tokenize(full[n_prompt:]).ids[:n_new]
        draws = {"unigram": self.floors["unigram"].sample(n_new, seed=self.seed * 1000 + k),
                 "bigram": self.floors["bigram"].sample(n_new, seed=self.seed * 1000 + k,
                                                        after=int(p_units.ids[-1]))}
        baselines = {}
        for name, ids in [*((f"floor_{f}", torch.from_numpy(draws[f])) for f in FLOORS),
                          ("ceiling", rest)]:
            y, new, start = self.m.speak_continuation(p_units, ids, spk, prompt_wav=wav)
            baselines[name] = (y[int(round(start * self.sr)):].numpy(), new)
        return Run(clean.numpy(), outs, elapsed, baselines, full[n_prompt:].numpy())

    # --- score
    def score(self, item: Item, run: Run) -> dict[str, Any]:
        from speechlm.eval import continuation as cm

        sr, x = self.sr, run.prompt
        p_rate = cm.speaking_rate(run.outs[0].prompt_units, x, sr)
        samples = []
        for o in run.outs:
            cont = o.waveform[int(round(o.prompt_seconds * sr)):].numpy()
            heard = len(cont) > FRAME_SIZE
            c_units = self.m.tokenize(cont) if heard else None
            tr = self.judges.asr.transcribe(cont, sr) if heard else None
            gen = o.generated_units.ids.numpy()
            cal = self.refs.calibrate(cont, x, item.voice, item.name) if self.refs else None
            s: dict[str, Any] = {
                "seed": o.seed, "seconds": round(len(cont) / sr, 3), "tempo": round(o.tempo, 4),
                "asr": tr.text if tr else "",
                "content": _content(tr, len(cont) / sr) if tr else None,
                "similarity": safe(self.judges.speaker.similarity, x, sr, cont, sr),
                "calibration": cal_dict(cal),
                "dnsmos": (safe(self.judges.quality.score, cont, sr) or {}).get("ovrl"),
                "auto_bleu2": cm.auto_bleu(gen, 2),
                "longest_repeat": cm.longest_repeated_ngram(gen),
                "loop": bool(cm.is_loop(gen)), "silence_ratio": cm.silence_ratio(cont, sr),
                "silent": bool(cm.is_silent(cont, sr)),
                "rate": cm.speaking_rate(c_units, cont, sr) if c_units is not None else None,
                "pitch_shift_cents": pitch_shift_cents(x, cont, sr),
                "units": gen.tolist()}
            s["nonempty"] = bool(s["asr"].strip())
            s["rate_ratio"] = (cm.rate_ratio(s["rate"], p_rate) if s["rate"] is not None
                               else None)
            samples.append(s)
        baselines = {}
        for name, (y, _) in run.baselines.items():
            tr = self.judges.asr.transcribe(y, sr) if len(y) > FRAME_SIZE else None
            baselines[name] = {"asr": tr.text if tr else "",
                               "content": _content(tr, len(y) / sr) if tr else None,
                               "pitch_shift_cents": pitch_shift_cents(x, y, sr)}
        return {"name": item.name, "voice": item.voice, "held_out": item.held_out,
                "prompt_text": item.text, "prompt_dnsmos": self.judges.quality.score(x, sr)["ovrl"],
                "prompt_rate": p_rate,
                "rest_pitch_shift_cents": None if run.rest is None
                else pitch_shift_cents(x, run.rest, sr),
                "self_bleu4": cm.self_bleu(
                    [s["units"] for s in samples], 4) if len(samples) > 1 else None,
                "seconds_compute": round(run.elapsed, 3), "samples": samples,
                "baselines": baselines}

    # --- aggregate
    def aggregate(self, sel: list[dict]) -> dict[str, Any]:
        return aggregate_prompts(sel)

    # --- figures and audio
    def draw(self, path: Path, item: Item, run: Run) -> None:
        from speechlm.eval.figures import plot_continuation

        o = run.outs[0]
        plot_continuation(path, o.waveform, self.sr, o.prompt_units.concat(o.generated_units),
                          o.prompt_seconds, title=f"{item.name} (seed {o.seed})")

    def save(self, folder: Path, item: Item, run: Run) -> None:
        stem = item.name.replace("/", "_")
        for j, o in enumerate(run.outs):
            save_audio(folder / f"{stem}-{j + 1}.wav", o.waveform, self.sr)
        for name, (y, _) in run.baselines.items():
            save_audio(folder / name / f"{stem}.wav", torch.from_numpy(y), self.sr)


def evaluate_continuation(model: str = "default", data: str = "test",
                          corpus: str | None = "data/corpus", per_voice: int = 4,
                          num_samples: int = 3, prompt_seconds: float = 3.0,
                          seconds: float = 5.0, temperature: float = 0.8, seed: int = 0,
                          figures: str | None = None, audio_out: str | None = None,
                          progress: bool = True, vocoder: str | None = None,
                          max_figures: int = 0,
                          prompt_perturb: str | None = None,
                          reference_voices: str | None = None) -> dict[str, Any]:
    """Run the continuation report; returns the JSON report (``reference_voices``: more voices
    for the speaker calibration's *others* only, :func:`~speechlm.eval.harness.reference_pool`).

    With ``figures``, one PNG is drawn for the first sample of the first prompt of each voice
    (at most ``max_figures``; 0: no limit)."""
    h = ContinuationHarness(model, vocoder, num_samples, prompt_seconds, seconds, temperature,
                            seed, prompt_perturb)
    items = h.select(data, corpus, per_voice, reference_voices)
    rows, drawn = [], set()
    for k, it in enumerate(tqdm(items, desc="eval continue", disable=not progress)):
        run = h.run(it, k)
        rows.append(h.score(it, run))
        if audio_out:
            h.save(Path(audio_out), it, run)
        if figures and it.voice not in drawn and (not max_figures or len(drawn) < max_figures):
            drawn.add(it.voice)
            h.draw(Path(figures) / f"{it.name.replace('/', '_')}.png", it, run)
    groups, voices = by_group(rows, h.aggregate)
    return {"format": "speechlm.eval-continue", "version": REPORT_VERSION, "model": str(model),
            "vocoder": str(vocoder or "model's"),
            "unit_space": h.m.unit_space, "data": str(data), "per_voice": per_voice,
            "num_samples": num_samples, "prompt_seconds": prompt_seconds, "seconds": seconds,
            "temperature": temperature, "seed": seed, "targets": TARGETS,
            "prompt_perturb": h.prompt_perturb,
            **({"reference_voices": str(reference_voices)} if reference_voices else {}),
            "asr": "Whisper tiny.en (int8, faster-whisper)", "floors_fitted_on": h.floor_source,
            "held_out_voices": sorted({r["voice"] for r in rows if r["held_out"]}),
            "groups": groups, "voices": voices, "prompts": rows}


def rescore_report(report: dict[str, Any]) -> dict[str, Any]:
    """A saved report (``--json`` of :func:`evaluate_continuation`) summarised again from its
    per-prompt records by this version's :func:`aggregate_prompts`: new intervals without
    sampling, speaking or hearing anything again. The records are kept as they are.

    Raises:
        ValueError: not a continuation report with per-prompt records.
    """
    if not isinstance(report, dict) or report.get("format") != "speechlm.eval-continue":
        raise ValueError("not a continuation report (format speechlm.eval-continue)")
    rows = report.get("prompts")
    if not isinstance(rows, list) or not rows or not all(
            isinstance(r, dict) and {"voice", "held_out", "samples", "baselines"} <= r.keys()
            for r in rows):
        raise ValueError("the report has no per-prompt records to summarise")
    groups, voices = by_group(rows, aggregate_prompts)
    return {**report, "version": REPORT_VERSION, "groups": groups, "voices": voices}


def continuation_markdown(report: dict[str, Any]) -> str:
    f = fmt
    head = ("| voices | prompts x samples | speaker sim | DNSMOS prompt | DNSMOS cont. | "
            "ASR non-empty | auto-BLEU-2 | self-BLEU-4 | longest repeat | loops | silent | "
            "silence ratio | rate ratio | rate within 20% |")
    lines = [head, "|" + "---|" * 14]
    if report.get("prompt_perturb"):
        lines[:0] = [f"Prompts perturbed ({report['prompt_perturb']}): the model heard the "
                     "perturbed copy; every judge compares with the clean prompt.", ""]

    def add(label, a):
        lines.append(f"| {label} | {a['prompts']} x {report['num_samples']} | "
                     f"{f(a['similarity'])} | {f(a['prompt_dnsmos'], '.2f')} | "
                     f"{f(a['dnsmos'], '.2f')} | {f(a['nonempty_share'], '.2f')} | "
                     f"{f(a['auto_bleu2'])} | {f(a['self_bleu4'])} | "
                     f"{f(a['longest_repeat'], '.1f')} | {a['loops']} | {a['silent']} | "
                     f"{f(a['silence_ratio'])} | "
                     f"{f(a['rate_ratio'], '.2f')} | {f(a['rate_within_20pct'], '.2f')} |")

    groups = [(g, report["groups"][g]) for g in (SEEN, HELD_OUT)
              if report["groups"].get(g, {}).get("prompts")]
    for g, a in groups:
        add(g, a)
    lines.append("")
    for g, a in groups:  # one line per group present (a held-out-only report has no seen line)
        lines.append(f"Targets ({g}): " + ", ".join(
            f"{k} {'met' if v else 'missed'}" for k, v in a.get("targets", {}).items()))
    for g, a in groups:
        if a.get("pitch_error_cents") is not None:
            lines.append(
                f"Pitch level ({g}): the continuation's mean log F0 moves "
                f"{f(a['pitch_shift_cents'], '+.0f')} cents from the prompt's, the original rest "
                f"of the utterance {f(a['pitch_shift_cents_original_rest'], '+.0f')}; the "
                f"continuation's move is off the original's by {f(a['pitch_error_cents'], '.0f')} "
                f"cents (mean absolute); calibration: staying at the prompt's level "
                f"{f(a['pitch_error_cents_flat'], '.0f')}, the true rest's units spoken by the "
                f"same vocoder {f(a['pitch_error_cents_ceiling'], '.0f')}, the unigram floor "
                f"{f(a['pitch_error_cents_floor_unigram'], '.0f')}.")
    lines += ["",
        "Content heard by Whisper, between a floor (units from a unigram / bigram model of the "
        f"training units; {report.get('floors_fitted_on', '')}) and a ceiling (the true rest of "
        "the utterance), all spoken by the same vocoder in the prompt's voice; position 0 = the "
        "higher floor, 1 = the ceiling; its 95 % interval resamples the prompts (floors and "
        "ceiling are sampled and heard anew per prompt, so they move too). The halfway margin "
        "is LM minus the midpoint of the higher floor and the ceiling, with two 95 % "
        "intervals: resampling the prompts, and resampling whole voices (prompts of one voice "
        "are not independent: the wider, and the one the verdict reads where there are 2+ "
        "voices). The target (at least halfway) is met where the interval lies above 0, "
        "missed where below, undecided where it spans 0:", "",
        "| voices | measure | unigram floor | bigram floor | LM | ceiling | position | "
        "95 % interval | halfway margin | 95 % (prompts) | 95 % (voices) | halfway |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for g, a in groups:
        c = a["content"]
        for k in CONTENT_KEYS:
            ci = (c.get("position_ci95") or {}).get(k)
            hm = (c.get("halfway_margin") or {}).get(k)
            hci = (c.get("halfway_margin_ci95") or {}).get(k)
            vci = (c.get("halfway_margin_ci95_voices") or {}).get(k)
            lines.append(f"| {g} | {k.replace('_', ' ')} | {f(c['floor_unigram'][k])} | "
                         f"{f(c['floor_bigram'][k])} | {f(c['lm'][k])} | {f(c['ceiling'][k])} | "
                         f"{f(c['position'][k], '.2f')} | "
                         f"{f'[{ci[0]:.2f}, {ci[1]:.2f}]' if ci else '-'} | "
                         f"{f(hm, '+.3f')} | "
                         f"{f'[{hci[0]:+.3f}, {hci[1]:+.3f}]' if hci else '-'} | "
                         f"{f'[{vci[0]:+.3f}, {vci[1]:+.3f}]' if vci else '-'} | "
                         f"{halfway_verdict(vci or hci) if 'halfway_margin_ci95' in c else '-'} |")
    lines += ["", "Speaker similarity, calibrated (continuation to its prompt; to the other "
              "voices of the set, mean and closest; two utterances of the prompt's voice; share "
              "of continuations whose voice is kept):", "",
              "| voices | to prompt | others mean | others max | same voice | voice kept | "
              "closer to prompt than to any other |", "|---|---|---|---|---|---|---|"]
    for g, a in groups:
        c = a["calibration"]
        if c.get("n"):
            lines.append(f"| {g} | {f(c['to_prompt'])} | {f(c['others_mean'])} | "
                         f"{f(c['others_max'])} | {f(c['same_speaker'])} | "
                         f"{f(c['voice_kept_share'], '.2f')} | "
                         f"{f(c['closest_to_prompt_share'], '.2f')} |")
    lines += ["", "| voice | prompts | speaker sim | voice kept | DNSMOS cont. | dict. words/s "
              "(LM / ceiling) | loops | silent | rate ratio | tempo |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for v, a in report["voices"].items():
        if a.get("prompts"):
            c = a["content"]
            lines.append(f"| {v}{' (held out)' if v in report['held_out_voices'] else ''} | "
                         f"{a['prompts']} | {f(a['similarity'])} | "
                         f"{f(a['calibration'].get('voice_kept_share'), '.2f')} | "
                         f"{f(a['dnsmos'], '.2f')} | "
                         f"{f(c['lm']['dictionary_words_per_second'], '.2f')} / "
                         f"{f(c['ceiling']['dictionary_words_per_second'], '.2f')} | "
                         f"{a['loops']} | {a['silent']} | {f(a['rate_ratio'], '.2f')} | "
                         f"{f(a.get('tempo'), '.2f')} |")
    return "\n".join(lines)


__all__ = ["ContinuationHarness", "FLOORS", "TARGETS", "aggregate_prompts", "content_intervals",
           "continuation_markdown", "evaluate_continuation", "rescore_report"]
