"""Build a multi-speaker speech corpus with the offline synthesizers (flite, festival, espeak-ng).

This is the ``arctic15`` preset (the corpus the bundled models were trained on). The larger
``world`` preset (a million words, 248 voice identities, held-out voices) lives in
:mod:`speechlm.data.build`; ``speechlm corpus synth --preset world`` builds it.

The text is the 1,132 CMU ARCTIC prompts. Every voice reads every sentence, so the corpus is
parallel across speakers. Sentences are split into train / valid / test by a hash of their id, so
no test sentence is ever heard in training, in any voice, and the split of a sentence never
changes when voices are added.

Layout of the output directory::

    DIR/wav/<speaker>/<utt>.wav    16 kHz mono PCM16
    DIR/wav/<speaker>/<utt>.phn    phone alignment, TIMIT style: "start end phone" in samples
                                   (voices whose synthesizer reports segment times)
    DIR/<split>.tsv                fairseq manifest: root line, then "relpath<TAB>num_samples"
    DIR/<split>.wrd                transcript per manifest line (fairseq's convention)
    DIR/<split>.spk                speaker per manifest line
    DIR/corpus.json                voices, sizes and hours per split

Each utterance is synthesized into a temporary file, converted with sox (rate, pitch) and renamed
into place with its alignment, so an interrupted build resumes by skipping finished files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import soundfile as sf
from tqdm import tqdm

from speechlm.audio import SAMPLE_RATE
from speechlm.errors import DataError
from speechlm.io import write_json_atomic, write_text_atomic

R = TypeVar("R")

log = logging.getLogger(__name__)

CORPUS_FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test")
TEST_PERCENT = 5  # share of sentences held out for test (by sentence id hash)
VALID_PERCENT = 5  # share held out for validation
FESTIVAL_CHUNK = 40  # sentences per festival process (its start-up costs ~1 s)


@dataclasses.dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an engine, its voice, and a speaking-rate / pitch variation."""

    name: str  # speaker id used in paths and manifests
    engine: str  # "flite" | "festival" | "espeak"
    voice: str  # engine's voice name (flite -voice, festival voice_<name>, espeak -v)
    stretch: float = 1.0  # duration stretch (>1 slower); flite and festival only
    pitch_cents: int = 0  # pitch shift applied with sox (keeps timing, so alignments hold)
    espeak_speed: int = 160  # words per minute, espeak only
    espeak_pitch: int = 50  # 0..99, espeak only
    sex: str = "?"

    @property
    def aligned(self) -> bool:
        """Whether the engine reports phone segment times (flite and festival do)."""
        return self.engine in ("flite", "festival")


# The default speaker set: 15 voices from 3 engines. The "_b" voices are a second speaker made
# from the same engine voice by changing speaking rate and pitch.
DEFAULT_VOICES: tuple[Voice, ...] = (
    Voice("flite_slt", "flite", "slt", sex="F"),
    Voice("flite_rms", "flite", "rms", sex="M"),
    Voice("flite_awb", "flite", "awb", sex="M"),
    Voice("flite_kal", "flite", "kal16", sex="M"),
    Voice("flite_slt_b", "flite", "slt", stretch=0.88, pitch_cents=-250, sex="F"),
    Voice("flite_rms_b", "flite", "rms", stretch=1.12, pitch_cents=300, sex="M"),
    Voice("flite_awb_b", "flite", "awb", stretch=1.08, pitch_cents=-200, sex="M"),
    Voice("flite_kal_b", "flite", "kal16", stretch=0.92, pitch_cents=400, sex="M"),
    Voice("fest_kal", "festival", "kal_diphone", sex="M"),
    Voice("fest_slt_hts", "festival", "cmu_us_slt_arctic_hts", sex="F"),
    Voice("fest_kal_b", "festival", "kal_diphone", stretch=1.15, pitch_cents=-300, sex="M"),
    Voice("espeak_us_m3", "espeak", "en-us+m3", espeak_speed=165, espeak_pitch=45, sex="M"),
    Voice("espeak_us_f2", "espeak", "en-us+f2", espeak_speed=150, espeak_pitch=60, sex="F"),
    Voice("espeak_gb_m1", "espeak", "en-gb+m1", espeak_speed=175, espeak_pitch=40, sex="M"),
    Voice("espeak_gb_f4", "espeak", "en-gb+f4", espeak_speed=155, espeak_pitch=55, sex="F"),
)

