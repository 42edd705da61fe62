"""Tagging examples longer than a row, in overlapping windows of whole words.

A sentence whose wordpieces do not fit `max_seq_length` (a paragraph of a Chinese NER file, a
long document to label) is cut into windows of words that fit, each window starting about half
a row after the last, as QA windows its contexts (and Hugging Face's token classification
pipeline its texts); every window is a row to train on or predict. A word's tag is the one its
window of most context predicted: the window where it stands farthest from both ends (the
earliest on a tie). Before, the words past the row were cut: never trained on, and predicted
"O" without a word said (a 200-character record to `bertjax predict`: its last 138 characters).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from bertjax.finetune.records import TaggedExample


@dataclasses.dataclass(frozen=True)
class Windows:
    """Which words of which example each row holds."""

    example: list[int]  # row -> the example it is a window of
    start: list[int]  # row -> the window's first word in its example
    num_words: list[int]  # example -> its number of words

    def merge(self, row_tags: Sequence[list[str]]) -> list[list[str]]:
        """Each example's tags from its windows' (`row_tags`, a list per row): each word's from
        its window of most context."""
        best: list[list[tuple[int, str]]] = [[(-1, "O")] * n for n in self.num_words]
        for row, tags in enumerate(row_tags):
            example, start = self.example[row], self.start[row]
            for offset, tag in enumerate(tags):
                context = min(offset, len(tags) - 1 - offset)
                if context > best[example][start + offset][0]:
                    best[example][start + offset] = (context, tag)
        return [[tag for _, tag in words] for words in best]


def split(
    examples: Sequence[TaggedExample], tokenizer, max_seq_length: int
) -> tuple[list[TaggedExample], Windows]:
    """The windows of `examples` as examples (one per example that fits a row) and where they
    come from. A row holds max_seq_length - 2 pieces ([CLS], [SEP]); a word of more pieces than
    that is alone in its window, and cut there as a row cuts it."""
    budget = max_seq_length - 2
    words = [word for example in examples for word in example.words]
    sizes = [max(1, len(pieces)) for pieces in tokenizer.encode(words)] if words else []
    windows: list[TaggedExample] = []
    located = Windows([], [], [len(example.words) for example in examples])
    offset = 0
    for number, example in enumerate(examples):
        count = len(example.words)
        for start, end in _spans(sizes[offset : offset + count], budget):
            windows.append(TaggedExample(example.words[start:end], example.tags[start:end]))
            located.example.append(number)
            located.start.append(start)
        offset += count
    return windows, located


def _spans(sizes: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """[start, end) word ranges of pieces `sizes` that fit `budget` pieces (a word too big alone),
    each next one starting where the last one's second half begins."""
    if sum(sizes) <= budget:
        return [(0, len(sizes))]
    spans, start = [], 0
    while True:
        end, used = start, 0
        while end < len(sizes) and (end == start or used + sizes[end] <= budget):
            used += sizes[end]
            end += 1
        spans.append((start, end))
        if end == len(sizes):
            return spans
        following, kept = end, 0  # the next window begins half a budget before this one's end
        while following - 1 > start and kept + sizes[following - 1] <= budget // 2:
            following -= 1
            kept += sizes[following]
        start = max(following, start + 1)
