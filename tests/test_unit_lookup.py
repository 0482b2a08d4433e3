"""speechlm.eval.unit_lookup: a voice's unit spectra pooled over its other utterances."""

from __future__ import annotations

import pytest
import torch

from speechlm.eval.unit_lookup import EDGE, VoiceUnitTable, run_keys, runs


def _mel(values: list[float]) -> torch.Tensor:
    """One vocoder frame per value, two bands (the second the negative of the first)."""
    x = torch.tensor(values, dtype=torch.float32)[:, None]
    return torch.cat([x, -x], dim=1)


def test_runs_and_their_neighbouring_units():
    assert runs([5, 5, 7, 5, 9, 9]) == [(0, 2, 5), (2, 3, 7), (3, 4, 5), (4, 6, 9)]
    assert runs([]) == []
    keys = run_keys([5, 5, 7, 5])
    assert [k[2] for k in keys] == [(EDGE, 5, 7), (5, 7, 5), (7, 5, EDGE)]
    assert [k[3] for k in keys] == [5, 7, 5]


def test_lookup_never_reads_the_utterance_itself():
    t = VoiceUnitTable()
    # upsample 1: one vocoder frame per unit frame
    t.add("a", _mel([1, 1, 10]), [5, 5, 7], 1)
    t.add("b", _mel([3, 20, 20]), [5, 7, 7], 1)
    t.add("c", _mel([100, 100]), [8, 8], 1)
    out, levels = t.lookup("a", _mel([1, 1, 10]), context=False, upsample=1)
    # unit 5 from b only (3), unit 7 from b only (20): a's own 1 and 10 are left out
    assert out[:, 0].tolist() == [3, 3, 20]
    assert torch.equal(out[:, 1], -out[:, 0])
    assert levels == {"context": 0, "unit": 3, "voice": 0}
    # c's unit 8 is in no other utterance: the voice's mean frame over a and b
    out, levels = t.lookup("c", _mel([100, 100]), context=False, upsample=1)
    assert out[:, 0].tolist() == pytest.approx([55 / 6] * 2)
    assert levels == {"context": 0, "unit": 0, "voice": 2}


def test_context_backs_off_to_the_unit_and_pools_every_run_of_a_key():
    t = VoiceUnitTable()
    t.add("a", _mel([0, 4, 4, 0]), [1, 2, 2, 3], 1)  # unit 2 between 1 and 3
    t.add("b", _mel([0, 6, 6, 0]), [1, 2, 2, 3], 1)  # the same context, spectrum 6
    t.add("c", _mel([0, 9, 0]), [4, 2, 4], 1)  # unit 2 between 4 and 4, spectrum 9
    t.add("d", _mel([0, 0, 8, 8, 0]), [1, 1, 2, 2, 3], 1)
    out, levels = t.lookup("d", _mel([0, 0, 8, 8, 0]), context=True, upsample=1)
    # unit 2 between 1 and 3: a's 4s and b's 6s (not c's 9, another context; not d's own 8)
    assert out[2:4, 0].tolist() == [5.0, 5.0]
    assert levels["context"] == 5
    out, _ = t.lookup("d", _mel([0, 0, 8, 8, 0]), context=False, upsample=1)
    assert out[2:4, 0].tolist() == pytest.approx([(4 + 4 + 6 + 6 + 9) / 5] * 2)
    # a context no other utterance has: the unit's pooled mean
    out, levels = t.lookup("c", _mel([0, 9, 0]), context=True, upsample=1)
    assert out[1, 0].item() == pytest.approx((4 + 4 + 6 + 6 + 8 + 8) / 6)
    assert levels["unit"] == 1 and levels["voice"] == 2  # unit 4 is only c's


def test_upsampled_frames_and_frames_past_the_units():
    t = VoiceUnitTable()
    t.add("a", _mel([2, 2, 4, 4, 7]), [1, 2], 2)  # frame 4 is past the units: not pooled
    t.add("b", _mel([6, 6, 8, 8]), [1, 2], 2)
    out, levels = t.lookup("a", _mel([2, 2, 4, 4, 7]), context=False, upsample=2)
    assert out[:, 0].tolist() == [6, 6, 8, 8, 7]
    assert sum(levels.values()) == 4


def test_a_voice_with_one_utterance_and_unknown_names_are_refused():
    t = VoiceUnitTable()
    t.add("a", _mel([1, 2]), [1, 2], 1)
    with pytest.raises(ValueError, match="no other utterance"):
        t.lookup("a", _mel([1, 2]), context=False, upsample=1)
    with pytest.raises(KeyError):
        t.lookup("z", _mel([1]), context=False, upsample=1)
    with pytest.raises(ValueError, match="already"):
        t.add("a", _mel([1, 2]), [1, 2], 1)
