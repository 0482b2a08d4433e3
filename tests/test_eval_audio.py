"""eval resynth / eval continue end to end on the small corpus with a tiny vocoder."""

from __future__ import annotations

import json

import pytest

from speechlm.cli import main

pytestmark = pytest.mark.slow


def test_eval_resynth_report(tiny_vocoder_run, small_corpus, tmp_path, capsys):
    voc = str(tiny_vocoder_run[0] / "model")
    code = main(["-q", "eval", "resynth", "--corpus", str(small_corpus), "--vocoder", voc,
                 "--per-voice", "1", "--methods", "world-f0,griffinlim",
                 "--json", str(tmp_path / "r.json"), "--audio-out", str(tmp_path / "a")])
    md = capsys.readouterr().out
    assert code == 0 and "| training voices | world-f0 |" in md and "(held out)" in md
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["groups"]) == {"training voices", "held-out voices"}
    assert r["groups"]["held-out voices"]["n"] == 1  # flite_rms is held out by the tiny recipe
    u = r["utterances"][0]
    for key in ("asr", "similarity", "dnsmos", "f0_corr", "f0_rmse_hz", "wer"):
        assert key in u["world-f0"]
    assert -1 <= u["world-f0"]["similarity"] <= 1
    assert len(list((tmp_path / "a" / "griffinlim").glob("*.wav"))) == 4


def test_eval_continue_report_and_figures(tiny_vocoder_run, small_corpus, tmp_path, capsys):
    voc = str(tiny_vocoder_run[0] / "model")
    code = main(["-q", "eval", "continue", "--corpus", str(small_corpus), "--data", "train",
                 "--vocoder", voc, "--per-voice", "1", "--num-samples", "2",
                 "--prompt-seconds", "2", "--seconds", "1", "--figures", str(tmp_path / "f"),
                 "--json", str(tmp_path / "c.json")])
    md = capsys.readouterr().out
    assert code == 0 and "speaker sim" in md
    r = json.loads((tmp_path / "c.json").read_text())
    p = r["prompts"][0]
    assert len(p["samples"]) == 2 and p["self_bleu4"] is not None
    s = p["samples"][0]
    for key in ("asr", "similarity", "dnsmos", "auto_bleu2", "loop", "silence_ratio",
                "rate_ratio"):
        assert key in s
    assert len(list((tmp_path / "f").glob("*.png"))) == len(r["voices"]) == 4
