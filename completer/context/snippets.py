"""Cross-file context: windows of other documents ranked by how much they share with the cursor's surroundings.

Similarity is the Jaccard index of identifier sets, as in RepoCoder's sparse retrieval:
cheap, language-agnostic and good at finding the definitions and call sites of the
names the user is writing with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# words too common to say two pieces of code are related
_COMMON = frozenset({
    "self", "this", "return", "if", "else", "for", "while", "in", "def", "class", "import", "from", "the",
    "const", "let", "var", "function", "int", "void", "new", "public", "private", "static", "fn", "func",
    "None", "True", "False", "null", "true", "false", "and", "or", "not", "is", "pub", "mut", "struct",
})


@dataclass(frozen=True)
class Snippet:
    path: str
    text: str
    score: float
    start_line: int = 0


def identifiers(text: str) -> frozenset[str]:
    """The identifiers in ``text``, minus keywords and single letters."""
    return frozenset(w for w in _IDENTIFIER.findall(text) if len(w) > 1 and w not in _COMMON)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def query_text(prefix: str, suffix: str, lines_before: int = 15, lines_after: int = 5) -> str:
    """The lines around the cursor that a snippet should resemble."""
    before = prefix[-4000:].split("\n")[-lines_before:]
    after = suffix[:2000].split("\n")[:lines_after]
    return "\n".join(before + after)


def windows(text: str, size: int = 20, stride: int = 10) -> list[tuple[int, str, frozenset[str]]]:
    """Overlapping windows of ``size`` lines: (first line, text, identifiers). Blank windows are left out."""
    lines = text.split("\n")
    out = []
    for start in range(0, max(len(lines) - size + stride, 1), stride):
        chunk = "\n".join(lines[start : start + size]).strip("\n")
        ids = identifiers(chunk)
        if ids:
            out.append((start, chunk, ids))
    return out


def rank(query: frozenset[str], files: list[tuple[str, list[tuple[int, str, frozenset[str]]]]],
         per_file: int = 2) -> list[Snippet]:
    """The best windows, best first: at most ``per_file`` from any file, never two that overlap."""
    scored: list[Snippet] = []
    for path, wins in files:
        best = sorted(((jaccard(query, ids), start, chunk) for start, chunk, ids in wins), reverse=True)
        taken: list[int] = []
        for score, start, chunk in best:
            if score <= 0 or len(taken) >= per_file:
                break
            if all(abs(start - t) >= 20 for t in taken):
                taken.append(start)
                scored.append(Snippet(path, chunk, score, start))
    return sorted(scored, key=lambda s: (-s.score, s.path, s.start_line))


def pick_within(snippets: list[Snippet], budget: int, count) -> list[Snippet]:
    """Snippets, best first, while their tokens (plus a few for the file header) fit in ``budget``."""
    picked, used = [], 0
    for s in snippets:
        cost = count(s.text) + count(s.path) + 3
        if used + cost <= budget:
            picked.append(s)
            used += cost
    return picked


def group_by_file(snippets: list[Snippet]) -> list[tuple[str, str]]:
    """(path, content) per file, snippets of a file in line order and separated by an ellipsis line."""
    order: list[str] = []
    by_path: dict[str, list[Snippet]] = {}
    for s in snippets:
        if s.path not in by_path:
            order.append(s.path)
        by_path.setdefault(s.path, []).append(s)
    return [(p, "\n...\n".join(s.text for s in sorted(by_path[p], key=lambda s: s.start_line))) for p in order[::-1]]
