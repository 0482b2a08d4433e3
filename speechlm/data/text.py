"""The text of the corpus: sentence sources, normalisation for speech, de-duplication, split.

Sources (each read from a Debian package; licence and word count go into the corpus card):

* ``web``: the World English Bible (``sword-text-web``, read with ``mod2imp`` from
  ``libsword-utils``), public domain, modern English;
* ``handbook``: The Debian Administrator's Handbook (``debian-handbook``), GPL-2+ / CC-BY-SA-3.0,
  modern technical prose;
* ``fortunes``: the fortune-cookie files (``fortunes``), BSD-style / public domain;
* ``wordnet``: glosses and example sentences of WordNet 3.0 (``wordnet-base``), WordNet licence.

:func:`normalize` makes a line speakable: numbers, ordinals, money, percent, years and common
abbreviations spelled out, quotes and markup dropped; :func:`keep` then accepts a sentence of
4-30 words of letters and plain punctuation only. Sentences are de-duplicated on their lower-case
letters and split by a hash of that key (:func:`text_split`), so a sentence keeps its split when
sources are added. The CMU ARCTIC prompts are their own split, ``arctic``, and never enter the
others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import logging
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

MIN_WORDS, MAX_WORDS = 4, 30  # sentence length accepted, in words
VALID_PERCENT, TEST_PERCENT = 2, 2  # shares of the text pool (by sentence hash)
FORTUNES = Path("/usr/share/games/fortunes")
WORDNET = Path("/usr/share/wordnet")
HANDBOOK = Path("/usr/share/doc/debian-handbook/html/en-US")


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    package: str  # Debian package(s) that provide it
    licence: str


SOURCES = {
    "web": Source("web", "sword-text-web libsword-utils", "public domain (World English Bible)"),
    "handbook": Source("handbook", "debian-handbook", "GPL-2.0+ or CC-BY-SA-3.0"),
    "fortunes": Source("fortunes", "fortunes", "BSD-style / public domain (fortune-mod)"),
    "wordnet": Source("wordnet", "wordnet-base", "WordNet 3.0 licence (BSD-style)"),
}

# ----------------------------------------------------------------------------- numbers

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
        "nine": "ninth", "twelve": "twelfth"}


def number_words(n: int) -> str:
    """``1234`` -> ``one thousand two hundred thirty four``."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    for value, word in _SCALES:
        if n >= value:
            rest = n % value
            return number_words(n // value) + " " + word + \
                ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError(n)


def ordinal_words(n: int) -> str:
    """``21`` -> ``twenty first``."""
    words = number_words(n).split()
    last = words[-1]
    if last in _ORD:
        words[-1] = _ORD[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_words(n: int) -> str:
    """``1984`` -> ``nineteen eighty four``; ``2005`` -> ``two thousand five``."""
    if 2000 <= n <= 2009 or n % 1000 < 10 or not 1100 <= n <= 2099:
        return number_words(n)
    hi, lo = divmod(n, 100)
    return number_words(hi) + (" hundred" if lo == 0 else
                               (" oh " if lo < 10 else " ") + number_words(lo))


ABBREVIATIONS = {
    "mr.": "mister", "mrs.": "missus", "ms.": "miz", "dr.": "doctor", "st.": "saint",
    "jr.": "junior", "sr.": "senior", "prof.": "professor", "gen.": "general",
    "col.": "colonel", "capt.": "captain", "lt.": "lieutenant", "sgt.": "sergeant",
    "gov.": "governor", "rev.": "reverend", "mt.": "mount", "no.": "number", "vs.": "versus",
    "etc.": "et cetera", "e.g.": "for example", "i.e.": "that is", "approx.": "approximately",
    "dept.": "department", "inc.": "incorporated", "ltd.": "limited", "co.": "company",
    "jan.": "january", "feb.": "february", "aug.": "august", "sept.": "september",
    "oct.": "october", "nov.": "november", "dec.": "december", "ft.": "feet", "oz.": "ounces",
    "lb.": "pounds", "lbs.": "pounds", "km": "kilometers", "kg": "kilograms", "cm": "centimeters",
    "mm": "millimeters", "a.m.": "a m", "p.m.": "p m", "&": "and", "%": "percent",
}
_ABBR = re.compile(r"(?<![\w.])(" + "|".join(
    re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?=\s|$|[,;:!?])",
    re.IGNORECASE)
_MONEY = re.compile(r"\$(\d[\d,]*)(?:\.(\d\d))?")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL = re.compile(r"\b(\d+)\.(\d+)\b")
_INTEGER = re.compile(r"\b\d{1,3}(?:,\d{3})+\b|\b\d+\b")
_TRANSLATE = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                            "\u2014": ", ", "\u2013": " to ", "\u2026": "...", "\u00a0": " "})


