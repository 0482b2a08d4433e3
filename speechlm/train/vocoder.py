"""Train the unit vocoder (decoder, reference encoder and duration model together).

    speechlm train vocoder --config configs/vocoder/cpu.toml [--train.max_steps=3000 ...]

First the corpus is analysed once into ``data.cache`` (frame-rate units from the tokenizer;
WORLD F0, coded envelope and aperiodicity, and a log-mel, all every 10 ms), in parallel and
skipped when present. Each step then draws a batch that is a pure function of (seed, step):
random crops of utterances, each with a *different* utterance of the same voice as the voice
reference, and half of them with the source F0 contour as input (resynthesis) and half without
(the vocoder predicts F0, as it must for LM output). The run directory holds ``model/`` (the
weights with the best validation loss), ``state.safetensors`` (resume), ``log.jsonl``,
``run.toml`` and ``samples/step-N/*.wav`` (periodic audio of validation utterances).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from speechlm.audio import load_audio, save_audio
from speechlm.data.manifest import read_manifest, resolve_manifest
from speechlm.errors import DataError, ModelError, SpeechLMError
from speechlm.io import atomic_path, write_json_atomic
from speechlm.train.analysed import CacheSplit, base_voice
from speechlm.train.loop import TrainConfig, TrainTask, fit
from speechlm.train.recipe import load_recipe, vocoder_recipe_kind
from speechlm.units import dedup
from speechlm.vocoder import (
    UPSAMPLE,
    MelSpectrogram,
    UnitVocoder,
    Vocoder,
    VocoderConfig,
    f0_bin_of,
    f0_conditioning,
    log_f0_stats,
    num_parameters,
    world_analysis,
)

log = logging.getLogger(__name__)

TRAIN_DEFAULTS = TrainConfig.defaults(
    batch_size=16, max_steps=3000, lr=2e-3, min_lr=1e-4, warmup_steps=200, weight_decay=0.01,
    grad_clip=1.0, eval_interval=250, eval_batches=8, ckpt_interval=250, log_interval=25,
    out="outputs/vocoder")
BATCH_DEFAULTS: dict[str, Any] = {  # [train] keys of the vocoder's batches
    "crop_frames": 100,  # unit frames per crop (2 s)
    "ref_frames": 300,  # log-mel frames of the voice reference (3 s)
    "dur_window": 64,  # deduplicated units per duration-model window
    "f0_input_prob": 0.5,  # share of crops that get the source F0 contour as input
    "sample_interval": 1000,  # steps between audio samples (0: never)
    "adversarial": 0.0,  # weight of a least-squares adversarial loss on the predicted log-mel
    #                      from a patch critic trained beside the decoder (MelCritic; 0: none)
    "feature_matching": 0.0,  # weight of the L1 between the critic's features of the
    #                           predicted and the true log-mel (needs adversarial > 0)
    "warp_prob": 0.0,  # share of crops whose voice is warped into a new one: the target's and
    #                    the reference's log-mel stretched along the mel axis by one factor
    #                    (warp_mel; vocal-tract-length style), the units and F0 kept
    "warp_range": 0.1,  # the factor is drawn uniformly from [1 - warp_range, 1 + warp_range]
}
DATA_DEFAULTS: dict[str, Any] = {
    "corpus": "data/corpus",
    "tokenizer": "mfcc-k100",
    "cache": "data/vocoder/mfcc-k100",  # analysed corpus (made if missing)
    "holdout_voices": ["flite_rms", "flite_rms_b"],  # never seen in training (speaker RMS)
    "max_per_voice": 0,  # utterances per voice and split (0: all)
    "jobs": 0,  # analysis processes (0: all cores)
    "feats_from": "",  # a cache of the same corpus made with another tokenizer on the same
    #                    frame grid: reuse its WORLD/mel analysis, only tokenize (minutes)
    "speaker": "",  # a trained speaker encoder (speechlm train speaker): frozen inside the
    #                 vocoder as its reference encoder; empty: one trained with the decoder
    "waveform": "",  # a harmonic-plus-noise waveform stage (speechlm.waveform) exported inside
    #                  the vocoder; required by a mel-only vocoder (model.sp_dim = ap_dim = 0)
    "base_voices": [],  # train only on the cache's identities of these base voices (an
    #                     identity's name up to its first "-"; empty: all); valid is unchanged
    "train_utterances": 0,  # train on this many of those utterances, drawn with train.seed
    #                         (0: all): equal data for runs on different voices
}
LOSS_WEIGHTS = {"sp": 1.0, "ap": 0.3, "lf0": 1.0, "vuv": 0.5, "mel": 1.0, "dur": 0.5}


# --------------------------------------------------------------------------- configuration


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> dict[str, dict]:
    """Read a recipe TOML (sections data / model / train) and apply ``--section.key=value``;
    a recipe with ``model.kind = "waveform"`` is read by
    :func:`speechlm.train.waveform.load_config` (the harmonic-plus-noise waveform stage), one
    with ``"contour"`` by :func:`speechlm.train.contour.load_config` (the drawn-F0 path's
    intonation model)."""
    kind = vocoder_recipe_kind(path, overrides)
    if kind == "waveform":
        from speechlm.train import waveform

        return waveform.load_config(path, overrides)
    if kind == "contour":
        from speechlm.train import contour

        return contour.load_config(path, overrides)
    model_keys = set(VocoderConfig.__dataclass_fields__) - {
        "n_units", "unit_space", "frame_rate", "sample_rate", "spk_net"} | {"kind", "init"}
    cfg = load_recipe(path, list(overrides), {"data": DATA_DEFAULTS, "model": {},
                                              "train": {**TRAIN_DEFAULTS, **BATCH_DEFAULTS}},
                      model_keys)
    cfg["model"].pop("kind", None)  # "unit": this trainer
    t = cfg["train"]
    if float(t["adversarial"]) < 0 or float(t["feature_matching"]) < 0:
        raise DataError("train.adversarial and train.feature_matching must be >= 0")
    if float(t["feature_matching"]) and not float(t["adversarial"]):
        raise DataError("train.feature_matching needs train.adversarial > 0 (the critic)")
    if not 0 <= float(t["warp_prob"]) <= 1 or not 0 <= float(t["warp_range"]) < 0.5:
        raise DataError("train.warp_prob must be in [0, 1] and train.warp_range in [0, 0.5)")
    d = cfg["data"]
    if not isinstance(d["base_voices"], list) or not all(
            isinstance(v, str) and v for v in d["base_voices"]):
        raise DataError("data.base_voices must be a list of base voice names")
    if isinstance(d["train_utterances"], bool) or not isinstance(d["train_utterances"], int) \
            or d["train_utterances"] < 0:
        raise DataError("data.train_utterances must be a whole number >= 0")
    m = cfg["model"]
    sp, ap = int(m.get("sp_dim", 60)), int(m.get("ap_dim", 1))
    if (sp == 0) != (ap == 0):
        raise DataError("model.sp_dim and model.ap_dim must both be 0 (a mel-only vocoder) or "
                        "both positive")
    if m.get("init"):
        if not isinstance(m["init"], str):
            raise DataError("model.init must be a vocoder directory or bundled name")
        if cfg["data"]["speaker"] or cfg["data"]["waveform"]:
            raise DataError("model.init brings its own speaker encoder and waveform stage: leave "
                            "data.speaker and data.waveform empty")
        # checked now, not after the corpus analysis (minutes): it loads, with this architecture
        base = load_init(m["init"])
        arch = {k: v for k, v in m.items() if k != "init"}
        check_init_arch(base, m["init"], VocoderConfig(**{
            **arch, "n_units": base.cfg.n_units, "unit_space": base.cfg.unit_space,
            "frame_rate": base.cfg.frame_rate}))
    elif sp == 0 and not cfg["data"]["waveform"]:
        raise DataError("a mel-only vocoder (model.sp_dim = 0) needs data.waveform: a waveform "
                        "stage directory (speechlm train vocoder --config "
                        "configs/vocoder/hn-cpu.toml)")
    return cfg


# --------------------------------------------------------------------------- analysis cache

_WORKER: dict[str, Any] = {}


def _init_worker(tokenizer: str, sp_dim: int, n_mels: int) -> None:
    from speechlm.tokenizer import Tokenizer

    torch.set_num_threads(1)
    _WORKER.update(tok=Tokenizer.load(tokenizer), sp_dim=sp_dim, mel=MelSpectrogram(n_mels))


def analyze_file(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One utterance -> (units ``[T]`` int16, features ``[2T, sp+ap+mel]`` float16,
    F0 ``[2T]`` float32). Vocoder frames 2t and 2t+1 belong to unit frame t."""
    tok = _WORKER["tok"]
    wav = load_audio(path)
    units = tok.tokenize_wave(wav).ids.numpy().astype(np.int16)
    n = UPSAMPLE * len(units)
    with torch.no_grad():
        mel = _WORKER["mel"](wav[None])[0].numpy()
    if _WORKER["sp_dim"] == 0:  # mel-only: F0 alone (DIO + StoneMask), no envelope analysis
        from speechlm.audio import f0_track

        f0 = f0_track(wav.numpy())
        feats = mel[:n].astype(np.float16)
    else:
        f0, sp, ap = world_analysis(wav.numpy(), sp_dim=_WORKER["sp_dim"])
        feats = np.concatenate([sp[:n], ap[:n], mel[:n]], axis=1).astype(np.float16)
    if len(feats) < n:
        raise DataError(f"{path}: analysis gave {len(feats)} frames, expected {n}")
    return units, feats, f0[:n].astype(np.float32)


