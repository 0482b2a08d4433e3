"""Tests for speechlm.ssl: loading HuBERT / wav2vec2 checkpoints and extracting layers."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file
from torchaudio.models import wav2vec2_model

from speechlm.errors import ModelError
from speechlm.ssl import (
    SSLInfo,
    extract_layer,
    load_ssl_model,
    make_tiny_fairseq_checkpoint,
    make_tiny_hf_checkpoint,
    save_ssl_model,
)

FORMATS = ["hf-hubert", "hf-wav2vec2", "fairseq-hubert", "fairseq-wav2vec2", "speechlm"]

# A native-format model that differs from the tiny ones (3 layers, width 24, 3 heads).
NATIVE_ARCH = {
    "extractor_mode": "group_norm",
    "extractor_conv_layer_config": [[8, 10, 5]] + [[8, 3, 2]] * 4 + [[8, 2, 2]] * 2,
    "extractor_conv_bias": False,
    "encoder_embed_dim": 24,
    "encoder_projection_dropout": 0.1,
    "encoder_pos_conv_kernel": 8,
    "encoder_pos_conv_groups": 2,
    "encoder_num_layers": 3,
    "encoder_num_heads": 3,
    "encoder_attention_dropout": 0.1,
    "encoder_ff_interm_features": 48,
    "encoder_ff_interm_dropout": 0.0,
    "encoder_dropout": 0.1,
    "encoder_layer_norm_first": False,
    "encoder_layer_drop": 0.0,
    "aux_num_out": None,
}


def _native_model(seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = wav2vec2_model(**NATIVE_ARCH)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _write(fmt: str, root: Path) -> Path:
    if fmt.startswith("hf-"):
        path = root / "hf"
        make_tiny_hf_checkpoint(path, model_type=fmt[3:], seed=0)
    elif fmt.startswith("fairseq-"):
        path = root / "model.pt"
        make_tiny_fairseq_checkpoint(path, seed=0, model_type=fmt[8:])
    else:
        path = root / "native"
        save_ssl_model(_native_model(), NATIVE_ARCH, path)
    return path


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The models are tiny: intra-op threads only add overhead (and contend with other jobs)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module", params=FORMATS)
def loaded(request, tmp_path_factory):
    path = _write(request.param, tmp_path_factory.mktemp(request.param))
    model, info = load_ssl_model(path)
    return request.param, path, model, info


def _wav(batch: int, samples: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------
# Independent (test-side) readings of the on-disk key names.


def _hf_to_torchaudio(key: str) -> str | None:
    key = re.sub(r"^(hubert|wav2vec2)\.", "", key)
    if key in ("masked_spec_embed",) or key.startswith(("lm_head.", "quantizer.", "project_")):
        return None
    if key.startswith("feature_projection."):
        return "encoder." + key
    if key.startswith("encoder."):
        key = "encoder.transformer." + key[len("encoder."):]
        key = key.replace("conv.weight_g", "conv.parametrizations.weight.original0")
        return key.replace("conv.weight_v", "conv.parametrizations.weight.original1")
    return key


_FAIRSEQ_TABLE = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.(1\.)?",
     r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^layer_norm\.", "encoder.feature_projection.layer_norm."),
    (r"^post_extract_proj\.", "encoder.feature_projection.projection."),
    (r"^encoder\.pos_conv\.0\.weight_g$",
     "encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original0"),
    (r"^encoder\.pos_conv\.0\.weight_v$",
     "encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original1"),
    (r"^encoder\.pos_conv\.0\.bias$", "encoder.transformer.pos_conv_embed.conv.bias"),
    (r"^encoder\.layer_norm\.", "encoder.transformer.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.", r"encoder.transformer.layers.\1.attention."),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.",
     r"encoder.transformer.layers.\1.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.fc1\.",
     r"encoder.transformer.layers.\1.feed_forward.intermediate_dense."),
    (r"^encoder\.layers\.(\d+)\.fc2\.",
     r"encoder.transformer.layers.\1.feed_forward.output_dense."),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.",
     r"encoder.transformer.layers.\1.final_layer_norm."),
]
_FAIRSEQ_HEADS = ("mask_emb", "final_proj.", "label_embs_concat", "quantizer.", "project_q.")


def _fairseq_to_torchaudio(key: str) -> str | None:
    if key.startswith(_FAIRSEQ_HEADS):
        return None
    for pattern, repl in _FAIRSEQ_TABLE:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    raise AssertionError(f"test table lacks {key}")


def _written_weights(fmt: str, path: Path) -> tuple[dict[str, torch.Tensor], object]:
    if fmt.startswith("hf-"):
        return load_file(str(path / "model.safetensors")), _hf_to_torchaudio
    if fmt.startswith("fairseq-"):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        return ckpt["model"], _fairseq_to_torchaudio
    return load_file(str(path / "model.safetensors")), lambda k: k


# ------------------------------------------------------------------------------------------
# Loading


def test_round_trip_weights_equal_written(loaded):
    fmt, path, model, _ = loaded
    written, to_torchaudio = _written_weights(fmt, path)
    state = model.state_dict()
    seen = set()
    for key, tensor in written.items():
        ta_key = to_torchaudio(key)
        if ta_key is None:
            continue
        assert ta_key in state, key
        assert torch.equal(state[ta_key], tensor), key
        seen.add(ta_key)
    assert seen == set(state)
    assert not model.training


def test_info(loaded):
    fmt, _, _, info = loaded
    assert isinstance(info, SSLInfo)
    expected = {"hf": "huggingface", "fairseq": "fairseq", "speechlm": "speechlm"}
    assert info.source_format == expected[fmt.split("-")[0]]
    assert (info.num_layers, info.dim) == ((3, 24) if fmt == "speechlm" else (2, 32))
    assert info.normalize_waveform == fmt.endswith("wav2vec2")
    assert info.arch["encoder_num_layers"] == info.num_layers
    with pytest.raises(AttributeError):
        info.dim = 3  # frozen


def test_fairseq_keys_agree_with_torchaudio_importer(tmp_path):
    """torchaudio's own fairseq key mapping puts every written tensor where we loaded it."""
    import_fairseq = pytest.importorskip("torchaudio.models.wav2vec2.utils.import_fairseq")
    for model_type in ("hubert", "wav2vec2"):
        path = tmp_path / f"{model_type}.pt"
        make_tiny_fairseq_checkpoint(path, model_type=model_type)
        model, _ = load_ssl_model(path)
        state = model.state_dict()
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        seen = set()
        for key, tensor in ckpt["model"].items():
            ta_key = import_fairseq._map_key(key)
            if ta_key is None or ta_key == "label_embs_concat":
                continue
            ta_key = ta_key.replace("conv.weight_g", "conv.parametrizations.weight.original0")
            ta_key = ta_key.replace("conv.weight_v", "conv.parametrizations.weight.original1")
            assert torch.equal(state[ta_key], tensor), key
            seen.add(ta_key)
        assert seen == set(state)


