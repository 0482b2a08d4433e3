"""eval compare-resynth and compare-continue: paired differences between two reports."""

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


def test_f0_measures_pair_the_utterances_where_both_reports_have_one():
    base = [("a b", "a b", 0.7, 3.0)] * 20
    a, b = _report("a", base), _report("b", base)
    for i, (ua, ub) in enumerate(zip(a["utterances"], b["utterances"])):
        ua["hn"] = {**ua["hn"], "f0_rmse_cents": 100.0 + i, "vuv_error": 0.2}
        ub["hn"] = {**ub["hn"], "f0_rmse_cents": 60.0 + i, "vuv_error": 0.1}
    a["utterances"][0]["hn"]["f0_rmse_cents"] = None  # an unvoiced output: no F0 RMSE
    row = compare_resynth(a, b)["rows"][0]
    assert row["f0_rmse_cents"]["delta"] == pytest.approx(-40) and row["f0_rmse_cents"]["n"] == 19
    assert row["f0_rmse_cents"]["distinct"]
    assert row["vuv_error"]["delta"] == pytest.approx(-0.1) and row["vuv_error"]["n"] == 20
    assert "-40.0000 [-40.0000, -40.0000] * (n = 19)" in compare_markdown(compare_resynth(a, b))
    for u in a["utterances"]:
        u["hn"]["vuv_error"] = None
    assert compare_resynth(a, b)["rows"][0]["vuv_error"] is None
    # reports without F0 measures (older ones) compare as before, the new columns empty
    row = compare_resynth(_report("a", base), _report("b", base))["rows"][0]
    assert row["f0_rmse_cents"] is None and row["wer"]["delta"] == 0


def test_the_similarity_margin_pairs_the_calibrated_utterances():
    """A similarity that rises while its margin over the closest other voice falls: the output
    moved toward voices in general. Rows without a calibration are left out of the margin."""
    base = [("a b", "a b", 0.7, 3.0)] * 20
    a, b = _report("a", base), _report("b", base)
    for ua, ub in zip(a["utterances"], b["utterances"]):
        ua["hn"]["calibration"] = {"margin": 0.10}
        ub["hn"] = {**ub["hn"], "similarity": 0.73, "calibration": {"margin": 0.08}}
    b["utterances"][0]["hn"]["calibration"] = None
    row = compare_resynth(a, b)["rows"][0]
    assert row["similarity"]["delta"] == pytest.approx(0.03) and row["similarity"]["distinct"]
    assert row["similarity_margin"]["delta"] == pytest.approx(-0.02)
    assert row["similarity_margin"]["n"] == 19 and row["similarity_margin"]["distinct"]
    assert "-0.0200 [-0.0200, -0.0200] * (n = 19)" in compare_markdown(compare_resynth(a, b))
    assert compare_resynth(_report("a", base), _report("b", base))["rows"][0][
        "similarity_margin"] is None  # reports without calibrations


def test_the_second_asr_is_paired_when_both_reports_ran_it():
    """--asr whisper,pocketsphinx: pocketsphinx's WER paired beside the main one; reports
    without it (or only one with it) leave its column empty."""
    base = [("the cat sat", "the cat sat", 0.7, 3.0)] * 20
    a, b = _report("a", base), _report("b", base)
    assert compare_resynth(a, b)["rows"][0]["wer_pocketsphinx"] is None
    for ua, ub in zip(a["utterances"], b["utterances"]):
        ua["hn"]["asr_pocketsphinx"] = "the cat mat"
        ub["hn"]["asr_pocketsphinx"] = "the cat sat"
    row = compare_resynth(a, b)["rows"][0]
    assert row["wer"]["delta"] == 0
    assert row["wer_pocketsphinx"]["delta"] == pytest.approx(-1 / 3, abs=1e-4)
    assert row["wer_pocketsphinx"]["distinct"]
    md = compare_markdown(compare_resynth(a, b))
    assert "| WER | pocketsphinx WER |" in md and "| +0.0000 [+0.0000, +0.0000] | -0.3333" in md
    del b["utterances"][3]["hn"]["asr_pocketsphinx"]
    assert compare_resynth(a, b)["rows"][0]["wer_pocketsphinx"] is None


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


