"""A phone-supervised encoder: an SSL-architecture encoder plus a frame phone classifier.

On disk it is a speechlm-native SSL directory (:func:`speechlm.ssl.save_ssl_model`'s
``config.json`` + ``model.safetensors``, so every SSL tool can load its layers) with two
additions::

    config.json       ... + "phone_head": {"phones": ["AA", ..., "SIL"],
                                     "weights": "head.safetensors"}
    head.safetensors  weight [P, D], bias [P]: frame logits from the encoder's output

and, when the training had a CTC objective (optional; older directories lack it)::

    config.json       ... + "ctc_head": {"weights": "ctc.safetensors"}
    ctc.safetensors   weight [P + 1, D], bias [P + 1]: CTC logits, the blank last

The encoder's output is the last block's output after the final layer norm (what
``Wav2Vec2Model.forward`` returns), each head is one linear layer. :class:`PhoneEncoder` is the
feature encoder the tokenizer runs: phone posteriors, log-posteriors, the CTC head's posteriors
(``"ctc"``: the phone-rate units of :mod:`speechlm.tokenizer`) or one hidden layer.

**Vocal-tract length normalisation at test time** (:meth:`PhoneEncoder.with_warp`; off by
default): a log-mel phone encoder can read its input through a frequency-warped filterbank
(:func:`speechlm.ssl.logmel.warp_frequencies`). ``warp="auto"`` picks, per input, the warp of
:data:`WARPS` under which the encoder is most certain: the lowest mean entropy of its frame
phone posteriors (over the input's first window), the blind choice of the classic VTLN
search, which needs no labels and no speaker enrolment. It costs one encoder pass per grid
point on the first window. The units keep their unit space: the encoder, head and centroids are
the same, only the input is normalised.

**A speed ensemble at test time** (:meth:`PhoneEncoder.with_speeds`; off by default): the
encoder reads the input at each of several speeds (resampled, so the spectrum and the tempo
both change, as the training's speed perturbation does), each pass's frame log-posteriors are
read back at the original frames' times (linear interpolation) and averaged, and the output
is the normalised average (a product of the passes' posteriors). The passes disagree where the
encoder is unsure, so the average is a small ensemble at the cost of one encoder pass per
speed. The units keep their unit space, as under a warp.
"""

from __future__ import annotations

import copy
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torchaudio.models import Wav2Vec2Model

from speechlm.audio import FRAME_SIZE, HOP_SIZE, SAMPLE_RATE
from speechlm.errors import ModelError

HEAD_KEY = "phone_head"
HEAD_FILE = "head.safetensors"
CTC_KEY = "ctc_head"
CTC_FILE = "ctc.safetensors"
OUTPUTS = ("posteriors", "logprobs", "ctc")  # besides an integer layer
WINDOW_FRAMES = 400  # frames per window on long inputs (8 s)
CONTEXT_FRAMES = 50  # context each side of a window (1 s)
def _frames(num_samples: int) -> int:
    """Frames the front end makes of ``num_samples`` (:func:`speechlm.features.num_frames`,
    which imports this module)."""
    return 0 if num_samples < FRAME_SIZE else (num_samples - FRAME_SIZE) // HOP_SIZE + 1


WARPS = (0.80, 0.85, 0.90, 0.95, 1.00, 1.05, 1.10, 1.15, 1.20)  # warp="auto": the VTLN grid
WARP_RANGE = (0.7, 1.4)  # a fixed warp must lie in this range
SPEED_RANGE = (0.7, 1.4)  # with_speeds: each speed factor must lie in this range


def parse_warp(value: str | float | None) -> float | str | None:
    """A warp setting: ``None``/``"none"``/1 (off), ``"auto"`` or a factor in
    :data:`WARP_RANGE`.

    Raises:
        ModelError: anything else.
    """
    if value is None or value == "none":
        return None
    if value == "auto":
        return "auto"
    try:
        a = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"warp {value!r}: expected 'auto', 'none' or a factor in "
                         f"[{WARP_RANGE[0]}, {WARP_RANGE[1]}]") from None
    if not WARP_RANGE[0] <= a <= WARP_RANGE[1]:
        raise ModelError(f"warp {value!r}: expected a factor in [{WARP_RANGE[0]}, "
                         f"{WARP_RANGE[1]}], 'auto' or 'none'")
    return None if a == 1.0 else a