class _Part:
    """Stands in for a transformers sub-module: only ``state_dict()`` is used."""

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str):
        self._state = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self._state)


def test_hf_agrees_with_torchaudio_importer(tmp_path):
    """torchaudio's import_huggingface_model, fed the files through a stand-in for a
    transformers model, builds the same architecture and weights."""
    import_hf = pytest.importorskip("torchaudio.models.wav2vec2.utils.import_huggingface")
    for model_type, class_name in (("hubert", "HubertModel"), ("wav2vec2", "Wav2Vec2Model")):
        path = tmp_path / model_type
        make_tiny_hf_checkpoint(path, model_type=model_type)
        model, info = load_ssl_model(path)
        config = json.loads((path / "config.json").read_text())
        weights = load_file(str(path / "model.safetensors"))

        original = type(class_name, (), {})()
        original.config = SimpleNamespace(**config)
        original.feature_extractor = _Part(weights, "feature_extractor.")
        original.feature_projection = _Part(weights, "feature_projection.")
        original.encoder = _Part(weights, "encoder.")
        reference = import_hf.import_huggingface_model(original).eval()
        ref_arch = import_hf._get_config(original.config)
        assert {k: info.arch[k] for k in ref_arch} == ref_arch
        ref_state = reference.state_dict()
        assert set(ref_state) == set(model.state_dict())
        for key, tensor in model.state_dict().items():
            assert torch.equal(ref_state[key], tensor), key


