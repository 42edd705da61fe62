"""``tfds:`` corpus sources: prepared TensorFlow Datasets read as document texts.

``tfds:NAME[@SPLIT]`` (split ``train`` by default), e.g. ``tfds:wikipedia/20230601.en`` or
``tfds:c4/en:3.1.0@train[:1%]``. `part` appends ``#IofN``: part I of N of the split
(`tfds.even_splits`), for streaming; `starting_at` appends ``fromK``: the part from its example
K on, opened there (a resume reads one TFDS shard file at most before it, wherever K is).
TensorFlow Datasets is imported only when such a source is read.
"""

import functools
import operator
import re
from collections.abc import Iterator
from typing import Protocol

PREFIX = "tfds:"
_PART = re.compile(r"#(\d+)of(\d+)(?:from(\d+))?$")  # `part`'s, `starting_at`'s suffix


class Report(Protocol):  # corpus.SourceReport
    def skip(self, reason: str, place: str = "") -> None: ...


def is_tfds(source: str) -> bool:
    return source.startswith(PREFIX)


def parse(source: str) -> tuple[str, str]:
    name, _, split = source[len(PREFIX) :].partition("@")
    return name, split or "train"


def part(source: str, index: int, count: int) -> str:
    """Part `index` of `count` of a ``tfds:`` source: `tfds.even_splits` of its split, runs of
    consecutive examples (the first ones longer by one if need be) that together are the split."""
    return source if count == 1 else f"{source}#{index}of{count}"


def starting_at(source: str, start: int) -> str:
    """A ``tfds:`` source (or part, `part`) from its example `start` (0-based) on."""
    suffix = _PART.search(source)
    if suffix is None:
        return f"{source}#0of1from{start}"
    return f"{source[: suffix.start()]}#{suffix.group(1)}of{suffix.group(2)}from{start}"


def _split_from(tfds, name: str, split, start: int):
    """`split` (a split string or `tfds.even_splits` part) less its first `start` examples, as
    absolute read instructions: tfds then opens the shard file holding example `start` and skips
    within that file only, instead of reading every example before it."""
    split_infos = tfds.builder(name).info.splits
    if isinstance(split, str):
        split = tfds.core.ReadInstruction.from_spec(split)
    pieces = []
    for instruction in split.to_absolute(split_infos):
        first = instruction.from_ or 0
        end = (
            split_infos[instruction.splitname].num_examples
            if instruction.to is None
            else (instruction.to)
        )
        skip = min(start, end - first)
        start -= skip
        if first + skip < end:
            pieces.append(
                tfds.core.ReadInstruction(
                    instruction.splitname, from_=first + skip, to=end, unit="abs"
                )
            )
    return functools.reduce(operator.add, pieces) if pieces else None


def read_texts(source: str, text_field: str, report: Report) -> Iterator[bytes | str]:
    """Yields the `text_field` feature of each example of a prepared TFDS dataset (or part), as
    stored (text features are bytes); a dataset that cannot be read is reported, not raised."""
    import tensorflow_datasets as tfds  # only TFDS sources need it

    suffix = _PART.search(source)
    name, split = parse(source[: suffix.start()] if suffix else source)
    try:
        if suffix:
            index, count = int(suffix.group(1)), int(suffix.group(2))
            if count > 1:
                split = tfds.even_splits(split, n=count)[index]
            start = int(suffix.group(3) or 0)
            if start:
                split = _split_from(tfds, name, split, start)
                if split is None:  # the part has no example from `start` on
                    return
        dataset = tfds.load(name, split=split, shuffle_files=False, download=False)
    except (AssertionError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        report.skip("unloadable dataset", f"{first_line[:200]}; build it with `tfds build {name}`")
        return
    if text_field not in dataset.element_spec:
        fields = ", ".join(sorted(dataset.element_spec))
        report.skip(f"dataset without feature {text_field!r}", f"features: {fields}")
        return
    yield from tfds.as_numpy(dataset.map(lambda example: example[text_field]))
