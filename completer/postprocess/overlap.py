"""Keep a completion from repeating text that already follows the cursor. Pure functions."""

from __future__ import annotations


def trim_line_suffix_overlap(text: str, line_suffix: str) -> str:
    """On a single line: drop the end of ``text`` that the rest of the line already has.

    ``foo(a, b)`` typed before ``)`` becomes ``foo(a, b``.
    """
    rest = line_suffix.rstrip()
    for size in range(min(len(rest), len(text)), 0, -1):
        if text.endswith(rest[:size]) and rest[:size].strip():
            return text[: len(text) - size]
    return text


def cut_before_suffix_repeat(text: str, suffix: str) -> str:
    """Across lines: stop where the completion starts writing the suffix's first lines again."""
    first = next((line.strip() for line in _lines(suffix) if line.strip()), None)
    if first is None:
        return text
    if len(first) < 2:  # a lone brace repeats legitimately
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i > 0 and line.strip() == first:
            return "\n".join(lines[:i]).rstrip()
    return text


def trim_suffix_overlap(text: str, suffix: str, min_chars: int = 8) -> str:
    """Across lines: drop the end of ``text`` that the suffix starts with (at least ``min_chars`` of code)."""
    head = suffix.lstrip("\n")
    for size in range(min(len(head), len(text)), 0, -1):
        piece = head[:size]
        if len(piece.strip()) < min_chars:
            break
        if text.endswith(piece):
            return text[: len(text) - size].rstrip()
    return text


def _lines(text: str):
    """The lines of ``text``, lazily (a suffix can be a whole file)."""
    start = 0
    while start <= len(text):
        nl = text.find("\n", start)
        end = len(text) if nl < 0 else nl
        yield text[start:end]
        start = end + 1
