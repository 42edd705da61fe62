"""Long tagging examples in overlapping windows of whole words (finetune/tagging_windows.py)."""

from bertjax.finetune import tagging_windows
from bertjax.finetune.records import TaggedExample


class _Pieces:
    """A tokenizer whose word "wN" is N pieces."""

    def encode(self, words):
        return [[0] * int(word[1:]) for word in words]


def _example(sizes):
    return TaggedExample(tuple(f"w{n}" for n in sizes), tuple(range(len(sizes))))


def test_an_example_that_fits_is_one_window_and_a_long_one_overlaps_by_half():
    short, long = _example([2, 3]), _example([3] * 10)  # 30 pieces, rows of 10 - 2 = 8
    windows, located = tagging_windows.split([short, long], _Pieces(), max_seq_length=10)
    assert windows[0] == short and located.num_words == [2, 10]
    spans = [(s, s + len(w.words)) for s, w in zip(located.start[1:], windows[1:], strict=True)]
    assert spans == [(0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 8), (7, 9), (8, 10)]
    assert all(sum(int(w[1:]) for w in window.words) <= 8 for window in windows)
    assert located.example == [0] + [1] * 9
    assert [t for w in windows[1:] for t in w.tags][:4] == [0, 1, 1, 2]  # tags go with words


def test_each_word_takes_the_tag_of_its_window_of_most_context():
    located = tagging_windows.Windows(example=[0, 0], start=[0, 2], num_words=[6])
    merged = located.merge([["a0", "a1", "a2", "a3"], ["b2", "b3", "b4", "b5"]])
    # word 2: context 1 in both windows, the first wins; word 3: 0 in the first, 1 in the second
    assert merged == [["a0", "a1", "a2", "b3", "b4", "b5"]]


def test_a_word_too_long_for_a_row_is_alone_in_its_window():
    windows, located = tagging_windows.split([_example([2, 20, 2])], _Pieces(), 10)
    assert [w.words for w in windows] == [("w2",), ("w20",), ("w2",)]
    assert located.start == [0, 1, 2]
