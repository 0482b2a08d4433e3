"""continue / resynth / vocode from the command line, and the SpeechLM API behind them."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from speechlm.cli import main

SAMPLE = "samples/flite_slt_arctic_a0004.wav"


@pytest.fixture(scope="module")
def voc_dir(tiny_vocoder_run):
    """A tiny vocoder on mfcc-k100 units: resynth tokenizes with the vocoder's own tokenizer."""
    return str(tiny_vocoder_run[0] / "model")


@pytest.fixture(scope="module")
def default_voc():
    """The bundled vocoder: what composes with the default tokenizer and LM (whisper-phone)."""
    from speechlm.vocoder import DEFAULT_VOCODER

    return DEFAULT_VOCODER


def _md5(p) -> str:
    return hashlib.md5(open(p, "rb").read()).hexdigest()


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_resynth_writes_same_length_audio(voc_dir, tmp_path, capsys):
    out = tmp_path / "r.wav"
    code, stdout, _ = _run(capsys, "-q", "resynth", SAMPLE, "-o", str(out), "--vocoder", voc_dir)
    assert code == 0 and str(out) in stdout
    y, sr = sf.read(out)
    x, _ = sf.read(SAMPLE)
    assert sr == 16000 and abs(len(y) - len(x)) < 640
    # no overwrite without --force
    code, _, err = _run(capsys, "resynth", SAMPLE, "-o", str(out), "--vocoder", voc_dir)
    assert code == 2 and "exists; pass --force" in err and err.count("\n") == 1
    code, _, _ = _run(capsys, "-q", "resynth", SAMPLE, "-o", str(out), "--vocoder", voc_dir,
                      "--voice", "samples/fest_kal_arctic_a0004.wav", "--force")
    assert code == 0


def test_bundled_vocoder_settings_are_the_default_and_flags_override_them(default_voc,
                                                                          tmp_path, capsys):
    """resynth with the bundled vocoder as shipped equals giving its config's settings by flag;
    turning the voiced-noise cut off, or voice adaptation on, changes the audio but not its
    length."""
    def resynth(name, *flags):
        out = tmp_path / f"{name}.wav"
        code, _, err = _run(capsys, "-q", "resynth", SAMPLE, "-o", str(out), "--vocoder",
                            default_voc, *flags)
        assert code == 0, err
        return out

    shipped = resynth("default")
    same = resynth("flags", "--timbre-match", "0.5", "--mel-contrast", "1.2",
                   "--voiced-noise-cut", "1000")
    off = resynth("off", "--voiced-noise-cut", "0")
    adapted = resynth("adapted", "--voice-adapt-steps", "3")
    assert _md5(shipped) == _md5(same) == _md5(resynth("no-adapt", "--voice-adapt-steps", "0"))
    a = sf.read(shipped)[0]
    for other in (off, adapted):
        b = sf.read(other)[0]
        assert len(a) == len(b) and float(np.abs(a - b).max()) > 1e-3


