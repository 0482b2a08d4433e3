"""The shared steps of the report harnesses: item selection, held-out marking, groups."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from speechlm.errors import DataError
from speechlm.eval.harness import (
    HELD_OUT,
    SEEN,
    Item,
    by_group,
    calibration_summary,
    finite,
    mark_held_out,
    mean,
    select_items,
)


def _wav(path, seconds=0.5):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(16000 * seconds), np.float32), 16000)


def test_folder_of_speakers_with_texts_tsv(tmp_path):
    _wav(tmp_path / "ann" / "a.wav")
    _wav(tmp_path / "ann" / "b.flac")
    _wav(tmp_path / "bob" / "c.wav")
    (tmp_path / "bob" / "c.txt").write_text("from the side file\n")
    (tmp_path / "texts.tsv").write_text("ann/a.wav\tHello there.\nb.flac\tsecond one\n")
    items = select_items(tmp_path, None, 0, 0)
    assert [(it.name, it.voice, it.text) for it in items] == [
        ("ann/a.wav", "ann", "Hello there."), ("ann/b.flac", "ann", "second one"),
        ("bob/c.wav", "bob", "from the side file")]


def test_flat_folder_is_one_speaker_and_a_third_column_names_it(tmp_path):
    _wav(tmp_path / "mine" / "x.wav")
    _wav(tmp_path / "mine" / "y.wav")
    (tmp_path / "mine" / "texts.tsv").write_text("y.wav\tsome words\tcarol\n")
    items = select_items(tmp_path / "mine", None, 0, 0)
    assert [(it.voice, it.text) for it in items] == [("mine", None), ("carol", "some words")]


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no audio files"):
        select_items(tmp_path, None, 0, 0)
    _wav(tmp_path / "x.wav")
    (tmp_path / "texts.tsv").write_text("x.wav\n")
    with pytest.raises(DataError, match=r"texts.tsv:1: expected"):
        select_items(tmp_path, None, 0, 0)


def test_per_voice_selection_is_seeded_and_bounded(tmp_path):
    for v in ("a", "b"):
        for i in range(5):
            _wav(tmp_path / v / f"{i}.wav", 0.1)
    one = select_items(tmp_path, None, 2, seed=3)
    assert len(one) == 4 and {it.voice for it in one} == {"a", "b"}
    assert one == select_items(tmp_path, None, 2, seed=3)
    assert {it.name for it in one} != {it.name for it in select_items(tmp_path, None, 2, seed=4)}


def test_held_out_from_the_training_record():
    items = [Item("x", None, "seen"), Item("y", None, "new"), Item("z", None, "listed")]
    by_train = mark_held_out(items, {"train_voices": ["seen"], "holdout_voices": ["listed"]})
    assert [it.held_out for it in by_train] == [False, True, True]
    by_list = mark_held_out(items, {"holdout_voices": ["listed"]})  # no train_voices recorded
    assert [it.held_out for it in by_list] == [False, False, True]


def test_groups_and_voices():
    rows = [{"voice": "a", "held_out": False, "x": 1.0}, {"voice": "b", "held_out": True, "x": 3.0},
            {"voice": "a", "held_out": False, "x": 2.0}]
    groups, voices = by_group(rows, lambda sel: {"n": len(sel), "x": mean(r["x"] for r in sel)})
    assert groups == {SEEN: {"n": 2, "x": 1.5}, HELD_OUT: {"n": 1, "x": 3.0}}
    assert list(voices) == ["a", "b"] and voices["a"]["n"] == 2
    only_seen, _ = by_group(rows[:1], lambda sel: {"n": len(sel)})
    assert set(only_seen) == {SEEN}


def test_mean_finite_and_calibration_summary():
    assert mean([1.0, None, float("nan"), 2.0]) == 1.5 and mean([None]) is None
    assert finite(float("inf")) is None and finite(0.123456) == 0.1235
    cal = {"to_prompt": 0.8, "others_mean": 0.6, "others_max": 0.7, "same_speaker": 0.9,
           "margin": 0.1, "position": 0.67, "verdict": "voice kept"}
    s = calibration_summary([cal, {**cal, "verdict": "voice lost"}, None])
    assert s["n"] == 2 and s["voice_kept_share"] == 0.5 and s["to_prompt"] == 0.8
    assert calibration_summary([None]) == {"n": 0}
