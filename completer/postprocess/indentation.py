"""The file's own indentation, applied to what the model writes. Pure functions over strings."""

from __future__ import annotations

import re
from collections import Counter

from completer.postprocess.truncate import indent_of

TAB_WIDTH = 4  # how many columns a tab counts for (truncate.indent_of counts the same)
_LEADING = re.compile(r"[ \t]*")


def indent_unit(text: str, max_lines: int = 2000) -> str:
    """One level of the file's indentation: ``"\\t"``, or a run of spaces (2, 4 or 8).

    Tabs when more indented lines start with a tab than with two spaces; otherwise the most
    common increase of indentation from one line of code to the next. A file with no
    indented lines says nothing: ``""``.
    """
    tabs = spaces = 0
    steps: Counter[int] = Counter()
    previous = 0
    for line in text.split("\n", max_lines)[:max_lines]:
        if not line.strip():
            continue
        if line[0] == "\t":
            tabs += 1
        elif line.startswith("  "):  # one space: a doc comment's " *" line, not indentation
            spaces += 1
            width = len(line) - len(line.lstrip(" "))
            if width > previous:
                steps[width - previous] += 1
            previous = width
            continue
        previous = 0 if line[0] != "\t" else previous
    if tabs > spaces:
        return "\t"
    if not spaces:
        return ""
    step = next((s for s, _ in steps.most_common() if s in (2, 4, 8)), 4)
    return " " * step


def in_unit(width: int, unit: str) -> str:
    """Indentation ``width`` columns wide written in the file's ``unit`` (tabs, then spaces for a remainder)."""
    if unit == "\t":
        return "\t" * (width // TAB_WIDTH) + " " * (width % TAB_WIDTH)
    return " " * width


def reindent(text: str, unit: str, first_line_too: bool = False) -> str:
    """The lines of ``text`` indented in the file's ``unit``: tabs where the file uses tabs, spaces
    where it uses spaces (a tab becomes one level of the file's spaces).

    The first line starts at the cursor, so its whitespace is left alone unless
    ``first_line_too`` (the cursor is at column 0). Unknown ``unit`` (``""``): unchanged.
    """
    if not unit:
        return text
    lines = text.split("\n")
    start = 0 if first_line_too else 1
    for i in range(start, len(lines)):
        lead = _LEADING.match(lines[i]).group()
        if not lead or not lines[i].strip():
            continue
        if unit == "\t":
            fixed = in_unit(indent_of(lead), unit)
        else:
            fixed = lead.replace("\t", unit)
        lines[i] = fixed + lines[i][len(lead):]
    return "\n".join(lines)


def drop_leading_blank_lines(text: str, line_prefix: str, line_suffix: str) -> str:
    """On an empty line (blank, or indentation only), an answer that starts with a line break would
    insert an empty line first: it starts at its first line of code instead, less the indentation
    the cursor already stands on."""
    lines = text.split("\n")
    if line_prefix.strip() or line_suffix.strip() or len(lines) < 2 or lines[0].strip():
        return text
    rest = lines[1:]
    while rest and not rest[0].strip():
        rest.pop(0)
    if not rest:
        return text
    lead = _LEADING.match(rest[0]).group()
    extra = max(indent_of(lead) - indent_of(line_prefix), 0)
    rest[0] = in_unit(extra, "\t" if "\t" in lead else " ") + rest[0][len(lead):]
    return "\n".join(rest)
