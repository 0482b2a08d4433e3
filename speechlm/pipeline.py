"""Voice continuation end to end: tokenizer -> unit LM -> vocoder.

    from speechlm import SpeechLM
    m = SpeechLM.load()                              # the bundled default model
    out = m.continue_audio("prompt.wav", seconds=5, seed=1)
    out.waveform, out.prompt_units, out.generated_units

A *model* is the three stages. ``SpeechLM.load()`` takes the bundled default (``default``), or a
directory holding ``tokenizer/``, ``lm/`` and ``vocoder/`` stage directories, and any stage can be
swapped with a keyword (``SpeechLM.load(vocoder="outputs/vocoder-cpu/model")``). The stages must
share one unit space and one frame rate; a mismatch is refused with both values named.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from speechlm.audio import (
    FRAME_SIZE,
    SILENCE_PEAK,
    as_mono,
    check_length,
    f0_track,
    load_audio,
)
from speechlm.errors import AudioError, ModelError
from speechlm.stage import Stage, check_same_units
from speechlm.units import Units, merge_runs

if TYPE_CHECKING:
    from speechlm.lm import LanguageModel
    from speechlm.tokenizer import Tokenizer
    from speechlm.vocoder import Vocoder, Voice

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
# the names of speechlm.tokenizer.DEFAULT_TOKENIZER, lm.DEFAULT_LM and vocoder.DEFAULT_VOCODER (not
# imported: this module loads them lazily)
DEFAULT_STAGES = {"tokenizer": "whisper-phone", "lm": "whisper-phone-lm",
                  "vocoder": "whisper-phone-vocoder"}


@dataclasses.dataclass(frozen=True)
class Continuation:
    """One sampled continuation.

    Attributes:
        waveform: ``[T]`` float32 at ``sample_rate``: the prompt (resynthesized; only the part
            the LM saw when it was truncated) + the continuation, or the continuation alone
            with ``continuation_only``.
        sample_rate: Hz.
        prompt_units: the prompt's deduplicated units (with their durations).
        generated_units: the sampled deduplicated units, with durations from the duration model.
        prompt_seconds: where the continuation starts in ``waveform`` (0 with continuation_only).
        seed: the seed of this sample (``None``: nondeterministic).
        prompt_truncated: units cut from the front of a prompt longer than the LM's context.
        tempo: the factor on the duration model's durations of the new units (fitted to the
            prompt's pace unless given; see :meth:`Vocoder.fit_tempo`).
    """

    waveform: torch.Tensor
    sample_rate: int
    prompt_units: Units
    generated_units: Units
    prompt_seconds: float
    seed: int | None = None
    prompt_truncated: int = 0
    tempo: float = 1.0

    @property
    def seconds(self) -> float:
        return self.waveform.numel() / self.sample_rate


TEMPO_LIMITS = (0.25, 4.0)  # a tempo given by hand must lie in this range


def check_tempo(tempo: float | None) -> None:
    """Refuse a tempo that is not None or a finite number in :data:`TEMPO_LIMITS`."""
    if tempo is None:
        return
    if isinstance(tempo, bool) or not isinstance(tempo, numbers.Real) or not math.isfinite(tempo) \
            or not TEMPO_LIMITS[0] <= tempo <= TEMPO_LIMITS[1]:
        raise ValueError(f"tempo must be a number from {TEMPO_LIMITS[0]:g} to "
                         f"{TEMPO_LIMITS[1]:g} (or None: fitted to the prompt), got {tempo!r}")


def _as_wave(audio: str | os.PathLike | torch.Tensor | np.ndarray, what: str) -> torch.Tensor:
    """A path, or a waveform in one of the forms :func:`speechlm.audio.as_mono` accepts
    (mono float; stereo ``[2, T]`` / ``[T, 2]`` mixed down; integer PCM scaled), -> ``[T]``
    float32 at least one analysis frame long."""
    if isinstance(audio, (str, os.PathLike)):
        return load_audio(audio, min_samples=FRAME_SIZE)
    wav = as_mono(audio, what)
    check_length(wav.numel(), FRAME_SIZE, what)
    return wav


class SpeechLM(Stage):
    """The three stages together. Build with :meth:`load`."""

    def __init__(self, tokenizer: Tokenizer, lm: LanguageModel, vocoder: Vocoder):
        check_same_units(("tokenizer", tokenizer), ("lm", lm), ("vocoder", vocoder))
        if not lm.dedup:
            raise ModelError("the pipeline needs an LM trained on deduplicated units")
        self.tokenizer, self.lm, self.vocoder = tokenizer, lm, vocoder
        # the weights sampling decodes in (speechlm.decode): None = int8 where torch has the
        # kernel, else fp32; "fp32" for the float weights
        self.lm_weights: str | None = None

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, *, tokenizer: str | None = None,
             lm: str | None = None, vocoder: str | None = None) -> SpeechLM:
        """Load the bundled default, or a model directory; keywords replace single stages."""
        from speechlm.lm import LanguageModel
        from speechlm.tokenizer import Tokenizer
        from speechlm.vocoder import Vocoder

        stages = dict(DEFAULT_STAGES)
        if model is not None and str(model) != DEFAULT_MODEL:
            root = Path(model)
            if not root.is_dir():
                raise ModelError(f"model not found: {model} (give 'default' or a directory "
                                 "with tokenizer/, lm/ and vocoder/)")
            for name in stages:
                if not (root / name).is_dir():
                    raise ModelError(f"{root} has no {name}/ stage directory")
                stages[name] = str(root / name)
        stages.update({k: v for k, v in
                       {"tokenizer": tokenizer, "lm": lm, "vocoder": vocoder}.items() if v})
        return cls(Tokenizer.load(stages["tokenizer"]), LanguageModel.load(stages["lm"]),
                   Vocoder.load(stages["vocoder"]))

    # --- the contract
    @property
    def sample_rate(self) -> int:
        return self.tokenizer.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.tokenizer.frame_rate

    @property
    def n_units(self) -> int:
        return self.tokenizer.n_units

    @property
    def unit_space(self) -> str:
        return self.tokenizer.unit_space

    @property
    def units_per_second(self) -> float:
        """Deduplicated units per second of speech in the LM's training data."""
        return self.lm.units_per_second

    # --- stages
    def tokenize(self, audio: str | os.PathLike | torch.Tensor, dedup: bool = True) -> Units:
        """Speech (path or ``[T]`` 16 kHz waveform) -> units (deduplicated by default)."""
        if isinstance(audio, (str, os.PathLike)):
            return self.tokenizer.tokenize_file(audio, dedup=dedup)
        return self.tokenizer.tokenize_wave(_as_wave(audio, "the waveform"), dedup)

    def vocode(self, units: Units, voice: str | os.PathLike | torch.Tensor,
               f0: np.ndarray | None = None, method: str | None = None) -> torch.Tensor:
        """Units -> ``[T]`` waveform in the voice of ``voice`` (a path or waveform).

        Deduplicated units keep their durations; pass units without durations (or
        ``Units(ids, ..., durations=None)`` from the LM) for the duration model to decide.
        """
        return self.vocoder.decode(units, self.vocoder.voice(_as_wave(voice, "the voice"),
                                                             tokenizer=self.tokenizer),
                                   f0=f0, method=method)

    # --- the job
    def continue_audio(self, prompt: str | os.PathLike | torch.Tensor, seconds: float = 5.0, *,
                       temperature: float = 0.8, top_k: int | None = None,
                       top_p: float | None = None, repetition_penalty: float = 1.0,
                       num_samples: int = 1, seed: int | None = None,
                       voice: str | os.PathLike | torch.Tensor | None = None,
                       continuation_only: bool = False,
                       text: str | None = None,
                       tempo: float | None = None,
                       prompt_pitch: bool = True) -> Continuation | list[Continuation]:
        """Continue a speech prompt.

        Args:
            prompt: a path, or a 16 kHz waveform: ``[T]`` float (mono), ``[2, T]`` / ``[T, 2]``
                (stereo, mixed down to mono) or integer PCM (int16 / int32 / int8 / uint8,
                scaled to [-1, 1]); a batch ``[B, T]``, bool, complex or other shapes raise
                ``ValueError``.
            seconds: length of the continuation (units to sample = seconds x the LM's
                training unit rate; the duration model sets the final length).
            temperature, top_k, top_p, repetition_penalty: sampling (see
                :class:`speechlm.generate.SamplingOptions`).
            num_samples: continuations to sample (one batch); returns a list when > 1.
            seed: sample ``i`` is drawn with ``seed + i`` so each is reproducible alone.
            voice: speak in the voice of this recording instead of the prompt's.
            continuation_only: return only the new speech.
            text: words the LM reads after the prompt's units, as ``<text> words <speech>``:
                it goes on speaking after them, in the prompt's voice. Needs an LM trained
                with text (interleaved); the words themselves are not spoken.
            tempo: multiply the new units' predicted durations by this (> 1: slower). None:
                fitted to the prompt, so the continuation keeps the prompt's pace (the duration
                model learned synthetic voices' pace; 1.0 gives it as trained).
            prompt_pitch: speak the prompt with its own F0 (a vocoder that draws its F0; with
                ``voice``, the prompt's pitch shape at that voice's level), and let an
                intonation model that reads a known prefix carry it on into the continuation
                (:meth:`speechlm.vocoder.Vocoder.parameters_for`'s ``known_f0``). False: the
                whole contour is drawn, the prompt's too.

        Raises:
            AudioError: the prompt is missing, unreadable, too short or silent, or not a
                waveform of a form listed above (an AudioError is a ValueError).
            ValueError: bad sampling options (non-finite, out of range), or a text prompt to
                a units-only LM.
        """
        from speechlm.decode import decoder_for
        from speechlm.generate import SamplingOptions, generate
        from speechlm.units import text_prompt_ids

        if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) \
                or not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
        if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) \
                or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        check_tempo(tempo)
        # every sampling option is checked once, before any work (SamplingOptions validates)
        for i in (0, num_samples - 1):
            SamplingOptions(temperature=temperature, top_k=top_k, top_p=top_p,
                            repetition_penalty=repetition_penalty,
                            seed=None if seed is None else seed + i)
        then = [] if text is None else text_prompt_ids(text, self.lm.n_units,
                                                          self.lm.model.cfg.text_vocab)
        wav = _as_wave(prompt, "the prompt")
        if float(wav.abs().max()) < SILENCE_PEAK:
            raise AudioError("the prompt is silent (peak below -60 dBFS); give speech")
        if voice is None:
            spk = self.vocoder.voice(wav, what="the prompt (the voice to continue in)",
                                     tokenizer=self.tokenizer)
        else:
            spk = self.vocoder.voice(_as_wave(voice, "the voice"), what="the voice",
                                     tokenizer=self.tokenizer)
        units = self.tokenizer.tokenize_wave(wav, dedup=True)
        n_new = max(1, round(seconds * self.units_per_second))
        room = self.lm.block_size - 1 - n_new - len(then)
        if room < 1:
            raise ValueError(f"a {seconds:g} s continuation ({n_new} units)"
                             f"{' after the text prompt' if then else ''} does not fit the "
                             f"LM's context of {self.lm.block_size - 1} "
                             f"{'tokens' if then else 'units'}")
        cut = max(0, len(units) - room)
        if cut and len(units) > self.lm.block_size - 1:
            log.warning("the prompt is longer than the LM's context: it has %d units, the LM "
                        "sees its last %d (context %d, of which the %g s continuation takes "
                        "%d); the output starts there", len(units), room,
                        self.lm.block_size - 1, seconds, n_new)
        elif cut:
            log.warning("the %g s continuation (%d units) leaves room for the last %d of the "
                        "prompt's %d units in the LM's context of %d; ask for fewer --seconds "
                        "to condition on all of the prompt", seconds, n_new, room, len(units),
                        self.lm.block_size - 1)
        ctx = units.ids[cut:]
        # vocode only the part of the prompt the LM saw: a 10-minute prompt costs no more than
        # a short one (the durations of the prompt's units are its own, so the cut is exact)
        seen = units if not cut else dataclasses.replace(
            units, ids=ctx, durations=units.durations[cut:])
        spk = self._paced(spk, seen, tempo)
        known = prompt_f0(wav, units, cut) if prompt_pitch and not continuation_only else None
        outs = []
        for i in range(num_samples):
            opts = SamplingOptions(max_new_tokens=n_new, temperature=temperature, top_k=top_k,
                                   top_p=top_p, repetition_penalty=repetition_penalty,
                                   num_samples=1, seed=None if seed is None else seed + i,
                                   stop_at_eos=False)
            gen = generate(decoder_for(self.lm, self.lm_weights), ctx, opts, then).sample(0)
            # the LM may sample a unit twice in a row: that is one unit, lasting longer
            ids, dur = merge_runs(gen, self.vocoder.predict_durations(gen, spk))
            new = Units(ids, units.frame_rate, units.n_units, units.unit_space, dur)
            full, start = (new, 0.0) if continuation_only else (seen.concat(new), seen.seconds)
            # a vocoder that samples F0 (f0_bins) draws the contour with the sample's seed
            y = self.vocoder.decode(full, spk, seed=None if seed is None else seed + i,
                                    known_f0=known)
            outs.append(Continuation(y, self.sample_rate, units, new, start,
                                     None if seed is None else seed + i, cut, spk.tempo))
        return outs[0] if num_samples == 1 else outs

    def _paced(self, voice: Voice, prompt: Units, tempo: float | None) -> Voice:
        """``voice`` speaking new units at ``tempo``, or at ``prompt``'s pace when None."""
        pace = self.vocoder.fit_tempo(prompt, voice) if tempo is None else float(tempo)
        return dataclasses.replace(voice, tempo=pace)

    def speak_continuation(self, prompt: Units, new_ids: torch.Tensor, voice: Voice,
                           tempo: float | None = None, prompt_wav: torch.Tensor | None = None
                           ) -> tuple[torch.Tensor, Units, float]:
        """Vocode ``prompt`` (deduplicated units with their durations) followed by the
        deduplicated ``new_ids`` ``[N]``, whose durations the duration model predicts, exactly as
        :meth:`continue_audio` speaks a sampled continuation (``tempo`` as there: None fits it
        to ``prompt``; ``prompt_wav``: the prompt's audio, whose F0 the prompt is spoken with,
        as ``prompt_pitch`` does there; None: drawn). For units that did not come from the LM
        (baselines, the true rest of an utterance).

        Returns:
            (waveform ``[T]``, the new units with their durations, where they start in seconds).
        """
        check_tempo(tempo)
        voice = self._paced(voice, prompt, tempo)
        ids, dur = merge_runs(new_ids, self.vocoder.predict_durations(new_ids, voice))
        new = Units(ids, prompt.frame_rate, prompt.n_units, prompt.unit_space, dur)
        known = None if prompt_wav is None else prompt_f0(
            _as_wave(prompt_wav, "the prompt"), prompt, 0)
        return self.vocoder.decode(prompt.concat(new), voice, known_f0=known), new, \
            prompt.seconds


def prompt_f0(wav: torch.Tensor, units: Units, cut: int) -> np.ndarray:
    """The F0 (Hz every 10 ms, 0 unvoiced) of the frames of deduplicated ``units`` (of ``wav``,
    with their durations) from unit ``cut`` on: the vocoder frames those units are spoken over
    (two per unit frame)."""
    from speechlm.prosody import UPSAMPLE

    dur = units.durations
    skip = int(dur[:cut].sum()) if cut else 0
    frames = int(dur[cut:].sum())
    f0 = f0_track(wav.numpy())[UPSAMPLE * skip: UPSAMPLE * (skip + frames)]
    return np.pad(f0, (0, UPSAMPLE * frames - len(f0))).astype(np.float32)


__all__ = ["Continuation", "DEFAULT_MODEL", "SpeechLM", "prompt_f0"]
