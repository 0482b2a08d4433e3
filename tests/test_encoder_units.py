"""The encoder-units comparison table: PNMI gain and WER targets against the baseline row."""

from __future__ import annotations

import json

import pytest

from speechlm.eval.encoder_units import compare, main, markdown

pytest.importorskip("jiwer")


def _tok(docs, name, pnmi):
    (docs / f"tokenizer-{name}.json").write_text(json.dumps({
        "unit_space": f"{name}-0", "utterances": 10, "pnmi": pnmi, "phone_purity": 0.3,
        "abx_within_units": 10.0, "abx_across_units": 20.0, "units_per_second": 30.0,
        "bitrate": 190.0}))


def _resynth(path, hyps):
    utts = [{"name": f"{v}/u{i}", "voice": v, "text": "the cat sat",
             "held_out": v == "flite_rms",
             "orig": {"asr": "the cat sat"}, "world-f0": {"asr": h, "similarity": 0.8}}
            for i, (v, h) in enumerate(hyps)]
    path.write_text(json.dumps({"vocoder": "v", "utterances": utts}))


def test_gain_and_targets(tmp_path):
    _tok(tmp_path, "mfcc-k100", 0.30)
    _tok(tmp_path, "a", 0.50)
    _tok(tmp_path, "b", 0.40)
    # baseline: bundled report name; 'a' better, 'b' without a vocoder report
    _resynth(tmp_path / "vocoder-unit-vocoder.json",
             [("flite_slt", "the cat"), ("espeak_x", "a dog sat"), ("flite_rms", "")])
    _resynth(tmp_path / "resynth-a-s4000.json",
             [("flite_slt", "the cat sat"), ("espeak_x", "the dog sat"), ("flite_rms", "")])
    report = compare(["mfcc-k100", "a", "b"], tmp_path)
    base, a, b = report["rows"]
    assert base["wer"] == pytest.approx(3 / 6)
    assert base["wer_clear"] == pytest.approx(1 / 3, abs=1e-4)
    assert base["resynth_utterances"] == 2 and base["wer_orig"] == 0.0
    assert a["pnmi_gain"] == pytest.approx(0.2) and a["meets_pnmi_target"]
    assert a["wer"] == pytest.approx(1 / 6, abs=1e-4) and a["meets_wer_target"]
    d = a["wer_delta"]  # paired over the 2 training-voice utterances both reports judged
    assert d["utterances"] == 2 and d["delta"] == pytest.approx(-1 / 3, abs=1e-4)
    assert d["ci95"][0] <= d["delta"] <= d["ci95"][1] <= 0
    assert b["pnmi_gain"] == pytest.approx(0.1) and not b["meets_pnmi_target"]
    assert "wer" not in b and "meets_wer_target" not in b
    assert markdown(report).count("\n") == 5
    # other vocoder steps: the bundled report is not a 1000-step vocoder
    _resynth(tmp_path / "resynth-a-s1000.json", [("flite_slt", "the cat sat")])
    base, a, _ = compare(["mfcc-k100", "a", "b"], tmp_path, steps=1000)["rows"]
    assert "wer" not in base and a["wer"] == 0.0 and "meets_wer_target" not in a


def test_missing_report_exits_2(tmp_path, capsys):
    _tok(tmp_path, "mfcc-k100", 0.3)
    assert main(["mfcc-k100", "nope", "--docs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tokenizer-nope.json not found" in err
