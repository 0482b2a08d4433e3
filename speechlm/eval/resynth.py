"""``speechlm eval resynth``: judge the unit vocoder on held-out speech.

For each utterance: tokenize, decode in the utterance's own voice, and compare with the
original. Every judge's figure comes with what the same judge gives the original and a trivial
baseline (method ``floor``):

* intelligibility: Whisper WER (and pocketsphinx WER, the judge of earlier reports), and the
  content of what Whisper heard (:mod:`speechlm.eval.content`: word confidence, dictionary
  words per second);
* voice: Resemblyzer similarity to the original, calibrated
  (:class:`~speechlm.eval.harness.SpeakerReferences`): the output's similarity to the other
  voices of the set, and that of two utterances of the speaker;
* quality: DNSMOS overall; pitch: F0 correlation / RMSE; speed: the real-time factor.

Voices the vocoder never trained on are reported as their own group, and every voice gets a row.

Methods:
    world-f0    the source F0 contour is given to the vocoder (resynthesis proper)
    world       F0 predicted from units + voice (what LM output gets)
    griffinlim  the log-mel head, inverted by torchaudio Griffin-Lim (32 iterations), F0 given
    floor       a trivial baseline: the utterance's own deduplicated units in a random order,
                durations and F0 predicted (the same sounds, no words)
    hn-f0, hn   as world-f0 and world, but the log-mel head and F0 are synthesized by the
                harmonic-plus-noise waveform stage (``--waveform``, :mod:`speechlm.waveform`)

Where the drawn contour (``hn``) loses words that the source's (``hn-f0``) keeps, three
diagnostics split it into its pitch and its voicing, each through the source-F0 path
(:meth:`speechlm.vocoder.Vocoder.draw_f0`; a vocoder that draws its F0):

    hn-drawn-f0     the drawn contour itself (pitch and voicing): the split's calibration,
                    what the source-F0 path makes of the contour ``hn`` speaks
    hn-src-voicing  the drawn pitch on the source's voicing
    hn-src-pitch    the source's pitch (log-interpolated through its unvoiced frames) on the
                    drawn voicing

Copy synthesis (no units: what each waveform method makes of the original's own features, the
ceiling the unit decoder can reach with it; the log-mel and F0 of the original):

    copy-hn     the waveform stage on the original's log-mel + F0 (``--waveform``; with the
                vocoder's ``voiced_noise_cut``)
    copy-world  WORLD analysis of the original, then WORLD synthesis
    copy-gl     torchaudio Griffin-Lim (32 iterations) of the original's log-mel
    copy-runs   the waveform stage on the original's log-mel averaged over each run of equal
                units (as the tokenizer reads them), + F0: each unit run speaks one static
                spectrum, its own -- what a decoder that maps a run to a steady spectrum could
                at best give, with every movement inside a run gone (``--waveform``)
    copy-unit-means  the same with each frame's log-mel the mean over *all* frames of its unit
                in the utterance: one spectrum per unit, in the speaker's own voice but the
                same in every context (a lookup table of the utterance's own unit spectra)
    copy-voice-means  the same with the table pooled over the voice's *other* utterances in the
                evaluated split (none of it the utterance's own: :mod:`speechlm.eval.unit_lookup`;
                a voice with one utterance there is left out)
    copy-voice-context  as copy-voice-means, one spectrum per unit between its neighbouring
                runs' units where the voice's other utterances show that context, else per unit

A voice reference that is not clean (``reference_perturb``, ``--reference-perturb``): the voice
is computed from a perturbed copy of the utterance (:func:`speechlm.eval.robustness.perturb`:
``noise20dB``, ``noise10dB``, ``reverb``, ...; the noise seeded per utterance), while the units
and the source F0 still come from the clean original and every judge compares with the clean
original. This isolates the voice path: how much of the voice survives a recording that is
not studio-clean.

The voice reference is the utterance itself by default (``voice_from="self"``). With
``voice_from="other"`` (``--voice-from other``) it is another utterance of the same voice in the
evaluated split, drawn with the seed: what a user's voice sample is, and the fair test of a method
that fits the voice to its reference (``--voice-adapt-steps``), which with the utterance itself
sees the very log-mel it then re-creates.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from speechlm.audio import load_audio, save_audio
from speechlm.errors import DataError
from speechlm.eval.harness import (
    HELD_OUT,
    SEEN,
    Item,
    SpeakerReferences,
    by_group,
    cal_dict,
    calibration_summary,
    finite,
    fmt,
    group_by,
    mark_held_out,
    mean,
    reference_pool,
    safe,
    select_items,
)
from speechlm.vocoder import DEFAULT_VOCODER

log = logging.getLogger(__name__)

METHODS = ("world-f0", "world", "griffinlim", "floor", "hn-f0", "hn", "copy-hn", "copy-world",
           "copy-gl", "copy-runs", "copy-unit-means", "copy-voice-means", "copy-voice-context",
           "hn-drawn-f0", "hn-src-voicing", "hn-src-pitch")
F0_PARTS = ("hn-drawn-f0", "hn-src-voicing", "hn-src-pitch")  # the drawn contour, split
POOLED = ("copy-voice-means", "copy-voice-context")  # read the voice's other utterances
NEEDS_WAVEFORM = ("hn-f0", "hn", "copy-hn", "copy-runs", "copy-unit-means") + POOLED + F0_PARTS
DEFAULT_METHODS = ("world-f0", "world", "griffinlim")
VOICE_FROM = ("self", "other")  # the voice reference: the utterance, or another of its voice
ASRS = ("whisper", "pocketsphinx")
TARGETS = {"wer_ratio_max": 2.0, "similarity_min": 0.80, "dnsmos_drop_max": 0.3}



def f0_part(method: str, drawn: tuple[np.ndarray, np.ndarray], source: np.ndarray
            ) -> np.ndarray:
    """The F0 track (Hz, 0 = unvoiced) of an :data:`F0_PARTS` method: the drawn contour's
    pitch and voicing (``drawn``: Hz on every frame and the voiced mask, as
    :meth:`~speechlm.vocoder.Vocoder.draw_f0` gives them) crossed with the ``source``'s (its
    track, cut or padded with unvoiced frames to the drawn length; its pitch log-interpolated
    through its unvoiced frames, held at the ends)."""
    hz, voiced = drawn
    n = len(hz)
    src = np.zeros(n)
    src[:min(n, len(source))] = np.asarray(source, dtype=np.float64)[:n]
    if method == "hn-drawn-f0":
        return np.where(voiced, hz, 0.0)
    if method == "hn-src-voicing":
        return np.where(src > 0, hz, 0.0)
    if method != "hn-src-pitch":
        raise ValueError(f"{method!r} is not one of {', '.join(F0_PARTS)}")
    on = np.flatnonzero(src > 0)
    if len(on) == 0:  # no source pitch to take: the drawn one
        return np.where(voiced, hz, 0.0)
    pitch = np.exp(np.interp(np.arange(n), on, np.log(src[on])))
    return np.where(voiced, pitch, 0.0)


def run_means(mel: torch.Tensor, ids: torch.Tensor, upsample: int) -> torch.Tensor:
    """``mel`` ``[N, n_mels]`` with each frame replaced by the mean over its run of equal
    ``ids`` (unit frames; vocoder frames ``upsample * t ...`` belong to unit frame ``t``); frames
    past the units keep their own values."""
    out = mel.clone()
    start = 0
    ids = ids.tolist()
    for t in range(1, len(ids) + 1):
        if t == len(ids) or ids[t] != ids[start]:
            a, b = upsample * start, min(upsample * t, len(mel))
            if a < b:
                out[a:b] = mel[a:b].mean(0)
            start = t
    return out

def unit_means(mel: torch.Tensor, ids: torch.Tensor, upsample: int) -> torch.Tensor:
    """``mel`` ``[N, n_mels]`` with each frame replaced by the mean over all frames of its unit
    (as :func:`run_means`, but pooled over every run of the unit); frames past the units keep
    their own values."""
    n = min(len(mel), upsample * len(ids))
    frame_ids = ids.repeat_interleave(upsample)[:n].long()
    k = int(frame_ids.max()) + 1 if n else 0
    sums = torch.zeros(k, mel.shape[1], dtype=mel.dtype).index_add_(0, frame_ids, mel[:n])
    counts = torch.bincount(frame_ids, minlength=k).clamp(min=1).to(mel.dtype)
    out = mel.clone()
    out[:n] = (sums / counts[:, None])[frame_ids]
    return out


class ResynthHarness:
    """Select -> run -> score -> aggregate for one vocoder (see the module docstring)."""

    def __init__(self, vocoder: str, methods: tuple[str, ...] = DEFAULT_METHODS,
                 asrs: tuple[str, ...] = ASRS, seed: int = 0, audio_out: str | None = None,
                 waveform: str | None = None, reference_perturb: str | None = None,
                 voice_from: str = "self", warp: str | float | None = None,
                 band_limit: float | None = None, tokenizer: str | None = None,
                 speeds: tuple[float, ...] | None = None, unit_oracle: str | None = None):
        from speechlm.eval.judges import Judges
        from speechlm.eval.robustness import perturbation_option
        from speechlm.eval.unit_oracle import MODES
        from speechlm.tokenizer import Tokenizer
        from speechlm.vocoder import Vocoder

        bad = [m for m in methods if m not in METHODS] + [a for a in asrs if a not in ASRS]
        if bad or not asrs or asrs[0] not in ASRS:
            raise DataError(f"unknown methods or ASRs {bad}; methods: {', '.join(METHODS)}; "
                            f"ASRs: {', '.join(ASRS)}")
        self.reference_perturb = perturbation_option(reference_perturb, "--reference-perturb")
        if voice_from not in VOICE_FROM:
            raise DataError(f"--voice-from must be one of {', '.join(VOICE_FROM)}, got "
                            f"{voice_from!r}")
        self.voice_from = voice_from
        if unit_oracle is not None and unit_oracle not in MODES:
            raise DataError(f"--unit-oracle must be one of {', '.join(MODES)}, got "
                            f"{unit_oracle!r}")
        self.unit_oracle = unit_oracle
        self.tables: dict[str, Any] = {}  # voice -> VoiceUnitTable (the pooled copy methods)
        self.pooled_info: dict[str, Any] = {"levels": {}, "utterances_per_voice": {}}
        self.oracle_table = None  # fitted in select (it needs the corpus)
        self.oracle_info: dict[str, Any] = {}
        self.oracle_counted: set[str] = set()
        self.pool: dict[str, list[Item]] = {}
        self.reference_of: dict[str, str] = {}  # utterance -> its voice reference's name
        self.skipped_alone: list[str] = []  # voices left out: one utterance, and another needed
        self.voc = Vocoder.load(vocoder)
        if waveform:
            self.voc.use_waveform(waveform)
        elif self.voc.waveform is None and any(m in NEEDS_WAVEFORM for m in methods):
            raise DataError(f"methods {', '.join(m for m in methods if m in NEEDS_WAVEFORM)} "
                            "need a waveform stage: give --waveform DIR")
        if not self.voc.cfg.f0_bins and any(m in F0_PARTS for m in methods):
            raise DataError(f"methods {', '.join(m for m in methods if m in F0_PARTS)} split a "
                            "drawn F0 contour; this vocoder draws none (no f0_bins)")
        self.tok = Tokenizer.load(tokenizer or self.voc.training.get("tokenizer") or "mfcc-k100")
        # copy synthesis decodes no units: copy-runs / copy-unit-means read any tokenizer's runs
        decodes = any(not m.startswith("copy-") for m in methods)
        if decodes and self.tok.unit_space != self.voc.unit_space:
            raise DataError(f"the tokenizer's unit space is {self.tok.unit_space!r} but the "
                            f"vocoder's is {self.voc.unit_space!r}"
                            + ("" if tokenizer else "; give the vocoder's tokenizer (--tokenizer)"))
        self.tok = self.tok.with_warp(warp)
        if speeds is not None:  # empty: off; None: the tokenizer's own
            self.tok = self.tok.with_speeds(speeds or None)
        if band_limit is not None:  # 0: the full band; None: the tokenizer's own
            self.tok = self.tok.with_band_limit(band_limit or None)
        self.methods, self.asrs, self.seed, self.audio_out = methods, asrs, seed, audio_out
        self.judges = Judges()
        self.sr = self.voc.sample_rate
        self.refs: SpeakerReferences | None = None

    # --- select
    def select(self, data: str, corpus: str | None, per_voice: int,
               reference_voices: str | None = None) -> list[Item]:
        items = mark_held_out(select_items(data, corpus, 0, self.seed), self.voc.training)
        self.pool = group_by(items, lambda it: it.voice)
        self.refs = SpeakerReferences(self.judges.speaker,
                                      reference_pool(items, reference_voices, corpus, self.seed),
                                      load_audio, self.sr, seed=self.seed)
        chosen = {it.name for it in select_items(data, corpus, per_voice, self.seed)}
        out = [it for it in items if it.name in chosen]
        needs = ["--voice-from other"] if self.voice_from == "other" else []
        needs += [m for m in self.methods if m in POOLED]
        if needs:  # each of these reads another utterance of the voice
            alone = sorted({it.voice for it in out if len(self.pool[it.voice]) < 2})
            out = [it for it in out if it.voice not in alone]
            self.skipped_alone = alone
            if not out:
                raise DataError(f"{', '.join(needs)} need two utterances of a voice; every "
                                "voice here has one")
            if alone:
                log.warning("%s: %d voices with a single utterance are left out (%s)",
                            ", ".join(needs), len(alone), ", ".join(alone))
        if self.unit_oracle:
            out = self._oracle_items(out, corpus)
        return out

    def _oracle_items(self, items: list[Item], corpus: str | None) -> list[Item]:
        """--unit-oracle: the utterances with reference phones, and the unit-phone table fitted
        on 300 aligned utterances (a seeded draw) of ``corpus``'s train split."""
        from speechlm.data.manifest import read_manifest, resolve_manifest
        from speechlm.eval.unit_oracle import UnitPhoneTable

        labelled = [it for it in items if it.path.with_suffix(".phn").is_file()]
        if not labelled:
            raise DataError("--unit-oracle needs utterances with reference phones (.phn beside "
                            "the audio); none here has one")
        if corpus is None:
            raise DataError("--unit-oracle fits its table on --corpus's train split: give it")
        train = [u for u in read_manifest(resolve_manifest("train", corpus))
                 if u.phn_path.is_file()]
        if not train:
            raise DataError(f"--unit-oracle: {corpus}'s train split has no aligned utterances")
        pick = np.random.default_rng(self.seed).permutation(len(train))[:300]
        fit = [(Path(train[i].path), train[i].phn_path) for i in sorted(pick.tolist())]
        self.oracle_table = UnitPhoneTable.fit(self.tok, fit)
        self.oracle_info = {"mode": self.unit_oracle, "fit_utterances": len(fit),
                            "fit_frames": self.oracle_table.frames,
                            "without_labels": len(items) - len(labelled),
                            "frames": 0, "frames_changed": 0}
        if len(labelled) < len(items):
            log.warning("--unit-oracle: %d utterances without reference phones are left out",
                        len(items) - len(labelled))
        return labelled

    def oracle_units(self, units, item: Item):
        """``units`` with their ids read by the reference phones (see :mod:`unit_oracle`)."""
        from speechlm.eval.unit_oracle import frame_phone_ids

        ids = units.ids.numpy()
        ref = frame_phone_ids(item.path.with_suffix(".phn"), len(ids))
        new, changed = self.oracle_table.apply(ids, ref, self.unit_oracle)
        if item.name not in self.oracle_counted:  # once per utterance, whatever the methods
            self.oracle_counted.add(item.name)
            self.oracle_info["frames"] += len(ids)
            self.oracle_info["frames_changed"] += changed
        return type(units)(torch.from_numpy(new).to(units.ids.dtype), units.frame_rate,
                           units.n_units, units.unit_space)

    def reference(self, item: Item, index: int) -> tuple[str, torch.Tensor]:
        """The name and waveform of ``item``'s voice reference (see ``voice_from``)."""
        if self.voice_from == "self":
            return item.name, load_audio(item.path)
        others = [it for it in self.pool[item.voice] if it.name != item.name]
        pick = others[int(np.random.default_rng([self.seed, index]).integers(len(others)))]
        return pick.name, load_audio(pick.path)

    # --- run
    def run(self, item: Item, index: int) -> tuple[torch.Tensor, dict[str, tuple]]:
        """The original waveform and ``{method: (output waveform, seconds of compute)}``."""
        from speechlm.audio import f0_track
        from speechlm.eval.robustness import perturbed_copy

        wav = load_audio(item.path)
        ref_name, ref = (item.name, wav) if self.voice_from == "self" else \
            self.reference(item, index)
        self.reference_of[item.name] = ref_name
        outs = {}
        for m in self.methods:
            t0 = time.perf_counter()
            if m.startswith("copy-"):
                y = self.copy_synthesis(m, wav, item)
                outs[m] = (y, time.perf_counter() - t0)
                if self.audio_out:
                    save_audio(Path(self.audio_out) / m / f"{item.name.replace('/', '_')}.wav",
                               y, self.sr)
                continue
            units = self.tok.tokenize_wave(wav)
            if self.unit_oracle:
                units = self.oracle_units(units, item)
            voice = self.voc.voice(perturbed_copy(ref, self.sr, self.reference_perturb,
                                                  self.seed * 1_000_003 + index),
                                   tokenizer=self.tok)
            if m == "floor":
                d = units.dedup()
                ids = d.ids[torch.from_numpy(np.random.default_rng([self.seed, index])
                                             .permutation(len(d.ids)))]
                y = self.voc.decode(type(d)(ids, d.frame_rate, d.n_units, d.unit_space,
                                            torch.ones_like(ids)), voice, use_durations=False)
            elif m in F0_PARTS:
                y = self.voc.decode(units, voice, f0=f0_part(m, self.voc.draw_f0(units, voice),
                                                             f0_track(wav.numpy())), method="hn")
            else:
                f0 = f0_track(wav.numpy()) if m in ("world-f0", "griffinlim", "hn-f0") else None
                method = {"griffinlim": "griffinlim", "hn-f0": "hn", "hn": "hn"}.get(m, "world")
                y = self.voc.decode(units, voice, f0=f0, method=method)
            outs[m] = (y, time.perf_counter() - t0)
            if self.audio_out:
                save_audio(Path(self.audio_out) / m / f"{item.name.replace('/', '_')}.wav", y,
                           self.sr)
        return wav, outs

    def copy_synthesis(self, method: str, wav: torch.Tensor,
                       item: Item | None = None) -> torch.Tensor:
        """The original's own features through one waveform method (no units; ``copy-runs``
        reads the units only for their runs, with ``unit_oracle`` those of the oracle)."""
        from speechlm.audio import f0_track
        from speechlm.vocoder import UPSAMPLE, griffin_lim, world_analysis, world_synthesize

        x = wav.numpy()
        if method == "copy-world":
            f0, sp, ap = world_analysis(x)
            return torch.from_numpy(world_synthesize(f0, sp, ap, self.sr).astype(np.float32))
        with torch.inference_mode():
            mel = self.voc.mel(wav[None])[0]
        if method == "copy-gl":
            return griffin_lim(mel, self.voc.mel.fb)
        if method in POOLED:
            if item is None:
                raise DataError(f"{method} needs the utterance's voice")
            mel = self.voice_lookup(method, item, mel)
        elif method in ("copy-runs", "copy-unit-means"):
            units = self.tok.tokenize_wave(wav)
            if self.unit_oracle and item is not None:
                units = self.oracle_units(units, item)
            mel = (run_means if method == "copy-runs" else unit_means)(mel, units.ids, UPSAMPLE)
        f0 = f0_track(x)
        n = min(len(mel), len(f0))
        return self.voc.waveform.synthesize(
            mel[:n], f0[:n], voiced_noise_cut=self.voc.voiced_noise_cut).clamp(-1, 1)

    def voice_lookup(self, method: str, item: Item, mel: torch.Tensor) -> torch.Tensor:
        """``item``'s log-mel read from its voice's table of unit spectra pooled over the
        voice's other utterances of the split (built on first use; ``copy-voice-*``; with
        ``unit_oracle``, over those with reference phones, their units read by them)."""
        from speechlm.eval.unit_lookup import LEVELS, VoiceUnitTable
        from speechlm.vocoder import UPSAMPLE

        table = self.tables.get(item.voice)
        if table is None:
            table = self.tables[item.voice] = VoiceUnitTable()
            for other in self.pool[item.voice]:
                if self.unit_oracle and not other.path.with_suffix(".phn").is_file():
                    continue  # the oracle reads only utterances with reference phones
                w = load_audio(other.path)
                with torch.inference_mode():
                    m = self.voc.mel(w[None])[0]
                units = self.tok.tokenize_wave(w)
                if self.unit_oracle:
                    units = self.oracle_units(units, other)
                table.add(other.name, m, units.ids, UPSAMPLE)
            self.pooled_info["utterances_per_voice"][item.voice] = len(table)
        if len(table) < 2:
            raise DataError(f"{method}: voice {item.voice!r} has one utterance in the split; "
                            "its table needs others")
        out, levels = table.lookup(item.name, mel, method == "copy-voice-context", UPSAMPLE)
        acc = self.pooled_info["levels"].setdefault(method, dict.fromkeys(LEVELS, 0))
        for k, v in levels.items():
            acc[k] += v
        return out

    # --- score
    def hear(self, wav: np.ndarray, text: str | None) -> dict[str, Any]:
        """What the ASRs hear in ``wav``: transcript, WER against ``text``, content."""
        from speechlm.eval.content import content_metrics
        from speechlm.eval.judges import utterance_wer

        out: dict[str, Any] = {}
        for name in self.asrs:
            tr = self.judges.asr_named(name).transcribe(wav, self.sr)
            key = "" if name == self.asrs[0] else f"_{name}"
            out[f"asr{key}"] = tr.text
            if text:
                out[f"wer{key}"] = utterance_wer(text, tr.text)
            if name == "whisper":
                c = content_metrics(tr, len(wav) / self.sr).as_dict()
                out["content"] = {k: finite(v) if isinstance(v, float) else v
                                  for k, v in c.items() if k != "text"}
        return out

    def score(self, item: Item, wav: torch.Tensor, outs: dict[str, tuple]) -> dict[str, Any]:
        from speechlm.eval.judges import f0_metrics

        x = wav.numpy()
        row: dict[str, Any] = {"name": item.name, "voice": item.voice, "text": item.text,
                               "held_out": item.held_out, "seconds": round(len(x) / self.sr, 3),
                               "reference": self.reference_of.get(item.name, item.name),
                               "orig": {**self.hear(x, item.text),
                                        "dnsmos": self.judges.quality.score(x, self.sr)["ovrl"]}}
        for m, (y, elapsed) in outs.items():
            y_np = y.numpy()
            cal = self.refs.calibrate(y_np, x, item.voice, item.name) if self.refs else None
            row[m] = {**self.hear(y_np, item.text),
                      "similarity": safe(self.judges.speaker.similarity, x, self.sr, y_np,
                                         self.sr),
                      "calibration": cal_dict(cal),
                      "dnsmos": self.judges.quality.score(y_np, self.sr)["ovrl"],
                      "seconds_compute": round(elapsed, 4),
                      **{k: finite(v) for k, v in f0_metrics(x, y_np, self.sr).items()}}
        return row

    # --- aggregate
    def aggregate(self, sel: list[dict]) -> dict[str, Any]:
        from speechlm.eval.judges import word_error_rate

        texts = [r["text"] for r in sel if r["text"]]

        def wers(side: str) -> dict[str, float]:
            out = {}
            for name in self.asrs:
                key = "" if name == self.asrs[0] else f"_{name}"
                if texts:
                    out[f"wer{key}"] = round(word_error_rate(
                        texts, [r[side][f"asr{key}"] for r in sel if r["text"]]), 4)
            return out

        def content(side: str) -> dict[str, float | None]:
            return {k: mean(r[side]["content"][k] for r in sel if "content" in r[side])
                    for k in ("mean_word_prob", "confident_share",
                              "dictionary_words_per_second")}

        out: dict[str, Any] = {"n": len(sel), "seconds": round(sum(r["seconds"] for r in sel), 2)}
        orig = {"dnsmos": mean(r["orig"]["dnsmos"] for r in sel), **wers("orig"),
                "content": content("orig")}
        out["orig"] = orig
        for m in self.methods:
            agg: dict[str, Any] = {
                **wers(m), "content": content(m),
                "similarity": mean(r[m]["similarity"] for r in sel),
                "calibration": calibration_summary([r[m]["calibration"] for r in sel]),
                "dnsmos": mean(r[m]["dnsmos"] for r in sel),
                "f0_corr": mean(r[m]["f0_corr"] for r in sel),
                "f0_rmse_hz": mean(r[m]["f0_rmse_hz"] for r in sel),
                "vuv_error": mean(r[m]["vuv_error"] for r in sel),
                "x_real_time": round(out["seconds"] / max(1e-9, sum(
                    r[m]["seconds_compute"] for r in sel)), 1)}
            if agg.get("wer") is not None and orig.get("wer"):
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


