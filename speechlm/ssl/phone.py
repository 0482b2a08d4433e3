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
"""

from __future__ import annotations

import os
import shutil
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

    def logits(self, wav: torch.Tensor, lengths: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frame phone logits ``[B, F, P]`` and valid frames per item."""
        with torch.inference_mode():
            x, frames = self.model(wav.float(), lengths)
            return self.head(x), frames

    def __call__(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        total = (wav.shape[-1] - FRAME_SIZE) // HOP_SIZE + 1 if wav.shape[-1] >= FRAME_SIZE else 0
        ctx = self.context_frames
        if lengths is not None or total <= WINDOW_FRAMES + 2 * ctx:
            return self._features(wav, lengths)
        parts = []  # windows: attention cost grows with the square of the window
        for a in range(0, total, WINDOW_FRAMES):
            b = min(total, a + WINDOW_FRAMES)
            lo, hi = max(0, a - ctx), min(total, b + ctx)
            x = wav[:, lo * HOP_SIZE : (hi - 1) * HOP_SIZE + FRAME_SIZE]
            parts.append(self._features(x, None)[:, a - lo : b - lo])
        return torch.cat(parts, dim=1)

    def _features(self, wav: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        from speechlm import ssl

        if isinstance(self.output, int):
            feats, _ = ssl.extract_layer(self.model, wav, self.output, lengths)
            return feats
        if self.output == "ctc":
            with torch.inference_mode():
                x, frames = self.model(wav.float(), lengths)
                out = self.ctc(x).softmax(-1)
        else:
            logits, frames = self.logits(wav, lengths)
            out = (logits.softmax(-1) if self.output == "posteriors"
                   else logits.log_softmax(-1))
        if frames is not None:
            valid = torch.arange(out.shape[1])[None, :] < frames[:, None]
            out = out.masked_fill(~valid[..., None], 0.0)
        return out

    def weights_fingerprint(self) -> str:
        """Short hash of the encoder's and CTC head's weights rounded to float16 (a float16
        copy hashes the same): CTC units are defined by the network itself, their one-hot
        centroids are the same for every encoder, so their unit space names this hash."""
        import hashlib

        h = hashlib.sha256()
        tensors = {**{f"model.{k}": v for k, v in self.model.state_dict().items()},
                   **{f"ctc.{k}": v for k, v in (self.ctc.state_dict().items()
                                                 if self.ctc is not None else ())}}
        for k in sorted(tensors):
            v = tensors[k]
            h.update(k.encode())
            h.update((v.half() if v.is_floating_point() else v).numpy().tobytes())
        return h.hexdigest()[:8]

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
