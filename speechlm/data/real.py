"""A real human voice to judge on: the Asterisk PBX's English prompts, read by Allison Smith.

Every voice the models here learned from is synthetic, and so are the held-out engines they are
judged on. Debian ships one professionally recorded human voice with transcripts:
``asterisk-core-sounds-en-g722`` (the English prompts of the Asterisk PBX, recorded by Allison
Smith, CC BY-SA 3.0) with the transcripts in ``asterisk-core-sounds-en``
(``core-sounds-en.txt.gz``). G.722 is a 16 kHz wideband codec (audio to 7 kHz), so the files
are read at the models' own rate; the ``-wav`` package holds the same prompts at 8 kHz
(telephone band), read here with ``--format wav`` and resampled.

:func:`build_real_voice` turns the unpacked packages into a folder that every report harness
reads with ``--wav-dir`` (``DIR/<name>.wav`` and ``DIR/texts.tsv``, one speaker: the folder's
name), keeping the prompts a word error rate can judge: at least ``min_words`` words, no
bracketed sound descriptions ("[beep tone]") and no digits (the transcripts write "press 1"
where the voice says "one", and the WER normaliser does not spell numbers). The folder is built
beside its final place and renamed onto it, so it is complete or absent.
``scripts/build_real_voice.sh`` fetches the packages (``apt-get download``: no root, nothing
installed) and runs it.

With transcripts, each prompt also gets phone labels (``<name>.phn``, TIMIT style, in samples)
from pocketsphinx's forced alignment (:class:`PhoneAligner`: its US English acoustic model,
trained on real speech and independent of every encoder here), and the folder a manifest
(``<folder>/<folder name>.tsv`` with ``.wrd`` and ``.spk``), so ``speechlm eval tokenizer
--manifest data/real/allison/allison.tsv`` measures units on a real voice as on the corpus.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.audio import SAMPLE_RATE
from speechlm.data.manifest import Utterance, write_manifest
from speechlm.errors import DataError, ModelError

FORMATS = ("g722", "wav")  # the package's file suffix for each
SOURCE = {
    "licence": "CC-BY-SA-3.0 (Russian: CC-BY-3.0); debian/copyright of the packages",
    "packages": "Debian asterisk-core-sounds-LANG-g722 / -wav (sounds), asterisk-core-sounds-en "
                "(core-sounds-en.txt.gz: the English transcripts)",
}
PS_HOP = SAMPLE_RATE // 100  # samples per pocketsphinx frame (100 per second)
_BRACKETS = re.compile(r"\[[^\]]*\]")
_NOT_WORD = re.compile(r"[^a-z' ]+")
_DIGIT = re.compile(r"\d")


def read_texts(path: str | os.PathLike) -> dict[str, str]:
    """``core-sounds-en.txt[.gz]``: ``name: transcript`` lines (``;`` comments) -> {name: text}.

    Names keep their folder (``digits/1``). A line without ``: `` is an error naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such transcript file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the transcripts ({err})") from None
    texts: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        name, sep, text = line.partition(":")
        if not sep or not name.strip():
            raise DataError(f"{path}:{n}: expected 'name: transcript', got {line[:60]!r}")
        texts[name.strip()] = " ".join(text.split())
    if not texts:
        raise DataError(f"{path}: no transcripts")
    return texts


def judgeable(text: str, min_words: int) -> bool:
    """A transcript a WER can judge: ``min_words`` or more words, no bracketed sound
    description, no digits."""
    return (not _BRACKETS.search(text) and not _DIGIT.search(text)
            and len(text.split()) >= min_words)


def decode(path: str | os.PathLike, fmt: str) -> np.ndarray:
    """One prompt -> float32 mono samples at :data:`~speechlm.audio.SAMPLE_RATE`.

    ``g722``: raw G.722 (16 kHz), decoded by PyAV (``pip install av``); ``wav``: any file
    soundfile reads, resampled to the models' rate.
    """
    path = Path(path)
    if fmt == "g722":
        try:
            import av
        except ImportError:
            raise DataError("reading G.722 needs PyAV: .venv/bin/pip install av "
                            "(scripts/setup.sh installs it)") from None
        try:
            with av.open(str(path), format="g722") as c:
                frames = [fr.to_ndarray() for fr in c.decode(audio=0)]
                sr = c.streams.audio[0].codec_context.sample_rate
        except (av.FFmpegError, OSError) as err:
            raise DataError(f"{path}: not G.722 audio ({err})") from None
        if not frames:
            raise DataError(f"{path}: no audio")
        y = np.concatenate([f.reshape(-1) for f in frames]).astype(np.float32)
        y /= 32768.0 if frames[0].dtype == np.int16 else 1.0
    elif fmt == "wav":
        import soundfile as sf

        try:
            y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as err:
            raise DataError(f"{path}: unreadable audio ({err})") from None
        y = y.mean(axis=1)
    else:
        raise DataError(f"unknown format {fmt!r} ({', '.join(FORMATS)})")
    if sr != SAMPLE_RATE:
        import torch

        from speechlm.audio import resample

        y = resample(torch.from_numpy(np.ascontiguousarray(y)), sr, SAMPLE_RATE).numpy()
    return np.ascontiguousarray(y, dtype=np.float32)


