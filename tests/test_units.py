import pytest
import torch

from speechlm.errors import DataError
from speechlm.units import (
    Units,
    dedup,
    from_record,
    iter_unit_lines,
    parse_ids,
    to_record,
    unit_line,
)


def test_dedup_values():
    ids, dur = dedup(torch.tensor([5, 5, 7, 7, 7, 5]))
    assert ids.tolist() == [5, 7, 5] and dur.tolist() == [2, 3, 1]


def test_dedup_expand_round_trip():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 4, (500,), generator=g)
    u = Units(ids, 50.0, 4, "x")
    d = u.dedup()
    assert d.deduped and len(d) < len(u) and d.num_frames == 500
    assert torch.equal(d.expand().ids, ids)
    assert (d.ids[1:] != d.ids[:-1]).all()


def test_record_round_trip():
    u = Units(torch.tensor([1, 1, 2]), 50.0, 10, "mfcc-k10-abc").dedup()
    v = from_record(to_record(u))
    assert torch.equal(v.ids, u.ids) and torch.equal(v.durations, u.durations)
    assert v.unit_space == "mfcc-k10-abc" and v.frame_rate == 50.0


def test_record_rejects_out_of_range():
    rec = to_record(Units(torch.tensor([1, 2]), 50.0, 10, "s"))
    rec["ids"] = [1, 10]
    with pytest.raises(DataError, match=r"unit ids must lie in \[0, 10\)"):
        from_record(rec)


def test_record_rejects_newer_version():
    rec = to_record(Units(torch.tensor([1]), 50.0, 10, "s"))
    rec["version"] = 99
    with pytest.raises(DataError, match="newer than this speechlm reads"):
        from_record(rec)


def test_parse_ids():
    assert parse_ids("12 7,33") == [12, 7, 33]
    with pytest.raises(DataError, match="not a unit id: 'x'"):
        parse_ids("1 x 2")


def test_unit_lines(tmp_path):
    p = tmp_path / "u.txt"
    p.write_text(unit_line("a/b", [1, 2, 3]) + "\n" + unit_line("c", []) + "\n")
    assert list(iter_unit_lines(p)) == [("a/b", [1, 2, 3]), ("c", [])]
    with pytest.raises(DataError, match=r"may not contain '\|'"):
        unit_line("a|b", [1])
