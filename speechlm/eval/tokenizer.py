"""``speechlm eval tokenizer``: unit quality on held-out utterances with phone alignments.

Measures, per tokenizer:
    * PNMI, phone purity and cluster purity of frame units against frame phone labels (the
      phone whose segment holds the frame's centre), as in the HuBERT paper; silence included;
    * ABX error on phone segments (silence excluded), within and across speakers, for the unit
      sequence (each frame represented by its centroid) and, as the reference the quantizer can
      at best keep, for the continuous features it quantizes;
    * unit rate after dedup and the bitrate (units/s x unigram entropy);
    * robustness: the unit edit distance (UED, :mod:`speechlm.eval.robustness`) under pitch
      shifts of +-3 and +-4 semitones, tempo +-10 %, reverberation and white noise at 20 dB SNR,
      averaged over a seeded subset of the utterances.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from speechlm.audio import FRAME_SIZE, HOP_SIZE, load_audio
from speechlm.data.manifest import read_manifest, read_phn
from speechlm.data.phones import arpabet_of
from speechlm.errors import DataError
from speechlm.eval.abx import abx_error
from speechlm.eval.metrics import phone_unit_stats, unit_rate_and_bitrate
from speechlm.eval.robustness import PERTURBATIONS, levenshtein, measure_ued
from speechlm.nbest import string_logprob
from speechlm.tokenizer import Tokenizer
from speechlm.units import dedup

log = logging.getLogger(__name__)

SILENCES = frozenset({"pau", "sil", "h#", "sp", "SIL", "<sil>"})
ABX_MAX_PER_SPEAKER_PHONE = 10  # phone occurrences per (speaker, phone) kept for ABX
# temperatures at which a CTC head's posteriors score the reference phone string
# ("ctc_reference_logprob"): whether its probabilities are calibrated, as the probes' beam reads
# them (speechlm.eval.probes.score_pairs)
CTC_TEMPERATURES = (0.7, 1.0, 1.3, 1.6, 2.0)
UED_UTTERANCES = 50  # utterances perturbed for UED: 8 perturbations x sox + encoding each


def frame_labels(phn: list[tuple[int, int, str]], n_frames: int) -> list[str | None]:
    """Phone of each frame: the segment that holds the frame's centre sample."""
    starts = np.array([s for s, _, _ in phn])
    ends = np.array([e for _, e, _ in phn])
    centres = np.arange(n_frames) * HOP_SIZE + FRAME_SIZE // 2
    idx = np.searchsorted(starts, centres, side="right") - 1
    out: list[str | None] = []
    for c, i in zip(centres, idx):
        out.append(phn[i][2] if i >= 0 and c < ends[i] else None)
    return out


