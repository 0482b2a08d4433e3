"""The real HuBERT Base checkpoints' configs map onto torchaudio's ``hubert_base()``.

tests/test_ssl.py loads tiny random checkpoints written in the real formats; what it cannot show
is that the configs the real files carry -- facebook/hubert-base-ls960's config.json and
fairseq's hubert_base_ls960.pt ``cfg["model"]``, every field as published -- give HuBERT Base's
architecture and key names. The weights (95M parameters) are not needed for that: the models are
built on the meta device.
"""

from __future__ import annotations

import torch
from torchaudio.models import hubert_base

from speechlm.ssl.common import arch_to_json, expected_shapes
from speechlm.ssl.fairseq import _arch_from_fairseq_config, fairseq_rules
from speechlm.ssl.huggingface import HF_RULES, _arch_from_hf_config
from speechlm.ssl.keymap import apply_rules

# facebook/hubert-base-ls960 config.json, as published on the Hugging Face hub.
HF_HUBERT_BASE = {
    "activation_dropout": 0.1, "apply_spec_augment": True, "architectures": ["HubertModel"],
    "attention_dropout": 0.1, "bos_token_id": 1, "conv_bias": False,
    "conv_dim": [512, 512, 512, 512, 512, 512, 512], "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2], "ctc_loss_reduction": "sum",
    "ctc_zero_infinity": False, "do_stable_layer_norm": False, "eos_token_id": 2,
    "feat_extract_activation": "gelu", "feat_extract_dropout": 0.0, "feat_extract_norm": "group",
    "feat_proj_dropout": 0.1, "final_dropout": 0.1, "gradient_checkpointing": False,
    "hidden_act": "gelu", "hidden_dropout": 0.1, "hidden_dropout_prob": 0.1, "hidden_size": 768,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
    "layerdrop": 0.1, "mask_feature_length": 10, "mask_feature_prob": 0.0,
    "mask_time_length": 10, "mask_time_prob": 0.05, "model_type": "hubert",
    "num_attention_heads": 12, "num_conv_pos_embedding_groups": 16,
    "num_conv_pos_embeddings": 128, "num_feat_extract_layers": 7, "num_hidden_layers": 12,
    "pad_token_id": 0, "transformers_version": "4.10.0.dev0", "vocab_size": 32,
}

# fairseq hubert_base_ls960.pt: cfg["model"].
FAIRSEQ_HUBERT_BASE = {
    "_name": "hubert", "label_rate": 50, "extractor_mode": "default", "encoder_layers": 12,
    "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12,
    "activation_fn": "gelu", "dropout": 0.1, "attention_dropout": 0.1,
    "activation_dropout": 0.0, "encoder_layerdrop": 0.05, "dropout_input": 0.1,
    "dropout_features": 0.1, "final_dim": 256, "untie_final_proj": False,
    "layer_norm_first": False,
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    "conv_bias": False, "logit_temp": 0.1, "target_glu": False, "feature_grad_mult": 0.1,
    "mask_length": 10, "mask_prob": 0.8, "mask_selection": "static", "mask_other": 0.0,
    "no_mask_overlap": False, "mask_min_space": 1, "mask_channel_length": 10,
    "mask_channel_prob": 0.0, "mask_channel_selection": "static", "mask_channel_other": 0.0,
    "no_mask_channel_overlap": False, "mask_channel_min_space": 1, "conv_pos": 128,
    "conv_pos_groups": 16, "latent_temp": [2.0, 0.5, 0.999995], "skip_masked": False,
    "skip_nomask": False, "checkpoint_activations": False, "required_seq_len_multiple": 1,
}

_STRUCTURE = ("extractor_mode", "extractor_conv_layer_config", "extractor_conv_bias",
              "encoder_embed_dim", "encoder_pos_conv_kernel", "encoder_pos_conv_groups",
              "encoder_num_layers", "encoder_num_heads", "encoder_ff_interm_features",
              "encoder_layer_norm_first")


def _reference() -> dict[str, torch.Size]:
    with torch.device("meta"):
        return {k: v.shape for k, v in hubert_base().state_dict().items()}


def _hf_key_names(layers: int = 12) -> set[str]:
    """The encoder keys of facebook/hubert-base-ls960's weights (HubertModel names)."""
    keys = {"feature_extractor.conv_layers.0.layer_norm.weight",
            "feature_extractor.conv_layers.0.layer_norm.bias",
            "feature_projection.layer_norm.weight", "feature_projection.layer_norm.bias",
            "feature_projection.projection.weight", "feature_projection.projection.bias",
            "encoder.pos_conv_embed.conv.weight_g", "encoder.pos_conv_embed.conv.weight_v",
            "encoder.pos_conv_embed.conv.bias", "encoder.layer_norm.weight",
            "encoder.layer_norm.bias"}
    keys |= {f"feature_extractor.conv_layers.{i}.conv.weight" for i in range(7)}
    for i in range(layers):
        for mod in ("attention.k_proj", "attention.v_proj", "attention.q_proj",
                    "attention.out_proj", "layer_norm", "feed_forward.intermediate_dense",
                    "feed_forward.output_dense", "final_layer_norm"):
            keys |= {f"encoder.layers.{i}.{mod}.weight", f"encoder.layers.{i}.{mod}.bias"}
    return keys


def test_hf_hubert_base_config_is_hubert_base():
    arch = _arch_from_hf_config(HF_HUBERT_BASE, "hubert-base-ls960")
    assert expected_shapes(arch, "hf") == _reference()
    assert arch["extractor_mode"] == "group_norm" and arch["encoder_layer_norm_first"] is False
    # HubertModel's published 94,371,712 parameters, less its 768-dim masked_spec_embed
    assert sum(s.numel() for s in _reference().values()) == 94_371_712 - 768
    mapped = {apply_rules(HF_RULES, k) for k in _reference()}
    assert mapped == _hf_key_names()


def test_fairseq_hubert_base_config_is_hubert_base():
    arch = _arch_from_fairseq_config(FAIRSEQ_HUBERT_BASE, "hubert_base_ls960.pt")
    assert expected_shapes(arch, "fairseq") == _reference()
    hf = _arch_from_hf_config(HF_HUBERT_BASE, "hf")
    assert {k: arch_to_json(arch)[k] for k in _STRUCTURE} == {
        k: arch_to_json(hf)[k] for k in _STRUCTURE}
    # every torchaudio key has a fairseq name, and no two collide
    names = [apply_rules(fairseq_rules(arch["extractor_mode"]), k) for k in _reference()]
    assert len(set(names)) == len(names) and "post_extract_proj.weight" in names
