"""LSP positions (line, column in UTF-16 code units by default) → indexes into a Python string."""

from __future__ import annotations

import re

from completer.context.documents import code_units

_LINE_BREAK = re.compile(r"\r\n|\n|\r")


class PositionError(ValueError):
    """A position outside the document."""


def line_starts(text: str) -> list[int]:
    """Index where each line starts; LSP counts \\r\\n, \\n and \\r as line ends."""
    return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]


def offset_for(text: str, line: int, character: int, encoding: str = "utf-16") -> int:
    """Index into ``text`` of an LSP position; PositionError when it lies outside the text."""
    starts = line_starts(text)
    if line < 0 or line >= len(starts):
        raise PositionError(f"line {line} is outside the document (0..{len(starts) - 1})")
    start = starts[line]
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    content = _LINE_BREAK.sub("", text[start:end])
    if character < 0:
        raise PositionError(f"character {character} is negative")
    units = 0
    for i, ch in enumerate(content):
        if units == character:
            return start + i
        units += code_units(ch, encoding)
        if units > character:
            raise PositionError(f"character {character} splits a character on line {line}")
    if units == character:
        return start + len(content)
    raise PositionError(f"character {character} is past the end of line {line} (length {units})")
