"""Fit a tokenizer: dump frame features of a manifest, then k-means them."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from speechlm.audio import load_audio
from speechlm.data.manifest import Utterance
from speechlm.errors import ModelError
from speechlm.features import FeatureEncoder, num_frames
from speechlm.quantizer import fit_kmeans, onehot_quantizer
from speechlm.tokenizer import Tokenizer

log = logging.getLogger(__name__)


def collect_features(items: list[Utterance], encoder: FeatureEncoder, max_frames: int,
                     seed: int = 0, progress: bool = True) -> np.ndarray:
    """Features of ``items``, each frame kept with probability ``max_frames / total``.

    Returns:
        ``[N, D]`` float32 with ``N`` about ``min(total, max_frames)``.
    """
    total = sum(num_frames(u.num_samples) for u in items)
    keep = min(1.0, max_frames / max(total, 1))
    rng = np.random.default_rng(seed)
    out = []
    for u in tqdm(items, desc="features", unit="utt", disable=not progress):
        wav = load_audio(u.path, encoder.sample_rate)
        f = encoder(wav[None])[0].numpy()
        if keep < 1.0:
            f = f[rng.random(len(f)) < keep]
        out.append(f.astype(np.float32))
    return np.concatenate(out)


def train_tokenizer(items: list[Utterance], encoder: FeatureEncoder, k: int = 100,
                    max_frames: int = 1_000_000, seed: int = 0, progress: bool = True,
                    source: str | os.PathLike | None = None,
                    smoothing: float = 0.0, band_limit: float | None = None,
                    speeds: Sequence[float] | str | None = None) -> Tokenizer:
    """Fit a k-means tokenizer on the features of ``items`` (``smoothing``: see
    :class:`~speechlm.tokenizer.Tokenizer`; ``band_limit``: fit on input low-passed at this
    many Hz, which the tokenizer then applies by default and names in its unit space;
    ``speeds``: the same for a phone encoder's speed ensemble,
    :meth:`speechlm.ssl.phone.PhoneEncoder.with_speeds`).

    Raises:
        ModelError: ``speeds`` for an encoder other than a phone encoder's posteriors or
            log-posteriors, or bad ``speeds``.
    """
    from speechlm.ssl.phone import PhoneEncoder, parse_speeds

    speeds = parse_speeds(speeds)
    if speeds is not None:
        if not isinstance(encoder, PhoneEncoder):
            raise ModelError("--speeds needs a phone encoder's posteriors or logprobs")
        encoder = encoder.with_speeds(speeds)
    torch.manual_seed(seed)
    feats = collect_features(items, _BandLimited(encoder, band_limit) if band_limit else encoder,
                             max_frames, seed, progress)
    quantizer, stats = fit_kmeans(feats, k, seed=seed)
    training = {"manifest": str(source) if source else None, "utterances": len(items),
                "hours": round(sum(u.num_samples for u in items) / encoder.sample_rate / 3600, 3),
                **stats, **({"band_limit": float(band_limit)} if band_limit else {}),
                **({"speeds": list(speeds)} if speeds else {})}
    return Tokenizer(encoder, quantizer, training, smoothing)


class _BandLimited:
    """``encoder`` with its input low-passed at ``hz`` (what the tokenizer will apply)."""

    def __init__(self, encoder: FeatureEncoder, hz: float):
        self.encoder, self.hz = encoder, float(hz)
        self.sample_rate = encoder.sample_rate

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        from speechlm.data.augment import lowpass_at

        return self.encoder(lowpass_at(wav, self.hz, self.sample_rate))


def ctc_tokenizer(encoder: FeatureEncoder, source: str | os.PathLike | None = None
                  ) -> Tokenizer:
    """The phone-rate tokenizer of a phone encoder read with output ``"ctc"``: one-hot
    centroids over its CTC posteriors (nothing is fitted; see :mod:`speechlm.tokenizer`).

    Raises:
        ModelError: ``encoder`` is not a phone encoder's CTC output.
    """
    if getattr(encoder, "blank", None) is None:
        raise ModelError("CTC units need a phone encoder read with output 'ctc' (--layer ctc)")
    training = {"method": "ctc-greedy", "manifest": str(source) if source else None,
                "blank": int(encoder.blank)}
    return Tokenizer(encoder, onehot_quantizer(encoder.dim), training)
