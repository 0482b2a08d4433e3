"""eval resynth / eval continue end to end on the small corpus with a tiny vocoder."""

from __future__ import annotations

import json

import pytest

from speechlm.cli import main
from speechlm.eval.continue_report import continuation_markdown

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
    # both ASR judges, Whisper's content, and calibrated similarity
    assert r["asr"] == ["whisper", "pocketsphinx"]
    assert {"wer_pocketsphinx", "asr_pocketsphinx", "content"} <= set(u["world-f0"])
    assert {"wer", "wer_pocketsphinx", "content"} <= set(u["orig"])
    cal = u["world-f0"]["calibration"]
    assert cal["n_others"] == 3 and cal["others_mean"] <= cal["others_max"]
    assert r["groups"]["training voices"]["world-f0"]["calibration"]["n"] == 3
    assert "Speaker similarity, calibrated" in md and "Content heard by Whisper" in md


def test_eval_resynth_on_a_folder_of_recordings(tiny_vocoder_run, small_corpus, tmp_path,
                                                capsys):
    """--wav-dir: the user's own recordings, one folder per speaker, texts in texts.tsv."""
    import shutil

    from speechlm.data.manifest import read_manifest

    items = read_manifest(small_corpus / "test.tsv")
    texts = []
    for spk in ("flite_slt", "fest_kal"):
        u = next(u for u in items if u.speaker == spk)
        (tmp_path / "mine" / f"reader_{spk}").mkdir(parents=True)
        shutil.copy(u.path, tmp_path / "mine" / f"reader_{spk}" / "one.wav")
        texts.append(f"reader_{spk}/one.wav\t{u.text}")
    (tmp_path / "mine" / "texts.tsv").write_text("\n".join(texts) + "\n")
    code = main(["-q", "eval", "resynth", "--wav-dir", str(tmp_path / "mine"), "--vocoder",
                 str(tiny_vocoder_run[0] / "model"), "--methods", "world-f0", "--asr",
                 "whisper", "--json", str(tmp_path / "r.json")])
    assert code == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["voices"]) == {"reader_flite_slt", "reader_fest_kal"}
    assert set(r["groups"]) == {"held-out voices"}  # voices the vocoder never trained on
    assert all(u["text"] and "wer" in u["world-f0"] for u in r["utterances"])
    capsys.readouterr()
    assert main(["-q", "eval", "resynth", "--wav-dir", str(tmp_path / "none")]) == 2


def test_eval_resynth_with_a_perturbed_voice_reference(tiny_vocoder_run, small_corpus, tmp_path,
                                                       capsys):
    """--reference-perturb: only the voice comes from the noisy copy; the units, the source F0
    and the judges keep the clean original, so the outputs keep their length and change."""
    import numpy as np
    import soundfile as sf

    voc = str(tiny_vocoder_run[0] / "model")
    common = ["-q", "eval", "resynth", "--corpus", str(small_corpus), "--vocoder", voc,
              "--per-voice", "1", "--methods", "world-f0", "--asr", "whisper"]
    assert main([*common, "--audio-out", str(tmp_path / "clean")]) == 0
    assert main([*common, "--reference-perturb", "noise0dB", "--audio-out",
                 str(tmp_path / "noisy"), "--json", str(tmp_path / "r.json")]) == 0
    md = capsys.readouterr().out
    assert "Voice references perturbed (noise0dB)" in md
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["reference_perturb"] == "noise0dB"
    clean = sorted((tmp_path / "clean" / "world-f0").glob("*.wav"))
    noisy = sorted((tmp_path / "noisy" / "world-f0").glob("*.wav"))
    assert [p.name for p in clean] == [p.name for p in noisy] and len(clean) == 4
    for a, b in zip(clean, noisy):
        x, y = sf.read(a)[0], sf.read(b)[0]
        assert len(x) == len(y) and not np.allclose(x, y, atol=1e-4)
    assert main([*common, "--reference-perturb", "chorus"]) == 2
    assert "noise<SNR>dB" in capsys.readouterr().err


