"""Sentence segmentation of raw document text, for next-sentence-prediction pairs.

Hand-written rules, kept after measuring PyPI segmenters: the faster sentencex 1.0.32 (2.5x on
English) is not better (boundary F1 0.930 vs 0.986 on UD Chinese, 0.959 vs 0.981 on WSJ, 0.899
both on lowercased MR), blingfire misses lowercase text, pysbd is 90x slower
(`python -m benchmarks.sentence_split`, docs/data.md "Sentence splitting").

Rules:
  * paragraphs end at blank lines (a line holding only whitespace counts as blank), and a line
    break before a list item (``1.``, ``2)``, ``-``, ``*``, ``•``) ends a sentence;
  * inside a paragraph all whitespace collapses to one space, so hard-wrapped lines join;
  * a sentence ends after ``.``, ``!``, ``?`` or ``…`` (runs allowed, optionally followed by
    closing quotes/brackets/guillemets) when whitespace follows and then an uppercase letter, a
    digit, a letter of a script without case (Arabic, Hebrew, Devanagari, Hangul, Ethiopic,
    ...), a Chinese character, or an opening mark (quote, bracket, ``¿``, ``¡``, ``«``, ``„``);
    in Greek text ``;`` (the Greek question mark) too;
  * in uncased text (most sentence-like periods are followed by a lowercase letter: lowercased
    or tokenised corpora), a lowercase letter after ``.``, ``!`` or ``?`` starts a sentence too;
    an ellipsis (``...``, ``. . .``) then ends one only before a capital, as in cased text;
  * without a space, a sentence ends after ``.!?`` followed by a Chinese character, and after a
    plain word followed by a capitalised word (``home.Then``); ``example.com.Today``, ``3.14``
    and lowercase ``home.then`` stay whole;
  * not after a known abbreviation (``Mr.``, ``e.g.``, ``Sra.``), a dotted acronym (``U.S.``),
    a single initial (``Harry S. Truman``, Arabic ``د.``), a leading list number (``1. First``),
    a part of a dotted date (``2023. 5. 12.``) or a German ordinal after an article or
    preposition (``am 3. Oktober``); company suffixes (``Co.``, ``Inc.``) do end a sentence
    before a capital;
  * tokenised text is read like plain text: a lone ``.`` after ``mr`` or ``h`` does not end a
    sentence, and a lone ``"`` (or ``''``) after a terminator closes it when it is the odd one;
  * Chinese ``。！？；`` and ``…``/``……`` (next to Chinese text) end a sentence with any closing
    quotes/brackets after them (``”’」』）``), no space needed, unless a comma or colon follows
    (or Japanese ``と``/``って`` after ``」``: ``「…？」と彼は聞いた``);
    so do the full stops of other scripts: Arabic ``؟``, Urdu ``۔``, Devanagari ``।`` ``॥``,
    Armenian ``։``, Ethiopic ``።`` ``፧``, Myanmar ``။``, Khmer ``។`` ``៕``;
  * Thai and Lao, which write no full stop, end a sentence (or a phrase) at a space between
    their letters.

Not handled (language knowledge): abbreviations of other languages beyond a few titles
(Russian ``т. е.`` before a capital), German ordinals after other words (``Wilhelm II.
Kaiser``), Armenian text that writes ``:`` for ``։`` (English ``I am 25. Then`` splits: ``am``
after ``I`` is no ordinal's article). Sentences these rules cannot find: give one per line with
``--config.text_format=lines``.
"""

import re

