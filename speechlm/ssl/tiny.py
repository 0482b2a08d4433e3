"""Tiny random models written in the real on-disk formats, for tests and offline checks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torchaudio.models import Wav2Vec2Model, wav2vec2_model

from speechlm.ssl.common import CONFIG_NAME, check_arch
from speechlm.ssl.fairseq import fairseq_config_from_arch, fairseq_rules
from speechlm.ssl.files import save_safetensors, write_dir_atomic, write_file_atomic, write_json
from speechlm.ssl.huggingface import HF_MODEL_TYPES, HF_RULES, hf_config_from_arch
from speechlm.ssl.keymap import apply_rules


def _tiny_arch(layer_norm: bool) -> dict[str, Any]:
    """2 blocks, width 32, 2 heads; conv front end with the real kernels and strides (total
    stride 320, receptive field 400) but 16 channels."""
    arch = {
        "extractor_mode": "layer_norm" if layer_norm else "group_norm",
        "extractor_conv_layer_config": [(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2,
        "extractor_conv_bias": layer_norm,
        "encoder_embed_dim": 32,
        "encoder_projection_dropout": 0.1,
        "encoder_pos_conv_kernel": 16,
        "encoder_pos_conv_groups": 4,
        "encoder_num_layers": 2,
        "encoder_num_heads": 2,
        "encoder_attention_dropout": 0.1,
        "encoder_ff_interm_features": 64,
        "encoder_ff_interm_dropout": 0.0,
        "encoder_dropout": 0.1,
        "encoder_layer_norm_first": layer_norm,
        "encoder_layer_drop": 0.05,
        "aux_num_out": None,
    }
    return check_arch(arch, "tiny")


def _tiny_model(arch: Mapping[str, Any], seed: int) -> Wav2Vec2Model:
    """Random model; every weight (norms included) is perturbed so that swapped keys show."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = wav2vec2_model(**arch)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn_like(param))
    return model.eval()


def _tiny(model_type: str, seed: int) -> tuple[dict[str, Any], Wav2Vec2Model, torch.Generator]:
    """(arch, random model, generator for the extra head weights) of a tiny ``model_type``.

    ``"hubert"`` is base-style (group-norm front end, post-norm blocks), ``"wav2vec2"``
    "stable layer norm" large-style (layer-norm front end with conv bias, pre-norm blocks).
    """
    if model_type not in HF_MODEL_TYPES:
        raise ValueError(f"model_type must be one of {', '.join(HF_MODEL_TYPES)}, "
                         f"got {model_type!r}")
    arch = _tiny_arch(layer_norm=model_type == "wav2vec2")
    return arch, _tiny_model(arch, seed), torch.Generator().manual_seed(seed + 1)


def make_tiny_hf_checkpoint(path: str | os.PathLike, model_type: str = "hubert",
                            seed: int = 0) -> None:
    """Write a tiny random model as a Hugging Face directory (as ``save_pretrained`` would).

    ``"hubert"`` gives a base-style model (group-norm front end, post-norm blocks);
    ``"wav2vec2"`` a "stable layer norm" large-style one (layer-norm front end with conv bias,
    pre-norm blocks, ``normalize_waveform`` true). Files: ``config.json`` and
    ``model.safetensors`` with bare ``HubertModel`` / ``Wav2Vec2Model`` key names (no prefix,
    weight-norm as ``weight_g``/``weight_v``, plus ``masked_spec_embed``).

    Args:
        path: Directory to create (replaced atomically if it holds a model).
        model_type: ``"hubert"`` or ``"wav2vec2"``.
        seed: Seed of the random weights.
    """
    arch, model, gen = _tiny(model_type, seed)
    tensors = {apply_rules(HF_RULES, k): v for k, v in model.state_dict().items()}
    tensors["masked_spec_embed"] = torch.rand(arch["encoder_embed_dim"], generator=gen)
    config = hf_config_from_arch(arch, model_type)

    def write(tmp: Path) -> None:
        save_safetensors(tmp / "model.safetensors", tensors)
        write_json(tmp / CONFIG_NAME, config)

    write_dir_atomic(Path(path), write)


def make_tiny_fairseq_checkpoint(path: str | os.PathLike, seed: int = 0,
                                 model_type: str = "hubert") -> None:
    """Write a tiny random model as a fairseq pre-training checkpoint file.

    The file is a dict with ``cfg`` (``{"model": ..., "task": ...}``, as fairseq's trainer
    saves it) and ``model`` (fairseq key names, including pre-training heads such as
    ``final_proj`` and ``label_embs_concat`` / ``quantizer``). ``"hubert"`` is base-style,
    ``"wav2vec2"`` large-lv60k-style (layer-norm front end, ``task.normalize`` true).

    Args:
        path: The ``.pt`` file to write (atomically).
        seed: Seed of the random weights.
        model_type: ``"hubert"`` or ``"wav2vec2"``.
    """
    arch, model, gen = _tiny(model_type, seed)
    layer_norm = arch["extractor_mode"] == "layer_norm"
    rules = fairseq_rules(arch["extractor_mode"])
    state = {apply_rules(rules, k): v.clone() for k, v in model.state_dict().items()}
    embed, final_dim = arch["encoder_embed_dim"], 16
    state["mask_emb"] = torch.rand(embed, generator=gen)
    state["final_proj.weight"] = torch.randn(final_dim, embed, generator=gen)
    state["final_proj.bias"] = torch.zeros(final_dim)
    if model_type == "hubert":
        state["label_embs_concat"] = torch.randn(20, final_dim, generator=gen)
        task = {"_name": "hubert_pretraining", "data": "", "labels": ["km"],
                "sample_rate": 16000, "normalize": layer_norm, "label_rate": 50.0}
    else:
        groups, num_vars, var_dim = 2, 8, 8
        conv_dim = arch["extractor_conv_layer_config"][-1][0]
        state["quantizer.vars"] = torch.randn(1, groups * num_vars, var_dim, generator=gen)
        state["quantizer.weight_proj.weight"] = torch.randn(groups * num_vars, conv_dim,
                                                            generator=gen)
        state["quantizer.weight_proj.bias"] = torch.zeros(groups * num_vars)
        state["project_q.weight"] = torch.randn(final_dim, groups * var_dim, generator=gen)
        state["project_q.bias"] = torch.zeros(final_dim)
        task = {"_name": "audio_pretraining", "data": "", "sample_rate": 16000,
                "normalize": layer_norm}
    ckpt = {
        "args": None,
        "cfg": {"_name": None, "common": {"seed": seed}, "task": task,
                "model": fairseq_config_from_arch(arch, model_type, final_dim)},
        "model": state,
        "criterion": None,
        "optimizer_history": [{"criterion_name": "ModelCriterion", "optimizer_name": "Adam",
                               "lr_scheduler_state": {"best": None}, "num_updates": 0}],
        "extra_state": {"epoch": 1},
        "last_optimizer_state": None,
    }
    write_file_atomic(Path(path), lambda tmp: torch.save(ckpt, tmp))
