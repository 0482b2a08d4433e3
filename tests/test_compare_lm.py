"""eval compare-lm: paired probe differences between two LM reports."""

import json
import subprocess
import sys

import pytest

from speechlm.errors import DataError
from speechlm.eval.compare import compare_lm, compare_lm_markdown


def _report(model, credits, ppl=10.0):
    """An ``eval lm`` report whose lexical trials have these credits, keyed (pair, voice)."""
    return {"model": model, "perplexity": {"perplexity_per_unit": ppl},
            "lexical": {"trials": [{"pair_id": p, "voice": v, "credit": c}
                                   for (p, v), c in credits.items()]}}


def test_paired_differences_resample_pairs_and_split_by_voice():
    keys = [(f"p{i}", v) for i in range(40) for v in ("a", "b")]
    base = _report("A", {k: 0.0 for k in keys}, 12.0)
    # other wins every trial of voice a and half of voice b's; one trial only it scored
    other = _report("B", {**{k: 1.0 if k[1] == "a" or int(k[0][1:]) % 2 else 0.0
                             for k in keys}, ("p99", "a"): 1.0}, 11.0)
    r = compare_lm(base, other, samples=500)
    (row,) = r["rows"]
    assert row["kind"] == "lexical" and row["pairs"] == 40 and row["trials"] == 80
    assert (row["base"], row["other"], row["delta"]) == (0.0, 0.75, 0.75)
    assert row["distinct"] and 0.6 < row["ci95"][0] < 0.75 < row["ci95"][1] <= 0.9
    assert row["per_voice"] == {"a": {"base": 0.0, "other": 1.0, "trials": 40},
                                "b": {"base": 0.0, "other": 0.5, "trials": 40}}
    assert r["perplexity"] == {"base": 12.0, "other": 11.0}
    md = compare_lm_markdown(r)
    assert "| spot-the-word | all | 40 | 80 | 0.000 | 0.750 | +0.7500" in md and " *" in md
    # the same report against itself: no difference, not distinct
    same = compare_lm(base, base)["rows"][0]
    assert same["delta"] == 0.0 and same["ci95"] == [0.0, 0.0] and not same["distinct"]
    # nothing shared (or a report from before per-trial credits): refused
    with pytest.raises(DataError, match="share no probe trial"):
        compare_lm(base, {"model": "C", "perplexity": {}, "lexical": {"accuracy": 0.5}})


def test_the_command_writes_both_reports_and_refuses_a_bad_input(tmp_path):
    keys = [(f"p{i}", "v") for i in range(5)]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_report("A", {k: 0.0 for k in keys})))
    b.write_text(json.dumps(_report("B", {k: 1.0 for k in keys})))
    out = tmp_path / "c"
    cmd = [sys.executable, "-m", "speechlm", "eval", "compare-lm", str(a), str(b),
           "--json", f"{out}.json", "--markdown", f"{out}.md"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "c.json").read_text())["rows"][0]["delta"] == 1.0
    assert "spot-the-word" in (tmp_path / "c.md").read_text()
    (tmp_path / "bad.json").write_text(json.dumps({"utterances": []}))
    p = subprocess.run(cmd[:5] + [str(tmp_path / "bad.json"), str(b)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "not a report of 'speechlm eval lm'" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