def _units_of_file(path: str) -> np.ndarray:
    return _WORKER["tok"].tokenize_wave(load_audio(path)).ids.numpy().astype(np.int16)


def _relabel_split(d: dict[str, Any], cache: Path, split: str, sp_dim: int, n_mels: int,
                   progress: bool) -> None:
    """A split of ``d['feats_from']`` (the same corpus analysed with another tokenizer) with
    its units replaced by ``d['tokenizer']``'s; the feature and F0 arrays are hard-linked
    (copied across file systems), so only tokenizing is paid."""
    from speechlm.tokenizer import Tokenizer

    src = Path(d["feats_from"])
    if not (src / f"{split}.json").is_file():
        raise DataError(f"data.feats_from: {src / f'{split}.json'} not found; build that cache "
                        "first (train a vocoder on it, or leave feats_from empty)")
    meta = json.loads((src / f"{split}.json").read_text())
    if (meta["sp_dim"], meta["n_mels"]) != (sp_dim, n_mels):
        raise DataError(f"data.feats_from: {src} has sp_dim {meta['sp_dim']} and n_mels "
                        f"{meta['n_mels']}; this model needs {sp_dim} and {n_mels}")
    hold = set(d["holdout_voices"])
    if any(spk in hold for _, spk, _, _ in meta["utterances"]):
        raise DataError(f"data.feats_from: {src} holds voices from data.holdout_voices")
    tok = Tokenizer.load(d["tokenizer"])
    if tok.frame_rate != meta["frame_rate"]:
        raise DataError(f"data.feats_from: {src} has frame rate {meta['frame_rate']}, the "
                        f"tokenizer {tok.frame_rate}")
    by_name = {u.name: str(u.path) for u in read_manifest(resolve_manifest(split, d["corpus"]))}
    paths = []
    for name, _, _, _ in meta["utterances"]:
        if name not in by_name:
            raise DataError(f"data.feats_from: {src} lists {name}, which is not in the "
                            f"{split} split of {d['corpus']}")
        paths.append(by_name[name])
    units = []
    jobs = d["jobs"] or os.cpu_count() or 1
    with ProcessPoolExecutor(jobs, initializer=_init_worker,
                             initargs=(d["tokenizer"], sp_dim, n_mels)) as ex:
        results = ex.map(_units_of_file, paths, chunksize=8)
        for (name, _, _, n), un in tqdm(zip(meta["utterances"], results), total=len(paths),
                                        desc=f"tokenize {split}", disable=not progress):
            if len(un) != n:
                raise DataError(f"{name}: {len(un)} unit frames, the analysis in {src} has {n}")
            units.append(un)
    with atomic_path(cache / f"{split}.units.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.concatenate(units))
    for name in ("feats", "f0"):
        with atomic_path(cache / f"{split}.{name}.npy") as tmp:
            try:
                tmp.unlink()
                os.link(src / f"{split}.{name}.npy", tmp)
            except OSError:
                import shutil

                shutil.copyfile(src / f"{split}.{name}.npy", tmp)
    write_json_atomic(cache / f"{split}.json", {
        **meta, "unit_space": tok.unit_space, "n_units": tok.n_units,
        "tokenizer": d["tokenizer"], "feats_from": str(src)})


def build_cache(d: dict[str, Any], sp_dim: int, n_mels: int, splits=("train", "valid"),
                progress: bool = True) -> Path:
    """Analyse the corpus splits into ``d['cache']`` (skipped for splits already there)."""
    cache = Path(d["cache"])
    cache.mkdir(parents=True, exist_ok=True)
    hold = set(d["holdout_voices"])
    space = None
    for split in splits:
        if (cache / f"{split}.json").exists():
            if space is None:
                from speechlm.tokenizer import Tokenizer

                space = Tokenizer.load(d["tokenizer"]).unit_space
            have = json.loads((cache / f"{split}.json").read_text()).get("unit_space")
            if have != space:  # e.g. a bundled name that now holds another tokenizer
                raise DataError(f"{cache} holds units of {have}, but data.tokenizer "
                                f"{d['tokenizer']} makes {space}: choose another data.cache "
                                "(data.feats_from can reuse its analysis)")
            continue
        if d["feats_from"]:
            _relabel_split(d, cache, split, sp_dim, n_mels, progress)
            continue
        items = [u for u in read_manifest(resolve_manifest(split, d["corpus"]))
                 if (u.speaker or u.name.split("/")[0]) not in hold]
        if d["max_per_voice"]:
            seen: dict[str, int] = {}
            keep = []
            for u in items:
                s = u.speaker or u.name.split("/")[0]
                if seen.get(s, 0) < d["max_per_voice"]:
                    seen[s] = seen.get(s, 0) + 1
                    keep.append(u)
            items = keep
        if not items:
            raise DataError(f"no {split} utterances left after holding out {sorted(hold)}")
        jobs = d["jobs"] or os.cpu_count() or 1
        units, feats, f0s, index = [], [], [], []
        off = 0
        with ProcessPoolExecutor(jobs, initializer=_init_worker,
                                 initargs=(d["tokenizer"], sp_dim, n_mels)) as ex:
            results = ex.map(analyze_file, [str(u.path) for u in items], chunksize=8)
            for u, (un, fe, f0) in tqdm(zip(items, results), total=len(items),
                                        desc=f"analyse {split}", disable=not progress):
                units.append(un)
                feats.append(fe)
                f0s.append(f0)
                index.append([u.name, u.speaker or u.name.split("/")[0], off, len(un)])
                off += len(un)
        for name, arr in (("units", np.concatenate(units)), ("feats", np.concatenate(feats)),
                          ("f0", np.concatenate(f0s))):
            with atomic_path(cache / f"{split}.{name}.npy") as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, arr)
        from speechlm.tokenizer import Tokenizer

        tok = Tokenizer.load(d["tokenizer"])
        write_json_atomic(cache / f"{split}.json", {
            "format": "speechlm.vocoder-cache", "version": 1, "unit_space": tok.unit_space,
            "n_units": tok.n_units, "frame_rate": tok.frame_rate, "sp_dim": sp_dim,
            "n_mels": n_mels, "tokenizer": d["tokenizer"], "utterances": index})
    return cache