def test_eval_resynth_with_another_utterance_as_the_voice_reference(tiny_vocoder_run,
                                                                    small_corpus, tmp_path,
                                                                    capsys):
    """--voice-from other: each voice comes from another utterance of the same voice, named in
    the report; the units, the source F0 and the judges keep the utterance itself."""
    import numpy as np
    import soundfile as sf

    voc = str(tiny_vocoder_run[0] / "model")
    common = ["-q", "eval", "resynth", "--corpus", str(small_corpus), "--vocoder", voc,
              "--per-voice", "1", "--methods", "world-f0", "--asr", "whisper"]
    assert main([*common, "--audio-out", str(tmp_path / "self"), "--json",
                 str(tmp_path / "s.json")]) == 0
    assert main([*common, "--voice-from", "other", "--audio-out", str(tmp_path / "other"),
                 "--json", str(tmp_path / "o.json")]) == 0
    md = capsys.readouterr().out
    assert "another utterance of the same voice" in md
    own, other = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("s", "o"))
    assert own["voice_from"] == "self" and other["voice_from"] == "other"
    names = [u["name"] for u in other["utterances"]]
    assert names and set(names) <= {u["name"] for u in own["utterances"]}
    # a voice with a single utterance has no other to take the voice from: left out, and said
    assert sorted({u["voice"] for u in own["utterances"]} - {u["voice"] for u in
                                                             other["utterances"]}) == \
        other["voices_left_out"]
    for u in own["utterances"]:
        assert u["reference"] == u["name"]
    from speechlm.data.manifest import read_manifest

    voice_of = {u.name: u.speaker or u.name.split("/")[0]
                for u in read_manifest(small_corpus / "test.tsv")}
    for u in other["utterances"]:
        assert u["reference"] != u["name"] and voice_of[u["reference"]] == u["voice"]
    for n in names:
        f = n.replace("/", "_") + ".wav"
        x, y = sf.read(tmp_path / "self" / "world-f0" / f)[0], \
            sf.read(tmp_path / "other" / "world-f0" / f)[0]
        assert len(x) == len(y) and not np.allclose(x, y, atol=1e-4)
    with pytest.raises(SystemExit) as bad:
        main([*common, "--voice-from", "nobody"])
    assert bad.value.code == 2 and "--voice-from" in capsys.readouterr().err


def test_eval_continue_with_perturbed_prompts(small_corpus, tmp_path, capsys):
    """--prompt-perturb: the model hears the noisy copy (its units change), the judges the
    clean prompt (the prompt's DNSMOS is the clean run's)."""
    common = ["-q", "eval", "continue", "--corpus", str(small_corpus), "--data", "train",
              "--per-voice", "1", "--num-samples", "1", "--prompt-seconds", "2", "--seconds",
              "1"]
    assert main([*common, "--json", str(tmp_path / "clean.json")]) == 0
    assert main([*common, "--prompt-perturb", "noise0dB", "--json",
                 str(tmp_path / "noisy.json")]) == 0
    md = capsys.readouterr().out
    assert "Prompts perturbed (noise0dB)" in md
    clean, noisy = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("clean", "noisy"))
    assert noisy["prompt_perturb"] == "noise0dB" and clean["prompt_perturb"] is None
    assert [p["name"] for p in clean["prompts"]] == [p["name"] for p in noisy["prompts"]]
    for c, n in zip(clean["prompts"], noisy["prompts"]):
        assert c["prompt_dnsmos"] == n["prompt_dnsmos"]
    assert any(c["samples"][0]["units"] != n["samples"][0]["units"]
               for c, n in zip(clean["prompts"], noisy["prompts"]))
    assert main([*common, "--prompt-perturb", "noise"]) == 2
    assert "noise<SNR>dB" in capsys.readouterr().err