class PhoneAligner:
    """pocketsphinx's phone-level forced alignment of a transcript (its en-us acoustic model
    and dictionary, both inside the wheel): a word pass, then a phone pass over its words."""

    def __init__(self):
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise ModelError("phone alignment needs pocketsphinx (the eval extra: "
                             "pip install -e '.[eval]')") from None
        self.decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")

    @staticmethod
    def words(text: str) -> str:
        """The transcript as the dictionary spells it: lower case, letters and apostrophes."""
        return " ".join(_NOT_WORD.sub(" ", text.lower().replace("-", " ")).split())

    def align(self, wav: np.ndarray, text: str) -> list[tuple[int, int, str]] | None:
        """``[(start, end, phone), ...]`` in samples (ARPAbet, ``SIL`` for pauses and
        fillers) for 16 kHz float samples and their transcript; None when a word is not in
        the dictionary or the alignment fails."""
        from speechlm.data.phones import ARPABET, SILENCE

        pcm = (np.clip(wav, -1, 1) * 32767).astype(np.int16).tobytes()
        d = self.decoder
        try:
            d.set_align_text(self.words(text))
            for second in (False, True):
                if second:
                    d.set_alignment()
                d.start_utt()
                d.process_raw(pcm, full_utt=True)
                d.end_utt()
            alignment = d.get_alignment()
        except (RuntimeError, ValueError):
            return None
        if alignment is None:
            return None
        out: list[tuple[int, int, str]] = []
        for word in alignment:
            for ph in word:
                name = ph.name if ph.name in ARPABET else SILENCE
                start, end = ph.start * PS_HOP, (ph.start + ph.duration) * PS_HOP
                if out and out[-1][2] == name == SILENCE:
                    out[-1] = (out[-1][0], end, name)
                else:
                    out.append((start, end, name))
        return out or None


def _write_phn(path: Path, phones: list[tuple[int, int, str]], n_samples: int) -> None:
    rows = [(s, min(e, n_samples), p) for s, e, p in phones if s < n_samples]
    path.write_text("".join(f"{s} {e} {p}\n" for s, e, p in rows), encoding="utf-8")


def _sounds(sounds: Path, fmt: str) -> dict[str, Path]:
    """The package's prompts by name; empty files (the Russian package has one) are none."""
    suffix = "." + fmt
    return {p.relative_to(sounds).with_suffix("").as_posix(): p
            for p in sounds.rglob("*" + suffix) if p.is_file() and p.stat().st_size > 0}


