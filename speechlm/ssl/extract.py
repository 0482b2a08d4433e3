""":func:`extract_layer`: the output of one transformer block for a batch of 16 kHz waveforms."""

from __future__ import annotations

import operator

import torch
from torchaudio.models import Wav2Vec2Model


def _conv_geometry(model: Wav2Vec2Model) -> tuple[int, int]:
    """(receptive field, total stride) of the feature extractor, in samples."""
    geometry = getattr(model.feature_extractor, "geometry", None)
    if geometry is not None:  # the log-mel front end
        return geometry
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
