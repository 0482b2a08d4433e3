"""Tests for speechlm.eval.continuation (continuation metrics) and speechlm.eval.figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speechlm.eval.continuation import (
    auto_bleu,
    bleu,
    is_loop,
    is_silent,
    longest_repeated_ngram,
    loop_score,
    rate_ratio,
    self_bleu,
    silence_mask,
    silence_ratio,
    speaking_rate,
    summarize,
)
from speechlm.units import Units

SR = 16_000


def _sine(seconds: float, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _units(ids: list[int], frame_rate: float = 50.0, n_units: int = 100) -> Units:
    return Units(ids=torch.tensor(ids, dtype=torch.long), frame_rate=frame_rate,
                 n_units=n_units, unit_space="test")


def _brute_longest_repeat(a: list[int]) -> int:
    best = 0
    for length in range(1, len(a)):
        seen: set[tuple[int, ...]] = set()
        if not any(t in seen or seen.add(t) for t in
                   (tuple(a[i:i + length]) for i in range(len(a) - length + 1))):
            break
        best = length
    return best


# --------------------------------------------------------------------------------------------
# auto_bleu
# --------------------------------------------------------------------------------------------


def test_auto_bleu_constant_is_one_and_distinct_is_zero() -> None:
    assert auto_bleu([4] * 10) == 1.0
    assert auto_bleu(list(range(20))) == 0.0
    assert auto_bleu(list(range(20)), n=1) == 0.0


def test_auto_bleu_hand_example() -> None:
    # bigrams: (1,2) (2,1) (1,2) (2,3) -> (1,2) occurs at 0 and 2: 2 of 4 repeated
    assert auto_bleu([1, 2, 1, 2, 3], n=2) == pytest.approx(0.5)
    # overlapping occurrences: (7,7,7,7,1) -> bigrams (7,7)x3, (7,1): 3 of 4
    assert auto_bleu([7, 7, 7, 7, 1], n=2) == pytest.approx(0.75)
    # trigrams of [1 2 3 1 2 3 4]: (1,2,3) twice, others once: 2 of 5
    assert auto_bleu([1, 2, 3, 1, 2, 3, 4], n=3) == pytest.approx(0.4)


def test_auto_bleu_too_short_is_nan_and_accepts_tensors() -> None:
    assert math.isnan(auto_bleu([1, 2], n=2))
    assert math.isnan(auto_bleu([], n=1))
    assert auto_bleu(torch.tensor([5, 5, 5])) == 1.0
    with pytest.raises(ValueError, match="order"):
        auto_bleu([1, 2, 3], n=0)


# --------------------------------------------------------------------------------------------
# bleu / self_bleu
# --------------------------------------------------------------------------------------------


def test_self_bleu_identical_is_one_disjoint_is_zero() -> None:
    s = [3, 9, 4, 1, 7, 2, 8]
    assert self_bleu([s, s, s]) == pytest.approx(1.0)
    assert self_bleu([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]) == pytest.approx(0.0)


def test_self_bleu_needs_two_samples() -> None:
    assert math.isnan(self_bleu([[1, 2, 3]]))
    assert math.isnan(self_bleu([]))


def test_self_bleu_orders_diversity() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 50, 60)
    similar = [np.where(rng.random(60) < 0.1, rng.integers(0, 50, 60), base) for _ in range(4)]
    diverse = [rng.integers(0, 50, 60) for _ in range(4)]
    assert self_bleu(similar) > 0.5 > self_bleu(diverse)


def test_bleu_hand_example_with_smoothing_and_brevity() -> None:
    # hyp [1 2 3] vs ref [1 2 4 5]: p1 = 2/3; p2 = (1 + 1) / (2 + 1) (add-one);
    # c = 3 <= r = 4: BP = exp(1 - 4/3)
    expected = math.exp(1 - 4 / 3) * math.sqrt(2 / 3 * 2 / 3)
    assert bleu([1, 2, 3], [[1, 2, 4, 5]], n=2) == pytest.approx(expected)
    # clipping: hyp [1 1 1 1] vs ref [1 2]: p1 = 1/4
    assert bleu([1, 1, 1, 1], [[1, 2]], n=1) == pytest.approx(0.25)
    assert bleu([], [[1, 2]]) == 0.0


# --------------------------------------------------------------------------------------------
# longest_repeated_ngram
# --------------------------------------------------------------------------------------------


def test_longest_repeated_ngram_hand_examples() -> None:
    assert longest_repeated_ngram([0, 1, 2, 0, 1, 2]) == 3  # "abcabc"
    assert longest_repeated_ngram([5, 5, 5, 5]) == 3  # "aaaa": overlapping occurrences
    assert longest_repeated_ngram([1, 2, 3, 4]) == 0
    assert longest_repeated_ngram([]) == 0
    assert longest_repeated_ngram([9]) == 0
    assert longest_repeated_ngram([1, 2, 1, 2, 1]) == 3  # "aba" at 0 and 2


def test_longest_repeated_ngram_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        a = rng.integers(0, int(rng.integers(1, 5)), int(rng.integers(0, 25))).tolist()
        assert longest_repeated_ngram(a) == _brute_longest_repeat(a), a


def test_longest_repeated_ngram_long_sequences() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 100, 2000)
    x[1500:1530] = x[100:130]  # plant a 30-unit repeat
    assert longest_repeated_ngram(x) >= 30
    assert longest_repeated_ngram(np.tile(np.arange(7), 300)) == 7 * 300 - 7


# --------------------------------------------------------------------------------------------
# is_loop
# --------------------------------------------------------------------------------------------


def test_is_loop_period_two_and_random() -> None:
    rng = np.random.default_rng(3)
    fluent = rng.integers(0, 100, 200)
    assert is_loop(np.concatenate([fluent, np.tile([12, 40], 100)]))
    assert loop_score(np.tile([12, 40], 100)) == (2, 1.0)
    assert not is_loop(fluent)
    assert not is_loop(rng.integers(0, 100, 200))


def test_is_loop_dedups_and_finds_longer_periods() -> None:
    pattern = [3, 3, 8, 8, 8, 1, 5, 5, 9]  # dedups to a period-5 pattern with durations
    assert is_loop(pattern * 20)
    assert loop_score(pattern * 20)[0] == 5
    assert not is_loop(list(range(9)) * 20, max_period=8)  # period 9 is too long


def test_is_loop_short_or_held_unit_is_not_a_loop() -> None:
    assert not is_loop([1, 2] * 5)  # tail of 5 dedup units < min_tail
    assert not is_loop([7] * 500)  # one held unit: silence / rate territory, not a loop
    assert not is_loop([])


def test_is_loop_tolerates_some_substitutions() -> None:
    rng = np.random.default_rng(4)
    loop = np.tile([10, 20, 30], 60)
    noisy = loop.copy()
    idx = rng.choice(len(noisy), size=len(noisy) // 20, replace=False)  # 5 % substituted
    noisy[idx] = 90 + rng.integers(0, 5, len(idx))
    assert is_loop(noisy)


# --------------------------------------------------------------------------------------------
# silence
# --------------------------------------------------------------------------------------------


def test_silence_ratio_matches_proportion() -> None:
    # 0.4 s zeros + 1.0 s tone + 0.6 s zeros: 1.0 of 2.0 s silent, frame-aligned at 20 ms
    wav = np.concatenate([np.zeros(int(0.4 * SR)), _sine(1.0), np.zeros(int(0.6 * SR))])
    assert silence_ratio(wav, SR) == pytest.approx(0.5)
    mask = silence_mask(wav, SR)
    assert mask.shape == (100,)
    assert mask[:20].all() and not mask[20:70].any() and mask[70:].all()
    assert silence_ratio(torch.from_numpy(wav)[None], SR) == pytest.approx(0.5)


def test_silence_ratio_is_gain_invariant_and_sees_quiet_parts() -> None:
    rng = np.random.default_rng(5)
    loud = _sine(1.0, amp=0.5)
    quiet = rng.normal(0, 0.5 * 10 ** (-60 / 20), int(0.5 * SR))  # 60 dB below the tone
    wav = np.concatenate([loud, quiet])
    assert silence_ratio(wav, SR) == pytest.approx(1 / 3)
    assert silence_ratio(wav * 0.01, SR) == pytest.approx(1 / 3)
    assert silence_ratio(wav, SR, ref_db=0.0, threshold_db=-3.0) == pytest.approx(1.0)


def test_silence_of_zeros_and_empty() -> None:
    assert silence_ratio(np.zeros(SR), SR) == 1.0
    assert math.isnan(silence_ratio(np.zeros(0), SR))
    assert is_silent(np.zeros(SR), SR)
    assert is_silent(_sine(1.0, amp=5e-4), SR)  # peak below 1e-3
    assert not is_silent(_sine(1.0), SR)
    burst = np.concatenate([_sine(0.05), np.zeros(int(1.95 * SR))])  # 2.5 % speech
    assert is_silent(burst, SR)


# --------------------------------------------------------------------------------------------
# speaking rate
# --------------------------------------------------------------------------------------------


def test_speaking_rate_without_audio() -> None:
    # 100 frames at 50 Hz = 2 s; runs 5 5 | 7 7 7 | 5 | ... : 25 runs of 4 frames
    ids = [i % 3 for i in range(25) for _ in range(4)]
    u = _units(ids)
    assert speaking_rate(u) == pytest.approx(25 / 2.0)
    assert speaking_rate(u.dedup()) == pytest.approx(25 / 2.0)
    assert math.isnan(speaking_rate(_units([])))


def test_speaking_rate_ignores_silent_frames() -> None:
    # 1 s silence (one held silence unit flickering 0/1 every 2 frames) + 1 s speech
    silence_ids = [i // 2 % 2 for i in range(50)]  # 25 runs in the pause
    speech_ids = [10 + i // 5 for i in range(50)]  # 10 runs in 1 s of speech
    u = _units(silence_ids + speech_ids)
    wav = np.concatenate([np.zeros(SR), _sine(1.0)])
    assert speaking_rate(u) == pytest.approx(35 / 2.0)
    assert speaking_rate(u, wav, SR) == pytest.approx(10 / 1.0)
    with pytest.raises(ValueError, match="sr"):
        speaking_rate(u, wav)


def test_rate_ratio() -> None:
    assert rate_ratio(12.0, 10.0) == pytest.approx(1.2)
    assert math.isnan(rate_ratio(12.0, 0.0))
    assert math.isnan(rate_ratio(float("nan"), 10.0))


def test_summarize_ignores_nan() -> None:
    s = summarize([1.0, float("nan"), 3.0, 2.0])
    assert s == {"mean": 2.0, "std": pytest.approx(math.sqrt(2 / 3)), "min": 1.0, "max": 3.0,
                 "n": 3}
    empty = summarize([float("nan")])
    assert empty["n"] == 0 and math.isnan(empty["mean"])


# --------------------------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_runs", [12, 150])  # labelled step plot / colour strip
def test_plot_continuation_writes_png(tmp_path, n_runs: int) -> None:
    mpimg = pytest.importorskip("matplotlib.image")
    from speechlm.eval.figures import plot_continuation

    seconds = 4.0
    wav = np.concatenate([_sine(3.0), _sine(1.0, freq=330.0)])
    frames = int(seconds * 50)
    ids = (np.arange(frames) * n_runs // frames * 7 % 100).tolist()
    out = tmp_path / "figs" / "sample0.png"
    plot_continuation(out, wav, SR, _units(ids), prompt_seconds=3.0, title="prompt 0 / sample 0")
    assert out.stat().st_size > 1000
    img = mpimg.imread(str(out))
    assert img.ndim == 3 and img.shape[2] in (3, 4) and img.dtype == np.float32
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert [p.name for p in out.parent.iterdir()] == ["sample0.png"]  # no temp file left


def test_plot_continuation_accepts_plain_ids(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from speechlm.eval.figures import plot_continuation

    out = tmp_path / "plain.png"
    plot_continuation(out, torch.from_numpy(_sine(1.0)), SR, [1, 1, 2, 3] * 12,
                      prompt_seconds=0.5)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_spectrograms_stacks_one_panel_per_recording(tmp_path) -> None:
    mpimg = pytest.importorskip("matplotlib.image")
    from speechlm.eval.figures import plot_spectrograms

    rows = [("original", _sine(1.0)), ("new", _sine(1.2, freq=330.0)), ("old", _sine(0.8))]
    one, three = tmp_path / "one.png", tmp_path / "three.png"
    plot_spectrograms(one, rows[:1], SR, title="voice x")
    plot_spectrograms(three, rows, SR)
    h1, h3 = mpimg.imread(str(one)).shape[0], mpimg.imread(str(three)).shape[0]
    assert h3 > 2 * h1 - 100  # a panel per row
    with pytest.raises(ValueError):
        plot_spectrograms(tmp_path / "none.png", [], SR)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png", "three.png"]


def _content_row(lm_prob: float, floor_prob: float, ceil_prob: float) -> dict:
    """A prompt record of the continuation report with 10 words per clip at these mean word
    probabilities (all confident, all in the dictionary)."""
    def clip(p):
        return {"text": "w", "seconds": 2.0, "n_words": 10, "n_confident": 10,
                "n_confident_in_dictionary": 10, "prob_sum": 10 * p}

    return {"samples": [{"content": clip(lm_prob)}, {"content": clip(lm_prob)}],
            "baselines": {"floor_unigram": {"content": clip(floor_prob - 0.1)},
                          "floor_bigram": {"content": clip(floor_prob)},
                          "ceiling": {"content": clip(ceil_prob)}}}


def test_content_position_and_its_bootstrap_interval():
    from speechlm.eval.continue_report import content_table, position_intervals

    same = [_content_row(0.45, 0.4, 0.5) for _ in range(6)]  # halfway in every prompt
    assert content_table(same)["position"]["mean_word_prob"] == pytest.approx(0.5)
    assert position_intervals(same, boot=200)["mean_word_prob"] == [0.5, 0.5]
    # prompts that disagree: the point is pooled, the interval spans their spread
    mixed = [_content_row(0.5, 0.4, 0.5), _content_row(0.4, 0.4, 0.5)] * 5
    ci = position_intervals(mixed, boot=500)["mean_word_prob"]
    assert content_table(mixed)["position"]["mean_word_prob"] == pytest.approx(0.5)
    assert 0.15 < ci[0] < 0.5 < ci[1] < 0.85
    # undefined: one prompt, or a ceiling that never rises above the floor
    assert position_intervals(same[:1])["mean_word_prob"] is None
    flat = [_content_row(0.45, 0.5, 0.5) for _ in range(4)]
    assert content_table(flat)["position"]["mean_word_prob"] is None
    assert position_intervals(flat, boot=50)["mean_word_prob"] is None


def test_the_halfway_margin_decides_where_the_position_cannot():
    from speechlm.eval.continue_report import (
        content_table,
        halfway_intervals,
        halfway_verdict,
        position_intervals,
    )

    # the LM 0.02 past the midpoint in every prompt, the ceiling barely above the floor in some:
    # the position's ratio swings widely, the margin's difference does not
    rows = [_content_row(0.47, 0.40, 0.50), _content_row(0.42, 0.40, 0.40 + 1e-3)] * 8
    t = content_table(rows)
    assert t["halfway_margin"]["mean_word_prob"] == pytest.approx(0.02, abs=5e-4)
    ci = halfway_intervals(rows, boot=500)["mean_word_prob"]
    assert 0.015 < ci[0] <= ci[1] < 0.025
    assert halfway_verdict(ci) == "met"
    short = [_content_row(0.41, 0.40, 0.50)] * 6  # 0.04 short of the midpoint
    assert halfway_verdict(halfway_intervals(short, boot=100)["mean_word_prob"]) == "missed"
    mixed = [_content_row(0.5, 0.4, 0.5), _content_row(0.4, 0.4, 0.5)] * 5  # halfway on average
    assert halfway_verdict(halfway_intervals(mixed, boot=500)["mean_word_prob"]) == "undecided"
    assert position_intervals(mixed, boot=50)["mean_word_prob"] is not None
    assert halfway_verdict(None) == "undecided"
    # a ceiling at the floor: no position, but the margin is still a number
    flat = [_content_row(0.45, 0.5, 0.5) for _ in range(4)]
    assert content_table(flat)["halfway_margin"]["mean_word_prob"] == pytest.approx(-0.05)


def test_whole_voices_resampled_widen_the_interval_of_correlated_prompts():
    from speechlm.eval.continue_report import content_intervals

    # 6 voices of 4 prompts each, alike within a voice, half the voices past halfway and half
    # short of it: 24 prompts look like more evidence than 6 voices are
    rows = [dict(_content_row(0.5 if v % 2 else 0.4, 0.4, 0.5), voice=f"v{v}")
            for v in range(6) for _ in range(4)]
    by_prompt = content_intervals(rows, ("halfway_margin",), boot=400)["halfway_margin"]
    by_voice = content_intervals(rows, ("halfway_margin",), boot=400,
                                 by="voice")["halfway_margin"]
    w = {k: ci[1] - ci[0] for k, ci in (("prompts", by_prompt["mean_word_prob"]),
                                        ("voices", by_voice["mean_word_prob"]))}
    assert w["voices"] > 1.5 * w["prompts"] > 0
    # one voice: nothing to resample
    one = content_intervals(rows[:4], ("halfway_margin",), boot=50, by="voice")
    assert one["halfway_margin"]["mean_word_prob"] is None
    # one prompt per voice: the same draws as resampling prompts
    single = [dict(r, voice=f"u{i}") for i, r in enumerate(rows[::4])]
    assert (content_intervals(single, boot=100, by="voice")
            == content_intervals(single, boot=100))


def test_rescore_refuses_what_is_not_a_continuation_report():
    from speechlm.eval.continue_report import rescore_report

    for bad in ({}, [], {"format": "speechlm.eval-resynth"},
                {"format": "speechlm.eval-continue", "prompts": []},
                {"format": "speechlm.eval-continue", "prompts": [{"voice": "x"}]}):
        with pytest.raises(ValueError):
            rescore_report(bad)


def test_pitch_shift_is_the_gap_of_mean_log_f0_in_cents():
    from speechlm.eval.continue_report import pitch_shift_cents, pitch_summary

    sr = 16000
    t = np.arange(sr) / sr
    low = (0.3 * np.sin(2 * np.pi * 120 * t)).astype(np.float32)
    high = (0.3 * np.sin(2 * np.pi * 240 * t)).astype(np.float32)
    assert pitch_shift_cents(low, high, sr) == pytest.approx(1200, abs=30)
    assert pitch_shift_cents(high, low, sr) == pytest.approx(-1200, abs=30)
    assert pitch_shift_cents(low, low, sr) == 0
    assert pitch_shift_cents(low, np.zeros(sr, np.float32), sr) is None  # nothing voiced
    # the summary: moves, and their error against the original rest's move
    rec = [{"rest_pitch_shift_cents": -100.0,
            "samples": [{"pitch_shift_cents": -40.0}, {"pitch_shift_cents": None}],
            "baselines": {"ceiling": {"pitch_shift_cents": -80.0}, "floor_unigram": {}}},
           {"rest_pitch_shift_cents": None, "samples": [{"pitch_shift_cents": 20.0}],
            "baselines": {}}]
    assert pitch_summary(rec) == {
        "pitch_shift_cents": -10.0, "pitch_shift_cents_original_rest": -100.0,
        "pitch_error_cents": 60.0, "pitch_error_cents_flat": 100.0,
        "pitch_error_cents_ceiling": 20.0, "pitch_error_cents_floor_unigram": None}