def train_subset(data: CacheSplit, bases: Sequence[str], n: int, seed: int) -> list[int]:
    """The train utterances of ``data.base_voices`` / ``data.train_utterances``: those of the
    base voices ``bases`` (empty: all), then ``n`` of them drawn with ``seed`` (0: all), in
    cache order. A base voice the split lacks, or more utterances than it holds, is an error."""
    have = {base_voice(spk) for _, spk, _, _ in data.utts}
    missing = sorted(set(bases) - have)
    if missing:
        raise DataError(f"data.base_voices: {', '.join(missing)} not in the train split (it "
                        f"has {', '.join(sorted(have))})")
    keep = [i for i, (_, spk, _, _) in enumerate(data.utts)
            if not bases or base_voice(spk) in bases]
    if n:
        if n > len(keep):
            raise DataError(f"data.train_utterances = {n}, but the chosen voices have "
                            f"{len(keep)} train utterances")
        rng = np.random.default_rng([int(seed), 7])
        keep = sorted(rng.choice(keep, size=n, replace=False).tolist())
    return keep


# --------------------------------------------------------------------------- batches


def warp_mel(x: np.ndarray, a: float) -> np.ndarray:
    """``x`` (..., bands) stretched along the band axis by ``a``: band j takes the value at
    band j / a (linear interpolation, the edge bands repeated), so a > 1 moves the spectral
    envelope's features (formants) up, as a shorter vocal tract does, and a < 1 down."""
    n = x.shape[-1]
    src = np.clip(np.arange(n, dtype=np.float64) / a, 0, n - 1)
    i = np.minimum(src.astype(np.int64), n - 2)
    w = (src - i).astype(x.dtype)
    return x[..., i] * (1 - w) + x[..., i + 1] * w


