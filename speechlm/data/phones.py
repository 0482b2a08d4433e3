"""One phone set for every engine: ARPAbet (39 phones, no stress) plus ``SIL``.

Each synthesizer speaks its own phone set: flite and festival's US voices use festival's
``radio`` set (lower-case ARPAbet with ``pau``), the British festival voices (rab, don) use
``mrpa``, and the MBROLA voices (through espeak-ng) use SAMPA. :func:`to_arpabet` maps any of
them to ARPAbet; a symbol it does not know becomes ``SPN`` (spoken noise), which the corpus card
counts.
"""

from __future__ import annotations

ARPABET = frozenset(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW "
    "V W Y Z ZH".split()
)
SILENCE = "SIL"  # pauses of every engine
UNKNOWN = "SPN"  # a symbol no table knows

# festival radio / flite (cmulex): ARPAbet in lower case, plus a few extras
RADIO = {p.lower(): p for p in ARPABET} | {"pau": SILENCE, "h#": SILENCE, "brth": SILENCE,
                                           "ax": "AH", "axr": "ER", "dx": "T", "nx": "N"}

# festival mrpa (British diphone voices rab, don)
MRPA = {
    "#": SILENCE, "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "f": "F", "v": "V",
    "th": "TH", "dh": "DH", "s": "S", "z": "Z", "sh": "SH", "zh": "ZH", "h": "HH", "ch": "CH",
    "jh": "JH", "m": "M", "n": "N", "ng": "NG", "l": "L", "r": "R", "w": "W", "y": "Y",
    "i": "IH", "ii": "IY", "e": "EH", "a": "AE", "aa": "AA", "o": "AA", "oo": "AO", "u": "UH",
    "uu": "UW", "uh": "AH", "@": "AH", "@@": "ER", "ei": "EY", "ai": "AY", "oi": "OY",
    "ou": "OW", "au": "AW", "i@": "IH", "e@": "EH", "u@": "UH",
}

# SAMPA as espeak-ng hands it to the MBROLA voices us1/us2/us3 (American) and en1 (British)
SAMPA = {
    "_": SILENCE, "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "f": "F",
    "v": "V", "T": "TH", "D": "DH", "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "h": "HH",
    "tS": "CH", "dZ": "JH", "m": "M", "n": "N", "N": "NG", "l": "L", "5": "L", "r": "R",
    "w": "W", "j": "Y", "4": "T", "?": "T", "i": "IY", "i:": "IY", "I": "IH", "E": "EH",
    "e": "EH", "{": "AE", "A": "AA", "A:": "AA", "Q": "AA", "O": "AO", "O:": "AO", "U": "UH",
    "u": "UW", "u:": "UW", "V": "AH", "@": "AH", "r=": "ER", "3:": "ER", "3`": "ER", "@`": "ER",
    "EI": "EY", "eI": "EY", "AI": "AY", "aI": "AY", "OI": "OY", "@U": "OW", "oU": "OW",
    "aU": "AW", "I@": "IH", "e@": "EH", "U@": "UH", "l=": "L", "n=": "N", "m=": "M",
}

PHONE_SETS = {"radio": RADIO, "mrpa": MRPA, "sampa": SAMPA}


def to_arpabet(phone: str, phone_set: str) -> str:
    """Map one engine phone to ARPAbet (``SIL`` for pauses, ``SPN`` when unknown)."""
    table = PHONE_SETS[phone_set]
    if phone in table:
        return table[phone]
    # SAMPA modifiers: aspiration (t_h), length (:), syllabicity (=), stress marks
    base = phone.split("_")[0].rstrip(":=").lstrip("'\",%")
    return table.get(base, table.get(base.lower(), UNKNOWN)) if base else UNKNOWN


def merge_segments(segs: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Drop empty segments and merge neighbouring silences: ``[(start_s, end_s, phone)]``."""
    out: list[tuple[float, float, str]] = []
    for a, b, p in segs:
        if b <= a:
            continue
        if out and p == SILENCE and out[-1][2] == SILENCE:
            out[-1] = (out[-1][0], b, p)
        else:
            out.append((a, b, p))
    return out


CLASSES: tuple[str, ...] = tuple(sorted(ARPABET)) + (SILENCE,)  # a phone classifier's outputs


def arpabet_of(symbol: str) -> str | None:
    """An alignment symbol in ARPAbet: already ARPAbet (the world corpus) or festival's radio
    set (the ARCTIC corpus); None for anything else (``SPN``)."""
    if symbol in ARPABET or symbol == SILENCE:
        return symbol
    return RADIO.get(symbol)
