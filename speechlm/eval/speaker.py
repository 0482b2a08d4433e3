"""``speechlm eval speaker``: equal error rate of a speaker encoder on voices it never heard.

Seeded verification trials (``trials`` pairs of two utterances of one voice, as many of two
voices) over ``per_voice`` utterances per voice of each split; each trial is scored by the
cosine of the two embeddings. Beside the encoder's EER: the same trials scored by Resemblyzer
(the judge every report uses for voices) and by a trivial baseline (the cosine of the two
utterances' mean log-mel), so the figure comes with what a strong and a naive scorer give.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from speechlm.audio import SAMPLE_RATE
from speechlm.data.manifest import read_manifest, resolve_manifest
from speechlm.errors import DataError
from speechlm.speaker import SpeakerModel


def equal_error_rate(scores: np.ndarray, same: np.ndarray) -> float:
    """The rate at which false accepts equal false rejects, over trial ``scores`` (higher =
    more alike) and ``same`` (bool: the trial's two recordings share a voice)."""
    order = np.argsort(-scores, kind="stable")
    same = same[order].astype(bool)
    pos, neg = same.sum(), (~same).sum()
    if pos == 0 or neg == 0:
        raise DataError("EER needs trials of both kinds")
    far = np.cumsum(~same) / neg  # accepted impostors, threshold just below each score
    frr = 1 - np.cumsum(same) / pos  # rejected targets
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2)


def make_trials(speakers: list[str], n: int, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` target and ``n`` impostor pairs of utterance indices, seeded."""
    rng = np.random.default_rng(seed)
    by: dict[str, list[int]] = {}
    for i, s in enumerate(speakers):
        by.setdefault(s, []).append(i)
    multi = [s for s, v in by.items() if len(v) >= 2]
    if not multi or len(by) < 2:
        raise DataError("trials need a voice with two utterances and two voices")
    trials = []
    for _ in range(n):
        s = multi[int(rng.integers(len(multi)))]
        a, b = rng.choice(by[s], 2, replace=False)
        trials.append((int(a), int(b)))
    while len(trials) < 2 * n:
        a, b = rng.integers(len(speakers), size=2)
        if speakers[a] != speakers[b]:
            trials.append((int(a), int(b)))
    return trials


def evaluate_speaker(model: str, corpus: str, splits: tuple[str, ...] = ("heldout", "test"),
                     per_voice: int = 4, trials: int = 1000, seed: int = 0,
                     judges: bool = True, progress: bool = True) -> dict[str, Any]:
    """EER of the speaker encoder on ``splits`` (``heldout``: voices never trained on), beside
    the same trials scored by Resemblyzer (the judge) and by a trivial baseline (cosine of the
    utterances' mean log-mel)."""
    from tqdm import tqdm

    from speechlm.audio import load_audio

    enc = SpeakerModel.load(model)
    report: dict[str, Any] = {"model": str(model), "corpus": corpus, "per_voice": per_voice,
                              "trials_per_kind": trials, "seed": seed, "splits": {}}
    judge = None
    if judges:
        from speechlm.eval.judges import SpeakerJudge

        judge = SpeakerJudge()
    for split in splits:
        items = read_manifest(resolve_manifest(split, corpus))
        rng = np.random.default_rng(seed)
        by: dict[str, list] = {}
        for u in items:
            by.setdefault(u.speaker or u.name.split("/")[0], []).append(u)
        chosen = []
        for s in sorted(by):
            us = by[s]
            for j in rng.permutation(len(us))[:per_voice]:
                chosen.append(us[int(j)])
        speakers = [u.speaker or u.name.split("/")[0] for u in chosen]
        ours, base, theirs = [], [], []
        for u in tqdm(chosen, desc=f"embed {split}", disable=not progress):
            w = load_audio(u.path)
            ours.append(enc.embed(w).numpy())
            with torch.no_grad():
                m = enc.mel(w[None])[0].mean(0).numpy()
            base.append(m / (np.linalg.norm(m) + 1e-9))
            if judge is not None:
                e = judge.embed(w.numpy(), SAMPLE_RATE)
                theirs.append(e / (np.linalg.norm(e) + 1e-9))
        pairs = make_trials(speakers, trials, seed)
        same = np.array([speakers[a] == speakers[b] for a, b in pairs])

        def eer(vecs):
            v = np.stack(vecs)
            return round(equal_error_rate(np.array([v[a] @ v[b] for a, b in pairs]), same), 4)

        row = {"utterances": len(chosen), "voices": len(by), "eer": eer(ours),
               "eer_mean_logmel_baseline": eer(base)}
        if theirs:
            row["eer_resemblyzer_judge"] = eer(theirs)
        report["splits"][split] = row
    return report


__all__ = ["equal_error_rate", "evaluate_speaker", "make_trials"]