def parse_speeds(value: str | Sequence[float] | None) -> tuple[float, ...] | None:
    """A speed-ensemble setting: ``None``/``"none"``/``"1"`` (off), or speed factors in
    :data:`SPEED_RANGE` (a comma-separated string or a sequence); returned sorted without
    repeats (None when only 1 is left).

    Raises:
        ModelError: anything else.
    """
    if value is None or value == "none":
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    expected = (f"expected 'none' or comma-separated speed factors in [{SPEED_RANGE[0]}, "
                f"{SPEED_RANGE[1]}], e.g. 0.85,1,1.15")
    try:
        speeds = [float(x) for x in parts if str(x).strip()]
    except (TypeError, ValueError):
        raise ModelError(f"speeds {value!r}: {expected}") from None
    if not speeds or not all(SPEED_RANGE[0] <= a <= SPEED_RANGE[1] for a in speeds):
        raise ModelError(f"speeds {value!r}: {expected}")
    out = tuple(sorted(set(speeds)))
    return None if out == (1.0,) else out


def at_original_frames(x: torch.Tensor, frames: int, speed: float) -> torch.Tensor:
    """Rows ``x`` ``[F_s, D]`` of an input played ``speed`` times faster, read at the times of
    the original input's ``frames`` frame centres (linear interpolation between the nearest
    two rows; the ends held)."""
    if x.shape[0] == 0:
        return x.new_zeros(frames, x.shape[1])
    centres = torch.arange(frames, dtype=torch.float64) * HOP_SIZE + FRAME_SIZE / 2
    pos = ((centres / speed - FRAME_SIZE / 2) / HOP_SIZE).clamp(0, x.shape[0] - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=x.shape[0] - 1)
    w = (pos - lo).to(x.dtype)[:, None]
    return x[lo] * (1 - w) + x[hi] * w


