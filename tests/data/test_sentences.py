"""Tests for bertjax/data/sentences.py on hand-written tricky cases."""

import pytest

from bertjax.data.sentences import split_sentences


@pytest.mark.parametrize(
    "text, expected",
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        # Abbreviations, initials and dotted acronyms do not end sentences.
        (
            "Mr. Smith met Dr. Jones at St. Louis. Then they left.",
            ["Mr. Smith met Dr. Jones at St. Louis.", "Then they left."],
        ),
        ("Harry S. Truman spoke. It rained.", ["Harry S. Truman spoke.", "It rained."]),
        ("The U.S. Army and the U.S.S.R. Navy met.", ["The U.S. Army and the U.S.S.R. Navy met."]),
        ("See e.g. Paris. Fine.", ["See e.g. Paris.", "Fine."]),
        # The pronoun I is not an initial.
        ("So did I. We won.", ["So did I.", "We won."]),
        # Lowercase after a period: no split (abbreviation-like "approx. ten").
        ("It costs approx. ten dollars. Yes.", ["It costs approx. ten dollars.", "Yes."]),
        ("version 2.5 is out. 3.0 comes next.", ["version 2.5 is out.", "3.0 comes next."]),
        # Closing quotes and brackets stay with their sentence; opening quotes start the next.
        (
            'He said "Stop!" Then he left. "Why?" she asked. (It was late.) Done.',
            ['He said "Stop!"', "Then he left.", '"Why?" she asked.', "(It was late.)", "Done."],
        ),
        ("Curly “quotes.” “Next” one.", ["Curly “quotes.”", "“Next” one."]),
        ("Wait... What?! No.", ["Wait...", "What?!", "No."]),
        # Non-ASCII uppercase starts a sentence.
        ("Fin. Élan vital.", ["Fin.", "Élan vital."]),
        # No whitespace after the period: no split.
        ("Visit example.com.Today", ["Visit example.com.Today"]),
    ],
)
def test_split_rules(text, expected):
    assert split_sentences(text) == expected


def test_hard_wrapped_lines_join_and_paragraphs_split():
    text = (
        "And the earth was without form, and void; and darkness was\n"
        "upon the face of the deep. And the Spirit\nmoved.\n"
        "\n   \n"
        "April 16, 1945\n\n\n"
        "Mr. Speaker:\tIt is\r\nlate"
    )
    assert split_sentences(text) == [
        "And the earth was without form, and void; and darkness was upon the face of the deep.",
        "And the Spirit moved.",
        "April 16, 1945",
        "Mr. Speaker: It is late",
    ]


def test_paragraph_end_ends_sentence_without_punctuation():
    assert split_sentences("TITLE IN CAPS\n\nBody text. More") == [
        "TITLE IN CAPS",
        "Body text.",
        "More",
    ]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n", " \n \t\n "])
def test_empty_text_has_no_sentences(text):
    assert split_sentences(text) == []


def test_deterministic_and_lossless_on_words():
    text = "A b. C d! E f? G h. " * 50
    first = split_sentences(text)
    assert first == split_sentences(text)
    assert len(first) == 200
    assert " ".join(first).split() == text.split()