def evaluate_resynth(vocoder: str = DEFAULT_VOCODER, data: str = "test",
                     corpus: str | None = "data/corpus", per_voice: int = 10,
                     methods: tuple[str, ...] = DEFAULT_METHODS, seed: int = 0,
                     progress: bool = True, audio_out: str | None = None,
                     asrs: tuple[str, ...] = ASRS, waveform: str | None = None,
                     reference_perturb: str | None = None,
                     voice_from: str = "self", warp: str | float | None = None,
                     band_limit: float | None = None,
                     tokenizer: str | None = None,
                     speeds: tuple[float, ...] | None = None,
                     unit_oracle: str | None = None,
                     reference_voices: str | None = None) -> dict[str, Any]:
    """Run the harness; returns the JSON report (per utterance, per voice and per group).
    ``warp`` and ``band_limit``: the tokenizer's test-time input options
    (:meth:`speechlm.tokenizer.Tokenizer.with_warp`, ``with_band_limit``; ``band_limit`` None
    keeps the tokenizer's own, 0 is the full band); ``tokenizer``: the one to read the audio
    with (default: the one the vocoder names), which must have the vocoder's unit space unless
    every method is copy synthesis (copy-runs and copy-unit-means then read its runs);
    ``speeds``: the tokenizer's speed ensemble (``with_speeds``; None: the tokenizer's own,
    empty: off); ``unit_oracle``: a diagnostic, the units corrected by the reference phones
    (:mod:`speechlm.eval.unit_oracle`; utterances without them are left out);
    ``reference_voices``: more voices for the speaker calibration's *others* only
    (:func:`~speechlm.eval.harness.reference_pool`)."""
    h = ResynthHarness(vocoder, methods, asrs, seed, audio_out, waveform, reference_perturb,
                       voice_from, warp, band_limit, tokenizer, speeds, unit_oracle)
    items = h.select(data, corpus, per_voice, reference_voices)
    rows = [h.score(it, *h.run(it, i))
            for i, it in enumerate(tqdm(items, desc="eval resynth", disable=not progress))]
    groups, voices = by_group(rows, h.aggregate)
    return {
        "format": "speechlm.eval-resynth", "version": 2, "vocoder": str(vocoder),
        "unit_space": h.voc.unit_space,
        **({"tokenizer_unit_space": h.tok.unit_space}
           if h.tok.unit_space != h.voc.unit_space else {}),
        "data": str(data), "per_voice": per_voice, "seed": seed,
        "methods": list(methods), "targets": TARGETS, "waveform": waveform,
        "reference_perturb": h.reference_perturb, "voice_from": h.voice_from,
        "voices_left_out": h.skipped_alone, **({"warp": warp} if warp is not None else {}),
        **({"speeds": list(speeds)} if speeds else {}),
        **({"band_limit": band_limit} if band_limit else {}),
        **({"tokenizer": str(tokenizer)} if tokenizer else {}),
        **({"unit_oracle": h.oracle_info} if unit_oracle else {}),
        **({"reference_voices": str(reference_voices)} if reference_voices else {}),
        **({"voice_tables": h.pooled_info} if any(m in POOLED for m in methods) else {}),
        "held_out_voices": sorted({r["voice"] for r in rows if r["held_out"]}),
        "asr": list(asrs), "asr_models": {"whisper": "Whisper tiny.en (int8, faster-whisper)",
                                          "pocketsphinx": "pocketsphinx en-us (bundled)"},
        "speaker_judge": "Resemblyzer", "quality_judge": "DNSMOS (speechmos)",
        "groups": groups, "voices": voices, "utterances": rows,
        "threads": torch.get_num_threads(),
    }