def save_phone_encoder(path: str | os.PathLike, encoder: Wav2Vec2Model, arch: Mapping[str, Any],
                       head: Mapping[str, torch.Tensor], phones: Sequence[str],
                       training: Mapping[str, Any] | None = None,
                       ctc: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write the encoder, its head (and its CTC head, ``ctc``: weight ``[P + 1, D]`` and bias,
    the blank last) and its phone list into ``path``, atomically."""
    from speechlm.ssl.common import CONFIG_NAME, FORMAT_VERSION, KIND, WEIGHTS_NAME, arch_to_json
    from speechlm.ssl.files import save_safetensors, write_dir_atomic, write_json

    w, b = head["weight"], head["bias"]
    if w.shape[0] != len(phones) or b.shape != (len(phones),):
        raise ModelError(f"phone head of shape {list(w.shape)} does not fit {len(phones)} phones")
    config = {"kind": KIND, "format_version": FORMAT_VERSION, "arch": arch_to_json(arch),
              "normalize_waveform": False, "training": dict(training or {}),
              HEAD_KEY: {"phones": list(phones), "weights": HEAD_FILE}}
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    head_state = {"weight": w.detach().cpu().contiguous(), "bias": b.detach().cpu().contiguous()}
    ctc_state = None
    if ctc is not None:
        cw, cb = ctc["weight"], ctc["bias"]
        if cw.shape != (len(phones) + 1, w.shape[1]) or cb.shape != (len(phones) + 1,):
            raise ModelError(f"CTC head of shape {list(cw.shape)} does not fit {len(phones)} "
                             "phones and a blank")
        ctc_state = {"weight": cw.detach().cpu().contiguous(),
                     "bias": cb.detach().cpu().contiguous()}
        config[CTC_KEY] = {"weights": CTC_FILE}

    def write(tmp: Path) -> None:
        save_safetensors(tmp / WEIGHTS_NAME, state)
        save_safetensors(tmp / HEAD_FILE, head_state)
        if ctc_state is not None:
            save_safetensors(tmp / CTC_FILE, ctc_state)
        write_json(tmp / CONFIG_NAME, config)

    target = Path(path)
    write_dir_atomic(target, write)
    return target


def copy_phone_encoder(src: str | os.PathLike, dst: str | os.PathLike,
                       half: bool = False) -> None:
    """Copy the files of a phone encoder directory (into a new directory ``dst``); with
    ``half`` the weights are stored as float16 (half the size; loaded back as float32)."""
    from speechlm.ssl.common import CONFIG_NAME, WEIGHTS_NAME
    from speechlm.ssl.files import load_safetensors, save_safetensors

    dst = Path(dst)
    dst.mkdir(parents=True)
    shutil.copyfile(Path(src) / CONFIG_NAME, dst / CONFIG_NAME)
    names = [WEIGHTS_NAME, HEAD_FILE] + ([CTC_FILE] if (Path(src) / CTC_FILE).exists() else [])
    for name in names:
        if half:
            save_safetensors(dst / name, {k: v.half() if v.is_floating_point() else v
                                          for k, v in load_safetensors(Path(src) / name).items()})
        else:
            shutil.copyfile(Path(src) / name, dst / name)


class PhoneEncoder:
    """Frame features of a phone encoder: ``output`` is ``"posteriors"`` (softmax over the
    phones), ``"logprobs"`` (their log) or an integer layer (as :class:`SSLEncoder`).

    The encoder was trained on crops of a few seconds, so an input longer than
    ``WINDOW_FRAMES + 2 * context_frames`` frames is processed in windows of ``WINDOW_FRAMES``
    with ``context_frames`` of context each side (which also keeps attention's cost linear in
    the length); the tokenizer chunks files the same way.
    """

    sample_rate = SAMPLE_RATE
    frame_rate = SAMPLE_RATE / HOP_SIZE
    context_frames = CONTEXT_FRAMES

    def __init__(self, path: str | os.PathLike, output: str | int = "posteriors",
                 name: str | None = None):
        from speechlm import ssl
        from speechlm.ssl.files import load_safetensors, read_json

        self.path = str(path)
        here = Path(path).resolve()
        # a training run's best weights live in RUN/model: the run names the encoder
        self.name = name or (here.parent.name if here.name == "model" else here.name)
        cfg = read_json(Path(path) / "config.json")
        head_cfg = cfg.get(HEAD_KEY)
        if not isinstance(head_cfg, dict) or not head_cfg.get("phones"):
            raise ModelError(f"{path}: not a phone encoder (config.json has no {HEAD_KEY!r})")
        self.model, self.info = ssl.load_ssl_model(path)
        self.model.eval()
        self.phones: list[str] = list(head_cfg["phones"])
        head = load_safetensors(Path(path) / head_cfg.get("weights", HEAD_FILE))
        if set(head) != {"weight", "bias"} or head["weight"].shape != (len(self.phones),
                                                                       self.info.dim):
            raise ModelError(f"{path}: {HEAD_FILE} must hold weight [{len(self.phones)}, "
                             f"{self.info.dim}] and bias")
        self.head = torch.nn.Linear(self.info.dim, len(self.phones))
        self.head.load_state_dict(head)
        self.head.eval()
        self.ctc: torch.nn.Linear | None = None
        ctc_cfg = cfg.get(CTC_KEY)
        if isinstance(ctc_cfg, dict):
            ctc = load_safetensors(Path(path) / ctc_cfg.get("weights", CTC_FILE))
            if set(ctc) != {"weight", "bias"} or ctc["weight"].shape != (len(self.phones) + 1,
                                                                         self.info.dim):
                raise ModelError(f"{path}: {CTC_FILE} must hold weight [{len(self.phones) + 1}, "
                                 f"{self.info.dim}] and bias")
            self.ctc = torch.nn.Linear(self.info.dim, len(self.phones) + 1)
            self.ctc.load_state_dict(ctc)
            self.ctc.eval()
        if isinstance(output, str) and output.lstrip("-").isdigit():
            output = int(output)
        if isinstance(output, int):
            if not 0 <= output <= self.info.num_layers:
                raise ModelError(f"layer {output} out of range for {path}: the model has layers "
                                 f"0..{self.info.num_layers}")
            self.dim = self.info.dim
        elif output == "ctc":
            if self.ctc is None:
                raise ModelError(f"{path}: output 'ctc' needs a CTC head ({CTC_FILE}); this "
                                 "encoder was exported without one")
            self.dim = len(self.phones) + 1
        elif output in OUTPUTS:
            self.dim = len(self.phones)
        else:
            raise ModelError(f"phone encoder output {output!r}: expected posteriors, logprobs, "
                             "ctc or a layer number")
        self.output = output
        # the CTC blank's feature index: the tokenizer fills blank frames (phone-rate units)
        self.blank: int | None = len(self.phones) if output == "ctc" else None
        self.warp: float | str | None = None  # with_warp: None (off), a factor or "auto"
        self.speeds: tuple[float, ...] | None = None  # with_speeds: None (off) or the factors
        self._local = threading.local()

    def with_warp(self, warp: str | float | None) -> PhoneEncoder:
        """The same encoder (weights shared) reading its input through a warped filterbank:
        ``warp`` as :func:`parse_warp` takes it (``"auto"``: per input, the warp of
        :data:`WARPS` with the least posterior entropy).

        Raises:
            ModelError: a bad ``warp``, or an encoder without a log-mel front end or with a
                hidden-layer output.
        """
        from speechlm.ssl.logmel import LogMelFrontEnd

        warp = parse_warp(warp)
        if warp is not None:
            if not isinstance(self.model.feature_extractor, LogMelFrontEnd):
                raise ModelError(f"{self.path}: --warp needs a log-mel front end; this encoder "
                                 "reads the waveform with a CNN")
            if isinstance(self.output, int):
                raise ModelError("--warp applies to the posteriors, logprobs and ctc outputs, "
                                 "not to a hidden layer")
            if warp == "auto" and self.speeds is not None:
                raise ModelError("--warp auto and --speeds do not combine; give a fixed warp")
        other = copy.copy(self)
        other.warp = warp
        other._local = threading.local()
        return other

    def with_speeds(self, speeds: str | Sequence[float] | None) -> PhoneEncoder:
        """The same encoder (weights shared) averaging its frame log-posteriors over the input
        read at each of ``speeds`` (:func:`parse_speeds`; None/``"none"``: off): see the
        module's docstring.

        Raises:
            ModelError: bad ``speeds``, an output other than the posteriors or log-posteriors,
                or ``warp="auto"`` already set.
        """
        speeds = parse_speeds(speeds)
        if speeds is not None:
            if self.output not in ("posteriors", "logprobs"):
                raise ModelError(f"--speeds applies to the posteriors and logprobs outputs, not "
                                 f"to {self.output!r}")
            if self.warp == "auto":
                raise ModelError("--speeds and --warp auto do not combine; give a fixed warp")
        other = copy.copy(self)
        other.speeds = speeds
        other._local = threading.local()
        return other

    def _speed_logprobs(self, wav: torch.Tensor) -> torch.Tensor:
        """Mean frame log-posteriors ``[F, P]`` of ``wav`` ``[1, T]`` over :attr:`speeds`, at
        ``wav``'s own frames (call it under ``torch.inference_mode``)."""
        from speechlm.audio import resample

        total = _frames(wav.shape[-1])
        acc = torch.zeros(total, len(self.phones))
        for speed in self.speeds or (1.0,):
            if speed == 1.0:
                x = wav
            else:  # in float32 even under a bfloat16 autocast: it only prepares the input
                with torch.autocast("cpu", enabled=False):
                    x = resample(wav.float(), round(SAMPLE_RATE * speed), SAMPLE_RATE)
            if x.shape[-1] < FRAME_SIZE:  # a short input read faster: one frame, padded
                x = torch.nn.functional.pad(x, (0, FRAME_SIZE - x.shape[-1]))
            lp = self._windowed(x, None, self.warp,
                                lambda h: self.head(h).float().log_softmax(-1))[0]
            acc += lp[:total] if speed == 1.0 else at_original_frames(lp, total, speed)
        return acc / len(self.speeds or (1.0,))

    def _ensembled(self, wav: torch.Tensor, lengths: torch.Tensor | None, log: bool
                   ) -> torch.Tensor:
        """Each item's :meth:`_speed_logprobs`, normalised (``log``: log-posteriors, else
        posteriors), padded back to the batch's frames with zeros."""
        res = torch.zeros(wav.shape[0], _frames(wav.shape[-1]), len(self.phones))
        with torch.inference_mode():
            for b in range(wav.shape[0]):
                n = int(lengths[b]) if lengths is not None else wav.shape[-1]
                if n < FRAME_SIZE:
                    continue
                lp = self._speed_logprobs(wav[b : b + 1, :n])
                res[b, : lp.shape[0]] = lp.log_softmax(-1) if log else lp.softmax(-1)
        return res

    @property
    def last_warp(self) -> float | None:
        """The warp ``"auto"`` chose for this thread's last input (None before any)."""
        return getattr(self._local, "warp", None)

    def _encode(self, wav: torch.Tensor, lengths: torch.Tensor | None, warp: float | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The encoder's output ``[B, F, D]`` (and valid frames) with the front end's
        filterbank warped by ``warp`` (None: the plain model)."""
        if warp is None or warp == 1.0:
            return self.model(wav.float(), lengths)
        feats, frames = self.model.feature_extractor(wav.float(), lengths, warp=warp)
        return self.model.encoder(feats, frames), frames

    def choose_warp(self, wav: torch.Tensor) -> float:
        """The warp of :data:`WARPS` under which the frame posteriors of ``wav`` ``[1, T]``
        (its first window) have the least mean entropy; kept as :attr:`last_warp`."""
        return self._choose(wav)[0]

    def _choose(self, wav: torch.Tensor) -> tuple[float, torch.Tensor, bool]:
        """(warp, its encoder output for the probed samples, whether they are all of ``wav``)."""
        total = _frames(wav.shape[-1])
        n = min(total, WINDOW_FRAMES + self.context_frames)
        whole = total <= WINDOW_FRAMES + 2 * self.context_frames
        if whole:
            n = total
        x = wav[:, : (n - 1) * HOP_SIZE + FRAME_SIZE].float()
        with torch.inference_mode():
            fe = self.model.feature_extractor
            feats = torch.cat([fe(x, None, warp=a)[0] for a in WARPS])  # [G, F, n_mels]
            hidden = self.model.encoder(feats, None)  # [G, F, D]
            logp = self.head(hidden).float().log_softmax(-1)
            entropy = -(logp.exp() * logp).sum(-1).mean(-1)  # [G]
        best = int(entropy.argmin())
        self._local.warp = WARPS[best]
        return WARPS[best], hidden[best : best + 1], whole

    def logits(self, wav: torch.Tensor, lengths: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frame phone logits ``[B, F, P]`` and valid frames per item (under a fixed warp;
        ``"auto"`` chooses per item; with :attr:`speeds`, the ensemble's log-posteriors)."""
        # per item (the ensemble, the auto warp): the valid frames follow from the lengths
        frames = None if lengths is None else torch.tensor([_frames(int(n)) for n in lengths])
        if self.speeds is not None:
            return self._ensembled(wav, lengths, log=True), frames
        if self.warp == "auto":
            x = self._per_item(wav, lengths, lambda h: h)
            with torch.inference_mode():
                return self.head(x), frames
        with torch.inference_mode():
            x, frames = self._encode(wav, lengths, self.warp)
            return self.head(x), frames

    def __call__(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if self.speeds is not None:
            return self._ensembled(wav, lengths, log=self.output == "logprobs")
        if self.warp == "auto":
            return self._per_item(wav, lengths, self._output)
        return self._windowed(wav, lengths, self.warp)

    def _per_item(self, wav: torch.Tensor, lengths: torch.Tensor | None, out) -> torch.Tensor:
        """``warp="auto"``: each item under its own warp (:meth:`choose_warp`), ``out``
        applied to its encoder output; items padded back to the batch's frames with zeros."""
        total = _frames(wav.shape[-1])
        rows = []
        for b in range(wav.shape[0]):
            n = int(lengths[b]) if lengths is not None else wav.shape[-1]
            w = wav[b : b + 1, :n]
            if n < FRAME_SIZE:
                rows.append(None)
                continue
            warp, hidden, whole = self._choose(w)
            if whole:
                with torch.inference_mode():
                    rows.append(out(hidden)[0])
            else:
                rows.append(self._windowed(w, None, warp, out)[0])
        dim = next((r.shape[-1] for r in rows if r is not None), self.dim)
        res = torch.zeros(wav.shape[0], total, dim)
        for b, r in enumerate(rows):
            if r is not None:
                res[b, : r.shape[0]] = r
        return res

    def _windowed(self, wav: torch.Tensor, lengths: torch.Tensor | None, warp: float | None,
                  out=None) -> torch.Tensor:
        total = _frames(wav.shape[-1])
        ctx = self.context_frames
        if lengths is not None or total <= WINDOW_FRAMES + 2 * ctx:
            return self._features(wav, lengths, warp, out)
        parts = []  # windows: attention cost grows with the square of the window
        for a in range(0, total, WINDOW_FRAMES):
            b = min(total, a + WINDOW_FRAMES)
            lo, hi = max(0, a - ctx), min(total, b + ctx)
            x = wav[:, lo * HOP_SIZE : (hi - 1) * HOP_SIZE + FRAME_SIZE]
            parts.append(self._features(x, None, warp, out)[:, a - lo : b - lo])
        return torch.cat(parts, dim=1)

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        """The chosen output (posteriors, logprobs or the CTC head's posteriors) of encoder
        output ``x``."""
        if self.output == "ctc":
            return self.ctc(x).softmax(-1)
        logits = self.head(x)
        return logits.softmax(-1) if self.output == "posteriors" else logits.log_softmax(-1)

    def _features(self, wav: torch.Tensor, lengths: torch.Tensor | None,
                  warp: float | None = None, out=None) -> torch.Tensor:
        from speechlm import ssl

        if isinstance(self.output, int):
            feats, _ = ssl.extract_layer(self.model, wav, self.output, lengths)
            return feats
        with torch.inference_mode():
            x, frames = self._encode(wav, lengths, warp)
            out = (out or self._output)(x)
        if frames is not None:
            valid = torch.arange(out.shape[1])[None, :] < frames[:, None]
            out = out.masked_fill(~valid[..., None], 0.0)
        return out

    def weights_fingerprint(self) -> str:
        """Short hash of the encoder's and CTC head's weights rounded to float16 (a float16
        copy hashes the same): CTC units are defined by the network itself, their one-hot
        centroids are the same for every encoder, so their unit space names this hash."""
        from speechlm.checkpoint import half_digest

        return half_digest({**{f"model.{k}": v for k, v in self.model.state_dict().items()},
                            **{f"ctc.{k}": v for k, v in (self.ctc.state_dict().items()
                                                          if self.ctc is not None else ())}})

    def config(self) -> dict[str, Any]:
        return {"type": "phone", "path": str(Path(self.path).resolve()), "output": self.output,
                "name": self.name}


def is_phone_encoder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a phone encoder directory."""
    import json

    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        return HEAD_KEY in json.loads(cfg.read_text())
    except (OSError, ValueError):
        return False
