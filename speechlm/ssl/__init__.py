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

from speechlm.ssl.common import FORMAT_VERSION, SSLInfo
from speechlm.ssl.extract import extract_layer
from speechlm.ssl.load import load_ssl_model
from speechlm.ssl.native import save_ssl_model
from speechlm.ssl.tiny import make_tiny_fairseq_checkpoint, make_tiny_hf_checkpoint

__all__ = [
    "FORMAT_VERSION",
    "SSLInfo",
    "extract_layer",
    "load_ssl_model",
    "make_tiny_fairseq_checkpoint",
    "make_tiny_hf_checkpoint",
    "save_ssl_model",
]
