"""The :class:`Units` value and pure functions on unit sequences: dedup + durations, special
tokens, parsing, and unit files.

Two on-disk forms:
    * the versioned JSON record (one object per line in a ``.jsonl`` file)::

        {"format": "speechlm.units", "version": 1, "name": ..., "unit_space": ...,
         "n_units": 100, "frame_rate": 50.0, "dedup": true, "ids": [...], "durations": [...]}

    * the plain ``name|u1 u2 u3`` lines that fairseq's GSLM tools read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from speechlm.errors import DataError

UNITS_FORMAT = "speechlm.units"
UNITS_VERSION = 1

# Special tokens of the unit LM sit right above the unit range, in this order: with K units,
# <bos> = K, <eos> = K + 1, <pad> = K + 2.
SPECIAL_TOKENS = ("<bos>", "<eos>", "<pad>")
N_SPECIAL = len(SPECIAL_TOKENS)


def special_id(name: str, n_units: int) -> int:
    """Id of special token ``name`` (``"<bos>"``, ``"<eos>"``, ``"<pad>"``) for ``n_units``."""
    return n_units + SPECIAL_TOKENS.index(name)


# Text tokens of an interleaved (text + speech) LM sit above the specials: two modality markers,
# then one token per character of the LM's ``text_vocab``. After <bos> a sequence is speech;
# <text> switches to text and <speech> back (SpiritLM-style interleaving at word boundaries).
TEXT_MARKERS = ("<text>", "<speech>")
DEFAULT_TEXT_VOCAB = " 'abcdefghijklmnopqrstuvwxyz0123456789"  # what normalize_text keeps


def text_vocab_size(n_units: int, text_vocab: str) -> int:
    """Tokens of an LM over ``n_units`` units with ``text_vocab`` (``""``: a units-only LM)."""
    return n_units + N_SPECIAL + (len(TEXT_MARKERS) + len(text_vocab) if text_vocab else 0)


def marker_id(name: str, n_units: int) -> int:
    """Id of modality marker ``name`` (``"<text>"`` or ``"<speech>"``)."""
    return n_units + N_SPECIAL + TEXT_MARKERS.index(name)


def normalize_text(text: str, text_vocab: str = DEFAULT_TEXT_VOCAB) -> list[str]:
    """Words of ``text`` in the characters of ``text_vocab``: lower case, every other character
    a word break (``"Don't stop-now!"`` -> ``["don't", "stop", "now"]``)."""
    keep = set(text_vocab) - {" "}
    return "".join(c if c in keep else " " for c in text.lower()).split()


def encode_words(words: list[str], n_units: int, text_vocab: str) -> list[int]:
    """Token ids of ``words``, each followed by a space (the marker is not included)."""
    base = n_units + N_SPECIAL + len(TEXT_MARKERS)
    index = {c: base + i for i, c in enumerate(text_vocab)}
    out = []
    for w in words:
        out += [index[c] for c in w if c in index] + [index[" "]]
    return out


def text_prompt_ids(text: str, n_units: int, text_vocab: str) -> list[int]:
    """``<text> words <speech>``: the tokens that ask an interleaved LM to speak ``text``.

    Raises:
        ValueError: the LM has no text vocabulary, or ``text`` has no word in it.
    """
    if not text_vocab:
        raise ValueError("this LM was trained on units only; a text prompt needs an LM trained "
                         "with text (an interleaved recipe)")
    words = normalize_text(text, text_vocab)
    if not words:
        raise ValueError(f"the text prompt {text!r} has no word in the LM's characters")
    return ([marker_id("<text>", n_units)] + encode_words(words, n_units, text_vocab)
            + [marker_id("<speech>", n_units)])


def dedup(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Collapse runs: ``[5 5 7 7 7 5]`` -> ids ``[5 7 5]``, durations ``[2 3 1]``."""
    if ids.numel() == 0:
        return ids.clone(), torch.zeros(0, dtype=torch.long)
    out, counts = torch.unique_consecutive(ids, return_counts=True)
    return out, counts.to(torch.long)


