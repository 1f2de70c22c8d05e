"""Where a completion should end. Pure functions over strings."""

from __future__ import annotations

from completer.context import languages


def indent_of(line: str) -> int:
    """Width of leading whitespace, tabs counted as 4."""
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += 4
        else:
            break
    return width


def cut_single_line(text: str) -> str:
    """Everything up to the first line break."""
    return text.split("\n", 1)[0].rstrip("\r")


def cut_at_block_end(text: str, line_prefix: str) -> str:
    """Stop where the completion leaves the block it started in.

    The block's indentation is that of the first line with code (the cursor's
    line counts with ``line_prefix``); the first later line indented less ends it.
    Works for indentation languages and for formatted brace languages alike,
    where the closing brace sits at the outer indentation and usually already
    follows the cursor.
    """
    lines = (line_prefix + text).split("\n")
    base: int | None = None
    opener = line_prefix.rstrip().endswith((":", "{", "(", "[", "=>"))
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if base is None:
            if i == 0 and opener:
                continue  # the body starts on the next line
            base = indent_of(line)
            continue
        if indent_of(line) < base:
            kept = "\n".join(lines[:i])
            return kept[len(line_prefix):].rstrip()
    return text.rstrip() if base is not None else text


def cut_to_parseable(prefix: str, completion: str, suffix: str, language: str) -> str:
    """Drop trailing lines that add syntax errors the document did not already have.

    Prefers the longest cut (whole lines) with no more errors than the
    document without the completion; keeps the completion as is when no
    grammar exists or no cut helps.
    """
    baseline = languages.count_errors(language, prefix + suffix)
    if baseline is None:
        return completion
    if languages.count_errors(language, prefix + completion + suffix) <= baseline:
        return completion
    lines = completion.split("\n")
    for end in range(len(lines) - 1, 0, -1):
        candidate = "\n".join(lines[:end]).rstrip()
        if candidate and languages.count_errors(language, prefix + candidate + suffix) <= baseline:
            return candidate
    return completion
