"""Issue 17: hostile input, lost data and runaway memory. One test (or more) per row of the
issue, each reproducing the failure it describes; they run on the bundled default model, so no
training is needed. Refusals are checked to happen *before* the work (the model is never
loaded) where the issue asks for it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechlm.cli import main

REPO = Path(__file__).resolve().parents[1]
SAMPLE = str(REPO / "samples/flite_slt_arctic_a0004.wav")
# the bundled default's units (a switch of the default renames them and may change their number)
_DEFAULT_TOK = json.loads((REPO / "speechlm/pretrained/whisper-phone/config.json").read_text())
DEFAULT_SPACE, DEFAULT_N = _DEFAULT_TOK["unit_space"], _DEFAULT_TOK["n_units"]


def run(capsys, *argv):
    """``main`` in-process: (exit code, stdout, stderr); argparse errors exit via SystemExit."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if "error" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def md5(p) -> str:
    return hashlib.md5(Path(p).read_bytes()).hexdigest()


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as loading a model."""
    from speechlm import lm, pipeline, tokenizer, vocoder

    def boom(*a, **k):
        raise AssertionError("the model was loaded: the refusal came after the work started")

    monkeypatch.setattr(pipeline.SpeechLM, "load", classmethod(boom))
    monkeypatch.setattr(vocoder.Vocoder, "load", classmethod(boom))
    monkeypatch.setattr(tokenizer.Tokenizer, "load", classmethod(boom))
    monkeypatch.setattr(lm.LanguageModel, "load", classmethod(boom))


@pytest.fixture(scope="module")
def short_wavs(tmp_path_factory):
    d = tmp_path_factory.mktemp("short")
    x, sr = sf.read(SAMPLE, dtype="float32")
    mid = len(x) // 3  # from inside the speech, so the clip is not silent
    out = {}
    for n in (400, 512):
        out[n] = d / f"short{n}.wav"
        sf.write(out[n], x[mid : mid + n], sr)
    return out


# ----------------------------------------------------------------------- row 1: --prompt-units


def test_row1_long_inline_prompt_is_ids_not_a_file_name(capsys):
    code, out, err = run(capsys, "-q", "generate-units", "--prompt-units",
                         " ".join(["12"] * 90), "--max-units", "3", "--seed", "0")
    assert code == 0, err
    assert len(out.split()) == 3


@pytest.mark.parametrize("spec,needle", [("", "empty"), ("   ", "empty"),
                                         ("no/such/file.txt", "is neither unit ids")])
def test_row1_empty_or_missing_prompt(capsys, spec, needle):
    code, _, err = run(capsys, "generate-units", "--prompt-units", spec, "--max-units", "3")
    one_line_error(code, err, "--prompt-units", needle)


# ----------------------------------------------------------------------- row 2: short audio


@pytest.mark.parametrize("n", [400, 512])
def test_row2_short_prompt_refused_with_a_message(capsys, tmp_path, short_wavs, n):
    code, _, err = run(capsys, "continue", short_wavs[n], "-o", tmp_path / "o.wav")
    one_line_error(code, err, "ms long", "prompt")
    assert not (tmp_path / "o.wav").exists()


def test_row2_short_voice_and_resynth(capsys, tmp_path, short_wavs):
    code, _, err = run(capsys, "continue", SAMPLE, "--voice", short_wavs[400],
                       "-o", tmp_path / "o.wav", "--seconds", "0.5")
    one_line_error(code, err, "ms long", "voice")
    code, _, err = run(capsys, "resynth", short_wavs[512], "-o", tmp_path / "r.wav")
    one_line_error(code, err, "ms long")
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------- rows 3-5: numeric flags


@pytest.mark.parametrize("argv,flag", [
    (["continue", SAMPLE, "--seconds", "inf"], "--seconds"),
    (["continue", SAMPLE, "--seconds", "nan"], "--seconds"),
    (["continue", SAMPLE, "--seconds", "0"], "--seconds"),
    (["continue", SAMPLE, "--temperature", "nan"], "--temperature"),
    (["continue", SAMPLE, "--temperature", "inf"], "--temperature"),
    (["continue", SAMPLE, "--repetition-penalty", "nan"], "--repetition-penalty"),
    (["continue", SAMPLE, "--top-p", "1.5"], "--top-p"),
    (["continue", SAMPLE, "--top-k", "0"], "--top-k"),
    (["continue", SAMPLE, "--num-samples", "0"], "--num-samples"),
    (["continue", SAMPLE, "--seed", "1180591620717411303424"], "--seed"),
    (["continue", SAMPLE, "--timbre-match", "1.5"], "--timbre-match"),
    (["continue", SAMPLE, "--tempo", "0.2"], "--tempo"),
    (["continue", SAMPLE, "--tempo", "nan"], "--tempo"),
    (["resynth", SAMPLE, "--timbre-match", "nan"], "--timbre-match"),
    (["vocode", "u.json", "--voice", SAMPLE, "--timbre-match", "-0.5"], "--timbre-match"),
    (["continue", SAMPLE, "--mel-contrast", "0.9"], "--mel-contrast"),
    (["resynth", SAMPLE, "--mel-contrast", "inf"], "--mel-contrast"),
    (["vocode", "u.json", "--voice", SAMPLE, "--mel-contrast", "2.5"], "--mel-contrast"),
    (["continue", SAMPLE, "--voiced-noise-cut", "-1"], "--voiced-noise-cut"),
    (["resynth", SAMPLE, "--voiced-noise-cut", "nan"], "--voiced-noise-cut"),
    (["vocode", "u.json", "--voice", SAMPLE, "--voiced-noise-cut", "5000"], "--voiced-noise-cut"),
    (["continue", SAMPLE, "--voice-adapt-steps", "-1"], "--voice-adapt-steps"),
    (["resynth", SAMPLE, "--voice-adapt-steps", "2.5"], "--voice-adapt-steps"),
    (["vocode", "u.json", "--voice", SAMPLE, "--voice-adapt-steps", "201"], "--voice-adapt-steps"),
    (["continue", SAMPLE, "--f0-spread", "-0.5"], "--f0-spread"),
    (["vocode", "u.json", "--voice", SAMPLE, "--f0-spread", "1.01"], "--f0-spread"),
    (["continue", SAMPLE, "--drawn-voicing-threshold", "0"], "--drawn-voicing-threshold"),
    (["vocode", "u.json", "--voice", SAMPLE, "--drawn-voicing-threshold", "1"],
     "--drawn-voicing-threshold"),
    (["resynth", SAMPLE, "-o", "o.wav", "--source-f0-weight", "1.5"], "--source-f0-weight"),
    (["vocode", "u.json", "--voice", SAMPLE, "--source-f0-weight", "-1"], "--source-f0-weight"),
    (["continue", SAMPLE, "--drawn-f0-weight", "1.5"], "--drawn-f0-weight"),
    (["vocode", "u.json", "--voice", SAMPLE, "--drawn-f0-weight", "nan"], "--drawn-f0-weight"),
    (["generate-units", "--prompt-units", "1 2", "--seconds", "nan"], "--seconds"),
    (["generate-units", "--prompt-units", "1 2", "--seconds", "inf"], "--seconds"),
    (["generate-units", "--prompt-units", "1 2", "--seconds", "0"], "--seconds"),
    (["generate-units", "--prompt-units", "1 2", "--max-units", "-1"], "--max-units"),
    (["generate-units", "--prompt-units", "1 2", "--max-units", "0"], "--max-units"),
    (["generate-units", "--prompt-units", "1 2", "--num-samples", "0"], "--num-samples"),
    (["generate-units", "--prompt-units", "1 2", "--no-repeat-ngram", "1"], "--no-repeat-ngram"),
    (["generate-units", "--prompt-units", "1 2", "--temperature", "-1"], "--temperature"),
    (["train", "tokenizer", "--out", "t", "--smoothing", "nan"], "--smoothing"),
    (["train", "tokenizer", "--out", "t", "--smoothing", "-1"], "--smoothing"),
    (["train", "tokenizer", "--out", "t", "--smoothing", "inf"], "--smoothing"),
    (["train", "tokenizer", "--out", "t", "--max-utterances", "0"], "--max-utterances"),
    (["eval", "tokenizer", "--smoothing", "nan"], "--smoothing"),
    (["eval", "tokenizer", "--warp", "2"], "--warp"),
    (["tokenize", "--warp", "fast", "x.wav"], "--warp"),
    (["tokenize", "--band-limit", "9000", "x.wav"], "--band-limit"),
    (["eval", "tokenizer", "--band-limit", "nan"], "--band-limit"),
    (["eval", "lm", "--phone-noise", "0.1,2"], "--phone-noise"),
    (["eval", "lm", "--phone-noise", "nan"], "--phone-noise"),
])
def test_rows3to5_numeric_flags_named_exit_2(capsys, no_work, argv, flag):
    code, out, err = run(capsys, *argv)
    one_line_error(code, err, flag)
    assert out == ""


def test_row3_api_refuses_non_finite_options():
    from speechlm.generate import SamplingOptions

    for kw in ({"temperature": float("nan")}, {"temperature": float("inf")},
               {"repetition_penalty": float("nan")}, {"top_p": float("nan")},
               {"max_new_tokens": 0}, {"num_samples": 0}, {"no_repeat_ngram": 1},
               {"seed": 2**70}):
        with pytest.raises(ValueError):
            SamplingOptions(**kw)
    SamplingOptions(temperature=0.0, top_p=1.0, seed=2**63 - 1)  # edges are valid


def test_row5_max_units_is_honoured(capsys):
    code, out, _ = run(capsys, "-q", "generate-units", "--prompt-units", "1 2 3",
                       "--max-units", "2", "--seconds", "3", "--seed", "1")
    assert code == 0 and len(out.split()) == 2


# ----------------------------------------------------------------------- rows 6-7: units records


def _record(**over):
    rec = {"format": "speechlm.units", "version": 1, "name": "x",
           "unit_space": DEFAULT_SPACE, "n_units": DEFAULT_N, "frame_rate": 50.0,
           "dedup": True, "ids": [5, 7, 9], "durations": [2, 3, 1]}
    rec.update(over)
    return {k: v for k, v in rec.items() if v is not _DROP}


_DROP = object()
BAD_RECORDS = {
    "no ids": _record(ids=_DROP), "no n_units": _record(n_units=_DROP),
    "no unit_space": _record(unit_space=_DROP), "no frame_rate": _record(frame_rate=_DROP),
    "string id": _record(ids=[5, "7", 9]), "negative duration": _record(durations=[2, -3, 1]),
    "zero duration": _record(durations=[2, 0, 1]),
    "durations wrong length": _record(durations=[2, 3]), "2-D ids": _record(ids=[[5, 7, 9]]),
    "float id": _record(ids=[5, 1.7, 9]), "frame_rate 0": _record(frame_rate=0),
    "frame_rate nan": _record(frame_rate=float("nan")), "bool n_units": _record(n_units=True),
    "dedup without durations": _record(durations=None),
    "id out of range": _record(ids=[5, DEFAULT_N, 9]),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_row6_bad_records_refused_by_the_parser(case):
    from speechlm.errors import DataError
    from speechlm.units import from_record

    with pytest.raises(DataError):
        from_record(BAD_RECORDS[case])


@pytest.mark.parametrize("case", ["no ids", "string id", "negative duration", "2-D ids",
                                  "durations wrong length", "float id", "frame_rate 0"])
def test_row6_vocode_bad_record_one_line(capsys, tmp_path, no_work, case):
    f = tmp_path / "u.jsonl"
    f.write_text(json.dumps(BAD_RECORDS[case]) + "\n")
    code, _, err = run(capsys, "vocode", f, "--voice", SAMPLE, "-o", tmp_path / "o.wav")
    one_line_error(code, err, f"{f}:1:")


def test_row6_json_array_line_and_wrong_frame_rate(capsys, tmp_path):
    f = tmp_path / "u.jsonl"
    f.write_text("[1, 2, 3]\n")
    code, _, err = run(capsys, "vocode", f, "--voice", SAMPLE, "-o", tmp_path / "o.wav")
    one_line_error(code, err, "JSON object")
    f.write_text(json.dumps(_record(frame_rate=100)) + "\n")  # valid record, other frame rate
    code, _, err = run(capsys, "vocode", f, "--voice", SAMPLE, "-o", tmp_path / "o.wav")
    one_line_error(code, err, "100 frames/s")
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("durations", [[2, 10**9, 1], [2, 150_000, 1]])
def test_row7_huge_durations_refused_before_allocating(capsys, tmp_path, durations):
    f = tmp_path / "u.jsonl"
    f.write_text(json.dumps(_record(durations=durations)) + "\n")
    code, _, err = run(capsys, "vocode", f, "--voice", SAMPLE, "-o", tmp_path / "o.wav")
    one_line_error(code, err, "at most 600 s")


def test_row7_api_bounds_durations():
    from speechlm.errors import ModelError
    from speechlm.units import Units
    from speechlm.vocoder import Vocoder

    voc = Vocoder.load()
    u = Units(torch.tensor([1, 2]), 50.0, DEFAULT_N, voc.unit_space, torch.tensor([1, 10**9]))
    with pytest.raises(ModelError, match="at most 600 s"):
        voc.parameters_for(u, voice=None)
    neg = Units(torch.tensor([1, 2]), 50.0, DEFAULT_N, voc.unit_space, torch.tensor([1, -4]))
    with pytest.raises(ModelError, match=">= 1"):
        voc.parameters_for(neg, voice=None)


# ----------------------------------------------------------------------- row 8: resampling


_RSS_PROBE = """
import resource, sys, numpy as np, soundfile as sf, torch
from speechlm.audio import load_audio
sr = int(sys.argv[2])
sf.write(sys.argv[1], (np.random.default_rng(0).normal(0, .1, 2 * sr)).astype('float32'), sr)
load_audio(sys.argv[1], min_samples=1)  # warm up imports and allocator
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
x = load_audio(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(x.numel(), (after - before) // 1024)
"""


@pytest.mark.parametrize("sr", [15999, 7919, 44101])
def test_row8_coprime_rates_resample_in_bounded_memory(tmp_path, sr):
    # warm-up uses the same file, so any kernel cache is built before 'before'; torchaudio's
    # kernel for these rates is 1-5 GB, built on every call
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(tmp_path / "x.wav"), str(sr)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    n, grew_mb = map(int, out.stdout.split())
    assert n == -(-2 * sr * 16000 // sr)
    assert grew_mb < 200, f"{grew_mb} MB for 2 s of {sr} Hz audio"


def test_row8_streaming_resampler_matches_torchaudio():
    import torchaudio.functional as AF

    from speechlm.audio import _resample_streaming

    x = torch.from_numpy(np.random.default_rng(1).normal(0, 0.3, 20001).astype(np.float32))
    for o, n in [(22050, 16000), (8000, 16000), (48000, 16000)]:
        ref = AF.resample(x, o, n, lowpass_filter_width=6)
        got = _resample_streaming(x, o, n)
        assert got.shape == ref.shape and torch.allclose(got, ref, atol=2e-4)


def test_row8_chunked_reads_exact_at_a_coprime_rate(wav_file):
    from speechlm.audio import AudioReader

    r = AudioReader(wav_file(2.3, sr=15999))
    whole = r.read()
    cuts = [0, 1, 777, 16000, 16001, 30000, r.num_samples]
    parts = torch.cat([r.read(a, b) for a, b in zip(cuts[:-1], cuts[1:])])
    assert parts.shape == whole.shape and torch.allclose(parts, whole, atol=1e-5)


# ----------------------------------------------------------------------- row 9: pipes


def _fifo_from(tmp_path, src) -> Path:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    data = Path(src).read_bytes()

    def feed():
        with open(fifo, "wb") as f:
            f.write(data)

    threading.Thread(target=feed, daemon=True).start()
    return fifo


def test_row9_tokenize_from_a_pipe(capsys, tmp_path):
    code, direct, _ = run(capsys, "-q", "tokenize", SAMPLE)
    assert code == 0
    code, piped, err = run(capsys, "-q", "tokenize", _fifo_from(tmp_path, SAMPLE))
    assert code == 0, err
    assert piped == direct


def test_row9_load_audio_from_a_pipe_equals_file(tmp_path):
    from speechlm.audio import load_audio

    assert torch.equal(load_audio(_fifo_from(tmp_path, SAMPLE)), load_audio(SAMPLE))


# ------------------------------------------------------------------- rows 10-11, 13, 15: outputs


def test_row10_units_out_same_as_audio_out(capsys, tmp_path, no_work):
    same = tmp_path / "same.wav"
    code, out, err = run(capsys, "continue", SAMPLE, "-o", same, "--units-out", same)
    one_line_error(code, err, "written twice")
    code, out, err = run(capsys, "continue", SAMPLE, "-o", tmp_path / "a.wav", "--num-samples",
                         "2", "--units-out", tmp_path / "a-1.wav")
    one_line_error(code, err, "written twice", "--units-out")
    assert out == "" and not list(tmp_path.iterdir())


def test_row11_output_that_is_an_input_refused_even_with_force(capsys, tmp_path, no_work):
    p = tmp_path / "in.wav"
    p.write_bytes(Path(SAMPLE).read_bytes())
    before = md5(p)
    for argv in (["continue", p, "-o", p, "--force"],
                 ["continue", SAMPLE, "--voice", p, "-o", p, "--force"],
                 ["resynth", p, "-o", p, "--force"],
                 ["continue", p, "-o", tmp_path / "x.wav", "--units-out", p, "--force"]):
        code, _, err = run(capsys, *argv)
        one_line_error(code, err, "destroy the input")
    os.link(p, tmp_path / "hard.wav")  # the same file under another name
    code, _, err = run(capsys, "continue", p, "-o", tmp_path / "hard.wav", "--force")
    one_line_error(code, err, "destroy the input")
    assert md5(p) == before


def _manifest(tmp_path, names, sr=16000) -> Path:
    from conftest import tone

    root = tmp_path / "audio"
    root.mkdir(exist_ok=True)
    rows = []
    for i, name in enumerate(names):
        sf.write(root / f"{name}.wav", tone(0.4 + 0.1 * i, seed=i, freq=150 + 30 * i), sr)
        rows.append(f"{name}.wav\t{int((0.4 + 0.1 * i) * sr)}")
    m = tmp_path / "all.tsv"
    m.write_text(f"{root}\n" + "\n".join(rows) + "\n")
    return m


def test_row13_manifest_outputs(capsys, tmp_path, monkeypatch):
    m = _manifest(tmp_path, ["a", "b"])
    code, _, err = run(capsys, "-q", "tokenize", "--manifest", m, "-o", tmp_path / "nodir/x.units")
    assert code == 0, err
    assert len((tmp_path / "nodir/x.units").read_text().splitlines()) == 2
    code, _, err = run(capsys, "tokenize", "--manifest", tmp_path / "audio", "-o", tmp_path / "y")
    one_line_error(code, err, "directory")
    (tmp_path / "existing_dir").mkdir()
    from speechlm.tokenizer import Tokenizer

    calls = []
    monkeypatch.setattr(Tokenizer, "tokenize_file", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(Tokenizer, "tokenize_files", lambda *a, **k: calls.append(1) or iter(()))
    code, _, err = run(capsys, "tokenize", "--manifest", m, "-o", tmp_path / "existing_dir",
                       "--force")
    one_line_error(code, err, "is a directory")
    assert calls == []  # refused before the work


def test_row15_unwritable_output_refused_before_the_work(capsys, tmp_path, no_work):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code, _, err = run(capsys, "continue", SAMPLE, "-o", blocker / "x.wav")
    one_line_error(code, err, "not a directory")
    code, _, err = run(capsys, "continue", SAMPLE, "-o", tmp_path / "o.wav",
                       "--units-out", blocker / "u.jsonl")
    one_line_error(code, err, "--units-out")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root can write into a read-only folder")
def test_row15_read_only_folder(capsys, tmp_path, no_work):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = run(capsys, "continue", SAMPLE, "-o", ro / "x.wav")
        one_line_error(code, err, "not writable")
    finally:
        ro.chmod(0o755)


# ----------------------------------------------------------------------- row 12: resume


def _interrupted_run(capsys, monkeypatch, after, *argv):
    """Run tokenize --manifest and 'kill' it after ``after`` utterances (KeyboardInterrupt)."""
    from speechlm.tokenizer import Tokenizer

    real = Tokenizer.tokenize_files

    def limited(self, *a, **k):
        for i, units in enumerate(real(self, *a, **k)):
            if i == after:
                raise KeyboardInterrupt
            yield units

    monkeypatch.setattr(Tokenizer, "tokenize_files", limited)
    code, _, _ = run(capsys, "-q", "tokenize", *argv)
    monkeypatch.setattr(Tokenizer, "tokenize_files", real)
    assert code == 130


def test_row12_resume_with_other_settings_is_refused_or_restarted(capsys, tmp_path,
                                                                  monkeypatch):
    m = _manifest(tmp_path, ["a", "b", "c", "d"])
    out = tmp_path / "u.txt"
    fresh = tmp_path / "fresh.txt"
    assert run(capsys, "-q", "tokenize", "--manifest", m, "--dedup", "-o", fresh)[0] == 0
    _interrupted_run(capsys, monkeypatch, 2, "--manifest", m, "-o", out)
    code, _, err = run(capsys, "tokenize", "--manifest", m, "--dedup", "-o", out)
    one_line_error(code, err, "dedup False -> True", "--force")
    code, _, err = run(capsys, "-q", "tokenize", "--manifest", m, "--dedup", "-o", out,
                       "--force")
    assert code == 0, err
    assert out.read_text() == fresh.read_text()  # started afresh: no frame-rate lines mixed in


def test_row12_shard_change_and_resume_equal_fresh(capsys, tmp_path, monkeypatch):
    m = _manifest(tmp_path, ["a", "b", "c", "d"])
    out = tmp_path / "u.txt"
    _interrupted_run(capsys, monkeypatch, 1, "--manifest", m, "--shard", "0/2", "-o", out)
    code, _, err = run(capsys, "tokenize", "--manifest", m, "--shard", "1/2", "-o", out)
    one_line_error(code, err, "shard")
    # the same settings resume, and the result equals an uninterrupted run
    assert run(capsys, "-q", "tokenize", "--manifest", m, "--shard", "0/2", "-o", out)[0] == 0
    fresh = tmp_path / "fresh.txt"
    assert run(capsys, "-q", "tokenize", "--manifest", m, "--shard", "0/2", "-o", fresh)[0] == 0
    assert out.read_text() == fresh.read_text()
    assert not list(tmp_path.glob("*.partial*"))


def test_row12_duplicate_names_resume_like_fresh(capsys, tmp_path, monkeypatch):
    m = _manifest(tmp_path, ["a", "b", "c"])
    root, *rows = m.read_text().splitlines()
    m.write_text("\n".join([root, *rows, rows[0]]) + "\n")  # 'a' twice
    fresh, out = tmp_path / "fresh.txt", tmp_path / "u.txt"
    assert run(capsys, "-q", "tokenize", "--manifest", m, "-o", fresh)[0] == 0
    _interrupted_run(capsys, monkeypatch, 1, "--manifest", m, "-o", out)
    assert run(capsys, "-q", "tokenize", "--manifest", m, "-o", out)[0] == 0
    assert out.read_text() == fresh.read_text() and len(fresh.read_text().splitlines()) == 4


def test_row12_changed_manifest_is_not_resumed(capsys, tmp_path, monkeypatch):
    m = _manifest(tmp_path, ["a", "b", "c"])
    out = tmp_path / "u.txt"
    _interrupted_run(capsys, monkeypatch, 2, "--manifest", m, "-o", out)
    m.write_text(m.read_text().replace("a.wav", "c.wav", 1))
    code, _, err = run(capsys, "tokenize", "--manifest", m, "-o", out)
    one_line_error(code, err, "manifest_sha256")


# ----------------------------------------------------------------------- row 14: threads


def test_row14_cli_sets_a_passive_wait_policy_before_torch():
    code = ("import os, sys; os.environ.pop('OMP_WAIT_POLICY', None); from speechlm import cli; "
            "assert 'torch' not in sys.modules; cli.main(['-q', 'models']); "
            "print(os.environ['OMP_WAIT_POLICY'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.strip().splitlines()[-1] == "PASSIVE"
    kept = subprocess.run([sys.executable, "-c", code.replace(
        "os.environ.pop('OMP_WAIT_POLICY', None)", "os.environ['OMP_WAIT_POLICY'] = 'ACTIVE'")],
        capture_output=True, text=True, timeout=120)
    assert kept.stdout.strip().splitlines()[-1] == "ACTIVE"  # the user's choice is kept


def test_row14_threads_flag(capsys):
    n = torch.get_num_threads()
    try:
        assert run(capsys, "--threads", "1", "-q", "models")[0] == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(n)
    code, _, err = run(capsys, "--threads", "0", "models")
    one_line_error(code, err, "--threads")


def test_row14_each_sample_is_written_as_it_is_ready(capsys, tmp_path, monkeypatch):
    """--num-samples N shows progress: file i is on disk (and printed) before sample i + 1 is
    drawn."""
    from speechlm.pipeline import SpeechLM

    seen = []
    real = SpeechLM.continue_audio

    def spy(self, *a, **k):
        seen.append(sorted(p.name for p in tmp_path.glob("c-*.wav")))
        return real(self, *a, **k)

    monkeypatch.setattr(SpeechLM, "continue_audio", spy)
    code, out, err = run(capsys, "-q", "continue", SAMPLE, "-o", tmp_path / "c.wav",
                         "--num-samples", "2", "--seconds", "0.3", "--seed", "0")
    assert code == 0, err
    assert seen == [[], ["c-1.wav"]] and len(out.splitlines()) == 2


# ----------------------------------------------------------------------- row 16: Ctrl-C


def test_row16_ctrl_c_during_import(capsys, monkeypatch):
    import speechlm.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    code = cli.main(["tokenize", SAMPLE])
    assert code == 130 and "interrupted" in capsys.readouterr().err


# ----------------------------------------------------------------------- row 17: the API


def test_row17_api_waveform_forms():
    from speechlm.pipeline import _as_wave

    x = torch.from_numpy(sf.read(SAMPLE, dtype="float32")[0])
    st = torch.stack([x, 0.5 * x])
    assert torch.allclose(_as_wave(st, "w"), 0.75 * x)  # [2, T]: mixed down, same length
    assert torch.allclose(_as_wave(st.T.numpy(), "w"), 0.75 * x)  # [T, 2]
    pcm = (x.numpy() * 32767).astype(np.int16)
    assert torch.allclose(_as_wave(pcm, "w"), x, atol=1e-4)  # int16: scaled, not 32767x loud
    assert torch.allclose(_as_wave(x[None], "w"), x)  # [1, T]
    for bad, needle in [(torch.stack([x, x, x]), "shape"), (x.numpy() > 0, "dtype"),
                        (np.zeros((2, 3, 1000), np.float32), "shape"),
                        (x.numpy().astype(np.int64), "int64"),
                        (x.numpy().astype(np.complex64), "dtype")]:
        with pytest.raises(ValueError, match=needle):
            _as_wave(bad, "the prompt")


@pytest.fixture(scope="module")
def model():
    from speechlm.pipeline import SpeechLM

    return SpeechLM.load()


def test_row17_continue_audio_refuses_a_batch_and_bad_options(model):
    x = torch.from_numpy(sf.read(SAMPLE, dtype="float32")[0])
    with pytest.raises(ValueError, match="shape"):
        model.continue_audio(torch.stack([x, x, x]), seconds=0.5)
    with pytest.raises(ValueError, match="dtype"):
        model.continue_audio(x > 0, seconds=0.5)
    for kw in ({"seconds": float("inf")}, {"seconds": float("nan")},
               {"temperature": float("nan")}, {"num_samples": 0}):
        with pytest.raises(ValueError):
            model.continue_audio(x, **{"seconds": 0.5, **kw})


def test_continuation_keeps_the_prompts_pace_or_the_tempo_given(model):
    import dataclasses

    x = torch.from_numpy(sf.read(SAMPLE, dtype="float32")[0])
    fitted = model.continue_audio(x, seconds=1.0, seed=3)
    units = model.tokenize(x)
    voice = model.vocoder.voice(x)
    assert fitted.tempo == pytest.approx(model.vocoder.fit_tempo(units, voice))
    assert fitted.tempo != 1.0  # the sample is not at the duration model's pace exactly
    slow = model.continue_audio(x, seconds=1.0, seed=3, tempo=2.0)
    fast = model.continue_audio(x, seconds=1.0, seed=3, tempo=0.5)
    assert (slow.tempo, fast.tempo) == (2.0, 0.5)
    # the same units (same seed), spoken at a quarter of the pace in frames
    assert torch.equal(slow.generated_units.dedup().ids, fast.generated_units.dedup().ids)
    ratio = slow.generated_units.durations.sum() / fast.generated_units.durations.sum()
    assert 3.0 < float(ratio) < 5.0
    # the prompt itself keeps its own durations
    assert torch.equal(slow.prompt_units.durations, fast.prompt_units.durations)
    # speak_continuation (the report's baselines) fits the same tempo by default
    y, new, _ = model.speak_continuation(units, fitted.generated_units.ids, voice)
    spoke = model.vocoder.predict_durations(
        fitted.generated_units.ids, dataclasses.replace(voice, tempo=fitted.tempo))
    assert int(new.durations.sum()) == int(spoke.sum())
    for bad in (0.0, 5.0, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="tempo"):
            model.continue_audio(x, seconds=0.5, tempo=bad)


def test_continuation_speaks_the_prompt_with_its_own_f0_unless_asked_not_to(model, monkeypatch):
    from speechlm.audio import f0_track
    from speechlm.pipeline import prompt_f0

    x = torch.from_numpy(sf.read(SAMPLE, dtype="float32")[0])
    seen = []
    decode = model.vocoder.decode

    def spy(units, voice, *a, known_f0=None, **kw):
        seen.append(known_f0)
        return decode(units, voice, *a, known_f0=known_f0, **kw)

    monkeypatch.setattr(model.vocoder, "decode", spy)
    out = model.continue_audio(x, seconds=0.5, seed=3)
    units = model.tokenize(x)
    want = prompt_f0(x, units, 0)
    assert len(want) == 2 * int(units.durations.sum())
    assert np.array_equal(seen[-1], want)
    assert np.array_equal(want, f0_track(x.numpy())[: len(want)].astype(np.float32))
    drawn = model.continue_audio(x, seconds=0.5, seed=3, prompt_pitch=False)
    assert seen[-1] is None
    model.continue_audio(x, seconds=0.5, seed=3, continuation_only=True)
    assert seen[-1] is None
    # the same LM sample either way; the prompt's part sounds different
    assert torch.equal(out.generated_units.ids, drawn.generated_units.ids)
    assert not torch.equal(out.waveform, drawn.waveform)
    # a cut prompt: the F0 of the units it keeps
    cut = prompt_f0(x, units, 3)
    assert np.array_equal(cut, want[2 * int(units.durations[:3].sum()):])
    # speak_continuation (the report's baselines) takes the prompt's audio for the same
    model.speak_continuation(units, out.generated_units.ids, model.vocoder.voice(x),
                             prompt_wav=x)
    assert np.array_equal(seen[-1], want)


def test_row17_int16_and_stereo_prompts_equal_the_float_mono_one(model):
    x = torch.from_numpy(sf.read(SAMPLE, dtype="float32")[0])
    ref = model.tokenize(x)
    assert torch.equal(model.tokenize(torch.stack([x, x])).ids, ref.ids)
    pcm = (x.numpy() * 32768).clip(-32768, 32767).astype(np.int16)
    assert torch.equal(model.tokenize(pcm).ids, ref.ids)


# ----------------------------------------------------------------------- the smaller items


def test_long_prompt_vocodes_only_the_context_and_warns_once(capsys, tmp_path,
                                                            long_prompt_repeats):
    x, sr = sf.read(SAMPLE, dtype="float32")
    reps = long_prompt_repeats(len(x), sr, 2)  # about twice what the context holds
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate([x] * reps), sr)
    code, _, err = run(capsys, "-q", "continue", long, "-o", tmp_path / "o.wav",
                       "--num-samples", "2", "--seconds", "0.5", "--seed", "0")
    assert code == 0, err
    assert err.count("longer than the LM's context") == 1  # one warning for one prompt
    y, _ = sf.read(tmp_path / "o-1.wav")
    assert len(y) < 0.8 * reps * len(x)  # the prompt's unused front is not vocoded


def test_long_continuation_does_not_blame_the_prompt(capsys, tmp_path):
    """A continuation long enough to crowd half of a short prompt out of the LM's context is
    told to ask for fewer seconds, not that its prompt is too long (the length is taken from
    the bundled models' own unit rate and context)."""
    from speechlm.audio import load_audio
    from speechlm.pipeline import SpeechLM

    m = SpeechLM.load()
    n_prompt = len(m.tokenizer.tokenize_wave(load_audio(SAMPLE), dedup=True))
    n_new = m.lm.block_size - 1 - n_prompt // 2
    assert n_prompt // 2 >= 2 and n_new >= 2
    seconds = f"{n_new / m.units_per_second:.3f}"
    code, _, err = run(capsys, "-q", "continue", SAMPLE, "-o", tmp_path / "o.wav",
                       "--seconds", seconds, "--seed", "0", "--temperature", "0")
    assert code == 0, err
    assert "longer than the LM's context" not in err and "fewer --seconds" in err


def test_truncated_wav_warns(tmp_path, caplog):
    from speechlm.audio import load_audio

    x = (np.random.default_rng(0).normal(0, 0.1, 16000)).astype(np.float32)
    full = tmp_path / "full.wav"
    sf.write(full, x, 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[:20000])
    with caplog.at_level("WARNING"):
        y = load_audio(cut)
    assert 0 < y.numel() < 16000 and "truncated" in caplog.text


def test_symlink_loop_is_named(capsys, tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    a.symlink_to(b)
    b.symlink_to(a)
    code, _, err = run(capsys, "tokenize", a)
    one_line_error(code, err, "symlink loop")
    code, _, err = run(capsys, "continue", a, "-o", tmp_path / "o.wav")
    one_line_error(code, err, "symlink loop")


def test_resynth_of_silence_does_not_blame_a_voice_reference(capsys, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    code, _, err = run(capsys, "resynth", silent, "-o", tmp_path / "o.wav")
    one_line_error(code, err, "silent")
    assert "voice reference" not in err


@pytest.mark.parametrize("cls, what", [("speechlm.lm:LMConfig", "LM config"),
                                       ("speechlm.speaker:SpeakerConfig", "speaker config"),
                                       ("speechlm.waveform:WaveformConfig", "waveform config")])
def test_stage_configs_round_trip_and_name_unknown_keys(cls, what):
    """A stage's config.json section comes back as the dataclass; keys it does not know (a
    newer file, a typo) are refused by name rather than dropped."""
    import importlib

    module, name = cls.split(":")
    cfg_cls = getattr(importlib.import_module(module), name)
    d = cfg_cls().to_dict() if name != "LMConfig" else cfg_cls(n_units=10).to_dict()
    assert cfg_cls.from_dict(d) == cfg_cls(**d)
    with pytest.raises(ValueError, match=f"unknown {what} keys: bogus, zeta"):
        cfg_cls.from_dict({**d, "zeta": 1, "bogus": 2})