def test_hf_prefixed_keys_heads_and_pytorch_bin(tmp_path):
    path = tmp_path / "hf"
    make_tiny_hf_checkpoint(path, model_type="wav2vec2", seed=3)
    reference, _ = load_ssl_model(path)
    weights = load_file(str(path / "model.safetensors"))
    renamed = {}
    for key, tensor in weights.items():
        # newer transformers spell weight norm with torch parametrizations
        key = key.replace("conv.weight_g", "conv.parametrizations.weight.original0")
        key = key.replace("conv.weight_v", "conv.parametrizations.weight.original1")
        renamed["wav2vec2." + key] = tensor
    renamed["lm_head.weight"] = torch.zeros(5, 32)
    renamed["lm_head.bias"] = torch.zeros(5)
    renamed["quantizer.codevectors"] = torch.zeros(1, 4, 8)
    renamed["project_q.weight"] = torch.zeros(4, 8)
    (path / "model.safetensors").unlink()
    torch.save(renamed, path / "pytorch_model.bin")
    model, info = load_ssl_model(path)
    assert info.source_format == "huggingface"
    for key, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], tensor), key


def test_hf_config_defaults_are_filled(tmp_path):
    """save_pretrained drops fields equal to the config class defaults."""
    path = tmp_path / "hf"
    make_tiny_hf_checkpoint(path)
    config = json.loads((path / "config.json").read_text())
    for key in ("hidden_act", "conv_bias", "do_stable_layer_norm", "layer_norm_eps"):
        del config[key]
    (path / "config.json").write_text(json.dumps(config))
    _, info = load_ssl_model(path)
    assert info.arch["extractor_conv_bias"] is False


def test_fairseq_finetuned_layout(tmp_path):
    path = tmp_path / "pre.pt"
    make_tiny_fairseq_checkpoint(path, seed=1)
    reference, _ = load_ssl_model(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = {"w2v_encoder.w2v_model." + k: v for k, v in ckpt["model"].items()}
    state["w2v_encoder.proj.weight"] = torch.zeros(10, 32)
    state["w2v_encoder.proj.bias"] = torch.zeros(10)
    finetuned = {"args": None, "model": state,
                 "cfg": {"model": {"_name": "hubert_ctc", "w2v_args": ckpt["cfg"],
                                   "normalize": False},
                         "task": {"_name": "audio_finetuning", "normalize": False}}}
    ft_path = tmp_path / "ft.pt"
    torch.save(finetuned, ft_path)
    model, info = load_ssl_model(ft_path)
    assert info.num_layers == 2 and info.normalize_waveform is False
    for key, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], tensor), key


# ------------------------------------------------------------------------------------------
# Load errors


def _rewrite_hf(path: Path, edit) -> None:
    weights = load_file(str(path / "model.safetensors"))
    edit(weights)
    save_file(weights, str(path / "model.safetensors"))


def _rewrite_fairseq(path: Path, edit) -> None:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)


def test_hf_missing_key_raises(tmp_path):
    path = tmp_path / "hf"
    make_tiny_hf_checkpoint(path)
    key = "encoder.layers.1.feed_forward.output_dense.weight"
    _rewrite_hf(path, lambda w: w.pop(key))
    with pytest.raises(ModelError, match=re.escape(key)) as err:
        load_ssl_model(path)
    assert "missing" in str(err.value) and str(path) in str(err.value)