def _integer(m: re.Match) -> str:
    s = m.group(0).replace(",", "")
    n = int(s)
    if len(s) == 4 and "," not in m.group(0) and 1100 <= n <= 2099:
        return year_words(n)
    if len(s) > 1 and s.startswith("0"):
        return " ".join(_ONES[int(c)] for c in s)
    return number_words(n) if n < 10**15 else m.group(0)


def _money(m: re.Match) -> str:
    dollars = int(m.group(1).replace(",", ""))
    out = number_words(dollars) + (" dollar" if dollars == 1 else " dollars")
    if m.group(2) and int(m.group(2)):
        out += " and " + number_words(int(m.group(2))) + " cents"
    return out


def normalize(line: str) -> str:
    """Spell out numbers and abbreviations, unify quotes and dashes, squeeze spaces."""
    s = unicodedata.normalize("NFKC", line).translate(_TRANSLATE)
    s = _MONEY.sub(_money, s)
    s = re.sub(r"(\d)\s*%", r"\1 percent", s)
    s = _ABBR.sub(lambda m: ABBREVIATIONS[m.group(1).lower()], s)
    s = _ORDINAL.sub(lambda m: ordinal_words(int(m.group(1))), s)
    s = _DECIMAL.sub(lambda m: number_words(int(m.group(1))) + " point " +
                     " ".join(_ONES[int(c)] for c in m.group(2)), s)
    s = _INTEGER.sub(_integer, s)
    s = s.replace('"', "").replace("`", "'")
    s = re.sub(r"\s+([,.;:!?])", r"\1", s)
    return re.sub(r"\s+", " ", s).strip()


_OK = re.compile(r"^[A-Z][A-Za-z' ,.;:!?-]*[.!?]$")
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")


def keep(sentence: str) -> bool:
    """Whether a normalised sentence is speakable: plain letters and punctuation, 4-30 words,
    no acronyms, no leftover markup."""
    if not _OK.match(sentence) or _ACRONYM.search(sentence) or "--" in sentence:
        return False
    n = len(sentence.split())
    return MIN_WORDS <= n <= MAX_WORDS and not re.search(r"[-']{2}|\s'|'\s|\s-|-\s", sentence)


_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def sentences_of(paragraph: str) -> Iterator[str]:
    """Normalise a paragraph and split it into sentences (after abbreviations are expanded, a
    full stop followed by a capital ends a sentence)."""
    for s in _SENT_END.split(normalize(paragraph)):
        s = s.strip().strip("'").strip()
        if s:
            yield s


def sentence_key(sentence: str) -> str:
    """De-duplication key: the lower-case letters and spaces."""
    return " ".join(re.sub(r"[^a-z ]", " ", sentence.lower()).split())


def sentence_id(sentence: str) -> str:
    return hashlib.sha1(sentence_key(sentence).encode()).hexdigest()[:12]


def text_split(sentence: str) -> str:
    """``train`` / ``valid`` / ``test``: a stable function of the sentence alone."""
    bucket = int(hashlib.sha1(("split:" + sentence_key(sentence)).encode()).hexdigest(), 16) % 100
    if bucket < TEST_PERCENT:
        return "test"
    if bucket < TEST_PERCENT + VALID_PERCENT:
        return "valid"
    return "train"


# ----------------------------------------------------------------------------- sources

