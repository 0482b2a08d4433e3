"""One phone set for every engine: ARPAbet (39 phones, no stress) plus ``SIL``.

Each synthesizer speaks its own phone set: flite and festival's US voices use festival's
``radio`` set (lower-case ARPAbet with ``pau``), the British festival voices (rab, don) use
``mrpa``, and the MBROLA voices (through espeak-ng) use SAMPA. :func:`to_arpabet` maps any of
them to ARPAbet; a symbol it does not know becomes ``SPN`` (spoken noise), which the corpus card
counts. Piper speaks espeak-ng's IPA one code point at a time, each with its predicted duration;
:func:`ipa_segments` turns that into ARPAbet segments.
"""

from __future__ import annotations

import unicodedata

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

# espeak-ng's IPA (en-us), as Piper voices speak it; the longest match wins ("aɪ" before "a")
IPA = {
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G", "f": "F", "v": "V",
    "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "tʃ": "CH",
    "dʒ": "JH", "m": "M", "n": "N", "ŋ": "NG", "l": "L", "ɫ": "L", "ɹ": "R", "r": "R",
    "j": "Y", "w": "W", "ɾ": "T", "ʔ": "T", "x": "K", "ç": "HH",
    "i": "IY", "iː": "IY", "ɪ": "IH", "ᵻ": "IH", "ɛ": "EH", "e": "EY", "eɪ": "EY", "æ": "AE",
    "a": "AE", "ɑ": "AA", "ɑː": "AA", "ɒ": "AA", "ɔ": "AO", "ɔː": "AO", "ʊ": "UH", "u": "UW",
    "uː": "UW", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɚ": "ER", "ɜ": "ER", "ɜː": "ER", "ɝ": "ER",
    "aɪ": "AY", "aʊ": "AW", "ɔɪ": "OY", "oʊ": "OW", "o": "OW", "əʊ": "OW",
}
IPA_PAUSES = frozenset("^$,.;:!?—–…()\"")  # sentence edges and punctuation: silence
IPA_BOUNDARIES = frozenset(" ˈˌ")  # word breaks and stress marks: no sound of their own
IPA_PAD = "_"  # the padding Piper puts after every symbol
IPA_LONGEST = max(len(k) for k in IPA)

PHONE_SETS = {"radio": RADIO, "mrpa": MRPA, "sampa": SAMPA, "ipa": IPA}


def to_arpabet(phone: str, phone_set: str) -> str:
    """Map one engine phone to ARPAbet (``SIL`` for pauses, ``SPN`` when unknown)."""
    table = PHONE_SETS[phone_set]
    if phone in table:
        return table[phone]
    # SAMPA modifiers: aspiration (t_h), length (:), syllabicity (=), stress marks
    base = phone.split("_")[0].rstrip(":=").lstrip("'\",%")
    return table.get(base, table.get(base.lower(), UNKNOWN)) if base else UNKNOWN


def ipa_segments(tokens: list[tuple[str, int]], sample_rate: int
                 ) -> list[tuple[float, float, str]]:
    """ARPAbet segments ``[(start_s, end_s, phone)]`` of a run of IPA code points with their
    durations in samples (Piper's phoneme ids and the samples its duration model gave each).

    Pauses (:data:`IPA_PAUSES`) become ``SIL``. The padding after each symbol, word breaks and
    stress marks have no sound of their own: their time goes to the phone after them (a stress
    mark stands before its syllable; of the rules tried on the held-out Piper utterances --
    to the phone before, split, to the phone after -- this one put the bundled encoder's phones
    closest to the labels: frame error 0.634, against 0.731-0.790). The length mark and combining
    diacritics (syllabic ``n̩``) lengthen the phone before them; the remaining code points are
    read as the longest sequences :data:`IPA` knows ("aɪ" is one phone). A code point no table
    knows becomes ``SPN``.
    """
    # 1. units of sound, each ending where its own symbols (and length marks) end
    units: list[list] = []  # [symbol, start, end] in samples
    t = 0  # where this token starts
    for sym, n in tokens:
        n = int(n)
        if sym == IPA_PAD or sym in IPA_BOUNDARIES:
            pass  # silent: the phone after it starts where the one before ended
        elif units and (sym == "ː" or unicodedata.combining(sym)) and units[-1][0] != SILENCE:
            units[-1][0] += sym
            units[-1][2] = t + n
        else:
            units.append([SILENCE if sym in IPA_PAUSES else sym, 0, t + n])
        t += n
    if units:
        units[-1][2] = t  # a trailing boundary belongs to the last phone
    # each unit starts where the one before ends: silent symbols between them go to the later
    for i in range(1, len(units)):
        units[i][1] = units[i - 1][2]
    # 2. longest known sequences of units become one phone
    segs: list[tuple[float, float, str]] = []
    i = 0
    while i < len(units):
        if units[i][0] == SILENCE:
            segs.append((units[i][1] / sample_rate, units[i][2] / sample_rate, SILENCE))
            i += 1
            continue
        for k in range(min(IPA_LONGEST, len(units) - i), 0, -1):
            sym = "".join(u[0] for u in units[i:i + k])
            if sym in IPA or k == 1:
                phone = IPA.get(sym) or IPA.get(sym.rstrip("ː")) or IPA.get(
                    "".join(c for c in sym if not unicodedata.combining(c)), UNKNOWN)
                segs.append((units[i][1] / sample_rate, units[i + k - 1][2] / sample_rate,
                             phone))
                i += k
                break
    return merge_segments(segs)


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
