"""``speechlm eval tokenizer``: unit quality on held-out utterances with phone alignments.

Measures, per tokenizer:
    * PNMI, phone purity and cluster purity of frame units against frame phone labels (the
      phone whose segment holds the frame's centre), as in the HuBERT paper; silence included;
    * ABX error on phone segments (silence excluded), within and across speakers, for the unit
      sequence (each frame represented by its centroid) and, as the reference the quantizer can
      at best keep, for the continuous features it quantizes;
    * unit rate after dedup and the bitrate (units/s x unigram entropy).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from speechlm.audio import FRAME_SIZE, HOP_SIZE, load_audio
from speechlm.errors import DataError
from speechlm.eval.abx import abx_error
from speechlm.eval.metrics import phone_unit_stats, unit_rate_and_bitrate
from speechlm.data.manifest import read_manifest, read_phn
from speechlm.tokenizer import Tokenizer
from speechlm.units import dedup

log = logging.getLogger(__name__)

SILENCES = frozenset({"pau", "sil", "h#", "sp", "SIL", "<sil>"})
ABX_MAX_PER_SPEAKER_PHONE = 10  # phone occurrences per (speaker, phone) kept for ABX


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
                       progress: bool = True) -> dict:
    """Evaluate ``tokenizer`` on the utterances of ``manifest``.

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
    all_units, all_phones = [], []
    seqs, secs = [], []
    # ABX candidates: (speaker, phone) -> list of (unit-centroid frames, feature frames)
    segs: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    q = tok.quantizer
    for u in tqdm(items, desc="eval", unit="utt", disable=not progress):
        wav = load_audio(u.path, tok.sample_rate, min_samples=FRAME_SIZE)
        feats = tok.features(wav[None])[0]
        ids = q.encode(feats)
        seqs.append(dedup(ids)[0].numpy())
        secs.append(wav.numel() / tok.sample_rate)
        if not u.phn_path.exists():
            continue
        labels = frame_labels(read_phn(u.phn_path), len(ids))
        for lab in labels:
            if lab is not None and lab not in phone_ids:
                phone_ids[lab] = len(phone_ids)
        all_units.append(ids.numpy())
        all_phones.append(np.array([phone_ids[lab] if lab is not None else -1 for lab in labels]))
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

    # ABX: a bounded, seeded sample of occurrences per (speaker, phone)
    abx_units, abx_feats, abx_phone, abx_spk = [], [], [], []
    for (spk, lab), occ in sorted(segs.items()):
        pick = rng.permutation(len(occ))[:ABX_MAX_PER_SPEAKER_PHONE]
        for k in pick:
            abx_units.append(occ[k][0])
            abx_feats.append(occ[k][1])
            abx_phone.append(phone_ids[lab])
            abx_spk.append(spk)
    abx = {}
    for name, reps in (("units", abx_units), ("features", abx_feats)):
        for mode in ("within", "across"):
            r = abx_error(reps, abx_phone, abx_spk, mode=mode, distance="cosine", seed=seed)
            abx[f"abx_{mode}_{name}"] = round(100 * r.error, 2)
    rate = unit_rate_and_bitrate(seqs, secs, tok.n_units)
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
        "phone_purity": round(stats.phone_purity, 4),
        "cluster_purity": round(stats.cluster_purity, 4),
        "units_used": stats.units_used,
        **abx,
        "abx_segments": len(abx_units),
        "units_per_second": round(rate["units_per_second"], 2),
        "entropy_bits": round(rate["entropy_bits"], 3),
        "bitrate": round(rate["bitrate"], 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return report


def markdown_table(reports: list[dict]) -> str:
    """A short markdown table of one or more reports."""
    cols = [("tokenizer", "tokenizer"), ("K", "n_units"), ("PNMI", "pnmi"),
            ("phone purity", "phone_purity"), ("cluster purity", "cluster_purity"),
            ("ABX within %", "abx_within_units"), ("ABX across %", "abx_across_units"),
            ("ABX within % (features)", "abx_within_features"),
            ("ABX across % (features)", "abx_across_features"),
            ("units/s (dedup)", "units_per_second"), ("bitrate (bit/s)", "bitrate")]
    lines = ["| " + " | ".join(c for c, _ in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for r in reports:
        lines.append("| " + " | ".join(str(r.get(k, "")) for _, k in cols) + " |")
    return "\n".join(lines)
