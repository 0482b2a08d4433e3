"""Speaker-similarity calibration on hand-made embeddings."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from speechlm.eval.calibration import (
    VOICE_KEPT_POSITION,
    VOICE_MARGIN,
    SpeakerCalibration,
    calibrate_similarity,
    calibrate_wavs,
    cosine,
)


def unit(*v: float) -> np.ndarray:
    x = np.asarray(v, dtype=np.float32)
    return x / np.linalg.norm(x)


def at(cos: float) -> np.ndarray:
    """A unit vector whose cosine with e0 = (1, 0, 0) is ``cos``."""
    return unit(cos, math.sqrt(1 - cos**2), 0.0)


E0 = unit(1, 0, 0)


def test_cosine():
    assert cosine(E0, 3 * E0) == pytest.approx(1.0)
    assert cosine(E0, unit(0, 1, 0)) == pytest.approx(0.0)
    assert cosine(E0, at(0.7)) == pytest.approx(0.7)
    assert math.isnan(cosine(E0, np.zeros(3)))
    with pytest.raises(ValueError, match="differ in size"):
        cosine(E0, np.ones(4))


def test_fields_are_what_they_claim():
    # output == prompt direction; other speakers at cosine 0.6 and (0.7, 0.5); own pair at 0.9
    cal = calibrate_similarity(
        output=E0, prompt=at(0.95),
        others={"a": [at(0.6)], "b": [at(0.7), at(0.5)], "c": [at(0.3)]},
        own=[E0, at(0.9)])
    assert cal.to_prompt == pytest.approx(0.95)
    assert cal.others_max == pytest.approx(0.6)  # a: 0.6; b: mean(0.7, 0.5) = 0.6; c: 0.3
    assert cal.others_mean == pytest.approx(0.5)
    assert cal.closest_other in {"a", "b"} and cal.n_others == 3
    assert cal.same_speaker == pytest.approx(0.9)
    assert cal.margin == pytest.approx(0.35)
    assert cal.position == pytest.approx((0.95 - 0.5) / (0.9 - 0.5))
    assert cal.as_dict()["verdict"] == cal.verdict == "voice kept"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cal.to_prompt = 0.0  # type: ignore[misc]


def test_same_speaker_is_the_mean_pairwise_cosine():
    cal = calibrate_similarity(E0, E0, {"x": [at(0.1)]}, own=[E0, at(0.8), at(0.8)])
    # pairs: (E0, a) 0.8, (E0, a) 0.8, (a, a) 1.0
    assert cal.same_speaker == pytest.approx((0.8 + 0.8 + 1.0) / 3)


def make(to_prompt, others_mean, others_max, same):
    return SpeakerCalibration(to_prompt, others_mean, others_max, "x", same, 3)


@pytest.mark.parametrize(("cal", "verdict"), [
    (make(0.85, 0.60, 0.70, 0.90), "voice kept"),
    # beats the closest other speaker, but only a fifth of the way up to the own-speaker level
    (make(0.65, 0.60, 0.58, 0.85), "closest to prompt"),
    # closer to the prompt than to others, but by less than the margin: not "clearly"
    (make(0.74, 0.60, 0.74 - VOICE_MARGIN + 0.01, 0.78), "voice lost"),
    (make(0.55, 0.60, 0.70, 0.90), "voice lost"),
    (make(math.nan, 0.60, 0.70, 0.90), "voice lost"),
    # the own-speaker reference below the others: no scale, so never "voice kept"
    (make(0.80, 0.60, 0.70, 0.55), "closest to prompt"),
])
def test_verdict(cal, verdict):
    assert cal.verdict == verdict


def test_verdict_boundaries():
    same, mean = 0.9, 0.5
    on_edge = mean + VOICE_KEPT_POSITION * (same - mean)
    assert make(on_edge + 1e-6, mean, on_edge - VOICE_MARGIN - 1e-6, same).verdict == "voice kept"
    assert make(on_edge - 1e-3, mean, 0.0, same).verdict == "closest to prompt"


def test_calibration_needs_references():
    with pytest.raises(ValueError, match="at least one other speaker"):
        calibrate_similarity(E0, E0, {}, [E0, E0])
    with pytest.raises(ValueError, match="two utterances of the prompt's speaker, got 1"):
        calibrate_similarity(E0, E0, {"a": [E0]}, [E0])
    with pytest.raises(ValueError, match="'a' has no utterance"):
        calibrate_similarity(E0, E0, {"a": []}, [E0, E0])


def test_calibrate_wavs_embeds_with_the_judge():
    class FakeJudge:  # "embeds" a waveform as its first three samples
        def embed(self, wav, sr, name="audio"):
            assert sr == 16_000
            return np.asarray(wav[:3], dtype=np.float32)

    cal = calibrate_wavs(FakeJudge(), E0, at(0.9), {"a": [at(0.2)]}, [E0, at(0.95)], 16_000)
    assert (cal.to_prompt, cal.others_max) == (pytest.approx(0.9), pytest.approx(0.2))
    assert cal.same_speaker == pytest.approx(0.95) and cal.verdict == "voice kept"
