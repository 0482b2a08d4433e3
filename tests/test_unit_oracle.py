"""speechlm.eval.unit_oracle: units read by the reference phones (eval resynth --unit-oracle)."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.data.phones import CLASSES
from speechlm.errors import DataError
from speechlm.eval.unit_oracle import UnitPhoneTable, frame_phone_ids

AA, B, SIL = CLASSES.index("AA"), CLASSES.index("B"), CLASSES.index("SIL")


def _table() -> UnitPhoneTable:
    counts = np.zeros((5, len(CLASSES)), dtype=np.int64)
    counts[0, AA] = 9  # units 0 and 1 are AA's, 0 the more frequent
    counts[1, AA] = 4
    counts[2, B] = 7  # unit 2 is B's; unit 3 mostly B, a little AA
    counts[3, B], counts[3, AA] = 3, 2
    counts[4, SIL] = 5  # unit 4 is silence
    return UnitPhoneTable.from_counts(counts)


def test_table_gives_each_unit_its_majority_phone_and_each_phone_its_commonest_unit():
    t = _table()
    assert t.unit_phone.tolist() == [AA, AA, B, B, SIL]
    assert t.phone_unit[AA] == 0 and t.phone_unit[B] == 2 and t.phone_unit[SIL] == 4
    assert t.phone_unit[CLASSES.index("ZH")] == -1  # never seen
    assert t.frames == 9 + 4 + 7 + 5 + 5
    counts = np.zeros((3, len(CLASSES)), dtype=np.int64)
    counts[0, AA] = 1
    assert UnitPhoneTable.from_counts(counts).unit_phone.tolist() == [AA, -1, -1]


def test_corrected_replaces_only_units_of_another_phone_and_phones_replaces_every_label():
    t = _table()
    ids = np.array([1, 3, 0, 2, 4, 1, 3])
    ref = np.array([AA, AA, B, B, -1, CLASSES.index("ZH"), SIL])
    out, changed = t.apply(ids, ref, "corrected")
    # 1 on AA kept (one of AA's units); 3 on AA -> 0; 0 on B -> 2; 2 on B kept; unlabelled kept;
    # a phone no unit was ever on keeps its unit; 3 on SIL -> 4
    assert out.tolist() == [1, 0, 2, 2, 4, 1, 4] and changed == 3
    out, changed = t.apply(ids, ref, "phones")
    assert out.tolist() == [0, 0, 2, 2, 4, 1, 4] and changed == 4
    with pytest.raises(DataError, match="mode must be one of corrected, phones"):
        t.apply(ids, ref, "argmax")
    with pytest.raises(DataError, match="7 units and 6 labels"):
        t.apply(ids, ref[:6], "phones")


def test_frame_phone_ids_label_each_frame_by_its_centre(tmp_path):
    phn = tmp_path / "u.phn"
    # 20 ms frames (320 samples), centres at 200 + 320 i; a gap, an unknown symbol
    phn.write_text("0 500 SIL\n500 1100 AA\n1500 1900 SPN\n1900 2600 B\n")
    assert frame_phone_ids(phn, 8).tolist() == [SIL, AA, AA, -1, -1, -1, B, B]
    phn.write_text("0 500\n")
    with pytest.raises(DataError, match="expected 'start end phone'"):
        frame_phone_ids(phn, 3)


def test_fit_counts_a_tokenizers_units_against_the_phones(small_corpus, small_tokenizer):
    from speechlm.data.manifest import read_manifest
    from speechlm.tokenizer import Tokenizer

    tok = Tokenizer.load(small_tokenizer)
    utts = [u for u in read_manifest(small_corpus / "train.tsv") if u.phn_path.is_file()][:4]
    t = UnitPhoneTable.fit(tok, [(u.path, u.phn_path) for u in utts])
    assert t.frames > 0 and len(t.unit_phone) == tok.n_units
    seen = t.unit_phone[t.unit_phone >= 0]
    assert len(seen) and (t.phone_unit[seen] >= 0).all()
    with pytest.raises(DataError, match="no labelled frame"):
        UnitPhoneTable.fit(tok, [])


def test_write_manifest_round_trips_a_subset_with_its_side_files(tmp_path):
    """speechlm.data.manifest.write_manifest (the scripts' subsets: make mel-limit,
    make unit-oracle): read back the same utterances; no .wrd when a text is missing; audio
    outside the root refused."""
    from speechlm.data.manifest import Utterance, read_manifest, write_manifest

    root = tmp_path / "audio"
    (root / "v").mkdir(parents=True)
    utts = [Utterance(f"v/u{i}", root / "v" / f"u{i}.flac", 100 + i, "v", f"text {i}")
            for i in range(3)]
    write_manifest(tmp_path / "m" / "sub.tsv", root, utts[::2])
    assert read_manifest(tmp_path / "m" / "sub.tsv") == utts[::2]
    write_manifest(tmp_path / "n.tsv", root, [utts[0], Utterance("v/x", root / "v" / "x.flac", 5,
                                                                 "v", None)])
    assert not (tmp_path / "n.wrd").exists() and (tmp_path / "n.spk").exists()
    with pytest.raises(DataError, match="not under the manifest root"):
        write_manifest(tmp_path / "o.tsv", root / "v" / "w", utts)


def test_run_means_gives_each_unit_run_its_own_mean_spectrum():
    import torch

    from speechlm.eval.resynth import run_means

    mel = torch.arange(14, dtype=torch.float32)[:, None].repeat(1, 3)  # frame i holds i
    mel[:, 1] *= 2
    ids = torch.tensor([5, 5, 7, 5, 9, 9])  # runs: [0, 2), [2, 3), [3, 4), [4, 6)
    out = run_means(mel, ids, 2)  # vocoder frames 2t, 2t + 1 belong to unit frame t
    assert out[:4, 0].tolist() == [1.5] * 4  # frames 0-3: the first run of 5
    assert out[4:6, 0].tolist() == [4.5] * 2 and out[6:8, 0].tolist() == [6.5] * 2
    assert out[8:12, 0].tolist() == [9.5] * 4  # the last run
    assert out[12:, 0].tolist() == [12.0, 13.0]  # past the units: as they were
    assert torch.equal(out[:, 1], 2 * out[:, 0])  # per band
    assert torch.equal(mel[:, 0], torch.arange(14.0))  # the input is left alone
    assert torch.equal(run_means(mel[:5], ids, 2)[:4], out[:4])  # a log-mel shorter than units


def test_unit_means_gives_each_unit_one_spectrum_in_every_context():
    import torch

    from speechlm.eval.resynth import run_means, unit_means

    mel = torch.arange(14, dtype=torch.float32)[:, None].repeat(1, 2)
    mel[:, 1] *= -1
    ids = torch.tensor([5, 5, 7, 5, 9, 9])  # unit 5: frames 0-3 and 6-7
    out = unit_means(mel, ids, 2)
    five = (0 + 1 + 2 + 3 + 6 + 7) / 6
    assert out[[0, 1, 2, 3, 6, 7], 0].tolist() == pytest.approx([five] * 6)
    assert out[4:6, 0].tolist() == [4.5] * 2 and out[8:12, 0].tolist() == [9.5] * 4
    assert out[12:, 0].tolist() == [12.0, 13.0]
    assert torch.equal(out[:, 1], -out[:, 0])
    # a unit met in one run only: the same as that run's mean
    assert torch.equal(unit_means(mel, torch.tensor([1, 1, 2, 2, 3, 3]), 2),
                       run_means(mel, torch.tensor([1, 1, 2, 2, 3, 3]), 2))
