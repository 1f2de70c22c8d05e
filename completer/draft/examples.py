"""Training examples cut from a folder of code, prompted as completer prompts (pure: no model).

Two kinds, each a prompt plus the text the target should write after it:

- ``fim``: a hole cut with tree-sitter around a real cursor position (repo_tasks.file_holes:
  the rest of a line, or a block body), prompted by the context builder with the document's
  prefix and suffix, as an editor request would be;
- ``l2r``: the cursor at a line start with nothing after it (writing new code at the end of a
  file); the completion is the lines that follow.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from completer.bench import repo_tasks
from completer.context import languages
from completer.context.builder import build_context
from completer.context.prompt import FimFormat

FIM, L2R = "fim", "l2r"
MIN_FILE_BYTES, MAX_FILE_BYTES = 200, 1 << 20
L2R_LINES = 12  # lines a left-to-right completion runs on
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox",
                          "site-packages", "build", "dist", "target"})


@dataclass(frozen=True)
class Example:
    """One training example: ``prompt`` as the engine receives it, ``completion`` what follows."""

    path: str
    kind: str  # FIM or L2R
    prompt: str
    completion: str


def source_files(folder: Path, skip_dirs: Iterable[str] = SKIPPED_DIRS) -> list[Path]:
    """Files under ``folder`` in a language completer knows, 200 B–1 MiB, sorted; symlinks that
    lead out of the folder and tool folders (.git, node_modules, virtual environments) are passed over."""
    root = folder.resolve()
    skip = set(skip_dirs)
    out = []
    for p in sorted(root.rglob("*")):
        if any(part in skip for part in p.relative_to(root).parts[:-1]):
            continue
        try:
            if not p.is_file() or root not in p.resolve().parents:
                continue
            size = p.stat().st_size
        except OSError:
            continue
        if MIN_FILE_BYTES < size < MAX_FILE_BYTES and languages.detect(None, p.name) != languages.PLAIN_TEXT:
            out.append(p)
    return out


def held_out(path: str, fraction: float) -> bool:
    """Whether ``path`` (relative) belongs to the held-out share: a stable hash, not a draw, so
    that training and evaluation agree without sharing state, and runs with other seeds (a run
    that goes on from an earlier head) hold out the same files."""
    digest = hashlib.sha256(f"0:{path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def fim_examples(text: str, language: str, path: str, build: Callable[[str, int], str], rng: random.Random,
                 limit: int) -> list[Example]:
    """Up to ``limit`` fill-in-the-middle examples of one file: single-line and block holes (both
    cursor placements), drawn with ``rng``. ``build(document, cursor)`` gives the prompt and the
    text the prompt holds back (returned as (prompt, held_back)). Files of a language without a
    grammar for holes, or that do not parse, give none."""
    if language not in repo_tasks.BODIES or not repo_tasks.is_ordinary_text(text):
        return []
    try:
        singles, blocks = repo_tasks.file_holes(text, language, rng)
    except ValueError:
        return []
    holes = singles + [h for pair in blocks for h in pair]
    rng.shuffle(holes)
    out = []
    for hole in holes[:limit]:
        document = text[:hole.start] + text[hole.end:]
        prompt, held = build(document, hole.cursor)
        out.append(Example(path, FIM, prompt, held + text[hole.start:hole.end]))
    return out


def l2r_examples(text: str, path: str, build: Callable[[str, int], str], rng: random.Random,
                 limit: int, lines: int = L2R_LINES) -> list[Example]:
    """Up to ``limit`` left-to-right examples: the document ends at a line start past the first
    few lines, the completion is the next ``lines`` lines (at least one with code)."""
    starts = repo_tasks.line_starts(text)
    rows = [r for r in range(4, len(starts) - 1) if text[starts[r]:starts[r + 1]].strip()]
    out = []
    for row in rng.sample(rows, min(limit, len(rows))):
        end = starts[min(row + lines, len(starts) - 1)]
        if row + lines >= len(starts) - 1:
            end = len(text)
        prompt, held = build(text[:starts[row]], starts[row])
        out.append(Example(path, L2R, prompt, held + text[starts[row]:end]))
    return out


def file_examples(text: str, path: str, language: str, build: Callable[[str, int], str], seed: int,
                  per_file: int) -> list[Example]:
    """``per_file`` examples of one file (fim where a grammar allows, else left-to-right), seeded by path."""
    rng = random.Random(f"{seed}:{path}")
    fim = fim_examples(text, language, path, build, rng, (per_file + 1) // 2)
    return fim + l2r_examples(text, path, build, rng, per_file - len(fim))


def prompt_builder(counter, fim: FimFormat, language: str, context_tokens: int, prefix_share: float):
    """``build(document, cursor) -> (prompt, held_back)`` with completer's own context builder."""
    def build(document: str, cursor: int) -> tuple[str, str]:
        ctx = build_context(document, cursor, language, counter, fim, context_tokens, prefix_share)
        return ctx.prompt, ctx.held_back
    return build


def tokenize(example: Example, encode: Callable[[str], list[int]], max_completion_tokens: int,
             end_ids: Sequence[int] = ()) -> tuple[list[int], list[int]]:
    """(token ids, loss mask): the prompt's ids (mask 0) then the completion's, cut to
    ``max_completion_tokens``, followed by ``end_ids`` when the completion was not cut (mask 1)."""
    prompt = encode(example.prompt)
    completion = encode(example.completion)
    if len(completion) > max_completion_tokens:
        completion = completion[:max_completion_tokens]
    else:
        completion = completion + list(end_ids)
    return prompt + completion, [0] * len(prompt) + [1] * len(completion)