def _batch_draw(data: CacheSplit, seed: int, step: int,
                batch_size: int) -> tuple[np.random.Generator, np.ndarray]:
    """The generator of batch ``step`` and its utterances (indices into ``data``), its first
    draw: :func:`make_batch` goes on drawing the crops from the same generator."""
    rng = np.random.default_rng([seed, step])
    return rng, rng.integers(0, len(data), size=batch_size)


def batch_utterances(data: CacheSplit, seed: int, step: int, batch_size: int) -> list[int]:
    """The utterance of each row of :func:`make_batch`'s batch ``step`` (indices into
    ``data``), e.g. to break a loss down by voice."""
    return _batch_draw(data, seed, step, batch_size)[1].tolist()


def make_batch(data: CacheSplit, seed: int, step: int, t: dict[str, Any], sp_dim: int,
               ap_dim: int) -> dict[str, torch.Tensor]:
    """The batch of ``step``: a pure function of (seed, step)."""
    B, C = t["batch_size"], t["crop_frames"]
    rng, idx = _batch_draw(data, seed, step, B)
    units = np.zeros((B, C), np.int64)
    feats = np.zeros((B, 2 * C, data.feats.shape[1]), np.float32)
    f0 = np.zeros((B, 2 * C), np.float32)
    mask = np.zeros((B, 2 * C), np.float32)
    f0_in = np.zeros((B, 2 * C, 3), np.float32)
    use_f0 = rng.random(B) < t["f0_input_prob"]
    R = t["ref_frames"]
    ref_mel = np.zeros((B, R, data.feats.shape[1] - sp_dim - ap_dim), np.float32)
    ref_len = np.zeros(B, np.int64)
    ref_stats = np.zeros((B, 2), np.float32)
    W = t["dur_window"]
    dur_ids = np.zeros((B, W), np.int64)
    dur_tgt = np.zeros((B, W), np.float32)
    dur_mask = np.zeros((B, W), np.float32)
    for b, i in enumerate(idx):
        u, fe, f = data.item(int(i))
        n = min(C, len(u))
        s = int(rng.integers(0, len(u) - n + 1))
        units[b, :n] = u[s : s + n]
        feats[b, : 2 * n] = fe[2 * s : 2 * (s + n)]
        f0[b, : 2 * n] = f[2 * s : 2 * (s + n)]
        mask[b, : 2 * n] = 1
        if use_f0[b]:
            f0_in[b, : 2 * n] = f0_conditioning(f[2 * s : 2 * (s + n)], 2 * n).numpy()
        # the voice reference: another utterance of the same voice
        same = data.by_speaker[data.utts[int(i)][1]]
        j = int(same[int(rng.integers(0, len(same)))])
        if j == i and len(same) > 1:
            j = int(same[(same.index(int(i)) + 1) % len(same)])
        _, rfe, rf = data.item(j)
        rn = min(R, len(rfe))
        rs = int(rng.integers(0, len(rfe) - rn + 1))
        ref_mel[b, :rn] = rfe[rs : rs + rn, sp_dim + ap_dim :]
        ref_len[b] = rn
        ref_stats[b] = log_f0_stats(rf).numpy()
        # a window of deduplicated units with their durations
        ids, durs = dedup(torch.from_numpy(u.astype(np.int64)))
        m = min(W, len(ids))
        ds = int(rng.integers(0, len(ids) - m + 1))
        dur_ids[b, :m] = ids[ds : ds + m].numpy()
        dur_tgt[b, :m] = np.log(durs[ds : ds + m].numpy())
        dur_mask[b, :m] = 1
    if t["warp_prob"] > 0:  # its own generator: without warping the batches are unchanged
        wrng = np.random.default_rng([seed, step, 1])
        lo = sp_dim + ap_dim
        for b in range(B):
            if wrng.random() < t["warp_prob"]:
                a = 1.0 + float(wrng.uniform(-t["warp_range"], t["warp_range"]))
                feats[b, :, lo:] = warp_mel(feats[b, :, lo:], a)
                ref_mel[b] = warp_mel(ref_mel[b], a)
    out = {"units": units, "feats": feats, "f0": f0, "mask": mask, "f0_in": f0_in,
           "ref_mel": ref_mel, "ref_len": ref_len, "ref_stats": ref_stats,
           "dur_ids": dur_ids, "dur_tgt": dur_tgt, "dur_mask": dur_mask}
    return {k: torch.from_numpy(v) for k, v in out.items()}