def resynth_markdown(report: dict[str, Any]) -> str:
    """The aggregated tables of a report: groups, calibration, content, and one row per voice."""
    asrs = report.get("asr", ["whisper"])
    second = f"wer_{asrs[1]}" if len(asrs) > 1 else None
    lines = ["| voices | method | n | WER orig | WER out | " +
             (f"{asrs[1]} WER orig / out | " if second else "") +
             "speaker sim | DNSMOS orig | DNSMOS out | F0 corr | F0 RMSE Hz | x real time | "
             "targets |", "|---" * (12 + bool(second)) + "|"]
    if report.get("voice_from", "self") == "other":
        left = report.get("voices_left_out") or []
        lines[:0] = ["Voice references: another utterance of the same voice (--voice-from "
                     "other)" + (f"; {len(left)} voices with one utterance left out "
                                 f"({', '.join(left)})" if left else "") + ".", ""]
    if report.get("unit_oracle"):
        o = report["unit_oracle"]
        share = o["frames_changed"] / o["frames"] if o["frames"] else 0.0
        lines[:0] = [f"A diagnostic, not resynthesis of the tokenizer's units: the units read by "
                     f"each utterance's reference phones (--unit-oracle {o['mode']}; table fitted "
                     f"on {o['fit_utterances']} aligned train utterances), {share:.1%} of "
                     f"{o['frames']} frames changed; {o['without_labels']} utterances without "
                     "reference phones left out.", ""]
    if report.get("voice_tables"):
        t, left = report["voice_tables"], report.get("voices_left_out") or []
        per = list(t["utterances_per_voice"].values())
        shares = "; ".join(
            f"{m}: " + ", ".join(f"{k} {v / max(1, sum(lv.values())):.1%}" for k, v in lv.items())
            for m, lv in t["levels"].items())
        lines[:0] = [f"Voice tables (copy-voice-*): each voice's unit spectra pooled over its "
                     f"other utterances of the split ({min(per, default=0)}-{max(per, default=0)} "
                     f"utterances per voice, the one resynthesized left out); frames by the "
                     f"level they came from: {shares}."
                     + (f" Voices with one utterance left out: {', '.join(left)}." if left else ""),
                     ""]
    if report.get("reference_perturb"):
        lines[:0] = [f"Voice references perturbed ({report['reference_perturb']}); the units, the "
                     "source F0 and every judge use the clean originals.", ""]

    def add(label: str, agg: dict[str, Any]) -> None:
        for m in report["methods"]:
            a = agg[m]
            lines.append(
                f"| {label} | {m} | {agg['n']} | {fmt(agg['orig'].get('wer'))} | "
                f"{fmt(a.get('wer'))} | " +
                (f"{fmt(agg['orig'].get(second))} / {fmt(a.get(second))} | " if second else "")
                + f"{fmt(a['similarity'])} | "
                f"{fmt(agg['orig']['dnsmos'], '.2f')} | {fmt(a['dnsmos'], '.2f')} | "
                f"{fmt(a['f0_corr'])} | {fmt(a['f0_rmse_hz'], '.1f')} | "
                f"{fmt(a['x_real_time'], '.1f')} | {'met' if a['meets_targets'] else 'missed'} |")

    for g in (SEEN, HELD_OUT):
        if g in report["groups"]:
            add(g, report["groups"][g])
    lines += ["", "Speaker similarity, calibrated (to the original; to the other voices of the "
              "set, mean and closest; two utterances of the same voice; share of outputs whose "
              "voice is kept):", "",
              "| voices | method | to original | others mean | others max | same voice | "
              "voice kept |", "|---|---|---|---|---|---|---|"]
    for g in (SEEN, HELD_OUT):
        for m in report["methods"]:
            c = report["groups"].get(g, {}).get(m, {}).get("calibration", {})
            if c.get("n"):
                lines.append(f"| {g} | {m} | {fmt(c['to_prompt'])} | {fmt(c['others_mean'])} | "
                             f"{fmt(c['others_max'])} | {fmt(c['same_speaker'])} | "
                             f"{fmt(c['voice_kept_share'], '.2f')} |")
    lines += ["", "Content heard by Whisper (mean word probability; share of confident words; "
              "confident dictionary words per second):", "",
              "| voices | audio | word prob | confident | dict. words/s |", "|---|---|---|---|---|"]
    for g in (SEEN, HELD_OUT):
        agg = report["groups"].get(g)
        if not agg:
            continue
        for label, c in [("original", agg["orig"]["content"])] + [
                (m, agg[m]["content"]) for m in report["methods"]]:
            lines.append(f"| {g} | {label} | {fmt(c['mean_word_prob'])} | "
                         f"{fmt(c['confident_share'])} | "
                         f"{fmt(c['dictionary_words_per_second'], '.2f')} |")
    m = report["methods"][0]
    lines += ["", f"Per voice ({m}):", "",
              "| voice | n | WER orig | WER out | speaker sim | voice kept | DNSMOS orig | "
              "DNSMOS out |", "|---|---|---|---|---|---|---|---|"]
    for v, agg in report["voices"].items():
        a = agg[m]
        held = " (held out)" if v in report["held_out_voices"] else ""
        lines.append(f"| {v}{held} | {agg['n']} | {fmt(agg['orig'].get('wer'))} | "
                     f"{fmt(a.get('wer'))} | {fmt(a['similarity'])} | "
                     f"{fmt(a['calibration'].get('voice_kept_share'), '.2f')} | "
                     f"{fmt(agg['orig']['dnsmos'], '.2f')} | {fmt(a['dnsmos'], '.2f')} |")
    return "\n".join(lines)


__all__ = ["ASRS", "DEFAULT_METHODS", "METHODS", "ResynthHarness", "TARGETS",
           "evaluate_resynth", "resynth_markdown"]