def test_hf_unexpected_encoder_key_raises(tmp_path):
    path = tmp_path / "hf"
    make_tiny_hf_checkpoint(path)
    key = "encoder.layers.0.attention.rotary.weight"
    _rewrite_hf(path, lambda w: w.__setitem__(key, torch.zeros(3)))
    with pytest.raises(ModelError, match=re.escape(key)) as err:
        load_ssl_model(path)
    assert "unexpected" in str(err.value)


def test_hf_shape_mismatch_raises(tmp_path):
    path = tmp_path / "hf"
    make_tiny_hf_checkpoint(path)
    config = json.loads((path / "config.json").read_text())
    config["intermediate_size"] = 48
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"shape mismatch.*intermediate_dense"):
        load_ssl_model(path)


def test_hf_unsupported_config_raises(tmp_path):
    path = tmp_path / "hf"
    make_tiny_hf_checkpoint(path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "model_type": "wavlm"}))
    with pytest.raises(ModelError, match="model_type 'wavlm'"):
        load_ssl_model(path)
    (path / "config.json").write_text(json.dumps({**config, "hidden_act": "relu"}))
    with pytest.raises(ModelError, match="gelu"):
        load_ssl_model(path)


def test_hf_without_weights_raises(tmp_path):
    path = tmp_path / "hf"
    make_tiny_hf_checkpoint(path)
    (path / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no weights"):
        load_ssl_model(path)


def test_fairseq_missing_and_unexpected_keys_raise(tmp_path):
    path = tmp_path / "model.pt"
    make_tiny_fairseq_checkpoint(path)
    _rewrite_fairseq(path, lambda c: c["model"].pop("encoder.layers.0.fc1.weight"))
    with pytest.raises(ModelError, match=r"missing.*encoder\.layers\.0\.fc1\.weight"):
        load_ssl_model(path)
    make_tiny_fairseq_checkpoint(path)
    extra = "encoder.layers.0.self_attn.extra_proj.weight"
    _rewrite_fairseq(path, lambda c: c["model"].__setitem__(extra, torch.zeros(2)))
    with pytest.raises(ModelError, match=re.escape(extra)):
        load_ssl_model(path)


def test_fairseq_conv_spec_is_not_evaluated(tmp_path):
    path = tmp_path / "model.pt"
    make_tiny_fairseq_checkpoint(path)
    bad = "__import__('os').getcwd()"
    _rewrite_fairseq(path, lambda c: c["cfg"]["model"].__setitem__("conv_feature_layers", bad))
    with pytest.raises(ModelError, match="conv_feature_layers"):
        load_ssl_model(path)


def test_fairseq_pickled_namespace_is_refused(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"args": argparse.Namespace(encoder_layers=2), "model": {}}, path)
    with pytest.raises(ModelError, match="weights_only") as err:
        load_ssl_model(path)
    message = str(err.value)
    assert "argparse.Namespace" in message and "Hugging Face" in message
    assert "\n" not in message


def test_unreadable_file_raises(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="unreadable"):
        load_ssl_model(path)