def evaluate_tokenizer(tokenizer: str | os.PathLike | Tokenizer, manifest: str | os.PathLike,
                       max_utterances: int | None = None, seed: int = 0,
                       progress: bool = True, ued_utterances: int = UED_UTTERANCES,
                       perturbations: tuple[str, ...] = PERTURBATIONS) -> dict:
    """Evaluate ``tokenizer`` on the utterances of ``manifest``.

    Args:
        tokenizer: a tokenizer, its name or its directory.
        manifest: the utterances (with ``.phn`` alignments for the phone metrics).
        max_utterances: evaluate a seeded random subset of this size.
        seed: seed of the subsets, ABX sampling and the UED noise.
        progress: show progress bars.
        ued_utterances: utterances (a seeded subset) perturbed for UED; 0 skips UED.
        perturbations: names from :data:`speechlm.eval.robustness.PERTURBATIONS`.

    Returns:
        A JSON-able report (see the module docstring for the metrics).
    """
    t0 = time.perf_counter()
    tok = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer.load(tokenizer)
    items = read_manifest(manifest)
    rng = np.random.default_rng(seed)
    if max_utterances is not None and len(items) > max_utterances:
        pick = sorted(rng.choice(len(items), max_utterances, replace=False))
        items = [items[i] for i in pick]
    aligned = [u for u in items if u.phn_path.exists()]
    if not aligned:
        raise DataError(f"no utterance of {manifest} has a phone alignment (.phn): the tokenizer "
                        "metrics need them (festival and flite voices have them)")

    phone_ids: dict[str, int] = {}
    all_units, all_phones, all_voices = [], [], []
    seqs, secs = [], []
    # ABX candidates: (speaker, phone) -> list of (unit-centroid frames, feature frames)
    segs: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    q = tok.quantizer
    # its own generator, so that adding UED leaves the ABX sample of earlier reports unchanged
    ued_pick = set(np.random.default_rng(seed).permutation(len(items))[:max(0, ued_utterances)])
    ued_wavs: list[np.ndarray] = []
    phone_enc = _phone_encoder(tok)
    auto = getattr(phone_enc, "warp", None) == "auto"  # a PhoneEncoder option
    warps: dict[str, list[float]] = {}  # warp="auto": per base voice, the warps chosen
    fper = [0, 0]  # frames the phone encoder's argmax got wrong, frames with a phone label
    per_utt: list[list] = []  # [name, base voice, wrong, labelled] (non-silence), for pairing
    per = [0, 0]  # edits from its phone string to the reference's, reference phones
    from speechlm.eval.probes import unit_phones

    names = unit_phones(tok)  # CTC units are phones: their own string against the reference
    uper = [0, 0]
    uper_utt: list[list] = []  # [name, base voice, edits, reference phones], for pairing
    ctc_ref = dict.fromkeys(CTC_TEMPERATURES, 0.0)  # a CTC head: log P(reference string)
    ctc_ref_units = 0
    # per base voice: wrong frames at each label shift in SHIFTS, labelled frames
    by_voice: dict[str, np.ndarray] = {}
    for k, u in enumerate(tqdm(items, desc="eval", unit="utt", disable=not progress)):
        wav = load_audio(u.path, tok.sample_rate, min_samples=FRAME_SIZE)
        if k in ued_pick:
            ued_wavs.append(wav.numpy())
        feats = tok.features(wav[None])[0]
        if auto:  # the warp the encoder chose for this utterance
            warps.setdefault(base_voice(u.speaker or "?"), []).append(phone_enc.last_warp)
        ids = tok.quantize(feats)
        seqs.append(dedup(ids)[0].numpy())
        secs.append(wav.numel() / tok.sample_rate)
        if not u.phn_path.exists():
            continue
        labels = frame_labels(read_phn(u.phn_path), len(ids))
        if phone_enc is not None:
            pred = _argmax_phones(phone_enc, wav, feats)
            arpa = [arpabet_of(lab) if lab is not None else None for lab in labels]
            known = [(lab, p) for lab, p in zip(arpa, pred) if lab in phone_enc.phones]
            fper[0] += sum(lab != p for lab, p in known)
            fper[1] += len(known)
            nonsil = [(lab, p) for lab, p in known if lab != "SIL"]  # as the per-voice table
            per_utt.append([u.name, base_voice(u.speaker or "?"),
                            sum(lab != p for lab, p in nonsil), len(nonsil)])
            ref = phone_string(arpa)
            per[0] += levenshtein(phone_string(pred), ref)
            per[1] += len(ref)
            acc = by_voice.setdefault(base_voice(u.speaker or "?"), np.zeros(len(SHIFTS) + 1))
            acc += shifted_errors(arpa, pred, phone_enc.phones)
            if names is not None:
                edits = levenshtein(phone_string([names[i] if i < len(names) else None
                                                  for i in ids.tolist()]), ref)
                uper[0] += edits
                uper[1] += len(ref)
                uper_utt.append([u.name, base_voice(u.speaker or "?"), edits, len(ref)])
                if tok.blank is not None:  # how likely the head finds the reference string
                    ref_ids = _reference_units(arpa, names)
                    if ref_ids:
                        lp = feats.double().clamp_min(1e-30).log()
                        for t in CTC_TEMPERATURES:
                            ctc_ref[t] += string_logprob((lp / t).log_softmax(-1).numpy(),
                                                         tok.blank, ref_ids, log=True)
                        ctc_ref_units += len(ref_ids)
        for lab in labels:
            if lab is not None and lab not in phone_ids:
                phone_ids[lab] = len(phone_ids)
        all_units.append(ids.numpy())
        all_phones.append(np.array([phone_ids[lab] if lab is not None else -1 for lab in labels]))
        all_voices.append(base_voice(u.speaker or "?"))
        # phone segments for ABX: runs of frames with the same label
        normed = q.normalize(feats).numpy()
        cents = q.centroids[ids].numpy()
        spk = u.speaker or "?"
        i = 0
        while i < len(labels):
            j = i
            while j < len(labels) and labels[j] == labels[i]:
                j += 1
            lab = labels[i]
            if lab is not None and lab not in SILENCES:
                segs.setdefault((spk, lab), []).append((cents[i:j], normed[i:j]))
            i = j

    units = np.concatenate(all_units)
    phones = np.concatenate(all_phones)
    stats = phone_unit_stats(units, phones, tok.n_units, len(phone_ids))
    pnmi_by_voice = {}  # the same, per base voice (pooled figures mix the voices' shares)
    for v in sorted(set(all_voices)):
        mine = [k for k, w in enumerate(all_voices) if w == v]
        vp = np.concatenate([all_phones[k] for k in mine])
        vs = phone_unit_stats(np.concatenate([all_units[k] for k in mine]), vp, tok.n_units,
                              len(phone_ids))
        pnmi_by_voice[v] = {"frames": int((vp >= 0).sum()),
                            "pnmi": None if math.isnan(vs.pnmi) else round(vs.pnmi, 4)}

    # ABX: a bounded, seeded sample of occurrences per (speaker, phone)
    abx_units, abx_feats, abx_phone, abx_spk = [], [], [], []
    for (spk, lab), occ in sorted(segs.items()):
        pick = rng.permutation(len(occ))[:ABX_MAX_PER_SPEAKER_PHONE]
        for k in pick:
            abx_units.append(occ[k][0])
            abx_feats.append(occ[k][1])
            abx_phone.append(phone_ids[lab])
            abx_spk.append(spk)
    abx: dict[str, float | None] = {}
    speakers = len(set(abx_spk))
    for name, reps in (("units", abx_units), ("features", abx_feats)):
        for mode in ("within", "across"):
            if mode == "across" and speakers < 2:  # one speaker (a real voice): no across
                abx[f"abx_{mode}_{name}"] = None
                continue
            r = abx_error(reps, abx_phone, abx_spk, mode=mode, distance="cosine", seed=seed)
            abx[f"abx_{mode}_{name}"] = round(100 * r.error, 2)
    rate = unit_rate_and_bitrate(seqs, secs, tok.n_units)
    ued = {}
    if ued_wavs and perturbations:
        def encode(w: np.ndarray) -> np.ndarray:
            return tok.encode(torch.from_numpy(w)[None])[0].numpy()

        with torch.inference_mode():
            results = measure_ued(encode, ued_wavs, tok.sample_rate, perturbations, seed)
        ued = {r.perturbation: round(r.mean, 4) for r in results}
    hours = sum(secs) / 3600
    report = {
        "tokenizer": str(tokenizer) if not isinstance(tokenizer, Tokenizer) else tok.unit_space,
        "unit_space": tok.unit_space,
        "n_units": tok.n_units,
        "frame_rate": tok.frame_rate,
        "manifest": str(Path(manifest)),
        "utterances": len(items),
        "aligned_utterances": len(aligned),
        "speakers": len({u.speaker for u in items}),
        "hours": round(hours, 3),
        "pnmi": round(stats.pnmi, 4),
        "pnmi_by_voice": pnmi_by_voice,
        "phone_purity": round(stats.phone_purity, 4),
        "cluster_purity": round(stats.cluster_purity, 4),
        "units_used": stats.units_used,
        **abx,
        "abx_segments": len(abx_units),
        "units_per_second": round(rate["units_per_second"], 2),
        "entropy_bits": round(rate["entropy_bits"], 3),
        "bitrate": round(rate["bitrate"], 1),
        "ued": ued,
        "ued_utterances": len(ued_wavs) if ued else 0,
        **({"frame_phone_error": round(fper[0] / max(fper[1], 1), 4),
            "phone_error_rate": round(per[0] / max(per[1], 1), 4),
            "frame_phone_error_by_voice": voice_errors(by_voice),
            "frame_phone_errors_by_utterance": per_utt}
           if phone_enc is not None else {}),
        **({"unit_phone_error_rate": round(uper[0] / max(uper[1], 1), 4),
            "unit_phone_errors_by_utterance": uper_utt}
           if names is not None else {}),
        **({"ctc_reference_logprob": {
            "per_unit_by_temperature": {f"{t:g}": round(v / ctc_ref_units, 4)
                                        for t, v in ctc_ref.items()},
            "best_temperature": max(ctc_ref, key=ctc_ref.get),
            "reference_units": ctc_ref_units}} if ctc_ref_units else {}),
        **({"warp": tok.warp} if tok.warp is not None else {}),
        **({"warps_chosen_by_voice": {
            v: {"mean": round(float(np.mean(w)), 3),
                "counts": {f"{a:.2f}": w.count(a) for a in sorted(set(w))}}
            for v, w in sorted(warps.items())}} if auto else {}),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return report


def _reference_units(arpa: list[str | None], names: list[str]) -> list[int]:
    """The reference's frame phones as a deduplicated string of unit ids (silence kept, as a
    CTC head learned to spell it: :func:`speechlm.train.phone.ctc_targets`); empty when a
    phone has no unit."""
    index = {n: i for i, n in enumerate(names)}
    out: list[int] = []
    for p in arpa:
        if p is None:
            continue
        if p not in index:
            return []
        if not out or out[-1] != index[p]:
            out.append(index[p])
    return out


def phone_string(frames: list[str | None]) -> list[str]:
    """Frame phones as a phone string: silence and unlabelled frames dropped, then repeats
    merged (a phone that repeats across a pause counts once)."""
    out: list[str] = []
    for p in frames:
        if p is None or p in SILENCES:
            continue
        if not out or out[-1] != p:
            out.append(p)
    return out


SHIFTS = (-2, -1, 0, 1, 2)  # frames by which the labels are moved to find a voice's label lag


def base_voice(speaker: str) -> str:
    """``mbrola_us3-f100p114g80r85`` -> ``mbrola_us3`` (the world corpus's identity names)."""
    return speaker.split("-", 1)[0]


def shifted_errors(labels: list[str | None], pred: list[str], phones: list[str]) -> np.ndarray:
    """Wrong frames of ``pred`` against ``labels`` moved by each of :data:`SHIFTS` frames (a
    label at frame ``i`` compared with the prediction at ``i + shift``; silence and frames
    whose partner falls outside are left out), then the count of compared frames at shift 0."""
    n = len(pred)
    out = np.zeros(len(SHIFTS) + 1)
    for k, shift in enumerate(SHIFTS):
        for i in range(max(0, -shift), min(n, n - shift)):
            lab = labels[i]
            if lab in phones and lab != "SIL":
                out[k] += lab != pred[i + shift]
                if shift == 0:
                    out[-1] += 1
    return out


def voice_errors(by_voice: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Per base voice: the frame phone error on non-silence frames, and the label shift (in
    frames) with the fewest errors, with its error: a shift other than 0 says the voice's
    alignments and audio are offset (an alignment problem, not the encoder's)."""
    out = {}
    for voice, acc in sorted(by_voice.items()):
        n = max(acc[-1], 1)
        best = int(np.argmin(acc[:-1]))
        out[voice] = {"frames": int(acc[-1]), "error": round(float(acc[SHIFTS.index(0)] / n), 4),
                      "best_shift": SHIFTS[best], "error_at_best_shift": round(float(acc[best] / n),
                                                                               4)}
    return out


def _phone_encoder(tok: Tokenizer):
    """The tokenizer's phone encoder (:class:`~speechlm.ssl.phone.PhoneEncoder` or
    :class:`~speechlm.features.WhisperPhoneEncoder`), or None."""
    from speechlm.features import WhisperPhoneEncoder
    from speechlm.ssl.phone import PhoneEncoder

    return tok.encoder if isinstance(tok.encoder, (PhoneEncoder, WhisperPhoneEncoder)) else None


def _argmax_phones(enc, wav: torch.Tensor, feats: torch.Tensor) -> list[str]:
    """The phone encoder's most likely phone per frame (from the features when they are its
    posteriors, else from its head)."""
    if enc.output in ("posteriors", "logprobs"):
        scores = feats
    else:
        scores = enc.logits(wav[None])[0][0]
    return [enc.phones[i] for i in scores.argmax(-1).tolist()]


PAIRED = {"frame_phone_error": "frame_phone_errors_by_utterance",
          "unit_phone_error": "unit_phone_errors_by_utterance"}
"""What :func:`paired_errors` pairs: a measure, and the per-utterance rows it is paired over."""


def paired_errors(base: dict, other: dict, measure: str = "frame_phone_error",
                  samples: int = 2000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """OTHER - BASE of a phone error rate of two reports on the same utterances (``measure``: a
    key of :data:`PAIRED`; the frame phone error counts non-silence frames, the unit phone
    error rate edits against the reference phones), per base voice and over all (``"all"``),
    each with a 95 % paired bootstrap interval over utterances; {} when either report has no
    per-utterance errors."""
    from speechlm.eval.compare import ratio_bootstrap

    a = {r[0]: r for r in base.get(PAIRED[measure], [])}
    b = {r[0]: r for r in other.get(PAIRED[measure], [])}
    names = sorted(n for n in set(a) & set(b) if a[n][3] and a[n][3] == b[n][3])
    out = {}
    for voice in ["all", *sorted({a[n][1] for n in names})]:
        pick = [n for n in names if voice in ("all", a[n][1])]
        num = np.array([b[n][2] - a[n][2] for n in pick], float)
        den = np.array([a[n][3] for n in pick], float)
        out[voice] = {"utterances": len(pick), **ratio_bootstrap(num, den, samples, seed)}
    return out if names else {}


def markdown_table(reports: list[dict]) -> str:
    """A short markdown table of one or more reports."""
    cols = [("tokenizer", "tokenizer")]
    if any("data" in r for r in reports):
        cols.append(("data", "data"))
    if any("smoothing" in r for r in reports):
        cols.append(("smoothing", "smoothing"))
    cols += [("K", "n_units"), ("PNMI", "pnmi"),
            ("phone purity", "phone_purity"), ("cluster purity", "cluster_purity"),
            ("ABX within %", "abx_within_units"), ("ABX across %", "abx_across_units"),
            ("ABX within % (features)", "abx_within_features"),
            ("ABX across % (features)", "abx_across_features"),
            ("units/s (dedup)", "units_per_second"), ("bitrate (bit/s)", "bitrate"),
            ("frame phone error", "frame_phone_error"),
            ("phone error rate (argmax string)", "phone_error_rate"),
            ("phone error rate (units, CTC)", "unit_phone_error_rate")]
    lines = ["| " + " | ".join(c for c, _ in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for r in reports:
        lines.append("| " + " | ".join("-" if r.get(k, "") is None else str(r.get(k, ""))
                                       for _, k in cols) + " |")
    voices = [r for r in reports if r.get("frame_phone_error_by_voice")]
    if voices:  # the phone encoder's argmax per base voice, and the labels' best shift
        lines += ["", "Frame phone error of the phone encoder per base voice (non-silence "
                  "frames; best shift: the label shift in frames with the fewest errors):", "",
                  "| tokenizer | data | voice | frames | error | best shift | error there | "
                  "PNMI of the units |", "|---|---|---|---|---|---|---|---|"]
        for r in voices:
            for v, e in r["frame_phone_error_by_voice"].items():
                pnmi = r.get("pnmi_by_voice", {}).get(v, {}).get("pnmi", "")
                lines.append(f"| {r.get('tokenizer', '')} | {r.get('data', '')} | {v} | "
                             f"{e['frames']} | {e['error']} | {e['best_shift']:+d} | "
                             f"{e['error_at_best_shift']} | {pnmi} |")
    for measure, what in (("frame_phone_error", "Frame phone error against the first "
                           "tokenizer's encoder"),
                          ("unit_phone_error", "Phone error rate of the unit string (CTC) "
                           "against the first tokenizer's")):
        key = f"{measure}_vs_first"
        paired = [r for r in reports if r.get(key)]
        if not paired:  # the same utterances, each tokenizer against the first one
            continue
        lines += ["", f"{what}, paired over the same utterances (95 % bootstrap interval; * = "
                  "the interval excludes 0):", "",
                  "| tokenizer | data | against | voice | utterances | change | 95 % interval |",
                  "|---|---|---|---|---|---|---|"]
        for r in paired:
            for v, d in r[key]["voices"].items():
                lo, hi = d["ci95"]
                lines.append(f"| {r.get('tokenizer', '')} | {r.get('data', '')} | "
                             f"{r[key]['base']} | {v} | "
                             f"{d['utterances']} | {d['delta']:+.4f}{'*' if d['distinct'] else ''}"
                             f" | [{lo:+.4f}, {hi:+.4f}] |")
    calib = [r for r in reports if r.get("ctc_reference_logprob")]
    if calib:  # is the CTC head's probability calibrated? (the probes' beam sums it)
        temps = list(calib[0]["ctc_reference_logprob"]["per_unit_by_temperature"])
        lines += ["", "Log probability of the reference phone string under the CTC head's "
                  "posteriors, per reference unit, at each temperature (the best: where the "
                  "head's probabilities are calibrated):", "",
                  "| tokenizer | data | " + " | ".join(f"T = {t}" for t in temps) + " | best |",
                  "|" + "|".join("---" for _ in range(len(temps) + 3)) + "|"]
        for r in calib:
            c = r["ctc_reference_logprob"]
            lines.append(f"| {r.get('tokenizer', '')} | {r.get('data', '')} | " + " | ".join(
                str(c["per_unit_by_temperature"].get(t, "")) for t in temps)
                + f" | {c['best_temperature']:g} |")
    names = [n for n in PERTURBATIONS if any(n in r.get("ued", {}) for r in reports)]
    if names:  # robustness: a second table, one UED column per perturbation
        lines += ["", "Unit edit distance (UED, lower = more robust) under perturbation:", "",
                  "| tokenizer | data | utterances | " + " | ".join(names) + " |",
                  "|" + "|".join("---" for _ in range(len(names) + 3)) + "|"]
        for r in reports:
            ued = r.get("ued", {})
            lines.append(f"| {r.get('tokenizer', '')} | {r.get('data', '')} | "
                         f"{r.get('ued_utterances', '')} | "
                         + " | ".join(str(ued.get(n, "")) for n in names) + " |")
    warped = [r for r in reports if r.get("warps_chosen_by_voice")]
    if warped:  # --warp auto: which frequency warps the encoder chose
        lines += ["", "Warps chosen by `--warp auto` (per base voice: mean, and utterances per "
                  "warp):", "", "| tokenizer | data | voice | mean warp | utterances per warp |",
                  "|---|---|---|---|---|"]
        for r in warped:
            for v, w in r["warps_chosen_by_voice"].items():
                counts = ", ".join(f"{a}: {n}" for a, n in w["counts"].items())
                lines.append(f"| {r.get('tokenizer', '')} | {r.get('data', '')} | {v} | "
                             f"{w['mean']} | {counts} |")
    return "\n".join(lines)
