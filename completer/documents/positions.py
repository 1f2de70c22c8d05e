"""LSP positions ↔ indexes into a Python str, in the encodings LSP negotiates.

A position is (line, character): both zero-based, the character counted in code units of the
negotiated encoding ("utf-8": bytes, "utf-16": 16-bit units — LSP's default —, "utf-32":
code points, which are what a Python str indexes). Lines end at \\r\\n, \\n or \\r and nowhere
else (not at \\x0c, \\x85 or \\u2028, where str.splitlines would also break).

Out-of-range positions:
- a character past the end of its line means the line's end (the LSP spec says so);
- a line past the last line, or a negative line or character, is a PositionError;
- a character inside one code point (between the two UTF-16 units of an astral character, or
  inside a multi-byte UTF-8 sequence) means the start of that code point: a position names the
  gap before a character, and the nearest such gap at or before it is taken.

Every function is O(length of the text before the position), done mostly in C: documents of
megabytes answer in milliseconds.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import islice

ENCODINGS = ("utf-8", "utf-16", "utf-32")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")
_CODEC = {"utf-8": ("utf-8", 1), "utf-16": ("utf-16-le", 2)}  # encoding → (Python codec, bytes a unit)


class PositionError(ValueError):
    """A position that names no place in the text (a line past the last, a negative number)."""


def _check(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown position encoding {encoding!r} (one of {', '.join(ENCODINGS)})")


def code_units(ch: str, encoding: str) -> int:
    """Length of the one character ``ch`` in code units of ``encoding`` (a lone surrogate counts
    as the one UTF-16 unit, or the three UTF-8 bytes, it would be written as)."""
    _check(encoding)
    if encoding == "utf-8":
        return len(ch.encode("utf-8", "surrogatepass"))
    if encoding == "utf-32":
        return 1
    return 2 if ord(ch) > 0xFFFF else 1


def _units(s: str, encoding: str) -> int:
    """Length of ``s`` in code units of ``encoding``."""
    if encoding == "utf-32" or s.isascii():
        return len(s)
    codec, width = _CODEC[encoding]
    return len(s.encode(codec, "surrogatepass")) // width


def line_starts(text: str) -> list[int]:
    """Index where each line starts: ``[0]`` and one more per line end (so never empty)."""
    if "\r" not in text:
        return [0] + [m.end() for m in re.finditer("\n", text)]
    return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]


def _has_lone_cr(text: str) -> bool:
    return "\r" in text and text.count("\r") != text.count("\r\n")


def _line_start(text: str, line: int) -> int:
    """Index where ``line`` starts; PositionError when the text has fewer lines."""
    if line < 0:
        raise PositionError(f"line {line} is negative")
    if line == 0:
        return 0
    if not _has_lone_cr(text):
        # every line ends in \n (\r\n included): splitting on \n is done in C
        parts = text.split("\n", line)
        if len(parts) > line:
            return len(text) - len(parts[line])
    else:  # a lone \r ends a line too: rare, so the regex will do
        end = next(islice(_LINE_BREAK.finditer(text), line - 1, None), None)
        if end is not None:
            return end.end()
    lines = len(line_starts(text))
    raise PositionError(f"line {line} is outside the document (0..{lines - 1})")


def _line_end(text: str, start: int) -> int:
    """Index of the end of the line that starts at ``start``, before its line end."""
    end = text.find("\n", start)
    if end < 0:
        end = len(text)
    cr = text.find("\r", start, end)
    return end if cr < 0 else cr


def _index_in_line(content: str, character: int, encoding: str) -> int:
    """Index into ``content`` (one line, without its line end) of a character count."""
    if encoding == "utf-32" or content.isascii():
        return min(character, len(content))
    codec, width = _CODEC[encoding]
    try:
        data = content.encode(codec)
    except UnicodeEncodeError:  # a lone surrogate: count one character at a time
        units = 0
        for i, ch in enumerate(content):
            units += code_units(ch, encoding)
            if units > character:
                return i
        return len(content)
    if character * width >= len(data):
        return len(content)
    # decoding drops the tail of a code point cut in two: its start is taken
    return len(data[: character * width].decode(codec, "ignore"))


def offset_at(text: str, line: int, character: int, encoding: str = "utf-16") -> int:
    """Index into ``text`` (0..len(text)) of the LSP position (line, character).

    A character past the line's end gives the line's end; one inside a code point gives that
    code point's start. Raises PositionError for a line past the last line or a negative line
    or character, ValueError for an unknown encoding.
    """
    _check(encoding)
    if character < 0:
        raise PositionError(f"character {character} is negative")
    start = _line_start(text, line)
    end = _line_end(text, start)
    return start + _index_in_line(text[start:end], character, encoding)


def position_at(text: str, offset: int, encoding: str = "utf-16") -> tuple[int, int]:
    """The LSP position (line, character) of ``text[offset]``; ``offset`` may be len(text).

    An offset between the \\r and the \\n of a \\r\\n is the end of its line. Raises
    PositionError for an offset outside 0..len(text), ValueError for an unknown encoding.
    """
    _check(encoding)
    if not 0 <= offset <= len(text):
        raise PositionError(f"offset {offset} is outside the document (0..{len(text)})")
    if _has_lone_cr(text):
        starts = line_starts(text)
        line = bisect_right(starts, offset) - 1
        start = starts[line]
    else:
        line = text.count("\n", 0, offset)
        start = text.rfind("\n", 0, offset) + 1
    content = text[start:offset]
    if content.endswith("\r"):  # inside a \r\n
        content = content[:-1]
    return line, _units(content, encoding)
