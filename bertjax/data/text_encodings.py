"""Text file encodings: UTF-8 (what every reader decodes), UTF-16/32 known by their byte-order
mark (what Windows tools save as "Unicode": PowerShell 5's ``>``, Notepad, Excel's "Unicode
Text"), and other encodings told from UTF-8 by a file's first lines (GBK, Big5, Shift-JIS,
Windows-1252), which are refused with how to convert them: their text read as UTF-8 is U+FFFD
and mojibake, and a vocabulary or model trained on it is silently worthless. A corpus whose
encoding is given (`--config.text_encoding`) is decoded in it instead (`lines_in`), except files
whose text is valid UTF-8 (a corpus of GBK and UTF-8 files) or that mark their encoding; a file
the given encoding does not decode is told as one not in UTF-8 is (`check_decodes`), and
"utf-8" given is the default, checked alike."""

import codecs
import io
import os
from collections.abc import Iterator

from bertjax.errors import UserError

# The encodings a text file may be in besides UTF-8, known by their byte-order marks (UTF-32's
# first: its little-endian mark begins with UTF-16's).
_BOM_ENCODINGS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class NotUtf8Error(ValueError):
    """A text file in another encoding than UTF-8 (GBK, Big5, Shift-JIS, Windows-1252, ...)."""


# A text file's first lines, about this many bytes, tell UTF-8 from another encoding.
SNIFF_BYTES = 1 << 16
CONVERT_HINT = (
    "convert it to UTF-8, e.g. `iconv -f GB18030 -t UTF-8` (Chinese GBK/GB2312), `-f BIG5`, "
    "`-f SHIFT_JIS`, `-f CP1252` (Western Windows)"
)


class NotInEncodingError(ValueError):
    """A text file that the encoding given for it (`--config.text_encoding`) does not decode."""


def _decoding(lines: list[bytes], encoding: str) -> tuple[int, int]:
    """(valid, invalid): how many of `lines` with non-ASCII bytes `encoding` decodes."""
    valid = invalid = 0
    for line in lines:
        if not line.isascii():
            try:
                line.decode(encoding)
                valid += 1
            except UnicodeDecodeError:
                invalid += 1
    return valid, invalid


def _mostly_invalid(lines: list[bytes], valid: int, invalid: int) -> bool:
    return invalid > valid and invalid >= max(2, len(lines) / 100)


def check_utf8(lines: list[bytes]) -> None:
    """NotUtf8Error when `lines` (a file's first, whole lines) are in another encoding: more of
    those with non-ASCII bytes are invalid UTF-8 than valid, and at least 2 and 1% of all. Stray
    bad bytes in UTF-8 text (cut or corrupt lines), or a few in a mostly ASCII file, are repaired
    and counted instead: what they cost is as small as they are."""
    valid, invalid = _decoding(lines, "utf-8")
    if _mostly_invalid(lines, valid, invalid):
        raise NotUtf8Error(
            f"not UTF-8 text ({invalid} of the first {valid + invalid} lines with non-ASCII "
            f"bytes are invalid UTF-8); {CONVERT_HINT}"
        )


def check_decodes(lines: list[bytes], encoding: str) -> None:
    """NotInEncodingError when the given `encoding` fails on `lines` as `check_utf8` tells a
    file that is not UTF-8 (a GBK file given as big5 read on, as mojibake, before)."""
    valid, invalid = _decoding(lines, encoding)
    if _mostly_invalid(lines, valid, invalid):
        raise NotInEncodingError(
            f"not {encoding} text ({invalid} of the first {valid + invalid} lines with non-ASCII "
            f"bytes are invalid {encoding})"
        )


def is_utf8_text(lines: list[bytes]) -> bool:
    """Whether `lines` hold non-ASCII text, most of its lines valid UTF-8: such a file is UTF-8
    whatever encoding was given for the corpus (other encodings' non-ASCII text is not valid
    UTF-8 by chance), so a corpus of GBK and UTF-8 files reads with text_encoding=gb18030; its
    stray bad lines are repaired, as without an encoding given (a UTF-8 file with one cp1252
    line was decoded whole as cp1252 before: every other line mojibake)."""
    valid, invalid = _decoding(lines, "utf-8")
    return valid > invalid


def is_utf8(encoding: str) -> bool:
    """Whether `encoding` (a codec name Python knows) is UTF-8, with or without a mark."""
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def ascii_compatible(encoding: str) -> bool:
    """Whether `encoding` writes ASCII as ASCII (GB18030, Big5, Shift-JIS, CP1252; not UTF-16)."""
    return "\n".encode(encoding) == b"\n"


def decode(line: bytes, report, encoding: str = "utf-8") -> str:
    """The text of `line` in `encoding`; invalid bytes become U+FFFD and the line is counted
    in `report` (a `corpus_files.SourceReport`)."""
    try:
        return line.decode(encoding)
    except UnicodeDecodeError:
        report.repaired[f"lines with invalid {'UTF-8' if encoding == 'utf-8' else encoding}"] += 1
        return line.decode(encoding, errors="replace")