def test_directory_without_config_raises(tmp_path):
    with pytest.raises(ModelError, match=r"config\.json") as err:
        load_ssl_model(tmp_path)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(ModelError, match="no such file"):
        load_ssl_model(tmp_path / "absent")
    (tmp_path / "config.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ModelError, match="unknown model format"):
        load_ssl_model(tmp_path)


# ------------------------------------------------------------------------------------------
# Native format


def test_native_round_trip_is_bit_exact(tmp_path):
    model = _native_model(seed=5)
    path = tmp_path / "enc"
    save_ssl_model(model, NATIVE_ARCH, path, normalize_waveform=True)
    config = json.loads((path / "config.json").read_text())
    assert config["kind"] == "ssl_encoder" and config["format_version"] == 1
    assert config["arch"] == NATIVE_ARCH
    loaded_model, info = load_ssl_model(path)
    assert info == SSLInfo("speechlm", 3, 24, True, info.arch)
    original, reloaded = model.state_dict(), loaded_model.state_dict()
    assert list(original) == list(reloaded)
    for key in original:
        assert original[key].dtype == reloaded[key].dtype
        assert torch.equal(original[key], reloaded[key]), key
    wav = _wav(1, 8000)
    assert torch.equal(extract_layer(model, wav, 3)[0], extract_layer(loaded_model, wav, 3)[0])
    # saving again replaces the directory and leaves no temporary files behind
    save_ssl_model(loaded_model, info.arch, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc"]
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]


def test_convert_hf_to_native(tmp_path):
    make_tiny_hf_checkpoint(tmp_path / "hf", model_type="wav2vec2")
    model, info = load_ssl_model(tmp_path / "hf")
    save_ssl_model(model, info.arch, tmp_path / "native",
                   normalize_waveform=info.normalize_waveform)
    native, native_info = load_ssl_model(tmp_path / "native")
    assert native_info.normalize_waveform and native_info.arch == info.arch
    for key, tensor in model.state_dict().items():
        assert torch.equal(native.state_dict()[key], tensor), key


def test_native_errors(tmp_path):
    model = _native_model()
    with pytest.raises(ModelError, match="does not match arch"):
        save_ssl_model(model, {**NATIVE_ARCH, "encoder_num_layers": 2}, tmp_path / "a")
    with pytest.raises(ModelError, match="shape mismatch"):
        save_ssl_model(model, {**NATIVE_ARCH, "encoder_ff_interm_features": 40}, tmp_path / "a")
    with pytest.raises(ModelError, match="unknown architecture fields"):
        save_ssl_model(model, {**NATIVE_ARCH, "bogus": 1}, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("keep me")
    with pytest.raises(ModelError, match="refusing"):
        save_ssl_model(model, NATIVE_ARCH, occupied)
    assert (occupied / "notes.txt").read_text() == "keep me"

    path = tmp_path / "enc"
    save_ssl_model(model, NATIVE_ARCH, path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "format_version": 2}))
    with pytest.raises(ModelError, match="format_version"):
        load_ssl_model(path)
    (path / "config.json").write_text(json.dumps({**config, "kind": "unit_lm"}))
    with pytest.raises(ModelError, match="unit_lm"):
        load_ssl_model(path)
    (path / "config.json").write_text(json.dumps(config))
    weights = load_file(str(path / "model.safetensors"))
    weights.pop("encoder.transformer.layers.2.final_layer_norm.bias")
    save_file(weights, str(path / "model.safetensors"))
    with pytest.raises(ModelError, match=r"layers\.2\.final_layer_norm\.bias"):
        load_ssl_model(path)


# ------------------------------------------------------------------------------------------
# Feature extraction


@pytest.mark.parametrize("samples", [16000, 8000])
def test_extract_shapes(loaded, samples):
    _, _, model, info = loaded
    frames = (samples - 400) // 320 + 1
    for layer in range(info.num_layers + 1):
        feats, lengths = extract_layer(model, _wav(2, samples), layer)
        assert feats.shape == (2, frames, info.dim)
        assert feats.dtype == torch.float32 and torch.isfinite(feats).all()
        assert lengths is None
    _, lengths = extract_layer(model, _wav(2, samples), 1,
                               lengths=torch.tensor([samples, samples - 320]))
    assert lengths.tolist() == [frames, frames - 1]


def test_layer_selection(loaded):
    _, _, model, info = loaded
    wav = _wav(2, 8000, seed=1)
    with torch.inference_mode():
        all_layers, _ = model.extract_features(wav)
    outputs = [extract_layer(model, wav, layer)[0] for layer in range(info.num_layers + 1)]
    for layer in range(1, info.num_layers + 1):
        assert torch.equal(outputs[layer], all_layers[layer - 1])
        assert not torch.allclose(outputs[layer], outputs[layer - 1])
    # layer 0 is the input of block 1
    with torch.inference_mode():
        block1, _ = model.encoder.transformer.layers[0](outputs[0])
    torch.testing.assert_close(block1, outputs[1])


