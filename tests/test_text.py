"""Text normalisation for speech, sentence filters, de-duplication and the hash split."""

import pytest

from speechlm.data.text import (
    keep,
    normalize,
    number_words,
    ordinal_words,
    sentence_key,
    sentences_of,
    text_split,
    year_words,
)


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (13, "thirteen"), (40, "forty"), (101, "one hundred one"),
    (2500, "two thousand five hundred"), (1_000_001, "one million one")])
def test_number_words(n, words):
    assert number_words(n) == words


def test_ordinals_and_years():
    assert ordinal_words(1) == "first" and ordinal_words(22) == "twenty second"
    assert ordinal_words(40) == "fortieth" and ordinal_words(112) == "one hundred twelfth"
    assert year_words(1984) == "nineteen eighty four" and year_words(1905) == "nineteen oh five"
    assert year_words(2005) == "two thousand five" and year_words(1800) == "eighteen hundred"


@pytest.mark.parametrize("raw, spoken", [
    ("Dr. Smith paid $3.50 for 2,500 items.",
     "doctor Smith paid three dollars and fifty cents for two thousand five hundred items."),
    ("On Jan. 5th, 1984 it rose 12%.", "On january fifth, nineteen eighty four it rose twelve "
     "percent."),
    ("Mr. and Mrs. Jones, i.e. the neighbours, live at No. 7.",
     "mister and missus Jones, that is the neighbours, live at number seven."),
    ("Pi is about 3.14 \u2014 roughly.", "Pi is about three point one four, roughly."),
    ("\u201cHello,\u201d she said.", "Hello, she said."),
])
def test_normalize(raw, spoken):
    assert normalize(raw) == spoken


def test_keep_filters():
    assert keep("The cat sat on the mat.")
    assert not keep("Too short.")  # < 4 words
    assert not keep(" ".join(["word"] * 31) + ".")  # > 30 words
    assert not keep("See the NASA page for details.")  # acronym
    assert not keep("Use <b>bold</b> text here.")  # markup
    assert not keep("it has no capital letter.")
    assert not keep("The path is /usr/bin today.")


def test_sentence_split_after_abbreviations():
    out = list(sentences_of("Dr. Who came home. He was tired! Was he hungry?"))
    assert out == ["doctor Who came home.", "He was tired!", "Was he hungry?"]


def test_dedup_key_and_split_are_stable():
    assert sentence_key("Hello, World!") == sentence_key("hello world")
    s = "The cat sat on the mat."
    assert text_split(s) == text_split("the cat sat on the mat")
    splits = [text_split(f"Sentence number {number_words(i)} is here.") for i in range(2000)]
    assert 20 < splits.count("test") < 140 and 20 < splits.count("valid") < 140