def lines_in(f, encoding: str, report) -> Iterator[str]:
    """The lines of binary file `f` in `encoding`: split on its newline bytes and each decoded
    (bad bytes counted) when the encoding writes ASCII as ASCII (GB18030, Big5 and Shift-JIS do,
    no byte of their multi-byte characters a newline; CP1252 is one byte a character), else
    (UTF-16/32) decoded as a stream (`stream_lines`)."""
    if not ascii_compatible(encoding):
        yield from stream_lines(f, encoding, report)
        return
    for line in f:
        yield decode(line, report, encoding)


# What a stream decoder puts for undecodable bytes (`_mark_bad_bytes`): a lone surrogate, which
# no valid UTF-16 or UTF-32 decodes to, so a line holding one is a line with bad bytes.
_BAD_BYTES = "\udcff"


def _mark_bad_bytes(error: UnicodeDecodeError) -> tuple[str, int]:
    return _BAD_BYTES, error.end


codecs.register_error("bertjax.mark_bad_bytes", _mark_bad_bytes)


def stream_lines(f, encoding: str, report) -> Iterator[str]:
    """The lines of binary file `f` in an encoding whose newline is not the byte b"\\n" (UTF-16,
    UTF-32), decoded as a stream; bad bytes become U+FFFD and their lines are counted in
    `report`, as `decode` counts a UTF-8 file's."""
    for line in io.TextIOWrapper(f, encoding=encoding, errors="bertjax.mark_bad_bytes", newline=""):
        if _BAD_BYTES in line:
            report.repaired[f"lines with invalid {encoding}"] += 1
            line = line.replace(_BAD_BYTES, "\ufffd")
        yield line


def check_encoding_name(name: str, flag: str) -> None:
    """UserError when `name` (a `flag` value; "" = UTF-8) is not a codec Python knows."""
    try:
        if name:
            codecs.lookup(name)
    except LookupError:
        raise UserError(
            f"{flag}={name!r} is not an encoding Python knows; use e.g. gb18030 (Chinese GBK, "
            "GB2312), big5, shift_jis, cp1252, or '' for UTF-8"
        ) from None


def bom_encoding(head: bytes) -> str | None:
    """ "utf-16" or "utf-32" when `head`, a file's first bytes, starts with that encoding's
    byte-order mark (Python's codec of that name reads the mark and its byte order)."""
    return next((name for bom, name in _BOM_ENCODINGS if head.startswith(bom)), None)


def text_encoding(path: str | os.PathLike, given: str = "") -> str:
    """The encoding to open a local text file with: `given` when there is one (a task's
    text_encoding), else UTF-16/32 by its byte-order mark, else UTF-8 without a leading
    byte-order mark ("utf-8-sig"); a file in another encoding is a UserError naming it and how
    to convert it."""
    if given and not ascii_compatible(given):  # UTF-16/32 given: no line sniffing
        return given
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
        cut = len(head) == SNIFF_BYTES  # its last line may be cut short
    if encoding := bom_encoding(head):
        return encoding
    lines = head.split(b"\n")[: -1 if cut else None]
    try:
        chosen = head_encoding(lines, given)
    except NotUtf8Error as e:  # the flag: fine-tuning's; `bertjax predict`'s errors rename it
        raise UserError(
            f"{path} is {e}; or read it as it is: --config.text_encoding=gb18030 (big5, ...)"
        ) from None
    except NotInEncodingError as e:
        raise UserError(f"{path} is {e}; check --config.text_encoding") from None
    return "utf-8-sig" if chosen == "utf-8" else chosen  # a leading byte-order mark dropped


def head_lines(f) -> tuple[list[bytes], Exception | None]:
    """The first lines of `f`, about SNIFF_BYTES, and the error that cut them short, if any (a
    truncated or corrupt archive: the lines before it are still documents)."""
    head, size = [], 0
    try:
        for line in f:
            head.append(line)
            size += len(line)
            if size >= SNIFF_BYTES:
                break
    except (OSError, EOFError) as e:
        return head, e
    return head, None


def head_encoding(head: list[bytes], given: str, report=None) -> str:
    """The encoding of a file whose first lines are `head`: UTF-8 when none is `given` (or
    "utf-8"), NotUtf8Error if it is not; UTF-8 as well when `head` is valid UTF-8 text (a UTF-8
    file in a corpus given as gb18030: it was decoded into mojibake); else `given`,
    NotInEncodingError if that does not decode it. `report`: the file's
    `corpus_files.SourceReport`, which counts a file read as UTF-8 against the given encoding."""
    if not given or is_utf8(given):
        check_utf8(head)
        return "utf-8"
    if is_utf8_text(head):
        if report is not None:
            report.repaired[f"file read as UTF-8 (its text is UTF-8), not {given}"] += 1
        return "utf-8"
    check_decodes(head, given)
    return given