def test_eval_continue_report_and_figures(small_corpus, tmp_path, capsys):
    code = main(["-q", "eval", "continue", "--corpus", str(small_corpus), "--data", "train",
                 "--per-voice", "1", "--num-samples", "2",
                 "--prompt-seconds", "2", "--seconds", "1", "--figures", str(tmp_path / "f"),
                 "--json", str(tmp_path / "c.json")])
    md = capsys.readouterr().out
    assert code == 0 and "speaker sim" in md
    r = json.loads((tmp_path / "c.json").read_text())
    p = r["prompts"][0]
    assert len(p["samples"]) == 2 and p["self_bleu4"] is not None
    s = p["samples"][0]
    for key in ("asr", "similarity", "dnsmos", "auto_bleu2", "loop", "silence_ratio",
                "rate_ratio", "pitch_shift_cents"):
        assert key in s
    # pitch kept: each sample, the original rest and the spoken baselines against the prompt
    assert "rest_pitch_shift_cents" in p and "pitch_shift_cents" in p["baselines"]["ceiling"]
    agg = r["groups"]["training voices"]
    for key in ("pitch_shift_cents", "pitch_shift_cents_original_rest", "pitch_error_cents",
                "pitch_error_cents_flat", "pitch_error_cents_ceiling",
                "pitch_error_cents_floor_unigram"):
        assert key in agg
    assert ("Pitch level (training voices)" in md) == (agg["pitch_error_cents"] is not None)
    assert len(list((tmp_path / "f").glob("*.png"))) == len(r["voices"]) == 4
    # content between a floor and a ceiling, spoken by the same vocoder
    assert set(p["baselines"]) == {"floor_unigram", "floor_bigram", "ceiling"}
    c = r["groups"]["training voices"]["content"]
    assert set(c) == {"lm", "floor_unigram", "floor_bigram", "ceiling", "position",
                      "position_ci95", "halfway_margin", "halfway_margin_ci95",
                      "position_ci95_voices", "halfway_margin_ci95_voices"}
    assert set(c["position"]) == set(c["position_ci95"]) == set(c["halfway_margin"]) == set(
        c["halfway_margin_ci95"]) == {
        "mean_word_prob", "confident_share", "dictionary_words_per_second"}
    assert r["floors_fitted_on"]
    assert s["calibration"] is None or s["calibration"]["n_others"] == 3
    assert "between a floor" in md
    # the pace each continuation was spoken at (fitted to its prompt), averaged per voice
    tempos = [x["tempo"] for q in r["prompts"] for x in q["samples"]]
    assert all(0.25 <= t <= 4 for t in tempos)
    v = next(iter(r["voices"].values()))
    assert v["tempo"] is not None and min(tempos) <= v["tempo"] <= max(tempos)
    assert "| rate ratio | tempo |" in md
    # a targets line per voice group present, and none for a group the report lacks
    assert "Targets (training voices): similarity" in md
    held_only = dict(r, groups={"held-out voices": r["groups"]["training voices"]})
    md_held = continuation_markdown(held_only)
    assert "Targets (held-out voices): similarity" in md_held
    assert "training voices" not in md_held
    # --rescore: the same summary again from the saved records, nothing run
    assert main(["-q", "eval", "continue", "--rescore", str(tmp_path / "c.json"),
                 "--json", str(tmp_path / "again.json")]) == 0
    capsys.readouterr()
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["groups"] == r["groups"] and again["voices"] == r["voices"]
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    for bad in ("bad.json", "missing.json"):
        assert main(["-q", "eval", "continue", "--rescore", str(tmp_path / bad)]) == 2
        assert "error" in capsys.readouterr().err


