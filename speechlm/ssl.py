"""Self-supervised speech encoders (HuBERT / wav2vec 2.0 architecture) from local checkpoints.

Every checkpoint is loaded into torchaudio's :class:`~torchaudio.models.Wav2Vec2Model` (built
with :func:`torchaudio.models.wav2vec2_model`), so neither ``transformers`` nor ``fairseq`` is
needed. Three on-disk formats are understood by :func:`load_ssl_model`:

* **huggingface** -- a directory with ``config.json`` (``model_type`` ``"hubert"`` or
  ``"wav2vec2"``) and ``model.safetensors`` (preferred) or ``pytorch_model.bin`` (possibly
  sharded with an ``*.index.json``). Keys may carry the ``hubert.`` / ``wav2vec2.`` prefix;
  heads that are not part of the encoder (``lm_head``, ``quantizer``, ``project_q`` ...) are
  skipped.
* **fairseq** -- a ``.pt`` checkpoint file of a HuBERT / wav2vec 2.0 model (pre-trained or
  fine-tuned), a dict with ``cfg["model"]`` and a ``model`` state dict.
* **speechlm** -- a directory written by :func:`save_ssl_model`: ``config.json`` with
  ``{"kind": "ssl_encoder", "format_version": 1, "arch": {...}}`` (``arch`` = the keyword
  arguments of :func:`torchaudio.models.wav2vec2_model`) and ``model.safetensors`` holding the
  torchaudio model's ``state_dict``.

Loading is strict: every encoder weight must be present with the shape the config implies and
no unknown weight may be left over, otherwise :class:`~speechlm.errors.ModelError` is raised.
Pickled files are only ever read with ``torch.load(..., weights_only=True)``.

:func:`extract_layer` returns the output of one transformer block for a batch of 16 kHz
waveforms. :func:`make_tiny_hf_checkpoint` and :func:`make_tiny_fairseq_checkpoint` write tiny
random models in the real on-disk formats, for tests and for checking a setup offline.
"""

from __future__ import annotations

import ast
import inspect
import json
import logging
import operator
import os
import pickle
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import safetensors
import safetensors.torch
import torch
from torchaudio.models import Wav2Vec2Model, wav2vec2_model

from speechlm.errors import ModelError

__all__ = [
    "FORMAT_VERSION",
    "SSLInfo",
    "extract_layer",
    "load_ssl_model",
    "make_tiny_fairseq_checkpoint",
    "make_tiny_hf_checkpoint",
    "save_ssl_model",
]

_LG = logging.getLogger(__name__)

KIND = "ssl_encoder"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

SourceFormat = Literal["huggingface", "fairseq", "speechlm"]

# Keyword arguments of torchaudio.models.wav2vec2_model, in order.
_ARCH_KEYS: tuple[str, ...] = tuple(inspect.signature(wav2vec2_model).parameters)
_DEFAULT_CONV = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
_MAX_LISTED = 4  # keys named in an error message before "(+N more)"


@dataclass(frozen=True)
class SSLInfo:
    """What :func:`load_ssl_model` found out about a checkpoint.

    Attributes:
        source_format: ``"huggingface"``, ``"fairseq"`` or ``"speechlm"``.
        num_layers: Number of transformer blocks (valid layers for :func:`extract_layer` are
            ``0..num_layers``).
        dim: Feature dimension ``D`` of every transformer layer.
        normalize_waveform: Whether the model expects each utterance normalised to zero mean and
            unit variance (HuBERT-large / wav2vec 2.0 "stable layer norm" models); pass it as
            ``normalize`` to :func:`extract_layer`.
        arch: Keyword arguments of :func:`torchaudio.models.wav2vec2_model` that rebuild the
            model; ``save_ssl_model(model, info.arch, path)`` converts to the native format.
    """

    source_format: SourceFormat
    num_layers: int
    dim: int
    normalize_waveform: bool
    arch: dict[str, Any] = field(repr=False)


# --------------------------------------------------------------------------------------------
# Architecture dicts


