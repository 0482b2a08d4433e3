"""fairseq-style manifests: a root line, then ``relpath<TAB>num_samples`` per utterance.

Side files with the same stem hold one value per utterance line: ``.wrd`` (transcript) and
``.spk`` (speaker). Phone alignments, when the corpus has them, sit beside each audio file as
``.phn`` (TIMIT style: ``start end phone`` in samples).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from speechlm.errors import DataError

DEFAULT_CORPUS = Path("data/corpus")  # where 'speechlm corpus synth' puts the corpus by default


@dataclasses.dataclass(frozen=True)
class Utterance:
    name: str  # relative path without suffix: unique within a corpus
    path: Path  # absolute audio path
    num_samples: int
    speaker: str | None = None
    text: str | None = None

    @property
    def phn_path(self) -> Path:
        return self.path.with_suffix(".phn")


def resolve_manifest(manifest: str | os.PathLike, corpus: str | os.PathLike | None = None) -> Path:
    """A manifest path, or a split name (``train``/``valid``/``test``) of ``corpus``."""
    p = Path(manifest)
    if p.suffix == "" and not p.exists():
        p = Path(corpus or DEFAULT_CORPUS) / f"{manifest}.tsv"
    if not p.exists():
        raise DataError(f"manifest not found: {p} (build the corpus with "
                        "'speechlm corpus synth --out data/corpus', or give a .tsv path)")
    return p


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a manifest and its ``.spk`` / ``.wrd`` side files when present."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a directory: a manifest is a .tsv file (its root directory, "
                        "then 'relpath<TAB>num_samples' per utterance)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text file: a manifest is a .tsv of its root directory, "
                        "then 'relpath<TAB>num_samples' per utterance") from None
    if not lines:
        raise DataError(f"{path} is empty: a manifest starts with its root directory")
    root = Path(lines[0].strip())
    if not root.is_dir():  # a moved corpus: try the root's name beside the manifest
        alt = path.parent / root.name
        if not alt.is_dir():
            raise DataError(f"{path}: root directory {root} does not exist")
        root = alt
    rows = [ln for ln in lines[1:] if ln.strip()]

    def side(ext: str) -> list[str] | None:
        p = path.with_suffix(ext)
        if not p.exists():
            return None
        vals = p.read_text(encoding="utf-8").splitlines()
        if len(vals) != len(rows):
            raise DataError(f"{p} has {len(vals)} lines but {path} has {len(rows)} utterances")
        return vals

    spk, wrd = side(".spk"), side(".wrd")
    out = []
    for i, row in enumerate(rows):
        parts = row.split("\t")
        if len(parts) < 2 or not parts[1].strip().isdigit():
            raise DataError(f"{path}:{i + 2}: expected 'relpath<TAB>num_samples', got {row!r}")
        rel = parts[0]
        out.append(Utterance(name=str(Path(rel).with_suffix("")), path=root / rel,
                             num_samples=int(parts[1]),
                             speaker=spk[i] if spk else None, text=wrd[i] if wrd else None))
    return out


def write_manifest(path: str | os.PathLike, root: str | os.PathLike,
                   utterances: list[Utterance]) -> None:
    """Write ``utterances`` (paths under ``root``) as a manifest at ``path`` with its ``.spk``
    and ``.wrd`` side files when every utterance has a speaker / a text; each file atomically,
    the ``.wrd`` (or else the ``.spk``, or the manifest) last, so its presence marks a finished
    write.

    Raises:
        DataError: an utterance's audio is not under ``root``.
    """
    from speechlm.io import write_text_atomic

    path, root = Path(path), Path(root)
    rows = []
    for u in utterances:
        try:
            rows.append(f"{Path(u.path).relative_to(root)}\t{u.num_samples}\n")
        except ValueError:
            raise DataError(f"{u.path} is not under the manifest root {root}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, f"{root}\n" + "".join(rows))
    for ext, vals in ((".spk", [u.speaker for u in utterances]),
                      (".wrd", [u.text for u in utterances])):
        if utterances and all(v is not None for v in vals):
            write_text_atomic(path.with_suffix(ext), "".join(f"{v}\n" for v in vals))


def read_phn(path: str | os.PathLike) -> list[tuple[int, int, str]]:
    """Read a TIMIT-style ``.phn`` file: ``[(start, end, phone), ...]`` in samples."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise DataError(f"{path}:{n}: expected 'start end phone'")
        out.append((int(parts[0]), int(parts[1]), parts[2]))
    return out


def shard(items: list, spec: str) -> list:
    """Contiguous shard ``I/N`` (0-based I) of ``items``."""
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise DataError(f"--shard expects I/N such as 0/4, got {spec!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise DataError(f"--shard {spec}: need N >= 1 and 0 <= I < N")
    return items[i * len(items) // n : (i + 1) * len(items) // n]