# The --small corpus: a few voices (one per engine, aligned ones included) and sentences.
SMALL_VOICES = ("flite_slt", "flite_rms", "fest_kal", "espeak_us_m3")
SMALL_SENTENCES_PER_SPLIT = {"train": 12, "valid": 3, "test": 4}

_LINE = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One prompt of the text corpus."""

    id: str
    text: str

    @property
    def split(self) -> str:
        return split_of(self.id)


def split_of(sentence_id: str) -> str:
    """The split of a sentence: a stable function of its id alone."""
    bucket = int(hashlib.sha1(sentence_id.encode()).hexdigest(), 16) % 100
    if bucket < TEST_PERCENT:
        return "test"
    if bucket < TEST_PERCENT + VALID_PERCENT:
        return "valid"
    return "train"


def default_text_path() -> Path:
    """The CMU ARCTIC prompts: $SPEECHLM_ARCTIC, else ../shared/data next to the checkout."""
    env = os.environ.get("SPEECHLM_ARCTIC")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data" / "cmuarctic.data"


def read_sentences(path: str | os.PathLike) -> list[Sentence]:
    """Parse festival's ``( id "text" )`` prompt file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"prompt file not found: {path} (give --text PATH)")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            raise DataError(f"{path}:{n}: expected '( id \"text\" )', got {line[:60]!r}")
        out.append(Sentence(m.group(1), m.group(2)))
    if not out:
        raise DataError(f"{path} holds no sentences")
    return out


def select_small(sentences: Sequence[Sentence]) -> list[Sentence]:
    """The first few sentences of each split, for the --small corpus."""
    picked: list[Sentence] = []
    counts = {s: 0 for s in SPLITS}
    for s in sentences:
        if counts[s.split] < SMALL_SENTENCES_PER_SPLIT[s.split]:
            counts[s.split] += 1
            picked.append(s)
    return picked


def check_tools(voices: Iterable[Voice]) -> None:
    """Raise :class:`DataError` naming the missing programs and the apt-get line to get them."""
    need = {"sox"} | {
        {"flite": "flite", "festival": "festival", "espeak": "espeak-ng"}[v.engine] for v in voices
    }
    missing = sorted(t for t in need if shutil.which(t) is None)
    if missing:
        raise DataError(
            f"missing synthesizer programs: {', '.join(missing)}; install them with "
            "'apt-get install flite festival festvox-kallpc16k festvox-us-slt-hts espeak-ng sox'"
        )


# --------------------------------------------------------------------------- synthesis


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({res.returncode}): {res.stderr.strip()[:300]}")
    return res


def _postprocess(raw: Path, out_wav: Path, voice: Voice,
                 segments: list[tuple[str, float]] | None) -> None:
    """sox ``raw`` to 16 kHz mono PCM16 (+ pitch), write the .phn, then rename into place."""
    tmp_wav = out_wav.with_name(f".{out_wav.stem}.tmp.wav")
    effects = ["pitch", str(voice.pitch_cents)] if voice.pitch_cents else []
    # -R: repeatable (fixed seeds), -D: no dither, -G: guard against clipping
    _run(["sox", "-R", "-D", "-G", str(raw), "-b", "16", "-c", "1", str(tmp_wav),
          *effects, "rate", "-h", str(SAMPLE_RATE)])
    if segments is not None:
        n = sf.info(str(tmp_wav)).frames
        lines, start = [], 0
        for phone, end_s in segments:
            end = min(n, round(end_s * SAMPLE_RATE))
            if end > start:
                lines.append(f"{start} {end} {phone}")
                start = end
        if start < n and lines:  # stretch the last segment (silence) to the end of the audio
            last = lines[-1].split()
            lines[-1] = f"{last[0]} {n} {last[2]}"
        write_text_atomic(out_wav.with_suffix(".phn"), "\n".join(lines) + "\n")
    os.replace(tmp_wav, out_wav)