def _check_arch(arch: Any, where: str) -> dict[str, Any]:
    """Validate and normalise ``wav2vec2_model`` keyword arguments (conv config as int tuples)."""
    if not isinstance(arch, Mapping):
        raise ModelError(f"{where}: 'arch' must be a JSON object, got {type(arch).__name__}")
    unknown = sorted(set(arch) - set(_ARCH_KEYS))
    if unknown:
        raise ModelError(f"{where}: unknown architecture fields {_brief(unknown)}; "
                         f"expected the arguments of torchaudio.models.wav2vec2_model")
    missing = [k for k in _ARCH_KEYS if k not in arch and k != "aux_num_out"]
    if missing:
        raise ModelError(f"{where}: architecture fields missing: {_brief(missing)}")
    out = {k: arch.get(k) for k in _ARCH_KEYS}
    if out["extractor_mode"] not in ("group_norm", "layer_norm"):
        raise ModelError(f"{where}: extractor_mode must be 'group_norm' or 'layer_norm', "
                         f"got {out['extractor_mode']!r}")
    conv = out["extractor_conv_layer_config"]
    if conv is None:
        conv = _DEFAULT_CONV
    try:
        conv = [tuple(int(v) for v in layer) for layer in conv]
    except (TypeError, ValueError):
        conv = []
    if not conv or any(len(layer) != 3 or min(layer) < 1 for layer in conv):
        raise ModelError(f"{where}: extractor_conv_layer_config must be a non-empty list of "
                         f"(channels, kernel, stride) triples of positive integers")
    out["extractor_conv_layer_config"] = conv
    for key in ("extractor_conv_bias", "encoder_layer_norm_first"):
        out[key] = bool(out[key])
    for key in ("encoder_embed_dim", "encoder_pos_conv_kernel", "encoder_pos_conv_groups",
                "encoder_num_layers", "encoder_num_heads", "encoder_ff_interm_features"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"{where}: {key} must be a positive integer, got {value!r}")
    for key in ("encoder_projection_dropout", "encoder_attention_dropout",
                "encoder_ff_interm_dropout", "encoder_dropout", "encoder_layer_drop"):
        try:
            out[key] = float(out[key])
        except (TypeError, ValueError):
            raise ModelError(f"{where}: {key} must be a number, got {out[key]!r}") from None
    aux = out["aux_num_out"]
    if aux is not None and (isinstance(aux, bool) or not isinstance(aux, int) or aux < 1):
        raise ModelError(f"{where}: aux_num_out must be null or a positive integer, got {aux!r}")
    return out


def _arch_to_json(arch: Mapping[str, Any]) -> dict[str, Any]:
    """``arch`` with tuples turned into lists, ready for ``json.dumps``."""
    out = dict(arch)
    out["extractor_conv_layer_config"] = [list(t) for t in arch["extractor_conv_layer_config"]]
    return out


def _meta_model(arch: Mapping[str, Any], where: str) -> Wav2Vec2Model:
    """``wav2vec2_model(**arch)`` on the meta device (no memory, no initialisation)."""
    try:
        with torch.device("meta"):
            return wav2vec2_model(**arch)
    except (ValueError, TypeError, RuntimeError, AssertionError, ZeroDivisionError) as err:
        raise ModelError(f"{where}: invalid architecture ({_one_line(err)})") from None


def _empty_model(arch: Mapping[str, Any], where: str) -> Wav2Vec2Model:
    """Build the model without initialising weights (every weight is loaded afterwards)."""
    return _meta_model(arch, where).to_empty(device="cpu")


def _expected_shapes(arch: Mapping[str, Any], where: str) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in _meta_model(arch, where).state_dict().items()}


def _build_and_load(arch: dict[str, Any], state: Mapping[str, torch.Tensor],
                    where: str) -> Wav2Vec2Model:
    """Build ``wav2vec2_model(**arch)`` and load ``state`` (torchaudio key names) strictly."""
    model = _empty_model(arch, where)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    _raise_key_problems(where, missing, unexpected)
    for key, ref in expected.items():
        tensor = state[key]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise ModelError(f"{where}: weight {key} is not a floating-point tensor")
        if tensor.shape != ref.shape:
            raise ModelError(f"{where}: shape mismatch for {key}: checkpoint has "
                             f"{list(tensor.shape)}, the config implies {list(ref.shape)}")
    model.load_state_dict(dict(state), strict=True)
    return model.eval()