# Case-sensitive, without the final period: in cased text these never end a sentence. Kept
# short on purpose: every entry also blocks a genuine sentence end ("... the St. ..." is rare,
# "... than Dr. ..." rarer still). Company suffixes and "Jr."/"Sr." are left out: before a
# capital they end a sentence (WSJ sentences of CoNLL-2000: 140 times, against 9 mid-sentence).
ABBREVIATIONS = frozenset(
    {
        # Titles and ranks.
        "Mr", "Mrs", "Ms", "Messrs", "Mme", "Dr", "Prof", "Rev", "Hon", "St",
        "Gen", "Col", "Maj", "Capt", "Lt", "Sgt", "Adm", "Cmdr", "Gov", "Sen", "Rep", "Pres",
        # Latin and reference abbreviations.
        "e.g", "i.e", "cf", "vs", "v", "viz", "al", "approx", "No", "Nos", "Vol", "Art", "Sec",
        "Fig", "pp", "Sens", "Reps",
        # Months and places, usually followed by a capitalised name or a number.
        "Jan", "Feb", "Aug", "Sept", "Oct", "Nov", "Dec", "Mt", "Ft", "Ave",
        # Titles and "number" in other languages (Spanish, French, Italian, German, Hindi).
        "Sra", "Srta", "Dra", "Sres", "Mlle", "Mmes", "Mgr", "Sig", "Dott", "Hr", "Nr", "डॉ",
        "प्रो",
    }
)  # fmt: skip
# In uncased text a lowercase word decides: these are never ordinary English words...
UNCASED_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "messrs", "mme", "dr", "prof", "rev", "sr", "jr", "st", "capt", "lt",
        "sgt", "cmdr", "e.g", "i.e", "cf", "vs", "viz", "approx", "inc", "corp", "ltd", "bros",
    }
)  # fmt: skip
# German words before an ordinal ("am 3. Oktober", "im 19. Jahrhundert", "der 2. Weltkrieg"):
# there a number's period is no sentence end although a capitalised noun follows.
ORDINAL_WORDS = frozenset(
    {"am", "im", "vom", "zum", "zur", "beim", "der", "die", "das", "den", "dem", "des", "ab",
     "bis", "seit", "vor", "nach", "jeden", "jedem", "ihrem", "seinem", "seiner", "ihrer"}
)  # fmt: skip
# ...and these ("no", "art", "dec") are abbreviations only before a number ("no. 5").
NUMBERED_ABBREVIATIONS = frozenset(
    {
        "no",
        "nos",
        "vol",
        "art",
        "sec",
        "fig",
        "pp",
        "jan",
        "feb",
        "aug",
        "sept",
        "oct",
        "nov",
        "dec",
    }
)

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kana and Han ideographs
_HANGUL = "\uac00-\ud7a3"  # syllables: a whole word can be one
_GREEK = "\u0370-\u03ff\u1f00-\u1fff"
_THAI_LAO = "\u0e00-\u0e45\u0e47-\u0eff"  # without ๆ (U+0E46), whose space is mid-sentence
# Guillemets open and close in different languages (« » French, » « German, » » Swedish): they
# are in both sets. “ ‘ close German „ ‚ quotes: after a terminator, they close before a space.
_OPENING = "\"'“‘([{「『（《【¿¡«»„‚‹›"
_CLOSING = "\"'”’)]}」』）》】»«›‹"
_LATIN_ENDS = ".!?"
_CJK_ENDS = "。！？；"
# Terminators of other scripts that end a sentence wherever they stand, as Chinese ones do:
# Arabic question mark, Urdu full stop, Devanagari danda and double danda (Hindi, Bengali,
# Marathi, Nepali, Sanskrit), Armenian full stop, Ethiopic full stop and question mark, Myanmar
# and Khmer full stops.
_SCRIPT_ENDS = "\u061f\u06d4\u0964\u0965\u0589\u1362\u1367\u104b\u17d4\u17d5"
_ALWAYS_ENDS = _CJK_ENDS + _SCRIPT_ENDS
# After a Chinese terminator these continue the sentence instead of starting one.
_CONTINUING = "，、,：:"
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_LIST_ITEM_BREAK = re.compile(r"\n(?=[^\S\n]*(?:\d{1,3}[.)]|[-*•])\s)")
# A tokenised ellipsis (". . .") first, else any run of terminators, in Greek text also a Greek
# question mark (";" after a Greek letter: a pattern of its own, as the extra alternative makes
# the search 1.3x slower); then closing marks. A Latin terminator glued to a digit or lowercase
# letter ("3.14", "example.com") is no candidate.
_ENDS = re.escape(_LATIN_ENDS + _ALWAYS_ENDS) + "…"
_CLOSERS = r"([" + re.escape(_CLOSING) + r"]*(?:[“‘](?!\S))?)(?!(?<=[.!?])[0-9a-z])"
_TERMINATOR = re.compile(r"(\.(?: \.){2,}|[" + _ENDS + r"]+)" + _CLOSERS)
_GREEK_TERMINATOR = re.compile(
    r"(\.(?: \.){2,}|[" + _ENDS + r"]+|(?<=[" + _GREEK + r"])[;\u037e])" + _CLOSERS
)
# Letters after a single sentence-like terminator, for the cased/uncased vote.
_CASE_VOTE = re.compile(
    r"[.!?](?<![.!?][.!?])(?<!\. \.)[" + re.escape(_CLOSING) + r"]*\s+["
    + re.escape(_OPENING) + r"]?([^\W\d_])"
)  # fmt: skip
_OPENING_MARK = re.compile(r"(?:``|[" + re.escape(_OPENING) + r"]) ?")
_QUOTE_TOKEN = re.compile(r" (\"|'')(?= |$)")
_DOTTED_ACRONYM = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")
_CJK_CHAR = re.compile(r"[" + _CJK + r"]")
_SYLLABIC_CHAR = re.compile(r"[" + _CJK + _HANGUL + r"]")
# A dotted date's month or day ("2023. 5. 12." in Korean, Hungarian, Chinese-style dates).
_DATE_PART = re.compile(r"\d{1,2}\.")
_DATE_BEFORE = re.compile(r"(?:^| )\d{1,4}\. $")
_THAI_SPACE = re.compile(r"(?<=[" + _THAI_LAO + r"]) (?=[" + _THAI_LAO + r"])")
_GREEK_OR_THAI = re.compile(r"[" + _GREEK + _THAI_LAO + r"]")
_GREEK_CHAR = re.compile(r"[" + _GREEK + r"]")
_THAI_CHAR = re.compile(r"[" + _THAI_LAO + r"]")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00c0-\u024f]")


