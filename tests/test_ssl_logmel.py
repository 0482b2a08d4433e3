"""The log-mel front end of a native SSL encoder (``extractor_mode = "logmel"``): HuBERT's frame
grid, the filterbank it claims, a bit-exact native round trip, strict configs, and refusal to
convert to formats that have no such front end."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from speechlm.errors import ModelError
from speechlm.ssl import extract_layer, load_ssl_model, save_ssl_model
from speechlm.ssl.common import build_model, check_arch
from speechlm.ssl.fairseq import fairseq_config_from_arch
from speechlm.ssl.huggingface import hf_config_from_arch
from speechlm.ssl.logmel import FLOOR, LogMelFrontEnd, mean_normalise

ARCH = {
    "extractor_mode": "logmel",
    "extractor_conv_layer_config": [[20, 400, 320]],
    "extractor_conv_bias": False,
    "encoder_embed_dim": 24,
    "encoder_projection_dropout": 0.0,
    "encoder_pos_conv_kernel": 8,
    "encoder_pos_conv_groups": 2,
    "encoder_num_layers": 2,
    "encoder_num_heads": 3,
    "encoder_attention_dropout": 0.0,
    "encoder_ff_interm_features": 48,
    "encoder_ff_interm_dropout": 0.0,
    "encoder_dropout": 0.0,
    "encoder_layer_norm_first": True,
    "encoder_layer_drop": 0.0,
    "aux_num_out": None,
}


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(check_arch(ARCH, "test")).eval()


@pytest.mark.parametrize("samples", [400, 719, 720, 16000, 16001])
def test_frames_follow_hubert_grid(samples):
    front = LogMelFrontEnd(20)
    feats, lengths = front(torch.randn(2, samples), torch.tensor([samples, samples - 1]))
    frames = (samples - 400) // 320 + 1
    assert feats.shape == (2, frames, 20)
    assert lengths.tolist() == [frames, max((samples - 401) // 320 + 1, 0)]
    with pytest.raises(ValueError, match="shorter than one frame"):
        front(torch.randn(1, 399))


def test_a_tone_lands_in_its_band():
    """A 1 kHz tone: the band that weights the 1 kHz bin most is the loudest, in every frame."""
    front = LogMelFrontEnd(40)
    t = torch.arange(8000) / 16000
    feats, _ = front(torch.sin(2 * math.pi * 1000 * t)[None])
    peak_band = int(front.fbank[1000 * 400 // 16000].argmax())  # bin 25 of the 400-point rfft
    assert 8 < peak_band < 20  # 1 kHz sits low on a 20-7600 Hz mel axis of 40 bands
    assert (feats[0].argmax(dim=1) == peak_band).all()
    silent, _ = front(torch.zeros(1, 8000))
    assert torch.allclose(silent, torch.full_like(silent, math.log(FLOOR)))


def test_front_end_has_no_weights_and_state_dict_is_torchaudio():
    model = _model()
    assert not any(k.startswith("feature_extractor") for k in model.state_dict())
    assert model.encoder.feature_projection.projection.in_features == 20


def test_native_round_trip_is_bit_exact(tmp_path):
    model = _model(seed=3)
    save_ssl_model(model, ARCH, tmp_path / "enc")
    cfg = json.loads((tmp_path / "enc" / "config.json").read_text())
    assert cfg["arch"]["extractor_mode"] == "logmel"
    assert not any(k.startswith("feature_extractor")
                   for k in load_file(tmp_path / "enc" / "model.safetensors"))
    loaded, info = load_ssl_model(tmp_path / "enc")
    assert (info.num_layers, info.dim, info.normalize_waveform) == (2, 24, False)
    wav = torch.randn(2, 9000) * 0.1
    for layer in range(3):
        a, _ = extract_layer(model, wav, layer)
        b, _ = extract_layer(loaded, wav, layer)
        assert a.shape == (2, (9000 - 400) // 320 + 1, 24) and torch.equal(a, b)


def test_batched_equals_single_items():
    model = _model()
    wav = torch.randn(3, 8000) * 0.1
    batched, _ = extract_layer(model, wav, 2)
    for i in range(3):
        single, _ = extract_layer(model, wav[i : i + 1], 2)
        assert torch.allclose(batched[i], single[0], atol=1e-5)


def test_cmn_removes_a_fixed_spectral_envelope():
    """``logmel_cmn``: a fixed per-band gain (an EQ, a channel, a speaker's average envelope)
    added to every frame leaves the features as they were; the mean comes from the louder half
    of frames, so silence added to a crop barely moves it; padding beyond ``lengths`` is not
    counted; an input without a valid frame stays finite."""
    torch.manual_seed(0)
    wav = torch.randn(1, 16000) * torch.linspace(0.02, 0.3, 16000)
    plain, _ = LogMelFrontEnd(20)(wav)
    cmn, _ = LogMelFrontEnd(20, cmn=True)(wav)
    chosen = plain.mean(-1) >= plain.mean(-1).median()
    assert torch.allclose(cmn, plain - plain[chosen].mean(0), atol=1e-5)
    tilt = torch.linspace(-3, 3, 20)
    assert torch.allclose(mean_normalise(plain + tilt), cmn, atol=1e-5)
    assert not torch.allclose(plain + tilt - (plain + tilt).mean(), cmn, atol=1e-2)
    # a third of the frames made silent (FLOOR): the speech frames' mean hardly moves
    quiet = plain.clone()
    quiet[:, : plain.shape[1] // 3] = math.log(FLOOR)
    speech = slice(plain.shape[1] // 3, None)
    shift = (mean_normalise(quiet)[:, speech] - quiet[:, speech]).mean((0, 1))
    naive = -quiet.mean(1)[0]
    robust_err = (shift + plain[:, speech].mean(1)[0]).abs().max()
    naive_err = (naive + plain[:, speech].mean(1)[0]).abs().max()  # a plain mean: 3.9
    assert robust_err < 1.0 and robust_err < naive_err / 4
    # padding is not counted when the lengths say so
    padded = torch.cat([wav, torch.zeros(1, 8000)], 1)
    feats, frames = LogMelFrontEnd(20, cmn=True)(padded, torch.tensor([16000]))
    assert torch.allclose(feats[0, : frames[0]], cmn[0], atol=1e-5)
    assert torch.isfinite(mean_normalise(plain, torch.tensor([0]))).all()


def test_a_cmn_encoder_round_trips_and_differs_from_plain(tmp_path):
    arch = check_arch({**ARCH, "extractor_mode": "logmel_cmn"}, "test")
    torch.manual_seed(3)
    model = build_model(arch).eval()
    assert model.feature_extractor.cmn
    save_ssl_model(model, arch, tmp_path / "enc")
    loaded, _ = load_ssl_model(tmp_path / "enc")
    assert loaded.feature_extractor.cmn
    wav = torch.randn(1, 9000) * 0.1
    a, _ = extract_layer(model, wav, 2)
    b, _ = extract_layer(loaded, wav, 2)
    assert torch.equal(a, b)
    plain = _model(seed=3)
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(extract_layer(plain, wav, 2)[0], a, atol=1e-3)
    with pytest.raises(ModelError, match="extractor_mode must be"):
        check_arch({**ARCH, "extractor_mode": "logmel_cms"}, "enc")


@pytest.mark.parametrize("conv", [[[20, 400, 160]], [[20, 512, 320]], [[20, 400, 320]] * 2])
def test_bad_logmel_geometry_is_refused(conv):
    with pytest.raises(ModelError, match=r"needs extractor_conv_layer_config \[\[n_mels, 400, 320"):
        check_arch({**ARCH, "extractor_conv_layer_config": conv}, "enc")


def test_no_conversion_to_formats_without_the_front_end():
    arch = check_arch(ARCH, "test")
    with pytest.raises(ModelError, match="no Hugging Face equivalent"):
        hf_config_from_arch(arch, "hubert")
    with pytest.raises(ModelError, match="no fairseq equivalent"):
        fairseq_config_from_arch(arch, "hubert", 16)


def test_loading_the_bundled_pipeline_does_not_import_dynamo():
    """A small encoder is built on the CPU: on the meta device, weight_norm's norm pulled in
    torch._dynamo, most of a second of every CLI call."""
    import subprocess
    import sys

    code = ("import sys; from speechlm import SpeechLM; SpeechLM.load('default'); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