def test_layer_out_of_range(loaded):
    _, _, model, info = loaded
    valid = f"0..{info.num_layers}"
    for layer in (info.num_layers + 1, -1):
        with pytest.raises(ValueError, match=re.escape(valid)):
            extract_layer(model, _wav(1, 8000), layer)
    with pytest.raises(ValueError, match="out of range"):
        extract_layer(model, _wav(1, 8000), 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("normalize", [False, True])
def test_batched_equals_single(loaded, normalize):
    _, _, model, info = loaded
    wav = _wav(3, 8000, seed=2) * torch.tensor([[0.1], [1.0], [3.0]])
    full = torch.full((3,), 8000)
    layer = info.num_layers
    batched, _ = extract_layer(model, wav, layer, normalize=normalize)
    batched_len, lengths = extract_layer(model, wav, layer, lengths=full, normalize=normalize)
    assert lengths.tolist() == [24, 24, 24]
    for i in range(3):
        single, _ = extract_layer(model, wav[i:i + 1], layer, normalize=normalize)
        torch.testing.assert_close(batched[i], single[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batched_len[i], single[0], atol=1e-5, rtol=1e-4)


def test_padded_item_matches_unpadded_for_layer_norm_frontend(tmp_path):
    """With a layer-norm front end nothing mixes padding into valid frames, so a padded item
    (normalised over its valid samples only) gives its unpadded features."""
    make_tiny_hf_checkpoint(tmp_path / "hf", model_type="wav2vec2")
    model, _ = load_ssl_model(tmp_path / "hf")
    short = _wav(1, 9600, seed=4)[0] * 5 + 2
    wav = torch.cat([_wav(1, 16000, seed=5), 100 * torch.ones(1, 16000)])
    wav[1, :9600] = short
    feats, frames = extract_layer(model, wav, 2, torch.tensor([16000, 9600]), normalize=True)
    assert frames.tolist() == [49, 29]
    alone, _ = extract_layer(model, short[None], 2, normalize=True)
    torch.testing.assert_close(feats[1, :29], alone[0], atol=1e-4, rtol=1e-4)
    assert torch.count_nonzero(feats[1, 29:]) == 0


def test_item_shorter_than_a_frame_gets_no_frames(tmp_path):
    make_tiny_hf_checkpoint(tmp_path / "hf", model_type="wav2vec2")
    model, _ = load_ssl_model(tmp_path / "hf")
    wav = _wav(2, 8000, seed=7)
    feats, frames = extract_layer(model, wav, 1, torch.tensor([8000, 200]), normalize=True)
    assert frames.tolist() == [24, 0]
    assert torch.isfinite(feats).all() and torch.count_nonzero(feats[1]) == 0
    alone, _ = extract_layer(model, wav[:1], 1, normalize=True)
    torch.testing.assert_close(feats[0], alone[0], atol=1e-4, rtol=1e-4)


def test_normalize_uses_valid_samples_only(loaded):
    _, _, model, _ = loaded
    wav = _wav(1, 8000, seed=6) * 4 + 3
    a, _ = extract_layer(model, wav, 1, normalize=True)
    b, _ = extract_layer(model, wav * 10 - 7, 1, normalize=True)  # same after normalisation
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_extract_input_errors(loaded):
    _, _, model, _ = loaded
    with pytest.raises(ValueError, match="shorter than one frame"):
        extract_layer(model, _wav(1, 399), 1)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        extract_layer(model, _wav(1, 8000)[0], 1)
    with pytest.raises(ValueError, match="lengths"):
        extract_layer(model, _wav(2, 8000), 1, lengths=torch.tensor([8000, 9000]))
    with pytest.raises(ValueError, match="lengths"):
        extract_layer(model, _wav(2, 8000), 1, lengths=torch.tensor([8000.0, 800.0]))


def test_training_mode_is_restored(tmp_path):
    make_tiny_hf_checkpoint(tmp_path / "hf")
    model, _ = load_ssl_model(tmp_path / "hf")
    wav = _wav(1, 8000)
    expected, _ = extract_layer(model, wav, 2)
    model.train()
    got, _ = extract_layer(model, wav, 2)
    assert model.training
    assert torch.equal(got, expected)
