"""fairseq format: a ``.pt`` checkpoint of a HuBERT / wav2vec 2.0 model (pre-trained or
fine-tuned), a dict with ``cfg["model"]`` and a ``model`` state dict."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torchaudio.models import Wav2Vec2Model

from speechlm.errors import ModelError
from speechlm.ssl.common import SSLInfo, check_arch, make_info
from speechlm.ssl.files import tensor_dict, torch_load
from speechlm.ssl.keymap import Rule, compile_rules, load_renamed, strip_prefix

# fairseq Wav2Vec2Config / HubertConfig defaults for fields that may be absent.
_FAIRSEQ_DEFAULTS: dict[str, Any] = {
    "extractor_mode": "default", "encoder_layers": 12, "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12, "activation_fn": "gelu",
    "layer_type": "transformer", "dropout": 0.1, "attention_dropout": 0.1,
    "activation_dropout": 0.0, "encoder_layerdrop": 0.0, "dropout_input": 0.0,
    "layer_norm_first": False, "conv_bias": False, "conv_pos": 128, "conv_pos_groups": 16,
    "conv_feature_layers": "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]",
}
# Modules outside the encoder; a fine-tuned model's CTC head is w2v_encoder.proj.
_FAIRSEQ_HEADS = frozenset({
    "mask_emb", "quantizer", "project_q", "project_inp", "final_proj", "label_embs_concat",
    "target_glu", "proj", "w2v_encoder.proj",
})
_FAIRSEQ_PREFIX = "w2v_model."
_FAIRSEQ_FINETUNED_PREFIX = "w2v_encoder.w2v_model."


def fairseq_rules(extractor_mode: str) -> list[Rule]:
    """torchaudio key -> fairseq key, for a model with this ``extractor_mode``."""
    # fairseq conv block = Sequential(conv, dropout, norm, GELU); in layer_norm mode the norm
    # is Sequential(TransposeLast, Fp32LayerNorm, TransposeLast).
    norm = r"feature_extractor.conv_layers.\1.2." + ("1." if extractor_mode == "layer_norm" else "")
    return compile_rules([
        (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
        (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", norm),
        (r"^encoder\.feature_projection\.layer_norm\.", "layer_norm."),
        (r"^encoder\.feature_projection\.projection\.", "post_extract_proj."),
        (r"^encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0$",
         "encoder.pos_conv.0.weight_g"),
        (r"^encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1$",
         "encoder.pos_conv.0.weight_v"),
        (r"^encoder\.transformer\.pos_conv_embed\.conv\.", "encoder.pos_conv.0."),
        (r"^encoder\.transformer\.layer_norm\.", "encoder.layer_norm."),
        (r"^encoder\.transformer\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
        (r"^encoder\.transformer\.layers\.(\d+)\.layer_norm\.",
         r"encoder.layers.\1.self_attn_layer_norm."),
        (r"^encoder\.transformer\.layers\.(\d+)\.feed_forward\.intermediate_dense\.",
         r"encoder.layers.\1.fc1."),
        (r"^encoder\.transformer\.layers\.(\d+)\.feed_forward\.output_dense\.",
         r"encoder.layers.\1.fc2."),
        (r"^encoder\.transformer\.layers\.(\d+)\.final_layer_norm\.",
         r"encoder.layers.\1.final_layer_norm."),
        (r"^aux\.", "proj."),
    ])


def _parse_conv_layers(spec: Any, where: str) -> list[tuple[int, int, int]]:
    """Evaluate fairseq's ``conv_feature_layers`` string without ``eval``.

    Only list/tuple displays of integers, ``+`` of lists and ``*`` of a list by an integer
    are accepted, e.g. ``"[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2"``.
    """

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add) and isinstance(left, list) and isinstance(right, list):
                return left + right
            if isinstance(node.op, ast.Mult):
                seq, n = (left, right) if isinstance(left, list) else (right, left)
                if isinstance(seq, list) and type(n) is int and 0 <= n <= 1000:
                    return seq * n
        raise ValueError("unsupported expression")

    try:
        layers = value(ast.parse(spec, mode="eval").body) if isinstance(spec, str) else spec
        return [tuple(int(v) for v in layer) for layer in layers]  # type: ignore[misc]
    except (SyntaxError, ValueError, TypeError, RecursionError):
        raise ModelError(f"{where}: cannot parse conv_feature_layers {spec!r}") from None


def _format_conv_layers(conv: list[tuple[int, int, int]]) -> str:
    """fairseq's string form, with runs of equal layers written as ``[(c, k, s)] * n``."""
    parts: list[str] = []
    i = 0
    while i < len(conv):
        j = i
        while j < len(conv) and conv[j] == conv[i]:
            j += 1
        layer = "[({}, {}, {})]".format(*conv[i])
        parts.append(layer if j - i == 1 else f"{layer} * {j - i}")
        i = j
    return " + ".join(parts)