def test_eval_resynth_with_units_read_by_the_reference_phones(tiny_vocoder_run, small_corpus,
                                                             tmp_path, capsys):
    """--unit-oracle: the units corrected by each utterance's .phn before the vocoder speaks
    them, the table fitted on the corpus's aligned train utterances, counted in the report;
    recordings without reference phones are refused with one line."""
    voc = str(tiny_vocoder_run[0] / "model")
    args = ["-q", "eval", "resynth", "--corpus", str(small_corpus), "--vocoder", voc,
            "--per-voice", "1", "--methods", "griffinlim,floor", "--asr", "whisper"]
    code = main(args + ["--unit-oracle", "phones", "--json", str(tmp_path / "r.json")])
    md = capsys.readouterr().out
    assert code == 0 and "--unit-oracle phones" in md
    r = json.loads((tmp_path / "r.json").read_text())
    o = r["unit_oracle"]
    assert o["mode"] == "phones" and o["fit_utterances"] > 0 and o["fit_frames"] > 0
    assert 0 < o["frames_changed"] <= o["frames"]
    # each utterance's frames counted once, though two methods read its units
    want = sum(u["seconds"] * 50 for u in r["utterances"])  # 20 ms unit frames
    assert abs(o["frames"] - want) <= 2 * len(r["utterances"])
    assert o["without_labels"] == 1  # espeak-ng reports no alignment
    assert len(r["utterances"]) == 3 and "wer" in r["utterances"][0]["griffinlim"]
    capsys.readouterr()
    (tmp_path / "mine").mkdir()
    u = next(iter(sorted((small_corpus / "wav").rglob("*.wav"))))
    (tmp_path / "mine" / "one.wav").write_bytes(u.read_bytes())
    (tmp_path / "mine" / "one.txt").write_text("hello\n")
    code = main(["-q", "eval", "resynth", "--wav-dir", str(tmp_path / "mine"), "--vocoder", voc,
                 "--methods", "griffinlim", "--asr", "whisper", "--unit-oracle", "corrected"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs utterances with reference phones" in err
    assert len(err.splitlines()) == 1


def test_eval_resynth_copy_synthesis_reads_any_tokenizer_but_decoding_needs_the_vocoders(
        tiny_vocoder_run, small_corpus, small_tokenizer, tmp_path, capsys):
    voc = str(tiny_vocoder_run[0] / "model")
    args = ["-q", "eval", "resynth", "--corpus", str(small_corpus), "--vocoder", voc,
            "--per-voice", "1", "--asr", "whisper", "--tokenizer", str(small_tokenizer)]
    assert main(args + ["--methods", "griffinlim"]) == 2
    assert "unit space" in capsys.readouterr().err
    assert main(args + ["--methods", "copy-gl", "--json", str(tmp_path / "r.json")]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["tokenizer_unit_space"] != r["unit_space"]


def test_eval_resynth_voice_tables_leave_the_utterance_out(small_corpus, tmp_path, capsys):
    """copy-voice-means / copy-voice-context: each voice's unit spectra pooled over its other
    utterances of the split (the bundled vocoder's waveform stage and units)."""
    from speechlm.data.manifest import read_manifest

    per_voice = {}
    for u in read_manifest(small_corpus / "test.tsv"):
        per_voice[u.speaker] = per_voice.get(u.speaker, 0) + 1
    args = ["-q", "eval", "resynth", "--corpus", str(small_corpus), "--vocoder", "phone-vocoder",
            "--per-voice", "1", "--asr", "whisper"]
    code = main(args + ["--methods", "copy-voice-means,copy-voice-context",
                        "--json", str(tmp_path / "r.json")])
    md = capsys.readouterr().out
    assert code == 0 and "Voice tables (copy-voice-*)" in md
    r = json.loads((tmp_path / "r.json").read_text())
    t = r["voice_tables"]
    assert t["utterances_per_voice"] == {v: n for v, n in per_voice.items() if n > 1}
    assert {u["voice"] for u in r["utterances"]} == set(t["utterances_per_voice"])
    for m in ("copy-voice-means", "copy-voice-context"):
        assert sum(t["levels"][m].values()) > 0
        assert "wer" in r["utterances"][0][m]
    assert t["levels"]["copy-voice-means"]["context"] == 0
    assert t["levels"]["copy-voice-context"]["context"] > 0  # some contexts recur in a voice
    # a voice with one utterance in the split is left out, named (nothing to look up)
    alone = sorted(v for v, n in per_voice.items() if n == 1)
    assert r["voices_left_out"] == alone