def _parse_flite_segments(stdout: str) -> list[tuple[str, float]]:
    segs = []
    for tok in stdout.split():
        name, _, end = tok.rpartition(":")
        if name:
            segs.append((name, float(end)))
    if not segs:
        raise RuntimeError("flite printed no segments")
    return segs


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synth_task(args: tuple[Voice, list[Sentence], str]) -> int:
    """Synthesize ``sentences`` in ``voice`` into ``wav_dir``; return how many were made."""
    voice, sentences, wav_dir = args
    out_dir = Path(wav_dir) / voice.name
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [s for s in sentences if not (out_dir / f"{s.id}.wav").exists()]
    if not todo:
        return 0
    with tempfile.TemporaryDirectory(prefix="speechlm-synth-") as tmpd:
        tmp = Path(tmpd)
        if voice.engine == "festival":
            script = [f"(voice_{voice.voice})",
                      f"(Parameter.set 'Duration_Stretch {voice.stretch})",
                      "(define (speechlm_synth text wav seg)"
                      " (let ((utt (SynthText text)) (fd (fopen seg \"w\")))"
                      " (utt.save.wave utt wav 'riff)"
                      " (mapcar (lambda (s) (format fd \"%s %f\\n\" (item.name s)"
                      " (item.feat s \"end\"))) (utt.relation.items utt 'Segment))"
                      " (fclose fd)))"]
            for s in todo:
                script.append(f"(speechlm_synth {_scheme_string(s.text)} "
                              f"\"{tmp / (s.id + '.wav')}\" \"{tmp / (s.id + '.seg')}\")")
            (tmp / "run.scm").write_text("\n".join(script) + "\n", encoding="utf-8")
            _run(["festival", "-b", str(tmp / "run.scm")], timeout=3600)
            for s in todo:
                segs = []
                for line in (tmp / f"{s.id}.seg").read_text().splitlines():
                    name, end = line.split()
                    segs.append((name, float(end)))
                _postprocess(tmp / f"{s.id}.wav", out_dir / f"{s.id}.wav", voice, segs)
        else:
            for s in todo:
                raw = tmp / f"{s.id}.wav"
                if voice.engine == "flite":
                    res = _run(["flite", "-voice", voice.voice, "--setf",
                                f"duration_stretch={voice.stretch}", "-psdur",
                                "-t", s.text, "-o", str(raw)], timeout=600)
                    segs = _parse_flite_segments(res.stdout)
                else:
                    _run(["espeak-ng", "-v", voice.voice, "-s", str(voice.espeak_speed),
                          "-p", str(voice.espeak_pitch), "-w", str(raw), s.text], timeout=600)
                    segs = None
                _postprocess(raw, out_dir / f"{s.id}.wav", voice, segs)
    return len(todo)


# --------------------------------------------------------------------------- manifests


def write_manifests(out: Path, voices: Sequence[Voice], sentences: Sequence[Sentence]) -> dict:
    """Write ``<split>.tsv/.wrd/.spk`` and ``corpus.json`` from the files on disk."""
    wav_root = (out / "wav").resolve()
    summary: dict = {"format": "speechlm.corpus", "version": CORPUS_FORMAT_VERSION,
                     "sample_rate": SAMPLE_RATE, "voices": [dataclasses.asdict(v) for v in voices],
                     "splits": {}}
    for split in SPLITS:
        tsv, wrd, spk = [str(wav_root)], [], []
        seconds = 0.0
        per_speaker: dict[str, float] = {}
        for v in voices:
            for s in sentences:
                if s.split != split:
                    continue
                rel = f"{v.name}/{s.id}.wav"
                frames = sf.info(str(wav_root / rel)).frames
                tsv.append(f"{rel}\t{frames}")
                wrd.append(s.text)
                spk.append(v.name)
                seconds += frames / SAMPLE_RATE
                per_speaker[v.name] = per_speaker.get(v.name, 0.0) + frames / SAMPLE_RATE
        write_text_atomic(out / f"{split}.tsv", "\n".join(tsv) + "\n")
        write_text_atomic(out / f"{split}.wrd", "".join(t + "\n" for t in wrd))
        write_text_atomic(out / f"{split}.spk", "".join(t + "\n" for t in spk))
        summary["splits"][split] = {
            "utterances": len(wrd),
            "sentences": len({r.split("\t")[0].split("/")[1] for r in tsv[1:]}),
            "hours": round(seconds / 3600, 4),
            "hours_per_speaker": {k: round(x / 3600, 4) for k, x in per_speaker.items()},
        }
    summary["hours"] = round(sum(s["hours"] for s in summary["splits"].values()), 4)
    summary["speakers"] = len(voices)
    write_json_atomic(out / "corpus.json", summary)
    return summary


