"""Sentence segmentation of raw document text, for next-sentence-prediction pairs.

A small rule set rather than a trained model: it adds no dependency, gives the same output on
every machine and version, and is good enough for English prose; a library splitter such as
nltk's punkt can replace `split_sentences` later without changing its callers.

Rules:
  * paragraphs end at blank lines (a line holding only whitespace counts as blank);
  * inside a paragraph all whitespace collapses to one space, so hard-wrapped lines join;
  * a sentence ends after ``.``, ``!`` or ``?`` (runs allowed, optionally followed by closing
    quotes/brackets) when whitespace follows and then an uppercase letter, a digit or an
    opening quote/bracket;
  * except after a period that ends a known abbreviation (``Mr.``, ``U.S.``, ``e.g.``), a dotted
    acronym (``D.C.``) or a single uppercase initial (``Harry S. Truman``).
"""

import re

# Case-sensitive, without the final period. Kept short on purpose: every entry also blocks a
# genuine sentence end ("... the St. ..." is rare, "... than Dr. ..." rarer still).
ABBREVIATIONS = frozenset(
    {
        # Titles and ranks.
        "Mr", "Mrs", "Ms", "Messrs", "Mme", "Dr", "Prof", "Rev", "Hon", "Sr", "Jr", "St",
        "Gen", "Col", "Maj", "Capt", "Lt", "Sgt", "Adm", "Cmdr", "Gov", "Sen", "Rep", "Pres",
        # Latin and reference abbreviations.
        "e.g", "i.e", "cf", "vs", "viz", "al", "approx", "No", "Nos", "Vol", "Art", "Sec",
        "Fig", "pp",
        # Months and places, usually followed by a capitalised name or a number.
        "Jan", "Feb", "Aug", "Sept", "Oct", "Nov", "Dec", "Mt", "Ft", "Ave",
        # Companies.
        "Inc", "Co", "Corp", "Ltd", "Bros",
    }
)  # fmt: skip

_OPENING = "\"'“‘([{"
_CLOSING = "\"'”’)]}"
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_TERMINATOR = re.compile(r"[.!?]+[" + re.escape(_CLOSING) + r"]*(?= )")
_DOTTED_ACRONYM = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")


def _starts_sentence(text: str, start: int) -> bool:
    """Whether text[start:] opens a sentence: uppercase letter or digit, maybe after a quote."""
    if start < len(text) and text[start] in _OPENING:
        start += 1
    return start < len(text) and (text[start].isupper() or text[start].isdigit())


def _is_abbreviation(word: str) -> bool:
    """Whether `word` (the text before a final period, no spaces) is an abbreviation."""
    word = word.lstrip(_OPENING)
    if word in ABBREVIATIONS or _DOTTED_ACRONYM.fullmatch(word):
        return True
    # A single capital is a name initial ("Harry S. Truman"); "I" is the pronoun, which ends
    # sentences far more often than it abbreviates a name.
    return len(word) == 1 and word.isupper() and word != "I"


def _split_paragraph(paragraph: str) -> list[str]:
    """Splits one whitespace-collapsed paragraph (single spaces only) into sentences."""
    sentences = []
    start = 0
    for match in _TERMINATOR.finditer(paragraph):
        end = match.end()
        if not _starts_sentence(paragraph, end + 1):
            continue
        if match.group() == ".":
            word_start = paragraph.rfind(" ", 0, match.start()) + 1
            if _is_abbreviation(paragraph[word_start : match.start()]):
                continue
        sentences.append(paragraph[start:end])
        start = end + 1
    if start < len(paragraph):
        sentences.append(paragraph[start:])
    return sentences


def split_sentences(text: str) -> list[str]:
    """Splits a document into sentences, in order, each stripped and non-empty (see module doc)."""
    sentences = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        collapsed = " ".join(paragraph.split())
        if collapsed:
            sentences.extend(_split_paragraph(collapsed))
    return sentences