def merge_runs(ids: torch.Tensor, durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge neighbours with the same id, adding their durations: ``[5 5 7]``, ``[2 1 3]`` ->
    ``[5 7]``, ``[3 3]``. The same as expanding the runs and deduplicating again."""
    if ids.numel() == 0:
        return ids.clone(), durations.clone()
    out, inverse = torch.unique_consecutive(ids, return_inverse=True)
    total = torch.zeros(len(out), dtype=durations.dtype).index_add_(0, inverse, durations)
    return out, total


@dataclasses.dataclass(frozen=True)
class Units:
    """A sequence of discrete speech units.

    Attributes:
        ids: ``[T]`` int64 unit ids in ``[0, n_units)``.
        frame_rate: frames per second of the (non-deduplicated) unit stream.
        n_units: size of the unit vocabulary (K of the k-means).
        unit_space: id of the tokenizer that made the units; stages refuse other spaces.
        durations: ``[T]`` frames each id lasts, when repeats were collapsed; else None.
    """

    ids: torch.Tensor
    frame_rate: float
    n_units: int
    unit_space: str
    durations: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.ids.dim() != 1:
            raise ValueError(f"Units.ids must be 1-D, got shape {tuple(self.ids.shape)}")
        if self.durations is not None and self.durations.shape != self.ids.shape:
            raise ValueError(f"Units.durations shape {tuple(self.durations.shape)} != ids shape "
                             f"{tuple(self.ids.shape)}")

    @property
    def deduped(self) -> bool:
        """Whether repeats were collapsed (then ``durations`` is set)."""
        return self.durations is not None

    @property
    def num_frames(self) -> int:
        """Length of the frame-rate stream these units stand for."""
        return int(self.durations.sum()) if self.durations is not None else len(self.ids)

    @property
    def seconds(self) -> float:
        return self.num_frames / self.frame_rate

    def __len__(self) -> int:
        return len(self.ids)

    def dedup(self) -> Units:
        """Collapse runs of the same id, recording run lengths in ``durations``."""
        if self.deduped:
            return self
        ids, dur = dedup(self.ids)
        return dataclasses.replace(self, ids=ids, durations=dur)

    def concat(self, other: Units) -> Units:
        """These units followed by ``other`` (same unit space; both deduplicated or neither).
        Runs are not merged across the joint."""
        if (other.unit_space, other.frame_rate, other.n_units) != (
                self.unit_space, self.frame_rate, self.n_units):
            raise ValueError(f"cannot join units of {other.unit_space!r} to {self.unit_space!r}")
        if self.deduped != other.deduped:
            raise ValueError("cannot join deduplicated units to frame-rate units")
        dur = None if self.durations is None else torch.cat([self.durations, other.durations])
        return dataclasses.replace(self, ids=torch.cat([self.ids, other.ids]), durations=dur)

    def expand(self) -> Units:
        """Undo :meth:`dedup`: repeat each id by its duration."""
        if not self.deduped:
            return self
        return dataclasses.replace(self, ids=torch.repeat_interleave(self.ids, self.durations),
                                   durations=None)


MAX_ID_TEXT = 12  # digits of one unit id in text: far past any vocabulary, short of overflow


def parse_ids(text: str) -> list[int]:
    """Parse ``"12 7 33"`` (spaces or commas) into ints; raise :class:`DataError` if malformed."""
    toks = text.replace(",", " ").split()
    for t in toks:
        digits = t[1:] if t[:1] == "-" else t
        if not (digits.isascii() and digits.isdigit()):
            raise DataError(f"not a unit id: {t[:20]!r} (units are space-separated integers)")
        if len(digits) > MAX_ID_TEXT:
            raise DataError(f"unit id {t[:20]}... is too large")
    return [int(t) for t in toks]


def format_ids(ids: torch.Tensor | list[int]) -> str:
    """``[12, 7, 33]`` -> ``"12 7 33"``."""
    return " ".join(str(int(i)) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids))


def to_record(units: Units, name: str | None = None) -> dict:
    """The versioned JSON record of ``units``."""
    rec = {"format": UNITS_FORMAT, "version": UNITS_VERSION}
    if name is not None:
        rec["name"] = name
    rec.update({
        "unit_space": units.unit_space, "n_units": units.n_units,
        "frame_rate": units.frame_rate, "dedup": units.deduped,
        "ids": units.ids.tolist(),
        "durations": units.durations.tolist() if units.durations is not None else None,
    })
    return rec


# The schema of a units record, shared by every reader (vocode, generate-units, the API):
# a field missing, of the wrong type or out of these bounds is a DataError naming the field.
MAX_N_UNITS = 1 << 20  # vocabulary size
MAX_FRAME_RATE = 1000.0  # frames per second (units are 20 ms: 50 Hz)
MAX_DURATION = 2**31 - 1  # frames of one unit (the vocoder bounds the total it decodes)
RECORD_FIELDS = {"format", "version", "name", "unit_space", "n_units", "frame_rate", "dedup",
                 "ids", "durations"}


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _int_list(rec: dict, key: str, lo: int, hi: int, what: str) -> list[int]:
    v = rec[key]
    if not isinstance(v, list):
        raise DataError(f"'{key}' must be a list of integers, got {type(v).__name__}")
    for x in v:
        if not _is_int(x):
            raise DataError(f"'{key}' must hold integers only, got {json.dumps(x)[:30]}")
        if not lo <= x < hi:
            raise DataError(f"'{key}' {what} must lie in [{lo}, {hi}), got {x}")
    return v


def from_record(rec: dict) -> Units:
    """Inverse of :func:`to_record`: the one validated parser of units records.

    Checks format and version, then every field against the schema: ``unit_space`` a
    non-empty string; ``n_units`` an integer in [1, 2^20]; ``frame_rate`` a finite number in
    (0, 1000]; ``ids`` a flat list of integers in ``[0, n_units)``; ``dedup`` a bool;
    ``durations`` null (``dedup`` false) or a list of integers >= 1 as long as ``ids``
    (``dedup`` true); ``name`` absent, null or a string.

    Raises:
        DataError: naming the field and what it must be.
    """
    if not isinstance(rec, dict):
        raise DataError(f"a units record is a JSON object, got a JSON {_json_kind(rec)}")
    if rec.get("format") != UNITS_FORMAT:
        raise DataError(f"not a speechlm units record (format={rec.get('format')!r})")
    version = rec.get("version", 0)
    if not _is_int(version) or version < 0:
        raise DataError(f"'version' must be a whole number, got {version!r}")
    if version > UNITS_VERSION:
        raise DataError(f"units record version {version} is newer than this speechlm "
                        f"reads ({UNITS_VERSION}); upgrade speechlm")
    missing = [k for k in ("unit_space", "n_units", "frame_rate", "ids") if k not in rec]
    if missing:
        raise DataError(f"units record lacks {', '.join(repr(k) for k in missing)}")
    name = rec.get("name")
    if name is not None and not isinstance(name, str):
        raise DataError(f"'name' must be a string, got {json.dumps(name)[:30]}")
    space = rec["unit_space"]
    if not isinstance(space, str) or not space:
        raise DataError(f"'unit_space' must be a non-empty string, got {json.dumps(space)[:30]}")
    n = rec["n_units"]
    if not _is_int(n) or not 1 <= n <= MAX_N_UNITS:
        raise DataError(f"'n_units' must be an integer in [1, {MAX_N_UNITS}], got {n!r}")
    fr = rec["frame_rate"]
    if isinstance(fr, bool) or not isinstance(fr, (int, float)) or not math.isfinite(fr) \
            or not 0 < fr <= MAX_FRAME_RATE:
        raise DataError(f"'frame_rate' must be a number in (0, {MAX_FRAME_RATE:g}], got {fr!r}")
    ids = _int_list(rec, "ids", 0, n, "unit ids")
    dur = rec.get("durations")
    deduped = rec.get("dedup", dur is not None)
    if not isinstance(deduped, bool):
        raise DataError(f"'dedup' must be true or false, got {deduped!r}")
    if dur is not None:
        dur = _int_list(rec, "durations", 1, MAX_DURATION + 1, "frame counts")
        if len(dur) != len(ids):
            raise DataError(f"'durations' has {len(dur)} entries but 'ids' has {len(ids)}")
    if deduped != (dur is not None):
        raise DataError("'dedup' true needs 'durations' (one per id); 'dedup' false needs "
                        "'durations' null")
    return Units(ids=torch.tensor(ids, dtype=torch.long).reshape(-1), frame_rate=float(fr),
                 n_units=n, unit_space=space,
                 durations=torch.tensor(dur, dtype=torch.long).reshape(-1)
                 if dur is not None else None)


def _json_kind(x) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(x), "number")


def read_units_json(path: str | os.PathLike) -> list[tuple[str | None, Units]]:
    """Read a ``.json`` / ``.jsonl`` file of units records (one per line, or one object
    spread over several lines); every record goes through :func:`from_record`.

    Raises:
        DataError: ``path:line: what is wrong``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"units file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text file of units records") from None
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if len(lines) > 1 and lines[0][1].strip() == "{":  # one pretty-printed record
        lines = [(1, text)]
    out = []
    for n, line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{n}: not JSON ({err.msg})") from None
        except RecursionError:
            raise DataError(f"{path}:{n}: JSON nested too deeply") from None
        try:
            out.append((rec.get("name") if isinstance(rec, dict) else None, from_record(rec)))
        except DataError as err:
            raise DataError(f"{path}:{n}: {err}") from None
    return out


def iter_unit_lines(path: str | os.PathLike) -> Iterator[tuple[str, list[int]]]:
    """Yield ``(name, ids)`` from a ``name|u1 u2 ...`` file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"unit file not found: {path}")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            name, sep, rest = line.partition("|")
            if not sep:
                raise DataError(f"{path}:{n}: expected 'name|u1 u2 ...'")
            yield name, parse_ids(rest)


def unit_line(name: str, ids: torch.Tensor | list[int]) -> str:
    """One ``name|u1 u2 ...`` line (without newline)."""
    if "|" in name or "\n" in name:
        raise DataError(f"utterance name {name!r} may not contain '|' or a newline")
    return f"{name}|{format_ids(ids)}"
