"""Shared pieces of the SSL loaders: :class:`SSLInfo`, architecture dicts, strict loading.

An *architecture dict* ("arch") holds the keyword arguments of
:func:`torchaudio.models.wav2vec2_model`; every format is converted to one, validated by
:func:`check_arch`, and the model is built from it with :func:`build_and_load`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torchaudio.models import Wav2Vec2Model, wav2vec2_model

from speechlm.errors import ModelError
from speechlm.ssl.logmel import LOGMEL, LOGMEL_CMN, LOGMEL_MODES, LogMelFrontEnd

KIND = "ssl_encoder"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

SourceFormat = Literal["huggingface", "fairseq", "speechlm"]

# Keyword arguments of torchaudio.models.wav2vec2_model, in order.
ARCH_KEYS: tuple[str, ...] = tuple(inspect.signature(wav2vec2_model).parameters)
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


def make_info(source_format: SourceFormat, arch: dict[str, Any],
              normalize: bool | None) -> SSLInfo:
    """:class:`SSLInfo` for ``arch``; ``normalize=None`` means "derive from ``arch``" (true for
    a ``layer_norm`` feature extractor, i.e. "stable layer norm" models)."""
    if normalize is None:
        normalize = arch["extractor_mode"] == "layer_norm"
    return SSLInfo(source_format=source_format, num_layers=arch["encoder_num_layers"],
                   dim=arch["encoder_embed_dim"], normalize_waveform=bool(normalize),
                   arch=arch)


# --------------------------------------------------------------------------------------------
# Error-message helpers


def brief(items: list[str]) -> str:
    """The first few ``items``, comma-separated, with ``(+N more)`` for the rest."""
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def one_line(err: BaseException) -> str:
    """The first line of ``err``'s message (its type name if it has none)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def raise_key_problems(where: str, missing: list[str], unexpected: list[str]) -> None:
    """Raise :class:`ModelError` naming ``missing`` and ``unexpected`` weights, if any."""
    problems = []
    if missing:
        problems.append(f"missing encoder weights: {brief(missing)}")
    if unexpected:
        problems.append(f"unexpected encoder weights: {brief(unexpected)}")
    if problems:
        raise ModelError(f"{where}: checkpoint does not match its config: " + "; ".join(problems))


# --------------------------------------------------------------------------------------------
# Architecture dicts


def check_arch(arch: Any, where: str) -> dict[str, Any]:
    """Validate and normalise ``wav2vec2_model`` keyword arguments (conv config as int tuples)."""
    if not isinstance(arch, Mapping):
        raise ModelError(f"{where}: 'arch' must be a JSON object, got {type(arch).__name__}")
    unknown = sorted(set(arch) - set(ARCH_KEYS))
    if unknown:
        raise ModelError(f"{where}: unknown architecture fields {brief(unknown)}; "
                         f"expected the arguments of torchaudio.models.wav2vec2_model")
    missing = [k for k in ARCH_KEYS if k not in arch and k != "aux_num_out"]
    if missing:
        raise ModelError(f"{where}: architecture fields missing: {brief(missing)}")
    out = {k: arch.get(k) for k in ARCH_KEYS}
    if out["extractor_mode"] not in ("group_norm", "layer_norm", *LOGMEL_MODES):
        raise ModelError(f"{where}: extractor_mode must be 'group_norm', 'layer_norm', "
                         f"'{LOGMEL}' or '{LOGMEL_CMN}', got {out['extractor_mode']!r}")
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
    if out["extractor_mode"] in LOGMEL_MODES and (len(conv) != 1 or conv[0][1:] != (400, 320)):
        raise ModelError(f"{where}: a '{out['extractor_mode']}' front end needs "
                         f"extractor_conv_layer_config [[n_mels, 400, 320]], got "
                         f"{[list(c) for c in conv]}")
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


def arch_to_json(arch: Mapping[str, Any]) -> dict[str, Any]:
    """``arch`` with tuples turned into lists, ready for ``json.dumps``."""
    out = dict(arch)
    out["extractor_conv_layer_config"] = [list(t) for t in arch["extractor_conv_layer_config"]]
    return out