def run_tasks(fn: Callable[[tuple], R], tasks: Sequence[tuple], jobs: int | None, desc: str,
              unit: str, progress: bool = True) -> list[R]:
    """``[fn(t) for t in tasks]`` over ``jobs`` worker processes (default: all cores, at most one
    per task; 1: in this process), with a progress bar counting the items of each task (its
    second field, a list): the synthesis loop of the corpus, the probes and the word set."""
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks) or 1))
    out: list[R] = []
    with tqdm(total=sum(len(t[1]) for t in tasks), desc=desc, unit=unit,
              disable=not progress) as bar:
        if jobs == 1:
            results: Iterable[R] = map(fn, tasks)
            for t, r in zip(tasks, results):
                out.append(r)
                bar.update(len(t[1]))
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                for t, r in zip(tasks, pool.map(fn, tasks)):
                    out.append(r)
                    bar.update(len(t[1]))
    return out


def synth_corpus(out: str | os.PathLike, *, text: str | os.PathLike | None = None,
                 voices: Sequence[Voice] | None = None, small: bool = False,
                 limit: int | None = None, jobs: int | None = None,
                 progress: bool = True) -> dict:
    """Synthesize the corpus into ``out`` (resumable) and write its manifests.

    Args:
        out: output directory.
        text: prompt file; default :func:`default_text_path`.
        voices: speakers; default :data:`DEFAULT_VOICES` (or the small set with ``small``).
        small: a corpus of about two minutes for tests.
        limit: use only the first ``limit`` sentences (after ``small`` selection).
        jobs: worker processes (default: all cores).
        progress: show a progress bar on stderr.

    Returns:
        The ``corpus.json`` summary.
    """
    out = Path(out)
    sentences = read_sentences(text or default_text_path())
    if voices is None:
        voices = [v for v in DEFAULT_VOICES if v.name in SMALL_VOICES] if small \
            else list(DEFAULT_VOICES)
    if small:
        sentences = select_small(sentences)
    if limit is not None:
        sentences = sentences[:limit]
    check_tools(voices)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    tasks = []
    for v in voices:
        chunk = FESTIVAL_CHUNK if v.engine == "festival" else 20
        for i in range(0, len(sentences), chunk):
            tasks.append((v, list(sentences[i : i + chunk]), str(out / "wav")))
    # longest tasks (festival) first so the pool ends evenly
    tasks.sort(key=lambda t: t[0].engine != "festival")
    run_tasks(synth_task, tasks, jobs, "synth", "utt", progress)
    summary = write_manifests(out, voices, sentences)
    log.info("corpus at %s: %.2f h, %d speakers", out, summary["hours"], summary["speakers"])
    return summary


def voices_by_name(names: Iterable[str]) -> list[Voice]:
    """Look up voices of :data:`DEFAULT_VOICES` by name."""
    table = {v.name: v for v in DEFAULT_VOICES}
    unknown = [n for n in names if n not in table]
    if unknown:
        raise DataError(f"unknown voice(s) {', '.join(unknown)}; known: {', '.join(table)}")
    return [table[n] for n in names]


def corpus_summary(path: str | os.PathLike) -> dict:
    """Read ``corpus.json`` of a built corpus."""
    p = Path(path) / "corpus.json"
    if not p.exists():
        raise DataError(f"{path} is not a corpus (no corpus.json); build one with "
                        "'speechlm corpus synth --out DIR'")
    return json.loads(p.read_text())