# --------------------------------------------------------------------------------------------
# Key mappings. Each maps a torchaudio state_dict key to the key the source format uses; the
# loaders invert them, the tiny-checkpoint writers apply them.

_Rule = tuple[re.Pattern[str], str]

_WEIGHT_NORM_G = "parametrizations.weight.original0"
_WEIGHT_NORM_V = "parametrizations.weight.original1"


def _rules(pairs: Iterable[tuple[str, str]]) -> list[_Rule]:
    return [(re.compile(p), r) for p, r in pairs]


_HF_RULES = _rules([
    (r"^feature_extractor\.", "feature_extractor."),
    (r"^encoder\.feature_projection\.", "feature_projection."),
    (r"^encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0$",
     "encoder.pos_conv_embed.conv.weight_g"),
    (r"^encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1$",
     "encoder.pos_conv_embed.conv.weight_v"),
    (r"^encoder\.transformer\.", "encoder."),
    (r"^aux\.", "lm_head."),
])


def _fairseq_rules(extractor_mode: str) -> list[_Rule]:
    # fairseq conv block = Sequential(conv, dropout, norm, GELU); in layer_norm mode the norm
    # is Sequential(TransposeLast, Fp32LayerNorm, TransposeLast).
    norm = r"feature_extractor.conv_layers.\1.2." + ("1." if extractor_mode == "layer_norm" else "")
    return _rules([
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


def _apply_rules(rules: list[_Rule], key: str) -> str:
    for pattern, repl in rules:
        new, n = pattern.subn(repl, key, count=1)
        if n:
            return new
    raise AssertionError(f"no key mapping for torchaudio weight {key}")  # a bug, not bad input


def _aliases(name: str) -> list[str]:
    """All spellings of a weight-norm key.

    Old ``weight_g``/``weight_v`` and torch parametrizations
    (``parametrizations.weight.original0``/``original1``).
    """
    for old, new in (("weight_g", _WEIGHT_NORM_G), ("weight_v", _WEIGHT_NORM_V)):
        if name.endswith("." + old):
            return [name, name[: -len(old)] + new]
    return [name]


def _remap(source: Mapping[str, Any], ta_keys: Iterable[str], rules: list[_Rule],
           strip: Callable[[str], str], ignore: Callable[[str], bool],
           where: str) -> dict[str, torch.Tensor]:
    """Rename ``source`` weights to torchaudio keys; raise on missing or unexpected keys."""
    ta_keys = list(ta_keys)
    wanted: dict[str, str] = {}
    for ta_key in ta_keys:
        for name in _aliases(_apply_rules(rules, ta_key)):
            wanted[name] = ta_key
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unexpected: list[str] = []
    skipped = 0
    for key, tensor in source.items():
        name = strip(key)
        ta_key = wanted.get(name)
        if ta_key is None:
            if ignore(name):
                skipped += 1
            else:
                unexpected.append(key)
            continue
        if ta_key in out:
            raise ModelError(f"{where}: weight given twice, as {origin[ta_key]} and {key}")
        out[ta_key], origin[ta_key] = tensor, key
    missing = [_apply_rules(rules, k) for k in ta_keys if k not in out]
    _raise_key_problems(where, missing, unexpected)
    if skipped:
        _LG.debug("%s: skipped %d weights of heads outside the encoder", where, skipped)
    return out


def _raise_key_problems(where: str, missing: list[str], unexpected: list[str]) -> None:
    problems = []
    if missing:
        problems.append(f"missing encoder weights: {_brief(missing)}")
    if unexpected:
        problems.append(f"unexpected encoder weights: {_brief(unexpected)}")
    if problems:
        raise ModelError(f"{where}: checkpoint does not match its config: " + "; ".join(problems))


def _brief(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# --------------------------------------------------------------------------------------------
# File reading


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{path}: unreadable JSON ({_one_line(err)})") from None
    if not isinstance(obj, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return obj


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except (OSError, safetensors.SafetensorError) as err:
        raise ModelError(f"{path}: unreadable safetensors file ({_one_line(err)})") from None


def _torch_load(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers (``weights_only=True``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "weights_only" in text or "Weights only" in text:
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            what = f" ({found.group(1)})" if found else ""
            raise ModelError(
                f"{path}: refusing to unpickle a non-tensor object{what}: checkpoints are loaded "
                f"with torch.load(weights_only=True), which this file needs arbitrary code for "
                f"(old fairseq checkpoints pickle an argparse.Namespace); convert it to Hugging "
                f"Face format (config.json + model.safetensors) and load that directory"
            ) from None
        raise ModelError(f"{path}: unreadable PyTorch checkpoint ({_one_line(err)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError) as err:
        raise ModelError(f"{path}: unreadable PyTorch checkpoint ({_one_line(err)})") from None


def _tensor_dict(obj: Any, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise ModelError(f"{where}: expected a state dict mapping names to tensors")
    return dict(obj)


# --------------------------------------------------------------------------------------------
# Hugging Face format

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
_HF_MODEL_TYPES = ("hubert", "wav2vec2")
_HF_HEADS = frozenset({
    "masked_spec_embed", "lm_head", "quantizer", "project_q", "project_hid", "final_proj",
    "label_embeddings_concat", "projector", "classifier", "layer_weights",
})


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
    return _check_arch(arch, where)


def _hf_config_from_arch(arch: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """Make a complete HubertConfig / Wav2Vec2Config dict for ``arch`` (inverse of above)."""
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
    candidates = (
        ("model.safetensors", _load_safetensors),
        ("model.safetensors.index.json", None),
        ("pytorch_model.bin", lambda p: _tensor_dict(_torch_load(p), str(p))),
        ("pytorch_model.bin.index.json", None),
    )
    for name, reader in candidates:
        path = directory / name
        if not path.is_file():
            continue
        if reader is not None:
            return reader(path)
        return _read_hf_shards(path)
    raise ModelError(f"{directory}: no weights found (expected model.safetensors or "
                     f"pytorch_model.bin beside config.json)")


def _read_hf_shards(index_path: Path) -> dict[str, torch.Tensor]:
    weight_map = _read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict):
        raise ModelError(f"{index_path}: no 'weight_map' object")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        if not isinstance(shard, str) or Path(shard).name != shard:
            raise ModelError(f"{index_path}: bad shard name {shard!r}")
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise ModelError(f"{shard_path}: shard listed in {index_path.name} is missing")
        if shard.endswith(".safetensors"):
            state.update(_load_safetensors(shard_path))
        else:
            state.update(_tensor_dict(_torch_load(shard_path), str(shard_path)))
    return state


def _load_hf(directory: Path, cfg: dict[str, Any]) -> tuple[Wav2Vec2Model, SSLInfo]:
    where = str(directory)
    model_type = cfg.get("model_type")
    if model_type not in _HF_MODEL_TYPES:
        raise ModelError(f"{where}: unsupported model_type {model_type!r} in config.json "
                         f"(supported: {', '.join(_HF_MODEL_TYPES)})")
    arch = _arch_from_hf_config(cfg, where)
    source = _read_hf_weights(directory)
    prefix = f"{model_type}."

    def strip(key: str) -> str:
        return key.removeprefix(prefix)

    def ignore(name: str) -> bool:
        return name.split(".", 1)[0] in _HF_HEADS

    ta_keys = _expected_shapes(arch, where)
    state = _remap(source, ta_keys, _HF_RULES, strip, ignore, where)
    model = _build_and_load(arch, state, where)
    normalize = cfg.get("feat_extract_norm", _HF_DEFAULTS["feat_extract_norm"]) == "layer"
    return model, _info("huggingface", arch, normalize)


# --------------------------------------------------------------------------------------------
# fairseq format

# fairseq Wav2Vec2Config / HubertConfig defaults for fields that may be absent.
_FAIRSEQ_DEFAULTS: dict[str, Any] = {
    "extractor_mode": "default", "encoder_layers": 12, "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12, "activation_fn": "gelu",
    "layer_type": "transformer", "dropout": 0.1, "attention_dropout": 0.1,
    "activation_dropout": 0.0, "encoder_layerdrop": 0.0, "dropout_input": 0.0,
    "layer_norm_first": False, "conv_bias": False, "conv_pos": 128, "conv_pos_groups": 16,
    "conv_feature_layers": "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]",
}
_FAIRSEQ_HEADS = frozenset({
    "mask_emb", "quantizer", "project_q", "project_inp", "final_proj", "label_embs_concat",
    "target_glu", "proj",
})
_FAIRSEQ_FINETUNED_PREFIX = "w2v_encoder.w2v_model."
_FAIRSEQ_FINETUNED_HEAD = "w2v_encoder.proj."


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
    return _check_arch(arch, where)


def _fairseq_config_from_arch(arch: Mapping[str, Any], model_type: str,
                              final_dim: int) -> dict[str, Any]:
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


def _load_fairseq(path: Path) -> tuple[Wav2Vec2Model, SSLInfo]:
    where = str(path)
    ckpt = _torch_load(path)
    if not isinstance(ckpt, Mapping) or "model" not in ckpt:
        raise ModelError(f"{where}: not a fairseq checkpoint (expected a dict with 'model' "
                         f"and 'cfg')")
    model_cfg, normalize, finetuned = _fairseq_configs(ckpt, where)
    arch = _arch_from_fairseq_config(model_cfg, where)
    source = _tensor_dict(ckpt["model"], f"{where} ['model']")

    def strip(key: str) -> str:
        if finetuned and key.startswith(_FAIRSEQ_FINETUNED_PREFIX):
            return key[len(_FAIRSEQ_FINETUNED_PREFIX):]
        return key.removeprefix("w2v_model.")

    def ignore(name: str) -> bool:
        return name.split(".", 1)[0] in _FAIRSEQ_HEADS or name.startswith(
            _FAIRSEQ_FINETUNED_HEAD)

    conv_dim = arch["extractor_conv_layer_config"][-1][0]
    embed = arch["encoder_embed_dim"]
    if conv_dim == embed and not any(strip(k).startswith("post_extract_proj.") for k in source):
        # fairseq omits post_extract_proj when the conv output already has the model width.
        source["post_extract_proj.weight"] = torch.eye(embed)
        source["post_extract_proj.bias"] = torch.zeros(embed)
    ta_keys = _expected_shapes(arch, where)
    state = _remap(source, ta_keys, _fairseq_rules(arch["extractor_mode"]), strip, ignore, where)
    model = _build_and_load(arch, state, where)
    if normalize is None:
        normalize = arch["extractor_mode"] == "layer_norm"
    return model, _info("fairseq", arch, normalize)


# --------------------------------------------------------------------------------------------
# speechlm native format


def _load_native(directory: Path, cfg: dict[str, Any]) -> tuple[Wav2Vec2Model, SSLInfo]:
    where = str(directory)
    if cfg.get("kind") != KIND:
        raise ModelError(f"{where}: config.json describes a {cfg.get('kind')!r} model, "
                         f"not an {KIND!r}")
    version = cfg.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"{where}: unsupported format_version {version!r} "
                         f"(this speechlm reads version {FORMAT_VERSION})")
    arch = _check_arch(cfg.get("arch"), where)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelError(f"{where}: {WEIGHTS_NAME} is missing")
    model = _build_and_load(arch, _load_safetensors(weights), where)
    normalize = cfg.get("normalize_waveform")
    if normalize is None:
        normalize = arch["extractor_mode"] == "layer_norm"
    return model, _info("speechlm", arch, bool(normalize))


def _write_dir_atomic(target: Path, write: Callable[[Path], None]) -> None:
    """Fill a temporary directory beside ``target`` with ``write``, then rename it to ``target``.

    An existing empty directory or model directory (one with ``config.json``) is replaced.
    """
    if target.exists():
        if not target.is_dir():
            raise ModelError(f"{target}: exists and is not a directory")
        if any(target.iterdir()) and not (target / CONFIG_NAME).is_file():
            raise ModelError(f"{target}: refusing to replace a non-empty directory that "
                             f"holds no {CONFIG_NAME}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        write(tmp)
        os.chmod(tmp, 0o755)
        if target.exists():
            old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except OSError:
                os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2)
    # Put all-integer lists such as conv layer triples on one line (JSON strings hold no
    # raw newlines, so only indented lists match).
    text = re.sub(r"\[\n\s*(-?\d+(?:,\n\s*-?\d+)*)\n\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    path.write_text(text + "\n", encoding="utf-8")


def _save_safetensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    safetensors.torch.save_file(data, str(path), metadata={"format": "pt"})


def save_ssl_model(model: Wav2Vec2Model, arch: Mapping[str, Any], path: str | os.PathLike, *,
                   normalize_waveform: bool | None = None) -> None:
    """Write ``model`` in the speechlm-native format, atomically.

    The directory gets ``config.json`` (``{"kind": "ssl_encoder", "format_version": 1,
    "arch": arch, "normalize_waveform": ...}``) and ``model.safetensors`` with
    ``model.state_dict()``. It is written into a temporary directory beside ``path`` and then
    renamed, so readers never see a half-written model.

    Args:
        model: The torchaudio model.
        arch: Keyword arguments of :func:`torchaudio.models.wav2vec2_model` that build a model
            with exactly ``model``'s weights (e.g. ``SSLInfo.arch``).
        path: Target directory; an existing model directory there is replaced.
        normalize_waveform: Stored for :attr:`SSLInfo.normalize_waveform`; ``None`` means
            "derive from ``arch``" (true for a ``layer_norm`` feature extractor).

    Raises:
        ModelError: ``arch`` is invalid or does not match the model's weights, or ``path``
            is a file or a non-empty directory that is not a model directory.
    """
    target = Path(path)
    where = str(target)
    arch = _check_arch(arch, where)
    shapes = _expected_shapes(arch, where)
    state = model.state_dict()
    missing = [k for k in shapes if k not in state]
    unexpected = [k for k in state if k not in shapes]
    if missing or unexpected:
        raise ModelError(f"{where}: the model does not match arch: missing "
                         f"{_brief(missing) or 'none'}; unexpected {_brief(unexpected) or 'none'}")
    for key, shape in shapes.items():
        if state[key].shape != shape:
            raise ModelError(f"{where}: shape mismatch for {key}: model has "
                             f"{list(state[key].shape)}, arch implies {list(shape)}")
    config: dict[str, Any] = {"kind": KIND, "format_version": FORMAT_VERSION,
                              "arch": _arch_to_json(arch)}
    if normalize_waveform is not None:
        config["normalize_waveform"] = bool(normalize_waveform)

    def write(tmp: Path) -> None:
        _save_safetensors(tmp / WEIGHTS_NAME, state)
        _write_json(tmp / CONFIG_NAME, config)

    _write_dir_atomic(target, write)
    _LG.info("saved SSL encoder to %s", target)


# --------------------------------------------------------------------------------------------
# Public loading entry point


def _info(source_format: SourceFormat, arch: dict[str, Any], normalize: bool) -> SSLInfo:
    return SSLInfo(source_format=source_format, num_layers=arch["encoder_num_layers"],
                   dim=arch["encoder_embed_dim"], normalize_waveform=bool(normalize),
                   arch=arch)


def load_ssl_model(path: str | os.PathLike) -> tuple[Wav2Vec2Model, SSLInfo]:
    """Load a HuBERT / wav2vec 2.0-architecture encoder from a local checkpoint.

    Args:
        path: A Hugging Face model directory (``config.json`` + ``model.safetensors`` or
            ``pytorch_model.bin``), a fairseq checkpoint file (``.pt``), or a directory written
            by :func:`save_ssl_model`.

    Returns:
        ``(model, info)``: the torchaudio model on CPU in eval mode (float32, no heads) and an
        :class:`SSLInfo` describing it.

    Raises:
        ModelError: The path is missing, its format is unknown or unsupported, or the weights
            do not match the config (missing / unexpected keys, shape mismatch).
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such file or directory")
    if p.is_dir():
        config_path = p / CONFIG_NAME
        if not config_path.is_file():
            hint = ""
            checkpoints = sorted(q.name for q in p.glob("*.pt"))
            if checkpoints:
                hint = f"; for a fairseq checkpoint pass the file, e.g. {p / checkpoints[0]}"
            raise ModelError(f"{p}: not a model directory: {CONFIG_NAME} is missing{hint}")
        cfg = _read_json(config_path)
        if "kind" in cfg:
            model, info = _load_native(p, cfg)
        elif "model_type" in cfg:
            model, info = _load_hf(p, cfg)
        else:
            raise ModelError(f"{p}: unknown model format: {CONFIG_NAME} has neither 'kind' "
                             f"(speechlm) nor 'model_type' (Hugging Face)")
    elif p.suffix in (".safetensors", ".json"):
        raise ModelError(f"{p}: pass the model directory, not one of its files")
    else:
        model, info = _load_fairseq(p)
    _LG.info("loaded %s SSL encoder from %s: %d layers, dim %d, normalize_waveform=%s",
             info.source_format, p, info.num_layers, info.dim, info.normalize_waveform)
    return model, info


# --------------------------------------------------------------------------------------------
# Feature extraction


def _conv_geometry(model: Wav2Vec2Model) -> tuple[int, int]:
    """(receptive field, total stride) of the convolutional feature extractor, in samples."""
    field_, stride = 1, 1
    for block in model.feature_extractor.conv_layers:
        field_ += (block.kernel_size - 1) * stride
        stride *= block.stride
    return field_, stride


def _normalize_waveform(wav: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Zero mean, unit variance per item over its valid samples (as fairseq's
    ``F.layer_norm(wav, wav.shape)``); padding is set to zero."""
    if lengths is None:
        return torch.nn.functional.layer_norm(wav, wav.shape[-1:])
    valid = torch.arange(wav.shape[1], device=wav.device)[None, :] < lengths[:, None]
    count = lengths.clamp(min=1).to(wav.dtype)[:, None]
    mean = (wav * valid).sum(dim=1, keepdim=True) / count
    centered = (wav - mean) * valid
    var = centered.square().sum(dim=1, keepdim=True) / count
    return centered * torch.rsqrt(var + 1e-5)


def extract_layer(model: Wav2Vec2Model, wav: torch.Tensor, layer: int,
                  lengths: torch.Tensor | None = None,
                  normalize: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Hidden states of one transformer layer for a batch of 16 kHz waveforms.

    Layers are counted as in the HuBERT papers: layer ``L`` (``1..num_layers``) is the output
    of the ``L``-th transformer block, and only blocks ``1..L`` are computed. Layer ``0`` is the
    input to the first block -- the projected CNN features plus the convolutional positional
    embedding (what Hugging Face returns as ``hidden_states[0]``). The last layer is the raw
    block output (no final layer norm for "stable layer norm" models).

    The model is run in eval mode under :func:`torch.inference_mode` (a model in training mode
    is switched back afterwards). Frames past an item's valid length are set to zero. Models
    with a group-norm feature extractor (HuBERT/wav2vec 2.0 base) normalise over the whole
    padded input, so their features for a padded item differ slightly from an unpadded pass.

    Args:
        model: A model from :func:`load_ssl_model`.
        wav: Waveforms ``[B, T]``, float, 16 kHz.
        layer: Layer index, ``0..num_layers``.
        lengths: Valid samples per item ``[B]`` (integer), or ``None`` if all ``T`` are valid.
            An item shorter than one frame (400 samples) gets 0 frames.
        normalize: Normalise each item to zero mean, unit variance over its valid samples
            first (use :attr:`SSLInfo.normalize_waveform`).

    Returns:
        ``(features, frame_lengths)``: features ``[B, F, D]`` with
        ``F = (T - 400) // 320 + 1`` for the standard front end, and valid frames per item
        ``[B]`` (``None`` when ``lengths`` is ``None``).

    Raises:
        ValueError: ``layer`` is out of range (the message names the valid range), ``wav`` is
            not a float ``[B, T]`` tensor, ``T`` is shorter than one frame, or ``lengths``
            is malformed.
    """
    num_layers = len(model.encoder.transformer.layers)
    try:
        index = -1 if isinstance(layer, bool) else operator.index(layer)
    except TypeError:
        index = -1
    if not 0 <= index <= num_layers:
        raise ValueError(f"layer {layer!r} is out of range: valid layers are 0..{num_layers} "
                         f"(0 = transformer input, {num_layers} = last block)")
    layer = index
    if wav.ndim != 2 or not wav.is_floating_point():
        raise ValueError(f"expected float waveforms [B, T], got {wav.dtype} "
                         f"{list(wav.shape)}")
    param = next(model.parameters())
    wav = wav.to(device=param.device, dtype=param.dtype)
    batch, num_samples = wav.shape
    field_, _ = _conv_geometry(model)
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=param.device)
        if lengths.shape != (batch,) or lengths.is_floating_point():
            raise ValueError(f"lengths must be an integer tensor [{batch}], got "
                             f"{lengths.dtype} {list(lengths.shape)}")
        if batch and (int(lengths.max()) > num_samples or int(lengths.min()) < 0):
            raise ValueError(f"lengths must lie in 0..{num_samples} samples, got "
                             f"{int(lengths.min())}..{int(lengths.max())}")
    if num_samples < field_:
        raise ValueError(f"waveform of {num_samples} samples is shorter than one frame "
                         f"({field_} samples)")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if normalize:
                wav = _normalize_waveform(wav, lengths)
            if layer == 0:
                x, frames = model.feature_extractor(wav, lengths)
                x, _ = model.encoder._preprocess(x, frames)
                x = model.encoder.transformer._preprocess(x)
            else:
                outputs, frames = model.extract_features(wav, lengths, num_layers=layer)
                x = outputs[layer - 1]
            if frames is not None:
                valid = torch.arange(x.shape[1], device=x.device)[None, :] < frames[:, None]
                x = x.masked_fill(~valid[..., None], 0.0)
    finally:
        model.train(was_training)
    return x, frames


# --------------------------------------------------------------------------------------------
# Tiny checkpoints in the real formats


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
    return _check_arch(arch, "tiny")


def _tiny_model(arch: Mapping[str, Any], seed: int) -> Wav2Vec2Model:
    """Random model; every weight (norms included) is perturbed so that swapped keys show."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = wav2vec2_model(**arch)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn_like(param))
    return model.eval()


def _check_model_type(model_type: str) -> None:
    if model_type not in _HF_MODEL_TYPES:
        raise ValueError(f"model_type must be one of {', '.join(_HF_MODEL_TYPES)}, "
                         f"got {model_type!r}")


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
    _check_model_type(model_type)
    arch = _tiny_arch(layer_norm=model_type == "wav2vec2")
    model = _tiny_model(arch, seed)
    tensors = {_apply_rules(_HF_RULES, k): v for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(seed + 1)
    tensors["masked_spec_embed"] = torch.rand(arch["encoder_embed_dim"], generator=gen)
    config = _hf_config_from_arch(arch, model_type)

    def write(tmp: Path) -> None:
        _save_safetensors(tmp / "model.safetensors", tensors)
        _write_json(tmp / CONFIG_NAME, config)

    _write_dir_atomic(Path(path), write)


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
    _check_model_type(model_type)
    layer_norm = model_type == "wav2vec2"
    arch = _tiny_arch(layer_norm=layer_norm)
    model = _tiny_model(arch, seed)
    rules = _fairseq_rules(arch["extractor_mode"])
    state = {_apply_rules(rules, k): v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(seed + 1)
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
        state["quantizer.vars"] = torch.randn(1, groups * num_vars, var_dim, generator=gen)
        state["quantizer.weight_proj.weight"] = torch.randn(groups * num_vars,
                                                            arch["extractor_conv_layer_config"][-1][0],
                                                            generator=gen)
        state["quantizer.weight_proj.bias"] = torch.zeros(groups * num_vars)
        state["project_q.weight"] = torch.randn(final_dim, groups * var_dim, generator=gen)
        state["project_q.bias"] = torch.zeros(final_dim)
        task = {"_name": "audio_pretraining", "data": "", "sample_rate": 16000,
                "normalize": layer_norm}
    ckpt = {
        "args": None,
        "cfg": {"_name": None, "common": {"seed": seed}, "task": task,
                "model": _fairseq_config_from_arch(arch, model_type, final_dim)},
        "model": state,
        "criterion": None,
        "optimizer_history": [{"criterion_name": "ModelCriterion", "optimizer_name": "Adam",
                               "lr_scheduler_state": {"best": None}, "num_updates": 0}],
        "extra_state": {"epoch": 1},
        "last_optimizer_state": None,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        torch.save(ckpt, tmp_name)
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
