"""Hugging Face format: ``config.json`` (HubertConfig / Wav2Vec2Config) + weights file(s)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torchaudio.models import Wav2Vec2Model

from speechlm.errors import ModelError
from speechlm.ssl.common import SSLInfo, check_arch, make_info
from speechlm.ssl.files import load_weights_file, read_json
from speechlm.ssl.keymap import compile_rules, load_renamed

# HubertConfig / Wav2Vec2Config defaults: ``save_pretrained`` omits fields equal to them.
_HF_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout": 0.1,
    "activation_dropout": 0.1, "attention_dropout": 0.1, "feat_proj_dropout": 0.0,
    "layerdrop": 0.1, "layer_norm_eps": 1e-5, "feat_extract_norm": "group",
    "feat_extract_activation": "gelu", "conv_dim": [512] * 7, "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_bias": False, "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16, "do_stable_layer_norm": False,
    "feat_proj_layer_norm": True, "conv_pos_batch_norm": False, "add_adapter": False,
}
HF_MODEL_TYPES = ("hubert", "wav2vec2")
_HF_HEADS = frozenset({
    "masked_spec_embed", "lm_head", "quantizer", "project_q", "project_hid", "final_proj",
    "label_embeddings_concat", "projector", "classifier", "layer_weights",
})
# Weight files beside config.json, in order of preference.
_HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                    "pytorch_model.bin.index.json")

# torchaudio key -> Hugging Face key (without the ``hubert.`` / ``wav2vec2.`` prefix).
HF_RULES = compile_rules([
    (r"^feature_extractor\.", "feature_extractor."),
    (r"^encoder\.feature_projection\.", "feature_projection."),
    (r"^encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0$",
     "encoder.pos_conv_embed.conv.weight_g"),
    (r"^encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1$",
     "encoder.pos_conv_embed.conv.weight_v"),
    (r"^encoder\.transformer\.", "encoder."),
    (r"^aux\.", "lm_head."),
])


def _arch_from_hf_config(cfg: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``wav2vec2_model`` arguments from a HubertConfig / Wav2Vec2Config dict."""
    c = {**_HF_DEFAULTS, **cfg}
    unsupported = []
    if c["hidden_act"] != "gelu" or c["feat_extract_activation"] != "gelu":
        unsupported.append("activations other than gelu")
    if not c["feat_proj_layer_norm"]:
        unsupported.append("feat_proj_layer_norm=false")
    if c["conv_pos_batch_norm"]:
        unsupported.append("conv_pos_batch_norm=true")
    if c["add_adapter"]:
        unsupported.append("add_adapter=true")
    if abs(float(c["layer_norm_eps"]) - 1e-5) > 1e-12:
        unsupported.append(f"layer_norm_eps={c['layer_norm_eps']}")
    if c["feat_extract_norm"] not in ("group", "layer"):
        unsupported.append(f"feat_extract_norm={c['feat_extract_norm']!r}")
    if unsupported:
        raise ModelError(f"{where}: unsupported config ({', '.join(unsupported)}); torchaudio's "
                         f"Wav2Vec2Model cannot represent it")
    dims, kernels, strides = c["conv_dim"], c["conv_kernel"], c["conv_stride"]
    if not all(isinstance(v, (list, tuple)) for v in (dims, kernels, strides)):
        raise ModelError(f"{where}: conv_dim, conv_kernel and conv_stride must be lists")
    if not len(dims) == len(kernels) == len(strides):
        raise ModelError(f"{where}: conv_dim, conv_kernel and conv_stride differ in length")
    arch = {
        "extractor_mode": f"{c['feat_extract_norm']}_norm",
        "extractor_conv_layer_config": list(zip(dims, kernels, strides, strict=True)),
        "extractor_conv_bias": c["conv_bias"],
        "encoder_embed_dim": c["hidden_size"],
        "encoder_projection_dropout": c["feat_proj_dropout"],
        "encoder_pos_conv_kernel": c["num_conv_pos_embeddings"],
        "encoder_pos_conv_groups": c["num_conv_pos_embedding_groups"],
        "encoder_num_layers": c["num_hidden_layers"],
        "encoder_num_heads": c["num_attention_heads"],
        "encoder_attention_dropout": c["attention_dropout"],
        "encoder_ff_interm_features": c["intermediate_size"],
        "encoder_ff_interm_dropout": c["activation_dropout"],
        "encoder_dropout": c["hidden_dropout"],
        "encoder_layer_norm_first": c["do_stable_layer_norm"],
        "encoder_layer_drop": c["layerdrop"],
        "aux_num_out": None,
    }
    return check_arch(arch, where)