def _fairseq_configs(ckpt: Mapping[str, Any],
                     where: str) -> tuple[dict[str, Any], bool | None, bool]:
    """(pre-training model config, ``normalize`` if stated, whether fine-tuned)."""
    cfg, args = ckpt.get("cfg"), ckpt.get("args")
    if isinstance(cfg, Mapping) and isinstance(cfg.get("model"), Mapping):
        model_cfg, task_cfg = dict(cfg["model"]), dict(cfg.get("task") or {})
    elif isinstance(args, Mapping):
        model_cfg, task_cfg = dict(args), dict(args)
    else:
        raise ModelError(f"{where}: fairseq checkpoint without a model config "
                         f"(no cfg['model'] dict nor 'args')")
    normalize = task_cfg.get("normalize", model_cfg.get("normalize"))
    finetuned = "w2v_args" in model_cfg
    if finetuned:
        inner = model_cfg.get("w2v_args")
        if not (isinstance(inner, Mapping) and isinstance(inner.get("model"), Mapping)):
            raise ModelError(f"{where}: fine-tuned fairseq checkpoint without the embedded "
                             f"pre-training config (cfg['model']['w2v_args']['model'])")
        if normalize is None:
            normalize = (inner.get("task") or {}).get("normalize")
        model_cfg = dict(inner["model"])
    return model_cfg, None if normalize is None else bool(normalize), finetuned


