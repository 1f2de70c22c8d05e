"""Keep a completion from repeating text that already follows the cursor. Pure functions."""

from __future__ import annotations

import itertools

from completer.postprocess.truncate import _CLOSERS, _code_chars


def trim_line_suffix_overlap(text: str, line_suffix: str, line_prefix: str = "", language: str = "python") -> str:
    """On a single line: drop the end of ``text`` that the rest of the line already has.

    ``x, b)`` typed in ``foo(|)`` becomes ``x, b``; but ``range(n)`` typed in ``sum(|)``
    stays whole: its ``)`` closes its own bracket, and the line is balanced as it is.
    """
    rest = line_suffix.rstrip()
    sizes = [size for size in range(min(len(rest), len(text)), 0, -1)
             if text.endswith(rest[:size]) and rest[:size].strip()]
    if not sizes:
        return text
    if _balanced(line_prefix + text + line_suffix, language):
        return text
    for size in sizes:  # the longest overlap whose removal balances the line
        if _balanced(line_prefix + text[: len(text) - size] + line_suffix, language):
            return text[: len(text) - size]
    return text[: len(text) - sizes[0]]


def _balanced(line: str, language: str) -> bool:
    """Every bracket of the line (outside strings and comments) is closed by its partner."""
    stack: list[str] = []
    for _, ch in _code_chars(line, language):
        if ch in "([{":
            stack.append(ch)
        elif ch in _CLOSERS:
            if not stack or stack.pop() != _CLOSERS[ch]:
                return False
    return not stack


def cut_before_suffix_repeat(text: str, suffix: str, line_prefix: str | None = None) -> str:
    """Across lines: stop where the completion starts writing the suffix's first line again.

    A whole line of the suffix must come back at its own indentation: ``return "NO"``
    inside a new ``if`` is not the function's final ``return "NO"``. The rest of the
    cursor's line is a whole line only when the cursor sits in its indentation
    (``line_prefix`` blank); otherwise, or when unknown (None), it is compared stripped.
    """
    first, whole = None, False
    for n, line in enumerate(_lines(suffix)):
        if line.strip():
            at_line_start = line_prefix is not None and not line_prefix.strip()
            whole = n > 0 or at_line_start
            first = ((line_prefix or "") + line if n == 0 and at_line_start else line).rstrip()
            break
    if first is None or len(first.strip()) < 2:  # a lone brace repeats legitimately
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i > 0 and (line.rstrip() == first if whole else line.strip() == first.strip()):
            return "\n".join(lines[:i]).rstrip()
    return text


def cut_before_suffix_lines(text: str, suffix: str) -> str:
    """Across lines: stop where the completion writes the first two lines of code after the cursor
    again, each at its own indentation (the next ``elif`` branch and its body; a closing brace and
    the statement after it, which cut_before_suffix_repeat leaves alone).

    Only the suffix's first two lines count: code further down may legitimately look like what
    the completion writes (two similar functions in a row). One of the two must have at least 4
    characters of code (two closing braces repeat legitimately). The completion's first line
    starts mid-line and is not compared.
    """
    first_two = tuple(line.rstrip() for line in itertools.islice((line for line in _lines(suffix) if line.strip()), 2))
    if len(first_two) < 2 or max(len(line.strip()) for line in first_two) < 4:
        return text
    lines = text.split("\n")
    numbered = [(i, line.rstrip()) for i, line in enumerate(lines) if line.strip()]
    for (i, line), (_, following) in zip(numbered, numbered[1:]):
        if i > 0 and (line, following) == first_two:
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