def hf_config_from_arch(arch: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """Make a complete HubertConfig / Wav2Vec2Config dict for ``arch`` (inverse of above)."""
    if arch["extractor_mode"] not in ("group_norm", "layer_norm"):
        raise ModelError(f"a {arch['extractor_mode']!r} front end has no Hugging Face "
                         "equivalent; keep the model in the speechlm format")
    conv = arch["extractor_conv_layer_config"]
    cfg: dict[str, Any] = {
        "architectures": ["HubertModel" if model_type == "hubert" else "Wav2Vec2Model"],
        "model_type": model_type,
        "hidden_size": arch["encoder_embed_dim"],
        "num_hidden_layers": arch["encoder_num_layers"],
        "num_attention_heads": arch["encoder_num_heads"],
        "intermediate_size": arch["encoder_ff_interm_features"],
        "hidden_act": "gelu",
        "hidden_dropout": arch["encoder_dropout"],
        "activation_dropout": arch["encoder_ff_interm_dropout"],
        "attention_dropout": arch["encoder_attention_dropout"],
        "feat_proj_dropout": arch["encoder_projection_dropout"],
        "final_dropout": 0.1,
        "layerdrop": arch["encoder_layer_drop"],
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-5,
        "feat_extract_norm": arch["extractor_mode"].removesuffix("_norm"),
        "feat_extract_activation": "gelu",
        "conv_dim": [c[0] for c in conv],
        "conv_kernel": [c[1] for c in conv],
        "conv_stride": [c[2] for c in conv],
        "conv_bias": arch["extractor_conv_bias"],
        "num_conv_pos_embeddings": arch["encoder_pos_conv_kernel"],
        "num_conv_pos_embedding_groups": arch["encoder_pos_conv_groups"],
        "do_stable_layer_norm": arch["encoder_layer_norm_first"],
        "apply_spec_augment": True,
        "mask_time_prob": 0.05,
        "mask_time_length": 10,
        "mask_feature_prob": 0.0,
        "mask_feature_length": 10,
        "vocab_size": 32,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }
    if model_type == "hubert":
        cfg.update(feat_proj_layer_norm=True, conv_pos_batch_norm=False)
    else:
        cfg.update(add_adapter=False, num_codevector_groups=2, num_codevectors_per_group=320,
                   codevector_dim=256, proj_codevector_dim=256)
    return cfg


def _read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    for name in _HF_WEIGHT_FILES:
        path = directory / name
        if path.is_file():
            if name.endswith(".index.json"):
                return _read_hf_shards(path)
            return load_weights_file(path)
    raise ModelError(f"{directory}: no weights found (expected model.safetensors or "
                     f"pytorch_model.bin beside config.json)")


def _read_hf_shards(index_path: Path) -> dict[str, torch.Tensor]:
    weight_map = read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict):
        raise ModelError(f"{index_path}: no 'weight_map' object")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        if not isinstance(shard, str) or Path(shard).name != shard:
            raise ModelError(f"{index_path}: bad shard name {shard!r}")
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise ModelError(f"{shard_path}: shard listed in {index_path.name} is missing")
        state.update(load_weights_file(shard_path))
    return state


def load_hf(directory: Path, cfg: dict[str, Any]) -> tuple[Wav2Vec2Model, SSLInfo]:
    """Load a Hugging Face model directory whose ``config.json`` is ``cfg``."""
    where = str(directory)
    model_type = cfg.get("model_type")
    if model_type not in HF_MODEL_TYPES:
        raise ModelError(f"{where}: unsupported model_type {model_type!r} in config.json "
                         f"(supported: {', '.join(HF_MODEL_TYPES)})")
    arch = _arch_from_hf_config(cfg, where)
    source = _read_hf_weights(directory)
    model = load_renamed(arch, source, HF_RULES, where, prefixes=[f"{model_type}."],
                         heads=_HF_HEADS)
    # A layer-norm feature extractor ("stable layer norm" models) expects normalised input.
    return model, make_info("huggingface", arch, normalize=None)