def build_real_voice(sounds: str | os.PathLike, texts: str | os.PathLike | None,
                     out: str | os.PathLike, fmt: str = "g722", min_words: int = 3,
                     max_utterances: int = 0, align: bool = True,
                     progress: bool = False) -> dict[str, Any]:
    """Write the judgeable prompts of ``sounds`` (the package's ``en_US_f_Allison`` folder)
    as ``out/<name>.wav`` (16 kHz, 16-bit; subfolder names joined by ``-``) with
    ``out/texts.tsv`` and ``out/source.json``; returns the summary written there.

    ``texts`` None: a voice without transcripts (another language's prompts, a reference for
    the speaker-similarity calibration only, ``--reference-voices``): the ``max_utterances``
    largest files, no ``texts.tsv``. ``max_utterances`` 0: all. ``align`` (with ``texts``):
    phone labels by :class:`PhoneAligner` beside each prompt that aligns, and a manifest.

    Raises:
        DataError: a missing folder, an unknown format, no judgeable prompt with audio, or a
            file that does not decode.
    """
    import soundfile as sf

    sounds, out = Path(sounds), Path(out)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r} ({', '.join(FORMATS)})")
    if min_words < 1:
        raise DataError(f"--min-words must be >= 1, got {min_words}")
    if not sounds.is_dir():
        raise DataError(f"{sounds}: not a folder (the package's en_US_f_Allison folder)")
    if max_utterances < 0:
        raise DataError(f"--max-utterances must be >= 0, got {max_utterances}")
    files = _sounds(sounds, fmt)
    if not files:
        raise DataError(f"{sounds}: no .{fmt} files")
    if texts is None:
        text_of: dict[str, str] = {}
        names = sorted(files, key=lambda n: (-files[n].stat().st_size, n))
    else:
        text_of = read_texts(texts)
        names = sorted(n for n, t in text_of.items() if n in files and judgeable(t, min_words))
    if not names:
        raise DataError(f"{sounds}: no prompt with audio and a judgeable transcript "
                        f"(>= {min_words} words, no digits or brackets)")
    if max_utterances:
        names = sorted(names[:max_utterances])
    aligner = PhoneAligner() if texts is not None and align else None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        rows, samples, aligned, utts = [], 0, 0, []
        for name in _progress(names, progress):
            y = decode(files[name], fmt)
            fname = name.replace("/", "-") + ".wav"
            sf.write(tmp / fname, y, SAMPLE_RATE, subtype="PCM_16")
            if name in text_of:
                rows.append(f"{fname}\t{text_of[name]}")
                utts.append(Utterance(fname[:-4], out.resolve() / fname, len(y), out.name,
                                      text_of[name]))
            if aligner is not None:
                phones = aligner.align(y, text_of[name])
                if phones:
                    _write_phn(tmp / (fname[:-4] + ".phn"), phones, len(y))
                    aligned += 1
            samples += len(y)
        if rows:
            (tmp / "texts.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
            # the manifest's root is the folder's final place (it is renamed there below)
            write_manifest(tmp / f"{out.name}.tsv", out.resolve(), utts)
        summary = {**SOURCE, "sounds": sounds.as_posix(), "format": fmt,
                   "transcribed": texts is not None,
                   "min_words": min_words if texts is not None else None,
                   "prompts_in_transcripts": len(text_of), "files": len(files),
                   "utterances": len(names), "hours": round(samples / SAMPLE_RATE / 3600, 4),
                   "words": sum(len(text_of[n].split()) for n in names if n in text_of),
                   "phone_aligned": aligned if aligner is not None else None,
                   "aligner": "pocketsphinx en-us (forced alignment)" if aligner else None,
                   "sample_rate": SAMPLE_RATE}
        (tmp / "source.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return summary


def relabel(items: list[Utterance], out: str | os.PathLike, max_per_voice: int = 0,
            progress: bool = False) -> dict[str, Any]:
    """The same utterances labelled by :class:`PhoneAligner` instead of their engine: ``out``
    gets a link to each audio file (``<speaker>/<file>``), its ``.phn`` where the transcript
    aligns, and a manifest (``out/<out name>.tsv``), so ``eval tokenizer`` reads a synthetic
    set and the real voice against one aligner. Returns per speaker: utterances, aligned, and
    where the engine gave labels the non-silence 20 ms frames compared (``frames``), those on
    which the two label sets agree (``agree``) and their share (``engine_agreement``): what
    the aligner's labels are worth."""
    from speechlm.audio import load_audio
    from speechlm.data.manifest import read_phn

    out = Path(out)
    aligner = PhoneAligner()
    taken: dict[str, int] = {}
    keep = []
    for u in items:
        spk = u.speaker or u.name.split("/")[0]
        if u.text and (not max_per_voice or taken.get(spk, 0) < max_per_voice):
            taken[spk] = taken.get(spk, 0) + 1
            keep.append(u)
    if not keep:
        raise DataError("no utterance with a transcript to align")
    out.mkdir(parents=True, exist_ok=True)
    stats: dict[str, dict[str, float]] = {}
    linked = []
    for u in _progress(keep, progress):
        spk = u.speaker or u.name.split("/")[0]
        dst = out / spk / u.path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.symlink_to(Path(u.path).resolve())
        linked.append(dataclasses.replace(u, path=dst.absolute(), speaker=spk))
        st = stats.setdefault(spk, {"utterances": 0, "aligned": 0, "frames": 0, "agree": 0})
        st["utterances"] += 1
        wav = load_audio(u.path).numpy()
        phones = aligner.align(wav, u.text)
        if not phones:
            continue
        _write_phn(dst.with_suffix(".phn"), phones, len(wav))
        st["aligned"] += 1
        if u.phn_path.exists():
            a = _frame_labels(read_phn(u.phn_path), len(wav))
            b = _frame_labels(phones, len(wav))
            m = (a != "") & (b != "") & (a != "SIL")
            st["frames"] += int(m.sum())
            st["agree"] += int(((a == b) & m).sum())
    write_manifest(out / f"{out.name}.tsv", out.absolute(), linked)
    return {spk: {**st, "engine_agreement": round(st["agree"] / st["frames"], 4)
                  if st["frames"] else None}
            for spk, st in sorted(stats.items())}


def _frame_labels(phones: list[tuple[int, int, str]], n_samples: int) -> np.ndarray:
    """The phone of each 20 ms frame ('' where none)."""
    hop = 2 * PS_HOP
    lab = np.full(n_samples // hop, "", dtype=object)
    for s, e, p in phones:
        lab[s // hop: e // hop] = p
    return lab


def _progress(names: list[str], on: bool) -> Iterable[str]:
    if not on:
        return names
    from tqdm import tqdm

    return tqdm(names, desc="prompts", unit="file")


__all__ = ["FORMATS", "PhoneAligner", "build_real_voice", "decode", "judgeable", "read_texts",
           "relabel"]
