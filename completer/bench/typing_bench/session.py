"""What the typist types and where it stops: sessions cut from the standard library, and the
record of each keystroke's request. Pure functions apart from reading the stdlib's files.

The files are the Python standard library's own modules: real code, large enough for a
2,000-token context, and present wherever completer runs.
"""

from __future__ import annotations

import ast
import itertools
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# modules whose functions are retyped; the first function of each that fits is used
MODULES = ("textwrap.py", "shlex.py", "fractions.py", "calendar.py", "ftplib.py", "configparser.py")
# modules the cold reference documents come from (the sessions do not type in them)
COLD_MODULES = ("heapq.py", "bisect.py", "colorsys.py", "glob.py", "fnmatch.py", "base64.py", "copy.py")
# the typist stops after these to read the suggestion: an opening bracket (where editors offer
# the arguments), and the start of an expression that fills the rest of the line
PAUSE_AFTER = ("(", "[", "{", "= ", "return ")


@dataclass(frozen=True)
class Session:
    path: str  # the module, relative to the standard library
    text: str  # the file with the body deleted
    offset: int  # where the body goes (the cursor at the start)
    body: str  # what is typed


@dataclass
class Request:
    """One keystroke's completion request and what came of it; times are ``time.monotonic()`` seconds."""

    session: int
    keystroke: int
    version: int
    sent_s: float
    next_keystroke_s: float | None = None
    answered_s: float | None = None
    outcome: str = "pending"  # answered | cancelled | failed
    source: str = ""  # model | type_ahead
    text: str = ""
    answer_version: int | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    first_token_s: float | None = None
    kind: str = ""
    k: int = 0  # the answer's speculation (0: bypassed)
    waited: bool = False  # the typist stopped after this keystroke to read its suggestion

    @property
    def latency_s(self) -> float | None:
        return None if self.answered_s is None else self.answered_s - self.sent_s

    @property
    def in_time(self) -> bool:
        """A suggestion was on screen before the next keystroke."""
        if self.outcome != "answered" or not self.text or self.answered_s is None:
            return False
        return self.next_keystroke_s is None or self.answered_s <= self.next_keystroke_s


def line_starts(lines: list[str]) -> list[int]:
    """The offset of each line's start, and of the end of the last one."""
    return [0, *itertools.accumulate(map(len, lines))]


def pick_body(source: str, min_chars: int = 60, max_chars: int = 200, min_line: int = 150,
              min_after: int = 60) -> tuple[int, int] | None:
    """(start, end) offsets of the first function body that is short, deep in the file and not last.

    The body starts after the signature's line (and its docstring, which stays), so that the
    typist writes code, not documentation.
    """
    lines = source.splitlines(keepends=True)
    starts = line_starts(lines)
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.lineno < min_line:
            continue
        body = node.body[1:] if ast.get_docstring(node) and len(node.body) > 1 else node.body
        first, last = body[0].lineno, node.end_lineno
        if body[0].lineno == node.lineno or len(lines) - last < min_after:
            continue
        start, end = starts[first - 1], starts[last]
        if min_chars <= end - start <= max_chars:
            return start, end
    return None


def sessions(count: int) -> list[Session]:
    """Up to ``count`` sessions, one per module of MODULES that has a body pick_body accepts."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for name in MODULES:
        path = stdlib / name
        if not path.is_file():
            continue
        source = path.read_text()
        span = pick_body(source)
        if span is None:
            continue
        start, end = span
        out.append(Session(name, source[:start] + source[end:], start, source[start:end]))
        if len(out) == count:
            break
    return out


def pause_points(body: str) -> list[bool]:
    """Whether the typist stops to read a suggestion before typing ``body[n]``.

    People stop before the first non-blank character of a new line (they think at line
    starts), after an opening bracket and where the right-hand side of an assignment or a
    return value begins (one-line suggestions); elsewhere they type on at a steady pace.
    The body starts at a line's start, so its first line counts as a new one.
    """
    out, at_line_start = [], True
    for n, ch in enumerate(body):
        starts_line = at_line_start and not ch.isspace()
        out.append(n > 0 and (starts_line or body[:n].endswith(PAUSE_AFTER)))
        if starts_line:
            at_line_start = False
        if ch == "\n":
            at_line_start = True
    return out


def cold_cut(source: str, head_chars: int = 800) -> tuple[str, int] | None:
    """A small document cut from ``source``: about ``head_chars`` characters (some 200 tokens) of
    code, a ``return`` line with the cursor just after ``return `` (a one-line suggestion), and
    the five lines after it. Returns (text, cursor offset), or None without such a line."""
    lines = source.splitlines(keepends=True)
    starts = line_starts(lines)
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("return ") or starts[i] < head_chars:
            continue
        first = i
        while first > 0 and starts[i] - starts[first] < head_chars:
            first -= 1
        head = "".join(lines[first:i])
        cut = len(line) - len(line.lstrip()) + len("return ")
        return head + line + "".join(lines[i + 1:i + 6]), len(head) + cut
    return None


def cold_texts(count: int) -> list[tuple[str, int]]:
    """Small documents from modules the sessions do not type in: the cold reference."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for name in COLD_MODULES:
        path = stdlib / name
        cut = cold_cut(path.read_text()) if path.is_file() else None
        if cut is not None:
            out.append(cut)
        if len(out) == count:
            break
    return out
