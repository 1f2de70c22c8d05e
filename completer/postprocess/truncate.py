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


def cut_at_block_end(text: str, line_prefix: str, floor: int | None = None) -> str:
    """Stop where the completion leaves the block it started in.

    The block's indentation is that of the first line with code (the cursor's
    line counts with ``line_prefix``); the first later line indented less ends it.
    Works for indentation languages and for formatted brace languages alike,
    where the closing brace sits at the outer indentation and usually already
    follows the cursor. ``floor`` lowers the bar: when the completion is inserted before
    an existing line, it may dedent down to that line's indentation.
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
            base = indent_of(line) if floor is None else min(indent_of(line), floor)
            continue
        if indent_of(line) < base:
            kept = "\n".join(lines[:i])
            return kept[len(line_prefix):].rstrip()
    return text.rstrip() if base is not None else text


_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _code_chars(text: str, language: str):
    """(index, char) of the characters outside strings and comments (a light scanner, not a parser)."""
    comment = "#" if language == "python" else "//"
    quote = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote or (ch == "\n" and quote != "`" and language != "python"):
                quote = None
        elif text.startswith(comment, i):
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
            continue
        elif ch in "\"'`":
            quote = ch
        else:
            yield i, ch
        i += 1


def cut_at_closing_bracket(text: str, suffix: str, language: str) -> str:
    """Stop where the completion closes a bracket opened before the cursor: the enclosing block ends.

    The closer is dropped when the suffix already starts with it; else the closer's line is kept
    to its end (``item);`` after ``push(``: the statement goes on to its ``;``).
    """
    stack: list[str] = []
    for i, ch in _code_chars(text, language):
        if ch in "([{":
            stack.append(ch)
        elif ch in _CLOSERS:
            if stack:
                if stack[-1] == _CLOSERS[ch]:
                    stack.pop()
                continue
            if suffix.lstrip().startswith(ch):
                return text[:i].rstrip()
            line_end = text.find("\n", i)
            return text if line_end < 0 else text[:line_end].rstrip()
    return text


def cut_repeated_lines(text: str, max_period: int = 4) -> str:
    """Stop at a loop: a line repeated three times in a row, or a block of lines repeated twice."""
    lines = text.split("\n")
    for i in range(len(lines)):
        for period in range(1, max_period + 1):
            times = 3 if period == 1 else 2
            if i + period * times > len(lines):
                break
            block = lines[i : i + period]
            if max(len(line.strip()) for line in block) < 4:
                continue  # braces, `pass`, blank lines repeat legitimately
            if all(lines[i + period * j : i + period * (j + 1)] == block for j in range(1, times)):
                return "\n".join(lines[: i + period]).rstrip()
    return text


def _top_level(line_start: str) -> bool:
    """Whether a line starting with these characters opens a top-level statement."""
    return bool(line_start) and line_start[0] not in " \t\r\n})]"


def parse_window(prefix: str, suffix: str, max_lines: int = 200) -> tuple[str, str]:
    """The end of ``prefix`` and start of ``suffix`` that hold the top-level statement at the cursor.

    Parsing this window instead of the whole document keeps re-parsing cheap on long
    files; it runs back to the last line that starts at column 0 and forward to the next.
    """
    start = len(prefix)
    for _ in range(max_lines):
        start = prefix.rfind("\n", 0, max(start - 1, 0)) + 1 if start > 0 else 0
        if start == 0 or _top_level(prefix[start : start + 1]):
            break
    pos = suffix.find("\n")
    end = len(suffix)
    if pos >= 0:
        pos += 1
        for _ in range(max_lines):
            if pos >= len(suffix) or _top_level(suffix[pos : pos + 1]):
                break
            nl = suffix.find("\n", pos)
            if nl < 0:
                pos = len(suffix)
                break
            pos = nl + 1
        end = min(pos, len(suffix))
    return prefix[start:], suffix[:end]


def cut_to_parseable(prefix: str, completion: str, suffix: str, language: str, tail: str = "",
                     max_candidates: int = 12) -> str:
    """Drop trailing lines that add syntax errors the document did not already have.

    Prefers the longest cut (whole lines, each followed by ``tail`` as it will be
    inserted) with no more errors than the text without the completion; keeps the
    completion as is when no grammar exists or no cut helps. Only the window
    around the cursor is parsed.
    """
    prefix, suffix = parse_window(prefix, suffix)
    baseline = languages.count_errors(language, prefix + suffix)
    if baseline is None:
        return completion
    if languages.count_errors(language, prefix + completion + suffix) <= baseline:
        return completion
    lines = completion.split("\n")
    for end in range(len(lines) - 1, max(len(lines) - 1 - max_candidates, 0), -1):
        candidate = "\n".join(lines[:end]).rstrip()
        if candidate and languages.count_errors(language, prefix + candidate + tail + suffix) <= baseline:
            return candidate + tail
    return completion


def inserted_above(line_prefix: str, line_suffix: str) -> bool:
    """Whether the cursor sits before the code of a line (in its indentation at most)."""
    return not line_prefix.strip() and bool(line_suffix.strip())


def end_before_next_line(text: str, raw: str, line_prefix: str, line_suffix: str) -> str:
    """Inserted before a line's code, a completion that was cut at a line ends with a line break and
    the line's indentation; one the model ended itself keeps the model's ending."""
    if not text.strip() or not inserted_above(line_prefix, line_suffix):
        return text
    if raw.startswith(text.rstrip()) and not raw[len(text.rstrip()):].strip():
        return raw
    if text.endswith("\n" + line_prefix):
        return text
    return text.rstrip(" \t").rstrip("\n") + "\n" + line_prefix


def scope_floor(window_prefix: str) -> int | None:
    """The indentation of the body of the top-level statement the cursor is in (None: none yet).

    A completion may move between the blocks of that function or class; dedenting
    below its body leaves it.
    """
    for line in window_prefix.split("\n")[1:]:
        if line.strip():
            return indent_of(line) or None
    return None