def _is_cjk(char: str) -> bool:
    return bool(char) and _CJK_CHAR.match(char) is not None


def _is_caseless_letter(char: str) -> bool:
    """A letter of a script without case (Arabic, Hebrew, Devanagari, Hangul, Thai, ...)."""
    return char.isalpha() and not char.isupper() and not char.islower()


def _is_initial(word: str) -> bool:
    """A single capital ("Harry S. Truman") or a single letter of a caseless alphabet ("د. أحمد",
    Arabic for Dr.), but not the pronoun "I", nor a CJK character or Hangul syllable (words)."""
    if len(word) != 1 or word == "I":
        return False
    return word.isupper() or (_is_caseless_letter(word) and not _SYLLABIC_CHAR.match(word))


def is_uncased(text: str) -> bool:
    """Whether sentences start in lowercase: more of the letters after ``.``/``!``/``?`` and
    whitespace are lowercase than uppercase, the text's first Latin letter counting too."""
    starts = _CASE_VOTE.findall(text)
    if first := _LATIN_LETTER.search(text):
        starts.append(first.group())
    lowercase = sum(letter.islower() for letter in starts)
    return lowercase > len(starts) - lowercase


def _is_abbreviation(word: str, next_char: str, uncased: bool) -> bool:
    """Whether `word` (the text before a final period, no spaces) is an abbreviation."""
    word = word.lstrip(_OPENING)
    if uncased:
        lower = word.lower()
        if lower in NUMBERED_ABBREVIATIONS:
            return next_char.isdigit()
        initial = len(word) == 1 and word.isalpha() and lower != "i"
        return initial or lower in UNCASED_ABBREVIATIONS or bool(_DOTTED_ACRONYM.fullmatch(word))
    if word in ABBREVIATIONS:
        return True
    # "U.S." but not "a.m.", which ends sentences more often than not.
    if _DOTTED_ACRONYM.fullmatch(word):
        return not word.islower()
    # "I" is the pronoun, which ends sentences far more often than it abbreviates a name.
    return _is_initial(word)