def read_fortunes(root: Path = FORTUNES) -> Iterator[str]:
    """Paragraphs of the fortune files (cookies split on ``%``, attributions dropped)."""
    skip = {"ascii-art", "translate-me", "perl"}
    for f in sorted(root.iterdir()):
        if f.suffix or not f.is_file() or f.name in skip:
            continue
        for cookie in f.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [ln for ln in cookie.splitlines()
                     if not re.match(r"^\s*(--|-- |\t+--)", ln) and ":" not in ln[:12]]
            yield " ".join(ln.strip() for ln in lines)


def read_wordnet(root: Path = WORDNET) -> Iterator[str]:
    """WordNet glosses (as sentences) and example sentences."""
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (root / f"data.{pos}").read_text(errors="replace").splitlines():
            if line.startswith(" ") or " | " not in line:
                continue
            for part in line.split(" | ", 1)[1].split(";"):
                part = part.strip()
                if part.startswith('"'):
                    part = part.strip('"')
                if part:
                    yield part[0].upper() + part[1:] + ("" if part[-1] in ".!?" else ".")


def read_web() -> Iterator[str]:
    """The World English Bible, one book-long paragraph per chapter, markup removed."""
    if shutil.which("mod2imp") is None:
        raise FileNotFoundError("mod2imp (libsword-utils) not installed")
    out = subprocess.run(["mod2imp", "engWEB2015eb"], capture_output=True, text=True,
                         check=True).stdout
    chapter: list[str] = []
    for line in out.splitlines():
        if line.startswith("$$$"):
            if line.endswith(":0") and chapter:
                yield " ".join(chapter)
                chapter = []
            continue
        t = re.sub(r"<note.*?</note>|<title.*?</title>", " ", line)
        chapter.append(html.unescape(re.sub(r"<[^>]+>", "", t)))
    if chapter:
        yield " ".join(chapter)


def read_handbook(root: Path = HANDBOOK) -> Iterator[str]:
    """Paragraphs of The Debian Administrator's Handbook, tags removed."""
    para = re.compile(r'<div class="para">(.*?)</div>', flags=re.S)
    for f in sorted(root.glob("*.html")):
        for p in para.findall(f.read_text(errors="replace")):
            if "<code" in p or 'class="command' in p or "<pre" in p:
                continue
            yield html.unescape(re.sub(r"<[^>]+>", "", p)).replace("\n", " ")


READERS = {"web": read_web, "handbook": read_handbook, "fortunes": read_fortunes,
           "wordnet": read_wordnet}


@dataclasses.dataclass(frozen=True)
class TextSentence:
    text: str
    source: str

    @property
    def id(self) -> str:
        return sentence_id(self.text)

    @property
    def split(self) -> str:
        return text_split(self.text)

    @property
    def words(self) -> int:
        return len(self.text.split())


def collect(sources: Iterable[str] = tuple(SOURCES), exclude: Iterable[str] = ()
            ) -> tuple[list[TextSentence], dict[str, dict]]:
    """All kept, de-duplicated sentences of ``sources`` (first source wins a duplicate) and per
    source statistics. Sentences whose key is in ``exclude`` (e.g. the ARCTIC prompts) are
    dropped. A source whose package is missing is skipped with a warning."""
    seen = {sentence_key(e) for e in exclude}
    out: list[TextSentence] = []
    stats: dict[str, dict] = {}
    for name in sources:
        n_raw = n_kept = words = 0
        try:
            for para in READERS[name]():
                for s in sentences_of(para):
                    n_raw += 1
                    if not keep(s):
                        continue
                    k = sentence_key(s)
                    if k in seen:
                        continue
                    seen.add(k)
                    out.append(TextSentence(s, name))
                    n_kept += 1
                    words += len(s.split())
        except (FileNotFoundError, subprocess.CalledProcessError) as e:
            log.warning("text source %s skipped: %s (apt-get install %s)", name, e,
                        SOURCES[name].package)
        stats[name] = {"candidates": n_raw, "sentences": n_kept, "words": words,
                       "licence": SOURCES[name].licence, "package": SOURCES[name].package}
    return out, stats
