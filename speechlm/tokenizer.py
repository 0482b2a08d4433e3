"""The speech tokenizer stage: a feature encoder followed by a k-means quantizer.

A tokenizer is a stage directory::

    config.json        {"kind": "tokenizer", "format_version": 1, "encoder": {...},
                        "n_units": K, "unit_space": "mfcc-k100-1a2b3c4d",
                        "sample_rate": 16000, "frame_rate": 50.0, "training": {...}}
    model.safetensors  centroids [K, D], mean [D], std [D]

Phone-rate units: a phone encoder exported with a CTC head, read with output ``"ctc"``, has
one-hot centroids (:func:`speechlm.quantizer.onehot_quantizer`, one per phone and one for the
blank) instead of k-means ones; each frame takes its most likely CTC class and a blank frame the
unit before it (:func:`speechlm.quantizer.fill_blanks`), so the deduplicated units are the CTC
head's greedy phone string and the frame-rate units keep the timing a vocoder needs
(``speechlm train tokenizer --features ENCODER --layer ctc``).

Files are tokenized in chunks of a minute with enough context on each side that the result
equals a whole-file pass, so an hour of audio needs no more memory than a minute.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from speechlm import checkpoint
from speechlm.audio import FRAME_SIZE, AudioReader, check_length
from speechlm.errors import ModelError
from speechlm.features import (
    FeatureEncoder,
    build_encoder,
    chunk_plan,
    num_frames,
    samples_for_frames,
)
from speechlm.quantizer import KMeansQuantizer, fill_blanks
from speechlm.stage import Stage
from speechlm.units import Units

DEFAULT_TOKENIZER = "whisper-phone"  # bundled in speechlm/pretrained/
CHUNK_FRAMES = 3000  # frames per chunk when reading files (60 s)
BAND_LIMIT_MIN_HZ = 1000.0  # with_band_limit: the lowest cut-off (the highest: below Nyquist)
PRECISIONS = ("fp32", "bf16", "int8")  # what the encoder computes in (Tokenizer.with_precision)


def make_unit_space(encoder_cfg: dict[str, Any], quantizer: KMeansQuantizer,
                    smoothing: float = 0.0, weights: str = "",
                    band_limit: float | None = None,
                    speeds: Sequence[float] | None = None) -> str:
    """``<encoder>-k<K>[-s<smoothing>][-b<band limit>][-e<speeds>]-<hash>``: names the unit
    vocabulary;
    LMs and vocoders check it. The hash is the quantizer's, joined with ``weights`` (a hash of
    the encoder's weights) when given: CTC units, whose centroids are the same for every
    encoder. ``band_limit``: the cut-off (Hz) the tokenizer was fitted with and applies by
    default (``train tokenizer --band-limit``); ``speeds``: the speed ensemble it was fitted
    with and applies by default (``train tokenizer --speeds``), e.g. ``-e0.85_1_1.15``."""
    kind = encoder_cfg["type"]
    if kind == "ssl":
        name = encoder_cfg.get("name") or Path(encoder_cfg["path"]).name
        kind = f"ssl-{name}-l{encoder_cfg['layer']}"
    elif kind == "phone":
        name = encoder_cfg.get("name") or Path(encoder_cfg["path"]).name
        out = encoder_cfg.get("output", "posteriors")
        kind = f"phone-{name}-{out if isinstance(out, str) else f'l{out}'}"
    elif kind == "whisper-phone":
        name = encoder_cfg.get("name") or Path(encoder_cfg["path"]).name
        kind = f"wphone-{name}-{encoder_cfg.get('output', 'posteriors')}"
        # -pe: read with an edge pad, the emissions in the pad carried to the item's edges
        # (speechlm.features.carry_edge_emissions; -p named the pad read without that carry)
        kind += f"-pe{encoder_cfg['edge_pad']:g}" if encoder_cfg.get("edge_pad") else ""
        # -bp: the CTC blank's logit lowered by this much before the units are read
        kind += f"-bp{encoder_cfg['blank_penalty']:g}" if encoder_cfg.get("blank_penalty") else ""
    elif kind == "whisper":
        kind = f"{encoder_cfg.get('name') or 'whisper'}-l{encoder_cfg.get('layer', 4)}"
        kind += f"-d{encoder_cfg['shift']}" if encoder_cfg.get("shift") else ""
    smooth = f"-s{smoothing:g}" if smoothing > 0 else ""
    smooth += f"-b{band_limit:g}" if band_limit else ""
    smooth += "-e" + "_".join(f"{s:g}" for s in speeds) if speeds else ""
    digest = quantizer.fingerprint()
    if weights:
        import hashlib

        digest = hashlib.sha256(f"{digest}:{weights}".encode()).hexdigest()[:8]
    return f"{kind}-k{quantizer.n_units}{smooth}-{digest}"


class Tokenizer(Stage):
    """Speech -> units.

    Args:
        encoder: a :class:`~speechlm.features.FeatureEncoder`.
        quantizer: a fitted :class:`~speechlm.quantizer.KMeansQuantizer`.
        training: how it was trained (recorded in ``config.json``).
        smoothing: cost of a change of unit between frames, in units of the k-means inertia
            per frame (``training["inertia_per_frame"]``); 0 takes the nearest centroid of every
            frame. Above 0 each utterance gets the unit path with the least distance plus
            switch costs (:func:`speechlm.quantizer.smooth_path`), which absorbs one- and
            two-frame flickers. Part of the unit space's name.
        precision: ``"fp32"``, or ``"bf16"``: the encoder runs under bfloat16 autocast (the
            distances to the centroids stay float32). The same unit space, but 1-2 % of frames
            get another unit; faster only on a CPU with bfloat16 units and with OpenMP workers
            that spin (1.26x on an AMX Xeon; 0.91x there under ``OMP_WAIT_POLICY=PASSIVE``):
            ``benchmarks/bench_phone_tokenize.py`` measures both on your machine. ``"int8"``:
            the encoder network's linear layers in int8 (:func:`speechlm.features.int8_encoder`,
            a quantized copy made here): about twice the speed of float32 on a CPU with
            AVX-512 VNNI, with ~3 % of the deduplicated units changed
            (``benchmarks/bench_whisper_tokenize.py``).
        band_limit: remove everything above this frequency (Hz) from the input before the
            encoder (the brick-wall low-pass of the training augmentation's channel
            band-limit, :func:`speechlm.data.augment.lowpass`); None keeps the full band.
            ``"fitted"`` (the default) takes the cut-off the k-means was fitted with
            (``training["band_limit"]``, part of the unit space's name; none for most
            tokenizers); any other value is a test-time option that leaves the name as it is.
    """

    def __init__(self, encoder: FeatureEncoder, quantizer: KMeansQuantizer,
                 training: dict[str, Any] | None = None, smoothing: float = 0.0,
                 precision: str = "fp32", band_limit: float | str | None = "fitted"):
        if encoder.dim != quantizer.dim:
            raise ModelError(f"encoder dim {encoder.dim} != quantizer dim {quantizer.dim}")
        self.encoder = encoder
        self.quantizer = quantizer
        self.training = dict(training or {})
        self.smoothing = float(smoothing)
        if not 0 <= self.smoothing < float("inf"):
            raise ModelError(f"smoothing must be a finite number >= 0, got {smoothing}")
        if self.smoothing and not self.training.get("inertia_per_frame"):
            raise ModelError("smoothing needs the k-means inertia per frame in the training "
                             "record; refit the tokenizer")
        self.switch_penalty = self.smoothing * float(self.training.get("inertia_per_frame", 0))
        # a phone encoder's CTC output: its blank frames take the unit before them
        self.blank: int | None = getattr(encoder, "blank", None)
        if self.blank is not None and self.smoothing:
            raise ModelError("smoothing does not apply to CTC units (their blanks are filled)")
        fitted = self.training.get("band_limit")
        self._unit_space = make_unit_space(
            encoder.config(), quantizer, self.smoothing,
            encoder.weights_fingerprint() if self.blank is not None else "",
            float(fitted) if fitted else None, self.training.get("speeds"))
        if band_limit == "fitted":
            band_limit = float(fitted) if fitted else None
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                             f"{precision!r}")
        self.precision = precision
        if precision == "int8":
            from speechlm.features import int8_encoder

            self.encoder = int8_encoder(encoder)
        lo, hi = BAND_LIMIT_MIN_HZ, self.sample_rate / 2
        band_limit = band_limit or None  # 0: the full band
        if band_limit is not None and not lo <= float(band_limit) < hi:
            raise ModelError(f"band limit {band_limit!r} Hz: expected {lo:g} <= Hz < {hi:g} "
                             "(half the sample rate)")
        self.band_limit = None if band_limit is None else float(band_limit)

    def with_smoothing(self, smoothing: float) -> Tokenizer:
        """The same encoder and centroids with another ``smoothing`` (another unit space)."""
        return Tokenizer(self.encoder, self.quantizer, self.training, smoothing, self.precision,
                         self.band_limit)

    def unit_labels(self) -> list[str] | None:
        """The phone each unit stands for, where the units are a CTC phone string (unit i is
        the encoder's phone i; ``<blank>`` for the blank, which the unit before it fills), or
        None where they are k-means clusters of features (no unit is one phone)."""
        phones = getattr(self.encoder, "phones", None)
        if self.blank is None or phones is None or len(phones) + 1 != self.n_units:
            return None
        return [*phones, "<blank>"]

    def with_precision(self, precision: str) -> Tokenizer:
        """The same tokenizer computing its encoder in ``precision`` (``"fp32"``/``"bf16"``/
        ``"int8"``: see the class's ``precision`` argument).

        Raises:
            ModelError: int8 asked of an encoder without a network.
        """
        if precision == self.precision:
            return self
        if self.precision == "int8":
            raise ModelError("an int8 tokenizer keeps its rounded weights; load the tokenizer "
                             f"again for {precision}")
        return Tokenizer(self.encoder, self.quantizer, self.training, self.smoothing, precision,
                         self.band_limit)

    def with_warp(self, warp: str | float | None) -> Tokenizer:
        """The same tokenizer with its phone encoder reading a frequency-warped input
        (vocal-tract length normalisation: :meth:`speechlm.ssl.phone.PhoneEncoder.with_warp`;
        ``"auto"`` picks the warp per input, ``None``/``"none"`` is off). The same unit space:
        the encoder and centroids are unchanged, only the input is normalised.

        Raises:
            ModelError: a bad ``warp``, or a warp asked of a tokenizer without a log-mel phone
                encoder.
        """
        from speechlm.ssl.phone import PhoneEncoder, parse_warp

        if not isinstance(self.encoder, PhoneEncoder):
            if parse_warp(warp) is None:
                return self
            raise ModelError(f"--warp needs a phone-encoder tokenizer; {self.unit_space} is not")
        return Tokenizer(self.encoder.with_warp(warp), self.quantizer, self.training,
                         self.smoothing, self.precision, self.band_limit)

    def with_speeds(self, speeds: str | Sequence[float] | None) -> Tokenizer:
        """The same tokenizer with its phone encoder's frame log-posteriors averaged over the
        input read at each of ``speeds`` (:meth:`speechlm.ssl.phone.PhoneEncoder.with_speeds`;
        e.g. ``"0.85,1,1.15"``; None/``"none"`` is off), one encoder pass per speed. The same
        unit space: the encoder and centroids are unchanged (a tokenizer fitted with
        ``train tokenizer --speeds`` applies its own by default and names them).

        Raises:
            ModelError: bad ``speeds``, or speeds asked of a tokenizer without a phone
                encoder's posteriors or log-posteriors.
        """
        from speechlm.ssl.phone import PhoneEncoder, parse_speeds

        if not isinstance(self.encoder, PhoneEncoder):
            if parse_speeds(speeds) is None:
                return self
            raise ModelError(f"--speeds needs a phone-encoder tokenizer; {self.unit_space} is "
                             "not")
        return Tokenizer(self.encoder.with_speeds(speeds), self.quantizer, self.training,
                         self.smoothing, self.precision, self.band_limit)

    def with_band_limit(self, hz: float | None) -> Tokenizer:
        """The same tokenizer with everything above ``hz`` removed from its input before the
        encoder (None or 0: the full band); the same unit space. See the ``band_limit``
        argument.

        Raises:
            ModelError: ``hz`` outside [1000, half the sample rate).
        """
        return Tokenizer(self.encoder, self.quantizer, self.training, self.smoothing,
                         self.precision, hz)

    def with_reading(self, edge_pad: float | None = None,
                     blank_penalty: float | None = None) -> Tokenizer:
        """The same Whisper phone head read otherwise (None keeps the present setting):
        ``edge_pad``, seconds of silence before and after each input (0: off); ``blank_penalty``,
        what is taken off the CTC blank's logit (0: off; CTC units only). See
        :class:`speechlm.features.WhisperPhoneEncoder`. Another unit space (``-peSECONDS``,
        ``-bpPENALTY``): the units are the same phone classes, read otherwise (an LM or vocoder
        takes them with ``speechlm adopt-units``).

        Raises:
            ModelError: the encoder is no Whisper phone head, or a bad value.
        """
        from speechlm.features import WhisperPhoneEncoder

        enc = self.encoder
        if not isinstance(enc, WhisperPhoneEncoder):
            raise ModelError(f"an edge pad or a blank penalty needs a Whisper phone head; "
                             f"{self.unit_space} is not")
        return Tokenizer(enc.with_reading(edge_pad, blank_penalty), self.quantizer,
                         self.training, self.smoothing, self.precision, self.band_limit)

    def with_edge_pad(self, seconds: float) -> Tokenizer:
        """:meth:`with_reading` with ``edge_pad=seconds``."""
        return self.with_reading(edge_pad=seconds)

    @property
    def warp(self) -> float | str | None:
        """The phone encoder's input warp (None: off; see :meth:`with_warp`)."""
        return getattr(self.encoder, "warp", None)

    @property
    def speeds(self) -> tuple[float, ...] | None:
        """The phone encoder's speed ensemble (None: off; see :meth:`with_speeds`)."""
        return getattr(self.encoder, "speeds", None)

    # --- the contract every stage exposes
    @property
    def sample_rate(self) -> int:
        return self.encoder.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.encoder.frame_rate

    @property
    def n_units(self) -> int:
        return self.quantizer.n_units

    @property
    def unit_space(self) -> str:
        return self._unit_space

    # --- persistence
    @classmethod
    def load(cls, name_or_path: str | os.PathLike = DEFAULT_TOKENIZER) -> Tokenizer:
        """Load a bundled tokenizer by name or a tokenizer directory."""
        cfg, tensors, path = checkpoint.load_stage(name_or_path, "tokenizer")
        enc_cfg = dict(cfg["encoder"])
        if enc_cfg.get("type") in ("ssl", "phone", "whisper-phone") and not os.path.isabs(
                enc_cfg["path"]):
            enc_cfg["path"] = str((path / enc_cfg["path"]).resolve())
        tok = cls(build_encoder(enc_cfg), KMeansQuantizer.from_state_dict(tensors),
                  cfg.get("training"), float(cfg.get("smoothing", 0.0)))
        if tok.training.get("speeds"):  # fitted on a speed ensemble: read with it by default
            tok = tok.with_speeds(tok.training["speeds"])
        if tok.unit_space != cfg.get("unit_space"):
            raise ModelError(f"{path}: unit_space in config.json ({cfg.get('unit_space')}) does "
                             f"not match the weights ({tok.unit_space}); the files were altered")
        return tok

    def save(self, path: str | os.PathLike, half: bool = False) -> Path:
        """Write the tokenizer directory; an SSL or phone encoder (or a Whisper phone head) is
        copied into ``encoder/`` inside it, so the directory is self-contained (``half``: a
        phone encoder's or head's weights as float16, for shipping).

        Raises:
            ModelError: an int8 tokenizer (its rounded weights are for tokenizing only)."""
        if self.precision == "int8":
            raise ModelError("an int8 tokenizer is not saved; save the float32 one it was made "
                             "from")
        enc_cfg = self.encoder.config()
        write_extra = None
        if enc_cfg["type"] in ("phone", "whisper-phone"):
            from speechlm.ssl.phone import copy_phone_encoder
            from speechlm.whisper_phone import copy_whisper_phone

            copy = copy_phone_encoder if enc_cfg["type"] == "phone" else copy_whisper_phone
            src = self.encoder.path

            def write_extra(tmp: Path) -> None:
                copy(src, tmp / "encoder", half=half)

            enc_cfg = {**enc_cfg, "path": "encoder"}
        elif enc_cfg["type"] == "ssl":
            from speechlm import ssl

            enc = self.encoder

            def write_extra(tmp: Path) -> None:
                ssl.save_ssl_model(enc.model, enc.info.arch, tmp / "encoder",
                                   normalize_waveform=enc.info.normalize_waveform)

            enc_cfg = {**enc_cfg, "path": "encoder"}  # relative to the tokenizer directory
        cfg = {"encoder": enc_cfg, "n_units": self.n_units,
               "unit_space": self.unit_space, "sample_rate": self.sample_rate,
               "frame_rate": self.frame_rate, "feature_dim": self.encoder.dim,
               "training": self.training}
        if self.smoothing:
            cfg["smoothing"] = self.smoothing
        return checkpoint.save_stage(path, "tokenizer", cfg, self.quantizer.state_dict(),
                                     write_extra=write_extra)

    # --- tokenizing
    def features(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T]`` waveforms -> ``[B, F, D]`` features (float32)."""
        if self.band_limit is not None:
            from speechlm.data.augment import lowpass_at

            wav = lowpass_at(wav, self.band_limit, self.sample_rate)
        if self.precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self.encoder(wav, lengths).float()
        return self.encoder(wav, lengths)

    def quantize(self, feats: torch.Tensor) -> torch.Tensor:
        """One utterance's ``[F, D]`` features -> its ``[F]`` unit ids, as :meth:`encode` gives
        them (the smoothed path, or CTC blanks filled)."""
        if self.blank is not None:
            return fill_blanks(self.quantizer.encode(feats), self.blank)
        return self.quantizer.encode(feats, self.switch_penalty)

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T]`` waveforms -> ``[B, F]`` unit ids; ids past an item's length are -1."""
        if wav.dim() != 2:
            raise ValueError(f"encode expects [B, T] waveforms, got {tuple(wav.shape)}")
        feats = self.features(wav, lengths)
        if self.blank is not None:
            ids = self.quantizer.encode(feats)
            frames = ([num_frames(int(n)) if n >= FRAME_SIZE else 0 for n in lengths.tolist()]
                      if lengths is not None else [ids.shape[1]] * ids.shape[0])
            for i, f in enumerate(frames):
                ids[i, :f] = fill_blanks(ids[i, :f], self.blank)
                ids[i, f:] = -1
            return ids
        if self.switch_penalty and lengths is not None:  # each item's path over its own frames
            ids = torch.full(feats.shape[:2], -1, dtype=torch.long)
            for i, n in enumerate(lengths.tolist()):
                f = num_frames(int(n)) if n >= FRAME_SIZE else 0
                if f:
                    ids[i, :f] = self.quantizer.encode(feats[i, :f], self.switch_penalty)
            return ids
        ids = self.quantizer.encode(feats, self.switch_penalty)
        if lengths is not None:
            frames = torch.tensor([num_frames(int(n)) for n in lengths])
            ids = ids.masked_fill(torch.arange(ids.shape[1])[None, :] >= frames[:, None], -1)
        return ids

    def _units(self, ids: torch.Tensor, dedup: bool) -> Units:
        u = Units(ids=ids, frame_rate=self.frame_rate, n_units=self.n_units,
                  unit_space=self.unit_space)
        return u.dedup() if dedup else u

    def tokenize_wave(self, wav: torch.Tensor, dedup: bool = False) -> Units:
        """One ``[T]`` 16 kHz waveform -> :class:`Units`."""
        check_length(wav.numel(), FRAME_SIZE, "the waveform", self.sample_rate)
        return self._units(self.encode(wav[None])[0], dedup)

    def tokenize_file(self, path: str | os.PathLike, dedup: bool = False,
                      chunk_frames: int = CHUNK_FRAMES) -> Units:
        """Tokenize an audio file in bounded memory (chunks of ``chunk_frames`` frames).

        Raises:
            AudioError: missing, unreadable, empty, non-finite or too-short audio.
        """
        with AudioReader(path, self.sample_rate) as reader:
            check_length(reader.num_samples, FRAME_SIZE, str(path), self.sample_rate)
            total = num_frames(reader.num_samples)
            ctx = self.encoder.context_frames
            parts = []
            for lo, hi, a, b in chunk_plan(total, chunk_frames, ctx if ctx is not None else 0):
                s0, s1 = samples_for_frames(lo, hi)
                ids = self.encode(reader.read(s0, s1)[None])[0]
                parts.append(ids[a - lo : b - lo])
        return self._units(parts[0] if len(parts) == 1 else torch.cat(parts), dedup)

    def tokenize_files(self, paths: Iterable[str | os.PathLike], dedup: bool = False,
                       workers: int | None = None,
                       chunk_frames: int = CHUNK_FRAMES) -> Iterator[Units]:
        """Tokenize many files (or one long file) with ``workers`` threads; yields each file's
        :class:`Units` in the order of ``paths``, the same as :meth:`tokenize_file` gives.

        Files are read in the calling thread and cut into chunks of ``chunk_frames`` frames;
        each chunk is encoded by a worker thread whose operators run on one core
        (:mod:`speechlm.parallel`), so the cores never wait for each other and the chunks of a
        long file are spread over them too. At most ``2 * workers`` chunks are in memory.
        ``workers`` defaults to torch's intra-op thread count; 1 is :meth:`tokenize_file` in
        turn (operators on all of torch's threads).

        Raises:
            AudioError: for a bad file, when its turn comes (after the files before it).
        """
        from speechlm.parallel import ordered_map, single_threaded_ops

        workers = torch.get_num_threads() if workers is None else int(workers)
        if workers <= 1:
            for path in paths:
                yield self.tokenize_file(path, dedup, chunk_frames)
            return
        ctx = self.encoder.context_frames or 0

        def chunks() -> Iterator[tuple[bool, Any, int, int]]:
            # (last chunk of its file, waveform or the file's error, keep from, keep to)
            for path in paths:
                try:
                    with AudioReader(path, self.sample_rate) as reader:
                        check_length(reader.num_samples, FRAME_SIZE, str(path), self.sample_rate)
                        plan = list(chunk_plan(num_frames(reader.num_samples), chunk_frames,
                                               ctx))
                        for k, (lo, hi, a, b) in enumerate(plan):
                            s0, s1 = samples_for_frames(lo, hi)
                            yield k == len(plan) - 1, reader.read(s0, s1), a - lo, b - lo
                except Exception as e:  # noqa: BLE001 -- raised again in order, below
                    yield True, e, 0, 0

        def encode(job: tuple[bool, Any, int, int]) -> tuple[bool, torch.Tensor]:
            last, wav, a, b = job
            if isinstance(wav, Exception):
                raise wav
            return last, self.encode(wav[None])[0][a:b]

        parts: list[torch.Tensor] = []
        with single_threaded_ops():
            for last, ids in ordered_map(encode, chunks(), workers):
                parts.append(ids)
                if last:
                    yield self._units(parts[0] if len(parts) == 1 else torch.cat(parts), dedup)
                    parts = []

    def __call__(self, audio: str | os.PathLike | torch.Tensor, dedup: bool = False) -> Units:
        """Tokenize a path or a ``[T]`` waveform."""
        if isinstance(audio, torch.Tensor):
            return self.tokenize_wave(audio, dedup)
        return self.tokenize_file(audio, dedup)