def _continue_report(name, prompts):
    """A minimal 'eval continue' report: prompts of (held_out, [(seed, similarity, margin,
    dnsmos, dictionary words, seconds)]); Whisper heard 10 words in each sample, the
    dictionary's words confidently, each word with probability 0.5 + words / 100."""
    out = []
    for i, (held, samples) in enumerate(prompts):
        out.append({"name": f"p{i}", "held_out": held, "samples": [
            {"seed": seed, "similarity": sim, "dnsmos": mos, "auto_bleu2": 0.3,
             "calibration": {"margin": margin,
                             "verdict": "voice kept" if margin > 0 else "voice lost"},
             "content": {"n_confident_in_dictionary": words, "seconds": secs, "n_words": 10,
                         "n_confident": words, "prob_sum": 10 * (0.5 + words / 100)}}
            for seed, sim, margin, mos, words, secs in samples]})
    return {"vocoder": name, "prompts": out}


def test_continuation_reports_pair_by_prompt_and_seed(tmp_path, capsys):
    from speechlm.cli import main
    from speechlm.eval.compare import compare_continue, compare_continue_markdown

    base = [(True, [(s, 0.6 + 0.01 * p, -0.05, 2.5, 6, 4.0) for s in (0, 1)])
            for p in range(20)] + [(False, [(0, 0.8, 0.1, 2.7, 8, 4.0)])]
    better = [(h, [(s, sim + 0.05, m + 0.1, mos, w - 2, sec) for s, sim, m, mos, w, sec in ss])
              for h, ss in base]
    rep = compare_continue(_continue_report("a", base), _continue_report("b", better))
    held, seen = rep["rows"]
    assert (held["group"], held["prompts"], held["samples"]) == ("held-out voices", 20, 40)
    assert seen["prompts"] == 1 and rep["samples_paired"] == 41
    assert (rep["base"], rep["other"]) == ("a", "b")
    # reports of --model runs speak through the model's own vocoder: named by their model
    by_model = [{**_continue_report("model's", base), "model": m} for m in ("x/model", "y")]
    assert compare_continue(*by_model)["base"] == "x/model (its vocoder)"
    assert held["similarity"]["delta"] == pytest.approx(0.05) and held["similarity"]["distinct"]
    assert held["margin"]["delta"] == pytest.approx(0.1)
    assert held["voice_kept"] == {"base": 0.0, "other": 1.0, "delta": 1.0, "ci95": [1.0, 1.0],
                                  "distinct": True}
    assert held["dict_words_per_s"]["delta"] == pytest.approx(-0.5)
    assert held["word_prob"]["delta"] == pytest.approx(-0.02)  # 2 fewer of 10 words sure
    assert held["confident_share"]["delta"] == pytest.approx(-0.2)
    assert held["auto_bleu2"]["delta"] == 0 and not held["auto_bleu2"]["distinct"]
    assert held["pitch_error"] is None  # reports without pitch measures: nothing to pair
    pitched = [_continue_report(n, x) for n, x in (("a", base), ("b", better))]
    for rep_, move in zip(pitched, (-20.0, -70.0)):
        for p in rep_["prompts"]:
            p["rest_pitch_shift_cents"] = -100.0
            for x in p["samples"]:
                x["pitch_shift_cents"] = move
    both = compare_continue(*pitched)["rows"][0]
    assert both["pitch_shift"]["delta"] == pytest.approx(-50)
    assert both["pitch_error"]["base"] == pytest.approx(80)
    assert both["pitch_error"]["delta"] == pytest.approx(-50) and both["pitch_error"]["distinct"]
    no_words = _continue_report("b", better)
    for p in no_words["prompts"]:
        for x in p["samples"]:
            x["content"]["n_words"] = 0  # Whisper heard nothing: no share to compare
    assert compare_continue(_continue_report("a", base), no_words)["rows"][0]["word_prob"] is None
    assert held["dnsmos"]["delta"] == 0 and not held["dnsmos"]["distinct"]
    assert "| held-out voices | 20 x 2 | speaker sim to prompt | 0.695 | 0.745 | +0.0500" in \
        compare_continue_markdown(rep)
    # a sample only one report drew is left out; none shared is refused
    extra = _continue_report("b", better)
    extra["prompts"][0]["samples"].append({"seed": 9, "similarity": 0.0})
    assert compare_continue(_continue_report("a", base), extra)["samples_paired"] == 41
    other = _continue_report("b", better)
    for p in other["prompts"]:
        p["name"] += "x"
    with pytest.raises(DataError, match="share no sample"):
        compare_continue(_continue_report("a", base), other)
    (tmp_path / "a.json").write_text(json.dumps(_continue_report("a", base)))
    (tmp_path / "r.json").write_text(json.dumps(_report("r", [("x", "x", 0.7, 3.0)])))
    assert main(["eval", "compare-continue", str(tmp_path / "a.json"),
                 str(tmp_path / "r.json")]) == 2
    assert "not a report of 'speechlm eval continue'" in capsys.readouterr().err