def _next_start(text: str, start: int) -> str:
    """The character that would open a sentence at text[start:], after an opening mark (and a
    space: tokenised text writes ``" The``, ``( caine``, ```` `` But ````)."""
    if mark := _OPENING_MARK.match(text, start):
        start = mark.end()
    return text[start] if start < len(text) else ""


def _word_before(paragraph: str, position: int, sentence_start: int) -> tuple[int, str]:
    """(start, text) of the space-free word that ends at `position`, within the sentence."""
    start = max(paragraph.rfind(" ", sentence_start, position) + 1, sentence_start)
    return start, paragraph[start:position]


def _blocked_period(
    paragraph: str, position: int, following: str, sentence_start: int, uncased: bool
) -> bool:
    """Whether the lone period at `position` belongs to an abbreviation or a list number."""
    word_start, word = _word_before(paragraph, position, sentence_start)
    if word.isdigit() and len(word) <= 3 and word_start == sentence_start:
        return True  # "1. First item"
    if word.isdigit() and _is_date_part(paragraph, word_start, position):
        return True
    if word.isdigit() and len(word) <= 2 and word_start > sentence_start:  # "am 3. Oktober"
        before_start, before = _word_before(paragraph, word_start - 1, sentence_start)
        if before.lower() == "am":  # ...but English "I am 25."
            return _word_before(paragraph, before_start - 1, sentence_start)[1] != "I"
        return before.lower() in ORDINAL_WORDS
    if not word and word_start > sentence_start:  # tokenised: "mr . smith", but "Jr. ."
        word = _word_before(paragraph, word_start - 1, sentence_start)[1]
        return not word.endswith(".") and _is_abbreviation(word, following, uncased)
    return _is_abbreviation(word, following, uncased)


def _is_date_part(paragraph: str, word_start: int, position: int) -> bool:
    """Whether the number before the period at `position` is part of a dotted date: a 1-2 digit
    number with a period follows ("2023. 5."), or it is one and such a number comes before."""
    if _DATE_PART.match(paragraph, position + 2) and paragraph[position + 1 : position + 2] == " ":
        return True
    short = position - word_start <= 2
    return short and bool(_DATE_BEFORE.search(paragraph, max(0, word_start - 7), word_start))


def _ends_latin(
    paragraph: str, match: re.Match, end: int, sentence_start: int, uncased: bool
) -> bool:
    """Whether a ``.!?…`` run (`match`, closing marks up to `end`) ends a sentence."""
    terminator = match.group(1)
    spaced = paragraph[end] == " "
    following = _next_start(paragraph, end + 1 if spaced else end)
    bare = end == match.end(1)  # no closing mark: 'a capital "H." For' ends a sentence
    if terminator == "." and bare:
        if _blocked_period(paragraph, match.start(), following, sentence_start, uncased):
            return False
    if _is_cjk(following):
        return True
    if not spaced:  # "home.Then", not "ASP.NET" or "example.com.Today"
        word = _word_before(paragraph, match.start(), sentence_start)[1]
        plain_word = word.isalpha() and bare
        rest = paragraph[end + 1 : end + 2]
        return plain_word and word[-1].islower() and following.isupper() and rest.islower()
    if following.isupper() or following.isdigit() or _is_caseless_letter(following):
        return True
    ellipsis = ("." in terminator and len(terminator) > 1) or "…" in terminator
    return uncased and following.islower() and not ellipsis


def _ends_always(paragraph: str, end: int) -> bool:
    """Whether a run holding ``。！？；`` or another script's full stop (``।``, ``۔``, ``؟``, ...),
    or ``…`` next to Chinese, ends a sentence at `end`: unless a comma or colon follows, or a
    Japanese quotative particle after a closing bracket (``「…？」と彼は聞いた``)."""
    if paragraph[end - 1] in "」』" and paragraph.startswith(("と", "って"), end):
        return False
    return paragraph[end] not in _CONTINUING


