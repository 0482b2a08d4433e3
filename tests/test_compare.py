"""eval compare-resynth: paired differences between two resynthesis reports."""

from __future__ import annotations

import json

import pytest

from speechlm.errors import DataError
from speechlm.eval.compare import compare_markdown, compare_resynth, paired_delta


def _report(name, outs, held_out=True):
    """A minimal 'eval resynth' report: one hn row per (text, asr, similarity, dnsmos)."""
    utts = [{"name": f"u{i}", "voice": "v", "held_out": held_out, "text": text,
             "hn": {"asr": asr, "similarity": sim, "dnsmos": mos}}
            for i, (text, asr, sim, mos) in enumerate(outs)]
    return {"vocoder": name, "methods": ["hn"], "utterances": utts}


def test_identical_reports_differ_by_zero_and_a_shift_is_found():
    base = [("the cat sat", "the cat sat", 0.70 + 0.01 * i, 2.5 + 0.05 * i) for i in range(30)]
    same = compare_resynth(_report("a", base), _report("b", base))
    row = same["rows"][0]
    assert row["group"] == "held-out voices" and row["utterances"] == 30
    for m in ("wer", "similarity", "dnsmos"):
        assert row[m]["delta"] == 0 and row[m]["ci95"] == [0, 0] and not row[m]["distinct"]
    worse = [(t, "the dog sat", s + 0.05, d - 0.2) for t, _, s, d in base]
    row = compare_resynth(_report("a", base), _report("b", worse))["rows"][0]
    assert row["wer"]["delta"] == pytest.approx(1 / 3, abs=1e-4) and row["wer"]["distinct"]
    assert row["similarity"]["delta"] == pytest.approx(0.05) and row["similarity"]["distinct"]
    assert row["dnsmos"]["delta"] == pytest.approx(-0.2) and row["dnsmos"]["distinct"]
    assert "| hn | held-out voices | 30 | +0.3333" in compare_markdown(
        compare_resynth(_report("a", base), _report("b", worse)))


def test_noise_without_a_shift_is_not_called_distinct():
    import numpy as np

    rng = np.random.default_rng(1)
    a = [("a b", "a b", float(s), 3.0) for s in rng.normal(0.7, 0.05, 60)]
    b = [(t, x, float(s + rng.normal(0, 0.05)), m) for (t, x, s, m) in a]
    d = paired_delta(_report("a", a)["utterances"], _report("b", b)["utterances"], "hn",
                     "similarity")
    assert d["ci95"][0] < d["delta"] < d["ci95"][1] and not d["distinct"]


def test_reports_of_other_utterances_are_refused(tmp_path, capsys):
    from speechlm.cli import main

    a = _report("a", [("x y", "x y", 0.7, 3.0)])
    b = _report("b", [("x y", "x y", 0.7, 3.0)])
    b["utterances"][0]["name"] = "other"
    with pytest.raises(DataError, match="share no utterance"):
        compare_resynth(a, b)
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text("not json")
    assert main(["eval", "compare-resynth", str(tmp_path / "a.json"),
                 str(tmp_path / "b.json")]) == 2
    assert "not a JSON report" in capsys.readouterr().err
