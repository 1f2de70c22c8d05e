"""Scores of one real-repository answer: exact match, edit similarity, and for a block answer why
it misses (miss_cause), read from the model's raw text beside the shown answer."""

from __future__ import annotations

from dataclasses import dataclass

from completer.bench.quality import edit_similarity, exact_match
from completer.bench.repo_tasks import BLOCK_KINDS, RepoTask, cut


@dataclass(frozen=True)
class Case:
    """A task made concrete: the document with its hole, and the expected text (never written to reports)."""

    task: RepoTask
    document: str
    cursor: int
    expected: str


@dataclass
class RepoRecord:
    task: str
    repo: str
    language: str
    kind: str
    row: str
    exact: bool
    exact_as_inserted: bool
    edit_similarity: float
    empty: bool
    answer_lines: int
    expected_lines: int
    tokens: int
    latency_s: float
    cause: str = ""  # a block answer's miss, by cause (miss_cause); "" for other rows and kinds


# why a completer block answer is not the removed block (miss_cause)
EXACT, EMPTY = "exact", "empty"
MODEL_ENDED, MODEL_CLOSED = "shorter: the model ended (stop token)", "shorter: the model closed the block"
CUT_SHORT = "shorter: cut while the model went on in the block"
LONGER, OTHER_CODE = "longer: the model went on past the block", "as long: other code"
CAUSES = (EXACT, EMPTY, MODEL_ENDED, MODEL_CLOSED, CUT_SHORT, LONGER, OTHER_CODE)


def miss_cause(shown: str, raw: str, expected: str, finish_reason: str | None, line_prefix: str) -> str:
    """Why the block answer ``shown`` is not ``expected``, read from the model's ``raw`` text (after
    the held-back text, as far as it was streamed) and how it ended (``finish_reason``: "stop" for a
    stop token, None where completer stopped the stream). ``line_prefix``: the cursor's line before it.

    A shorter answer is the model's when the raw text ends with the answer (a stop token), or goes on
    with a line indented less than the answer's first line of code, or with a closing bracket (the
    model closed the block); otherwise the cuts dropped lines the model wrote in the block
    (CUT_SHORT). One of CAUSES.
    """
    from completer.postprocess.truncate import indent_of

    if exact_match(shown, expected):
        return EXACT
    if not shown.strip():
        return EMPTY
    if line_count(shown) > line_count(expected):
        return LONGER
    if line_count(shown) == line_count(expected):
        return OTHER_CODE
    body = shown.rstrip()
    rest = raw[len(body):] if raw.startswith(body) else raw[raw.find(body) + len(body):] if body in raw else None
    if rest is None:
        return CUT_SHORT
    if not rest.strip():
        return MODEL_ENDED if finish_reason == "stop" else CUT_SHORT
    base = indent_of(next(line for line in (line_prefix + shown).split("\n") if line.strip()))
    following = next((line for line in rest.split("\n")[1:] if line.strip()), None)
    if following is None:  # the rest is on the answer's own last line
        return CUT_SHORT
    if indent_of(following) < base or following.strip()[:1] in ")]}":
        return MODEL_CLOSED
    return CUT_SHORT


def line_count(text: str) -> int:
    """Lines of ``text`` once the empty lines around it are dropped (0 for blank text)."""
    body = text.strip("\n")
    return 0 if not body.strip() else body.count("\n") + 1


def exact_as_inserted(completion: str, expected: str) -> bool:
    """Equal as the editor would insert it: leading newlines and indentation count, trailing spaces do not."""
    def norm(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")

    return norm(completion) == norm(expected)


def score(case: Case, row: str, completion: str, tokens: int, latency_s: float, raw: str | None = None,
          finish_reason: str | None = None) -> RepoRecord:
    """The record of one answer; with the model's ``raw`` text, a block answer's miss_cause too."""
    t = case.task
    cause = ""
    if raw is not None and t.kind in BLOCK_KINDS:
        cause = miss_cause(completion, raw, case.expected, finish_reason,
                           case.document[:case.cursor].rpartition("\n")[2])
    return RepoRecord(t.id, t.repo, t.language, t.kind, row, exact_match(completion, case.expected),
                      exact_as_inserted(completion, case.expected), edit_similarity(completion, case.expected),
                      not completion.strip(), line_count(completion), line_count(case.expected), tokens,
                      round(latency_s, 3), cause)


def cases(tasks: list[RepoTask], texts: dict[tuple[str, str, str], str]) -> list[Case]:
    out = []
    for t in tasks:
        document, cursor, expected = cut(texts[(t.repo, t.commit, t.path)], t)
        out.append(Case(t, document, cursor, expected))
    return out