def _always_ends(paragraph: str, match: re.Match) -> bool:
    """Whether a terminator run ends a sentence whatever follows it: it holds ``。！？；`` or
    another script's full stop, or is ``…`` next to Chinese."""
    terminator = match.group(1)
    if terminator[0] in _ALWAYS_ENDS or terminator[-1] in _ALWAYS_ENDS:
        return True
    if terminator[0] != "…" or terminator.strip("…"):
        return False
    before = paragraph[match.start() - 1] if match.start() else ""
    return _is_cjk(before) or _is_cjk(paragraph[match.end() : match.end() + 1])


def _sentence_end(paragraph: str, match: re.Match, quotes_before: int) -> int:
    """End of a terminator run and of the closing marks that belong to its sentence.

    A straight double quote closes when a space follows it (``He said "Stop!" Then``);
    otherwise (``好。"But``, tokenised ``stop . " The``) only after an odd number of them in
    the paragraph (`quotes_before`). A ``''`` token always closes.
    """
    end = match.end()
    closers = match.group(2)
    if not closers and not paragraph.startswith((' "', " ''"), end):
        return end
    quote = closers.find('"')
    if quote >= 0 and paragraph[end : end + 1] != " " and quotes_before % 2 == 0:
        end = match.start(2) + quote
    if paragraph.startswith((' "', " ''"), end) and (token := _QUOTE_TOKEN.match(paragraph, end)):
        quotes = quotes_before + closers.count('"', 0, end - match.start(2))
        if token.group(1) == "''" or quotes % 2:
            end = token.end()
    return end


def _split_paragraph(paragraph: str, uncased: bool, terminator: re.Pattern) -> list[str]:
    """Splits one whitespace-collapsed paragraph (single spaces only) into sentences."""
    sentences = []
    start = quotes = counted = 0
    for match in terminator.finditer(paragraph):
        quotes += paragraph.count('"', counted, match.start())
        counted = match.start()
        end = _sentence_end(paragraph, match, quotes)
        if end >= len(paragraph):
            break
        if _always_ends(paragraph, match):
            ends = _ends_always(paragraph, end)
        else:
            ends = _ends_latin(paragraph, match, end, start, uncased)
        if ends:
            sentences.append(paragraph[start:end])
            start = end + 1 if paragraph[end] == " " else end
    if start < len(paragraph):
        sentences.append(paragraph[start:])
    return sentences


# A document that starts with this control character (ASCII's record separator) comes split
# into sentences, each after one (text_format="lines", `text_layouts.given_sentences`): they are
# kept as given. Other documents have none (`corpus.read_documents` drops control characters).
GIVEN_SENTENCES = "\x1e"


def split_sentences(text: str) -> list[str]:
    """Splits a document into sentences, in order, each stripped and non-empty (see module doc);
    a document of `GIVEN_SENTENCES` keeps its sentences."""
    if text.startswith(GIVEN_SENTENCES):
        given = (" ".join(sentence.split()) for sentence in text.split(GIVEN_SENTENCES))
        return [sentence for sentence in given if sentence]
    uncased = is_uncased(text)
    greek = thai = False
    if _GREEK_OR_THAI.search(text):  # one search: most documents have neither
        greek, thai = bool(_GREEK_CHAR.search(text)), bool(_THAI_CHAR.search(text))
    terminator = _GREEK_TERMINATOR if greek else _TERMINATOR
    sentences = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        for block in _LIST_ITEM_BREAK.split(paragraph):
            collapsed = " ".join(block.split())
            if not collapsed:
                continue
            found = _split_paragraph(collapsed, uncased, terminator)
            if thai:  # Thai and Lao end sentences (and phrases) with a space
                found = [part for sentence in found for part in _THAI_SPACE.split(sentence)]
            sentences.extend(found)
    return sentences