def _arch_from_fairseq_config(cfg: Mapping[str, Any], where: str) -> dict[str, Any]:
    c = {**_FAIRSEQ_DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    if c["layer_type"] != "transformer":
        raise ModelError(f"{where}: unsupported layer_type {c['layer_type']!r} "
                         f"(only 'transformer' maps onto torchaudio's Wav2Vec2Model)")
    if c["activation_fn"] != "gelu":
        raise ModelError(f"{where}: unsupported activation_fn {c['activation_fn']!r}")
    modes = {"default": "group_norm", "layer_norm": "layer_norm"}
    if c["extractor_mode"] not in modes:
        raise ModelError(f"{where}: unsupported extractor_mode {c['extractor_mode']!r}")
    arch = {
        "extractor_mode": modes[c["extractor_mode"]],
        "extractor_conv_layer_config": _parse_conv_layers(c["conv_feature_layers"], where),
        "extractor_conv_bias": c["conv_bias"],
        "encoder_embed_dim": c["encoder_embed_dim"],
        "encoder_projection_dropout": c["dropout_input"],
        "encoder_pos_conv_kernel": c["conv_pos"],
        "encoder_pos_conv_groups": c["conv_pos_groups"],
        "encoder_num_layers": c["encoder_layers"],
        "encoder_num_heads": c["encoder_attention_heads"],
        "encoder_attention_dropout": c["attention_dropout"],
        "encoder_ff_interm_features": c["encoder_ffn_embed_dim"],
        "encoder_ff_interm_dropout": c["activation_dropout"],
        "encoder_dropout": c["dropout"],
        "encoder_layer_norm_first": c["layer_norm_first"],
        "encoder_layer_drop": c["encoder_layerdrop"],
        "aux_num_out": None,
    }
    return check_arch(arch, where)


def fairseq_config_from_arch(arch: Mapping[str, Any], model_type: str,
                             final_dim: int) -> dict[str, Any]:
    """A fairseq HubertConfig / Wav2Vec2Config dict for ``arch`` (inverse of above)."""
    if arch["extractor_mode"] not in ("group_norm", "layer_norm"):
        raise ModelError(f"a {arch['extractor_mode']!r} front end has no fairseq equivalent; "
                         "keep the model in the speechlm format")
    layer_norm = arch["extractor_mode"] == "layer_norm"
    return {
        "_name": model_type,
        "extractor_mode": "layer_norm" if layer_norm else "default",
        "encoder_layers": arch["encoder_num_layers"],
        "encoder_embed_dim": arch["encoder_embed_dim"],
        "encoder_ffn_embed_dim": arch["encoder_ff_interm_features"],
        "encoder_attention_heads": arch["encoder_num_heads"],
        "activation_fn": "gelu",
        "layer_type": "transformer",
        "dropout": arch["encoder_dropout"],
        "attention_dropout": arch["encoder_attention_dropout"],
        "activation_dropout": arch["encoder_ff_interm_dropout"],
        "encoder_layerdrop": arch["encoder_layer_drop"],
        "dropout_input": arch["encoder_projection_dropout"],
        "dropout_features": arch["encoder_projection_dropout"],
        "final_dim": final_dim,
        "untie_final_proj": False,
        "layer_norm_first": arch["encoder_layer_norm_first"],
        "conv_feature_layers": _format_conv_layers(arch["extractor_conv_layer_config"]),
        "conv_bias": arch["extractor_conv_bias"],
        "logit_temp": 0.1,
        "feature_grad_mult": 0.1 if not layer_norm else 1.0,
        "mask_length": 10,
        "mask_prob": 0.65 if model_type == "wav2vec2" else 0.8,
        "mask_selection": "static",
        "conv_pos": arch["encoder_pos_conv_kernel"],
        "conv_pos_groups": arch["encoder_pos_conv_groups"],
        "latent_temp": [2.0, 0.5, 0.999995],
    }


def load_fairseq(path: Path) -> tuple[Wav2Vec2Model, SSLInfo]:
    """Load a fairseq checkpoint file (read with ``torch.load(weights_only=True)``)."""
    where = str(path)
    ckpt = torch_load(path)
    if not isinstance(ckpt, Mapping) or "model" not in ckpt:
        raise ModelError(f"{where}: not a fairseq checkpoint (expected a dict with 'model' "
                         f"and 'cfg')")
    model_cfg, normalize, finetuned = _fairseq_configs(ckpt, where)
    arch = _arch_from_fairseq_config(model_cfg, where)
    source = tensor_dict(ckpt["model"], f"{where} ['model']")
    prefixes = [_FAIRSEQ_FINETUNED_PREFIX, _FAIRSEQ_PREFIX] if finetuned else [_FAIRSEQ_PREFIX]

    conv_dim = arch["extractor_conv_layer_config"][-1][0]
    embed = arch["encoder_embed_dim"]
    if conv_dim == embed and not any(
            strip_prefix(k, prefixes).startswith("post_extract_proj.") for k in source):
        # fairseq omits post_extract_proj when the conv output already has the model width.
        source["post_extract_proj.weight"] = torch.eye(embed)
        source["post_extract_proj.bias"] = torch.zeros(embed)
    rules = fairseq_rules(arch["extractor_mode"])
    model = load_renamed(arch, source, rules, where, prefixes=prefixes, heads=_FAIRSEQ_HEADS)
    return model, make_info("fairseq", arch, normalize)