def compute_stats(data: CacheSplit, sp_dim: int, ap_dim: int,
                  max_frames: int = 400_000) -> dict[str, torch.Tensor]:
    """Mean / std of the targets, from an even subsample of the training frames."""
    step = max(1, len(data.feats) // max_frames)
    fe = np.asarray(data.feats[::step], dtype=np.float64)
    f0 = np.asarray(data.f0[::step], dtype=np.float64)
    mean, std = fe.mean(0), fe.std(0) + 1e-3
    lf0 = np.log(f0[f0 > 0])

    def pair(a, b):
        return torch.tensor(np.stack([a, b]), dtype=torch.float32)

    return {"sp_stats": pair(mean[:sp_dim], std[:sp_dim]),
            "ap_stats": pair(mean[sp_dim : sp_dim + ap_dim], std[sp_dim : sp_dim + ap_dim]),
            "mel_stats": pair(mean[sp_dim + ap_dim :], std[sp_dim + ap_dim :]),
            "lf0_stats": torch.tensor([lf0.mean(), lf0.std()], dtype=torch.float32)}


def _lf0_loss(lf0: torch.Tensor, target: torch.Tensor, voiced: torch.Tensor,
              bins: int) -> torch.Tensor:
    """L1 on normalized log F0 (``bins`` 0), or cross-entropy over the log-F0 bins; voiced
    frames only."""
    if not bins:
        return ((lf0[..., 0] - target).abs() * voiced).sum() / voiced.sum().clamp(min=1)
    ce = F.cross_entropy(lf0.transpose(1, 2), f0_bin_of(target, bins), reduction="none")
    return (ce * voiced).sum() / voiced.sum().clamp(min=1)


def losses(model: UnitVocoder, batch: dict[str, torch.Tensor],
           keep: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """All training losses of one batch (normalized units; see :data:`LOSS_WEIGHTS`);
    ``keep`` (a dict) receives the normalized log-mel predicted (``mel``) and true
    (``t_mel``), ``[B, 2C, n_mels]``."""
    c = model.cfg
    spk = model.speaker_vector(batch["ref_mel"], batch["ref_len"], batch["ref_stats"])
    has_f0 = batch["f0_in"][..., 2:3].amax(dim=1, keepdim=True)  # [B, 1, 1]
    f0_in = batch["f0_in"] * has_f0
    y = model(batch["units"], spk, f0_in)
    sp, ap, lf0, vuv, mel = torch.split(y, [c.sp_dim, c.ap_dim, c.f0_width, 1, c.n_mels],
                                        dim=-1)
    fe = batch["feats"]
    t_sp = (fe[..., : c.sp_dim] - model.sp_stats[0]) / model.sp_stats[1]
    t_ap = (fe[..., c.sp_dim : c.sp_dim + c.ap_dim] - model.ap_stats[0]) / model.ap_stats[1]
    t_mel = (fe[..., c.sp_dim + c.ap_dim :] - model.mel_stats[0]) / model.mel_stats[1]
    m = batch["mask"]
    if keep is not None:
        keep.update(mel=mel, t_mel=t_mel)
    voiced = (batch["f0"] > 0).float() * m
    t_lf0 = (torch.log(batch["f0"].clamp(min=1.0)) - model.lf0_stats[0]) / model.lf0_stats[1]

    def l1(a, b):
        if a.shape[-1] == 0:  # a mel-only vocoder has no envelope / aperiodicity heads
            return a.new_zeros(())
        return ((a - b).abs().mean(-1) * m).sum() / m.sum().clamp(min=1)

    out = {"sp": l1(sp, t_sp), "ap": l1(ap, t_ap), "mel": l1(mel, t_mel),
           "lf0": _lf0_loss(lf0, t_lf0, voiced, c.f0_bins),
           "vuv": (F.binary_cross_entropy_with_logits(vuv[..., 0], (batch["f0"] > 0).float(),
                                                       reduction="none") * m).sum()
           / m.sum().clamp(min=1)}
    logd = model.duration(batch["dur_ids"], spk)
    dm = batch["dur_mask"]
    out["dur"] = (((logd - batch["dur_tgt"]) ** 2) * dm).sum() / dm.sum().clamp(min=1)
    out["total"] = sum(LOSS_WEIGHTS[k] * v for k, v in out.items())
    return out


class MelCritic(nn.Module):
    """A small patch critic over normalized log-mel ``[B, N, n_mels]`` (training only: it is
    never exported): 2-D convolutions over (mel band, frame), three with stride 2, each patch
    of ~60 bands x 60 frames scored real or predicted. ~0.1M parameters."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 64)):
        super().__init__()
        layers, cin = [], 1
        for i, c in enumerate(channels):
            k, stride = (5, 2) if i < 3 else (3, 1)
            layers.append(nn.Conv2d(cin, c, k, stride=stride, padding=k // 2))
            cin = c
        self.layers = nn.ModuleList(layers)
        self.out = nn.Conv2d(cin, 1, 3, padding=1)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``[B, N, n_mels]`` -> (scores ``[B, 1, n_mels', N']``, each layer's features)."""
        x = mel.transpose(1, 2).unsqueeze(1)
        feats = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            feats.append(x)
        return self.out(x), feats


class CriticVocoder(nn.Module):
    """The decoder under training with its critic beside it (:func:`adversarial_losses`)."""

    def __init__(self, vocoder: UnitVocoder):
        super().__init__()
        self.vocoder = vocoder
        self.critic = MelCritic()


def adversarial_losses(model: CriticVocoder, batch: dict[str, torch.Tensor], adv: float,
                       fm: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(what to back-propagate, metrics) of one batch with the critic: the decoder's losses
    plus ``adv`` x the least-squares adversarial loss of its log-mel and ``fm`` x the critic's
    feature matching, and the critic's own least-squares loss. One backward pass trains both:
    the critic's loss sees the prediction detached, and the decoder's terms see the critic
    through detached copies of its weights, so neither loss moves the other's parameters."""
    keep: dict[str, torch.Tensor] = {}
    out = losses(model.vocoder, batch, keep)
    m = batch["mask"][..., None]
    fake, real = keep["mel"] * m, keep["t_mel"] * m  # padding: 0 on both sides
    critic = model.critic
    d_real, _ = critic(real)
    d_fake, _ = critic(fake.detach())
    out["critic"] = (d_real - 1).pow(2).mean() + d_fake.pow(2).mean()
    frozen = {k: v.detach() for k, v in critic.named_parameters()}
    g_fake, f_fake = torch.func.functional_call(critic, frozen, (fake,))
    with torch.no_grad():
        _, f_real = critic(real)
    out["adv"] = (g_fake - 1).pow(2).mean()
    out["fm"] = sum((a - b).abs().mean() for a, b in zip(f_fake, f_real)) / len(f_real)
    out["total"] = out["total"] + adv * out["adv"] + fm * out["fm"]
    return out["total"] + out["critic"], out


# --------------------------------------------------------------------------- the task


def _write_samples(out: Path, model: UnitVocoder, valid: CacheSplit, corpus: str, step: int,
                   training: dict, waveform=None) -> None:
    """Vocode the first two validation utterances of two voices, with and without F0."""
    from speechlm.tokenizer import Tokenizer
    from speechlm.units import Units

    voc = Vocoder(copy.deepcopy(model).cpu(), training, waveform)
    items = {u.name: u for u in read_manifest(resolve_manifest("valid", corpus))}
    picks = [valid.by_speaker[s][0] for s in sorted(valid.by_speaker)[:2]]
    tok = Tokenizer.load(training["tokenizer"])
    d = out / "samples" / f"step-{step:06d}"
    for i in picks:
        name = valid.utts[i][0]
        wav = load_audio(items[name].path)
        units = Units(torch.from_numpy(valid.item(i)[0].astype(np.int64)), tok.frame_rate,
                      tok.n_units, tok.unit_space)
        voice = voc.voice(wav)
        stem = name.replace("/", "_")
        save_audio(d / f"{stem}-f0.wav", voc.decode(units, voice, f0=valid.item(i)[2]))
        save_audio(d / f"{stem}-nof0.wav", voc.decode(units, voice))


def load_init(name_or_path: str) -> Vocoder:
    """The vocoder ``model.init`` names.

    Raises:
        DataError: it is not a vocoder (missing, unreadable, another kind of model).
    """
    try:
        return Vocoder.load(name_or_path)
    except ModelError as err:
        raise DataError(f"model.init {name_or_path}: {err}") from None


GROWABLE = ("pre_blocks", "post_blocks")  # a warm start may add blocks (see grow_state)


def check_init_arch(base: Vocoder, name: str, cfg: VocoderConfig) -> None:
    """Refuse a ``model.init`` vocoder whose architecture differs from the recipe's ``cfg``
    (its speaker network and units aside). The recipe may have more ``pre_blocks`` /
    ``post_blocks`` than the vocoder it starts from (:func:`grow_state`), never fewer.

    Raises:
        DataError: naming the differing ``model.*`` keys.
    """
    same = {"spk_net": None, "n_units": 0, "unit_space": ""}  # units: see unit_transfer
    mine = dataclasses.replace(cfg, **same).to_dict()
    theirs = dataclasses.replace(base.cfg, **same).to_dict()
    diff = sorted(k for k in mine if mine[k] != theirs[k]
                  and not (k in GROWABLE and mine[k] > theirs[k]))
    if diff:
        raise DataError(f"model.init {name}: its architecture differs from the "
                        f"recipe's in {', '.join(f'model.{k}' for k in diff)}"
                        + (" (blocks can be added to a warm start, not removed)"
                           if set(diff) & set(GROWABLE) else ""))


def grow_state(sd: dict[str, torch.Tensor], model: UnitVocoder) -> tuple[dict, dict[str, int]]:
    """``model``'s state dict with a smaller vocoder's weights ``sd`` in place: the blocks the
    smaller one lacks (appended after its own pre and post blocks) keep their fresh weights,
    except each new block's output projection, which starts at zero, so the block starts as
    the identity (its residual adds nothing) and the grown vocoder starts as the one it grew
    from. Returns the state dict and ``{part: blocks added}``."""
    full = model.state_dict()
    added = {}
    for part in ("pre", "post"):
        have = {int(k.split(".")[1]) for k in sd if k.startswith(part + ".")}
        n = len(getattr(model, part))
        added[part] = n - len(have)
        for i in range(len(have), n):
            for k in list(full):
                if k.startswith(f"{part}.{i}."):
                    sd[k] = (torch.zeros_like(full[k]) if k.startswith(f"{part}.{i}.proj.")
                             else full[k])
    return sd, added


def warm_start_source(name_or_path: str, cfg: VocoderConfig) -> Vocoder:
    """The vocoder a run starts from (``model.init``): it must have the recipe's architecture;
    its speaker network (if any) comes with it. Its units may differ from the recipe's when
    both are k-means units of one encoder's features (see :func:`unit_transfer`).

    Raises:
        DataError: not a vocoder, or its architecture differs from the recipe's.
    """
    base = load_init(name_or_path)
    check_init_arch(base, name_or_path, cfg)
    return base


def unit_transfer(old: str, new: str) -> torch.Tensor:
    """For each unit of tokenizer ``new``, the unit of tokenizer ``old`` nearest to it: its
    centroid mapped back to the features and quantized by ``old`` (``[K_new]`` ids). A vocoder
    warm-started across the two unit spaces starts each new unit's embeddings from that unit's.

    Raises:
        DataError: the two tokenizers quantize different features (another encoder, layer or
            weights), where nothing maps one's units onto the other's.
    """
    from speechlm.tokenizer import Tokenizer

    a, b = Tokenizer.load(old), Tokenizer.load(new)

    def identity(t) -> tuple:  # what the features depend on (weights, not where or named)
        fp = getattr(t.encoder, "weights_fingerprint", None)
        skip = {"path", "name"} if fp else {"path"}
        c = {k: v for k, v in t.encoder.config().items() if k not in skip}
        return json.dumps(c, sort_keys=True), fp() if fp else "", t.quantizer.dim

    if identity(a) != identity(b) or a.blank is not None or b.blank is not None:
        raise DataError(f"model.init: its units ({old}) and the recipe's ({new}) are not k-means "
                        "units of the same features, so its unit embeddings cannot be carried over")
    return a.quantizer.encode(b.quantizer.decode(torch.arange(b.n_units)))


def frame_transfer(old: np.ndarray, new: np.ndarray, n_old: int, n_new: int
                   ) -> tuple[torch.Tensor, float]:
    """For each of ``n_new`` units, the one of ``n_old`` it shares the most frames with, given
    the same frames labelled by two tokenizers (``old[i]`` and ``new[i]`` label frame ``i``);
    a new unit on no frame gets the most frequent old unit. Any two unit spaces at one frame
    rate map this way, whatever their features: how a vocoder warm-starts on units of another
    encoder (``data.feats_from`` gives the frames of both).

    Returns:
        ``([n_new]`` old unit ids, the share of frames whose old unit is its new unit's pick).

    Raises:
        DataError: the two label sequences differ in length or hold ids out of range.
    """
    old, new = np.asarray(old).astype(np.int64), np.asarray(new).astype(np.int64)
    if old.shape != new.shape or old.ndim != 1 or not len(old):
        raise DataError(f"unit transfer: {old.shape} and {new.shape} frames; both must label "
                        "the same frames")
    if old.min() < 0 or old.max() >= n_old or new.min() < 0 or new.max() >= n_new:
        raise DataError("unit transfer: unit ids out of range")
    counts = np.bincount(new * n_old + old, minlength=n_new * n_old).reshape(n_new, n_old)
    pick = counts.argmax(1)
    pick[counts.sum(1) == 0] = np.bincount(old, minlength=n_old).argmax()
    agree = float(counts[np.arange(n_new), pick].sum() / len(old))
    return torch.from_numpy(pick), agree


def init_unit_map(base: Vocoder, init: str, cache: Path, tokenizer: str
                  ) -> tuple[torch.Tensor, dict[str, Any]]:
    """Which of ``base``'s (the ``model.init`` vocoder's) units each unit of the recipe's
    starts from. Frame by frame (:func:`frame_transfer`) when ``cache`` was relabelled
    (``data.feats_from``) from a cache of ``base``'s units; else by centroid
    (:func:`unit_transfer`) through the tokenizer ``base`` names, when that still makes its
    units (a bundled name may since name a newer tokenizer).

    Returns:
        (the ``[K]`` old unit ids, what the training record says of the mapping)

    Raises:
        DataError: no way to map the units.
    """
    from speechlm.tokenizer import Tokenizer

    meta = json.loads((cache / "train.json").read_text())
    src = Path(meta["feats_from"]) if meta.get("feats_from") else None
    if src is not None and (src / "train.json").is_file():
        src_meta = json.loads((src / "train.json").read_text())
        if src_meta.get("unit_space") == base.cfg.unit_space:
            pick, agree = frame_transfer(np.load(src / "train.units.npy", mmap_mode="r"),
                                         np.load(cache / "train.units.npy", mmap_mode="r"),
                                         base.cfg.n_units, int(meta["n_units"]))
            return pick, {"init_units_map": "frames", "init_units_from": str(src),
                          "init_units_agreement": round(agree, 4)}
    name = base.training.get("tokenizer")
    if not name:
        raise DataError(f"model.init {init}: its units are {base.cfg.unit_space}, the recipe's "
                        f"{meta['unit_space']}, and it does not name its tokenizer; give "
                        "data.feats_from a cache of its units")
    try:
        space = Tokenizer.load(name).unit_space
    except (ModelError, OSError) as err:
        raise DataError(f"model.init {init}: its tokenizer {name}: {err}") from None
    if space != base.cfg.unit_space:
        raise DataError(f"model.init {init}: the tokenizer it names ({name}) now makes "
                        f"{space}, not its units {base.cfg.unit_space}; give data.feats_from a "
                        "cache of its units (e.g. the one it was trained on) to map them frame "
                        "by frame")
    return unit_transfer(name, tokenizer), {"init_units_map": "centroids"}


UNIT_EMBEDDINGS = ("embed.weight", "duration.embed.weight")  # the rows indexed by unit id


class VocoderTask(TrainTask):
    """Units + voice reference (+ F0) -> WORLD parameters and log-mel, and log durations."""

    name, main_metric, rate_unit = "vocoder", "total", "steps"
    betas = (0.8, 0.99)

    def __init__(self, cfg: dict[str, dict], recipe: str | None = None):
        self.cfg, self.recipe = cfg, recipe
        self.data, self.t = cfg["data"], cfg["train"]
        self.sp_dim = int(cfg["model"].get("sp_dim", 60))
        self.n_mels = int(cfg["model"].get("n_mels", 80))

    def prepare(self, progress: bool) -> None:
        build_cache(self.data, self.sp_dim, self.n_mels, progress=progress)

    @property
    def waveform(self):
        """The waveform stage exported with the vocoder (``data.waveform``, or the one of
        ``model.init``), loaded once."""
        if getattr(self, "_waveform", None) is not None:
            return self._waveform
        if not self.data.get("waveform"):
            return None
        from speechlm.waveform import WaveformModel

        self._waveform = WaveformModel.load(self.data["waveform"])
        return self._waveform

    def build(self, device: torch.device, rank: int, world: int) -> UnitVocoder:
        if world > 1:  # its loss calls several submodules, which DDP's forward does not wrap
            raise SpeechLMError("the vocoder trains in one process; run it without torchrun")
        cache, d = Path(self.data["cache"]), self.data
        self.splits = {s: CacheSplit(cache, s) for s in ("train", "valid")}
        subset = d["base_voices"] or d["train_utterances"]
        if subset:
            train = self.splits["train"]
            train.select(train_subset(train, list(d["base_voices"]),
                                      int(d["train_utterances"]), self.t["seed"]))
        meta = self.splits["train"].meta
        init = self.cfg["model"].get("init") or ""
        arch = {k: v for k, v in self.cfg["model"].items() if k != "init"}
        self.mcfg = VocoderConfig(**{**arch, "n_units": meta["n_units"],
                                     "unit_space": meta["unit_space"],
                                     "frame_rate": meta["frame_rate"]})
        if self.mcfg.sp_dim != meta["sp_dim"] or self.mcfg.n_mels != meta["n_mels"]:
            raise DataError(f"{cache} was analysed with sp_dim {meta['sp_dim']} / n_mels "
                            f"{meta['n_mels']}; the config asks {self.mcfg.sp_dim} / "
                            f"{self.mcfg.n_mels}")
        self.training = {"steps": 0, "corpus": d["corpus"], "tokenizer": d["tokenizer"],
                         "holdout_voices": list(d["holdout_voices"]), "recipe": self.recipe,
                         "seed": self.t["seed"],
                         "train_voices": sorted(self.splits["train"].by_speaker)}
        if subset:
            self.training.update(base_voices=list(d["base_voices"]),
                                 train_utterances=len(self.splits["train"]))
        base = None
        if init:  # its weights, statistics, frozen speaker network and waveform stage
            base = warm_start_source(init, self.mcfg)
            self.mcfg = dataclasses.replace(self.mcfg, spk_net=base.cfg.spk_net)
            self.training["init"] = str(init)
            if base.training.get("speaker"):
                self.training["speaker"] = base.training["speaker"]
            self._waveform = base.waveform
        spk = None
        if d.get("speaker"):
            from speechlm.speaker import SpeakerModel

            spk = SpeakerModel.load(d["speaker"])
            self.mcfg = dataclasses.replace(self.mcfg, spk_net=spk.model.cfg.to_dict())
            self.training["speaker"] = str(d["speaker"])
        model = UnitVocoder(self.mcfg)
        if spk is not None:
            model.speaker.net.load_state_dict(spk.model.state_dict())
        for k, v in compute_stats(self.splits["train"], self.mcfg.sp_dim,
                                  self.mcfg.ap_dim).items():
            getattr(model, k).copy_(v)
        if base is not None:
            sd = base.model.state_dict()
            if base.cfg.unit_space != self.mcfg.unit_space:
                nearest, how = init_unit_map(base, init, cache, d["tokenizer"])
                for k in UNIT_EMBEDDINGS:
                    sd[k] = sd[k][nearest]
                self.training.update(init_units=base.cfg.unit_space, **how)
                log.info("vocoder: units of %s start from those of %s (%s)",
                         self.mcfg.unit_space, base.cfg.unit_space,
                         ", ".join(f"{k} {v}" for k, v in how.items()))
            sd, added = grow_state(sd, model)
            if any(added.values()):
                self.training["init_blocks_added"] = added
                log.info("vocoder: %d pre and %d post blocks added to %s, each starting as the "
                         "identity", added["pre"], added["post"], init)
            model.load_state_dict(sd)
        if self.t["warp_prob"]:
            self.training.update(warp_prob=float(self.t["warp_prob"]),
                                 warp_range=float(self.t["warp_range"]))
        self.adversarial = float(self.t["adversarial"])
        self.feature_matching = float(self.t["feature_matching"])
        if self.adversarial:
            self.training.update(adversarial=self.adversarial,
                                 feature_matching=self.feature_matching)
            return CriticVocoder(model)
        return model

    def batch(self, split: str, seed: int, index: int) -> dict[str, torch.Tensor]:
        t = self.t if split == "train" else {**self.t, "warp_prob": 0.0}  # valid: real voices
        return make_batch(self.splits[split], seed, index, t, self.mcfg.sp_dim, self.mcfg.ap_dim)

    def loss(self, model, batch):
        if isinstance(model, CriticVocoder):
            return adversarial_losses(model, batch, self.adversarial, self.feature_matching)
        ls = losses(model, batch)
        return ls["total"], ls

    def clip_groups(self, model) -> list[list[nn.Parameter]]:
        if isinstance(model, CriticVocoder):  # the critic's gradients never shrink the decoder's
            return [list(model.vocoder.parameters()), list(model.critic.parameters())]
        return super().clip_groups(model)

    def state_tensors(self, model) -> dict[str, torch.Tensor]:
        """The decoder's tensors under their own names (``export_last_vocoder`` reads them),
        the critic's under ``critic.``."""
        if not isinstance(model, CriticVocoder):
            return model.state_dict()
        return {**model.vocoder.state_dict(),
                **{f"critic.{k}": v for k, v in model.critic.state_dict().items()}}

    def load_state_tensors(self, model, tensors: dict[str, torch.Tensor]) -> None:
        if not isinstance(model, CriticVocoder):
            model.load_state_dict(tensors, strict=True)
            return
        critic = {k[7:]: v for k, v in tensors.items() if k.startswith("critic.")}
        if not critic:
            raise ValueError("the saved run has no critic (it trained without train.adversarial)")
        model.vocoder.load_state_dict({k: v for k, v in tensors.items()
                                       if not k.startswith("critic.")}, strict=True)
        model.critic.load_state_dict(critic, strict=True)

    def describe(self, model) -> str:
        extra = ""
        if isinstance(model, CriticVocoder):
            extra = (f" (+ a {num_parameters(model.critic) / 1e6:.2f}M-parameter critic, "
                     f"adversarial {self.adversarial:g}, feature matching "
                     f"{self.feature_matching:g})")
            model = model.vocoder
        return (f"{num_parameters(model) / 1e6:.2f}M parameters{extra}; "
                f"{len(self.splits['train'])} train / {len(self.splits['valid'])} valid "
                "utterances")

    def export(self, out: Path, model, step: int, valid: dict[str, float], rate: float) -> None:
        self.training.update(steps=step, valid_loss={k: round(v, 5) for k, v in valid.items()})
        Vocoder(_decoder(model), self.training, self.waveform).save(out)

    def after_step(self, run: Path, model, step: int) -> None:
        every = self.t["sample_interval"]
        if every and (step % every == 0 or step == self.t["max_steps"]):
            _write_samples(run, _decoder(model), self.splits["valid"], self.data["corpus"], step,
                           self.training, self.waveform)


def _decoder(model: nn.Module) -> UnitVocoder:
    return model.vocoder if isinstance(model, CriticVocoder) else model


def train_vocoder(cfg: dict[str, dict], progress: bool = True, recipe: str | None = None) -> Path:
    """Run (or resume) the training described by ``cfg``; returns the run directory."""
    if cfg["model"].get("kind") == "waveform":
        from speechlm.train.waveform import train_waveform

        return train_waveform(cfg, progress, recipe)
    if cfg["model"].get("kind") == "contour":
        from speechlm.train.contour import train_contour

        return train_contour(cfg, progress, recipe)
    return fit(VocoderTask(cfg, recipe), cfg, progress)


def main(argv: list[str] | None = None) -> int:
    from speechlm.train.loop import main as train_main

    return train_main(argv, "speechlm train vocoder", "configs/vocoder/cpu.toml", load_config,
                      train_vocoder)


if __name__ == "__main__":
    sys.exit(main())