def build_model(arch: Mapping[str, Any]) -> Wav2Vec2Model:
    """``wav2vec2_model(**arch)``; with ``extractor_mode="logmel"`` (or ``"logmel_cmn"``) the CNN
    is replaced by a :class:`~speechlm.ssl.logmel.LogMelFrontEnd` of
    ``extractor_conv_layer_config[0][0]`` bands (with mean normalisation for ``logmel_cmn``)
    (the feature projection then takes that many inputs)."""
    if arch["extractor_mode"] not in LOGMEL_MODES:
        return wav2vec2_model(**arch)
    (n_mels, window, hop), = arch["extractor_conv_layer_config"]
    model = wav2vec2_model(**{**arch, "extractor_mode": "group_norm",
                              "extractor_conv_layer_config": [(n_mels, 1, 1)]})
    with torch.device("cpu"):  # buffers computed from the config, even under a meta device
        front = LogMelFrontEnd(n_mels, window, hop, cmn=arch["extractor_mode"] == LOGMEL_CMN)
    model.feature_extractor = front
    return model


def _meta_model(arch: Mapping[str, Any], where: str) -> Wav2Vec2Model:
    """``build_model(arch)`` on the meta device (no memory, no initialisation)."""
    try:
        with torch.device("meta"):
            return build_model(arch)
    except (ValueError, TypeError, RuntimeError, AssertionError, ZeroDivisionError) as err:
        raise ModelError(f"{where}: invalid architecture ({one_line(err)})") from None


# Encoders up to this many transformer parameters are built on the CPU, initialised and all:
# 0.03 s for the bundled phone encoder, where building it on the meta device cost 0.95 s,
# because weight_norm's norm on meta tensors goes through torch's reference decompositions,
# which import torch._dynamo (that import was most of `SpeechLM.load`). Larger ones (HuBERT
# base: 85M) are built on the meta device: no memory and no initialisation for weights that
# are overwritten by the checkpoint anyway.
CPU_BUILD_MAX_PARAMS = 30_000_000


def _transformer_params(arch: Mapping[str, Any]) -> int:
    """Approximate weights of the transformer layers (attention 4 d^2, feed-forward 2 d f)."""
    d, f = arch["encoder_embed_dim"], arch["encoder_ff_interm_features"]
    return arch["encoder_num_layers"] * (4 * d * d + 2 * d * f)


def _empty_model(arch: Mapping[str, Any], where: str) -> Wav2Vec2Model:
    """Build the model for loading: on the CPU when small (see :data:`CPU_BUILD_MAX_PARAMS`),
    else without initialising weights (every weight is loaded afterwards)."""
    if _transformer_params(arch) <= CPU_BUILD_MAX_PARAMS:
        try:
            with torch.device("cpu"):
                return build_model(arch)
        except (ValueError, TypeError, RuntimeError, AssertionError, ZeroDivisionError) as err:
            raise ModelError(f"{where}: invalid architecture ({one_line(err)})") from None
    model = _meta_model(arch, where).to_empty(device="cpu")
    if isinstance(model.feature_extractor, LogMelFrontEnd):  # to_empty wiped its buffers
        front = model.feature_extractor
        model.feature_extractor = LogMelFrontEnd(front.n_mels, front.window, front.hop,
                                                 cmn=front.cmn)
    return model


def expected_shapes(arch: Mapping[str, Any], where: str) -> dict[str, torch.Size]:
    """The torchaudio state-dict keys and weight shapes that ``arch`` implies."""
    small = _transformer_params(arch) <= CPU_BUILD_MAX_PARAMS
    model = _empty_model(arch, where) if small else _meta_model(arch, where)
    return {k: v.shape for k, v in model.state_dict().items()}


def build_and_load(arch: dict[str, Any], state: Mapping[str, torch.Tensor],
                   where: str) -> Wav2Vec2Model:
    """Build ``wav2vec2_model(**arch)`` and load ``state`` (torchaudio key names) strictly."""
    model = _empty_model(arch, where)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    raise_key_problems(where, missing, unexpected)
    for key, ref in expected.items():
        tensor = state[key]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise ModelError(f"{where}: weight {key} is not a floating-point tensor")
        if tensor.shape != ref.shape:
            raise ModelError(f"{where}: shape mismatch for {key}: checkpoint has "
                             f"{list(tensor.shape)}, the config implies {list(ref.shape)}")
    model.load_state_dict(dict(state), strict=True)
    return model.eval()