def test_resynth_bad_input(voc_dir, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    code, _, err = _run(capsys, "resynth", str(bad), "-o", str(tmp_path / "o.wav"),
                        "--vocoder", voc_dir)
    assert code == 2 and err.startswith("speechlm: error:") and err.count("\n") == 1
    assert not (tmp_path / "o.wav").exists()
    code, _, err = _run(capsys, "resynth", SAMPLE, "-o", str(tmp_path / "o.txt"),
                        "--vocoder", voc_dir)
    assert code == 2 and ".wav" in err


def test_vocode_units_file(default_voc, tmp_path, capsys):
    code, stdout, _ = _run(capsys, "-q", "tokenize", "--format", "json", "--dedup", SAMPLE)
    units = tmp_path / "u.json"
    units.write_text(stdout)
    out = tmp_path / "v.wav"
    code, _, _ = _run(capsys, "-q", "vocode", str(units), "-o", str(out), "--voice", SAMPLE,
                      "--vocoder", default_voc)
    assert code == 0
    y, _ = sf.read(out)
    rec = json.loads(stdout)
    assert len(y) == sum(rec["durations"]) * 320
    # with no source F0 the contour is drawn; --f0-spread 0 takes each frame's median instead
    med = tmp_path / "median.wav"
    code, _, err = _run(capsys, "-q", "vocode", str(units), "-o", str(med), "--voice", SAMPLE,
                        "--vocoder", default_voc, "--f0-spread", "0")
    assert code == 0, err
    z = sf.read(med)[0]
    assert len(z) == len(y) and float(np.abs(z - y).max()) > 1e-3
    # --contour DIR: the drawn pitch shape from an intonation model of the same units (here an
    # untrained one); none: the vocoder's per-frame distributions; a bad one: exit 2, one line
    from speechlm.prosody import ContourConfig, ContourModel, ContourNet
    from speechlm.vocoder import Vocoder

    space = Vocoder.load(default_voc).unit_space
    torch.manual_seed(0)
    ContourModel(ContourNet(ContourConfig(n_units=rec["n_units"], unit_space=space, hidden=16,
                                          embed=8, layers=1))).save(tmp_path / "contour")
    shaped = tmp_path / "shaped.wav"
    code, _, err = _run(capsys, "-q", "vocode", str(units), "-o", str(shaped), "--voice", SAMPLE,
                        "--vocoder", default_voc, "--contour", str(tmp_path / "contour"))
    assert code == 0, err
    c = sf.read(shaped)[0]
    assert len(c) == len(y) and float(np.abs(c - y).max()) > 1e-3
    code, _, err = _run(capsys, "-q", "vocode", str(units), "-o", str(tmp_path / "n.wav"),
                        "--voice", SAMPLE, "--vocoder", default_voc, "--contour", "none")
    assert code == 0, err
    assert (_md5(tmp_path / "n.wav") == _md5(out)) == (Vocoder.load(default_voc).contour is None)
    code, _, err = _run(capsys, "vocode", str(units), "-o", str(tmp_path / "x.wav"), "--voice",
                        SAMPLE, "--vocoder", default_voc, "--contour", str(tmp_path / "nope"))
    assert code == 2 and err.count("\n") == 1 and "nope" in err
    assert not (tmp_path / "x.wav").exists()
    # a units file from another unit space is refused
    rec["unit_space"] = "mfcc-k100-deadbeef"
    units.write_text(json.dumps(rec))
    code, _, err = _run(capsys, "vocode", str(units), "-o", str(tmp_path / "w.wav"),
                        "--voice", SAMPLE, "--vocoder", default_voc)
    assert code == 2 and "unit space mismatch" in err


def test_continue_seeded_reproducible_and_samples_differ(default_voc, tmp_path, capsys):
    out = tmp_path / "c.wav"
    args = ["-q", "continue", SAMPLE, "--vocoder", default_voc, "--seconds", "1.5", "--seed", "3"]
    code, _, _ = _run(capsys, *args, "-o", str(out), "--num-samples", "2",
                      "--units-out", str(tmp_path / "u.jsonl"))
    assert code == 0
    a1, a2 = tmp_path / "c-1.wav", tmp_path / "c-2.wav"
    assert a1.exists() and a2.exists() and _md5(a1) != _md5(a2)
    code, _, _ = _run(capsys, *args, "-o", str(tmp_path / "d.wav"))
    assert code == 0
    assert _md5(tmp_path / "d.wav") == _md5(a1)  # sample 1 of seed 3 == seed 3 alone
    recs = [json.loads(x) for x in (tmp_path / "u.jsonl").read_text().splitlines()]
    assert [r["name"] for r in recs] == ["prompt", "sample-1", "sample-2"]
    assert all(r["format"] == "speechlm.units" and r["dedup"] for r in recs)
    # the output holds the prompt, then the continuation
    y, _ = sf.read(a1)
    x, _ = sf.read(SAMPLE)
    assert len(y) > len(x)
    code, _, _ = _run(capsys, *args, "-o", str(tmp_path / "e.wav"), "--continuation-only")
    e, _ = sf.read(tmp_path / "e.wav")
    assert len(e) < len(y)
    # --no-prompt-pitch draws the prompt's F0 too: the same length, another sound (a vocoder
    # that draws its F0; the default one does)
    from speechlm.vocoder import Vocoder

    code, _, _ = _run(capsys, *args, "-o", str(tmp_path / "p.wav"), "--no-prompt-pitch")
    p, _ = sf.read(tmp_path / "p.wav")
    assert code == 0 and len(p) == len(y)
    assert (_md5(tmp_path / "p.wav") == _md5(a1)) == (not Vocoder.load(default_voc).cfg.f0_bins)


def test_continue_bad_prompts(default_voc, tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(32000, np.float32), 16000)
    code, _, err = _run(capsys, "continue", str(silent), "-o", str(tmp_path / "o.wav"),
                        "--vocoder", default_voc)
    assert code == 2 and "silent" in err and err.count("\n") == 1
    txt = tmp_path / "notes.wav"
    txt.write_text("hello")
    code, _, err = _run(capsys, "continue", str(txt), "-o", str(tmp_path / "o.wav"),
                        "--vocoder", default_voc)
    assert code == 2 and err.count("\n") == 1
    code, _, err = _run(capsys, "continue", SAMPLE, "-o", str(tmp_path / "o.wav"),
                        "--vocoder", default_voc, "--seconds", "60")
    assert code == 2 and "does not fit the LM's context" in err
    code, _, err = _run(capsys, "continue", SAMPLE, "-o", str(tmp_path / "o.wav"),
                        "--vocoder", default_voc, "--text", "and then")
    assert code == 2 and "trained on units only" in err and err.count("\n") == 1
    assert not (tmp_path / "o.wav").exists()


def test_long_prompt_is_truncated_to_the_context(default_voc, tmp_path, capsys,
                                                 long_prompt_repeats):
    x, sr = sf.read(SAMPLE)
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate([x] * long_prompt_repeats(len(x), sr, 2)), sr)  # > context
    code, _, err = _run(capsys, "continue", str(long), "-o", str(tmp_path / "o.wav"),
                        "--vocoder", default_voc, "--seconds", "1", "--seed", "0")
    assert code == 0 and "longer than the LM's context" in err


