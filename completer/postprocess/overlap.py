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
    suffix_lines = [line.strip() for line in suffix.split("\n") if line.strip()]
    if not suffix_lines:
        return text
    first = suffix_lines[0]
    if len(first) < 2:  # a lone brace repeats legitimately
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i > 0 and line.strip() == first:
            return "\n".join(lines[:i]).rstrip()
    return text