def test_pipeline_refuses_mismatched_stages(default_voc):
    from speechlm.errors import ModelError
    from speechlm.lm import LanguageModel
    from speechlm.pipeline import SpeechLM
    from speechlm.tokenizer import Tokenizer
    from speechlm.vocoder import Vocoder

    tok = Tokenizer.load()
    lm = LanguageModel.load()
    voc = Vocoder.load(default_voc)
    SpeechLM(tok, lm, voc)  # matching stages are accepted
    voc.cfg = type(voc.cfg)(**{**voc.cfg.to_dict(), "unit_space": "mfcc-k100-00000000"})
    with pytest.raises(ModelError, match="mfcc-k100-00000000.*" + re.escape(tok.unit_space)):
        SpeechLM(tok, lm, voc)


def test_api_continue_and_vocode(default_voc):
    from speechlm import SpeechLM, Units

    m = SpeechLM.load(vocoder=default_voc)
    units = m.tokenize(SAMPLE)
    assert isinstance(units, Units) and units.deduped
    out = m.continue_audio(SAMPLE, seconds=1.0, seed=1)
    assert out.sample_rate == 16000 and out.waveform.dim() == 1
    assert out.prompt_units.unit_space == m.unit_space
    assert len(out.generated_units) > 0 and out.prompt_seconds > 3
    again = m.continue_audio(SAMPLE, seconds=1.0, seed=1)
    assert torch.equal(out.waveform, again.waveform)
    wav = m.vocode(units, voice=SAMPLE)
    assert wav.shape[0] == units.num_frames * 320


def test_missing_inputs_are_named_before_outputs(voc_dir, tmp_path, capsys):
    out = tmp_path / "o.wav"
    out.write_bytes(b"")  # an existing output must not hide the missing input
    for argv in (["resynth", str(tmp_path / "nope.wav"), "-o", str(out)],
                 ["continue", str(tmp_path / "nope.wav"), "-o", str(out)],
                 ["continue", SAMPLE, "--voice", str(tmp_path / "v.wav"), "-o", str(out)],
                 ["vocode", str(tmp_path / "u.json"), "--voice", SAMPLE, "-o", str(out)]):
        code, _, err = _run(capsys, *argv, "--vocoder", voc_dir)
        assert code == 2 and "not found" in err and err.count("\n") == 1, argv
