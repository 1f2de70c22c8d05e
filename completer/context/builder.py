"""Build the model's view of a document at the cursor: a FIM prompt within a token budget."""

from __future__ import annotations

from collections.abc import Sequence

from completer.context import languages, scope
from completer.context.prompt import FimFormat
from completer.context.snippets import Snippet, group_by_file, identifiers, pick_within, query_text, rank
from completer.context.tokens import TokenCounter
from completer.policy.classify import classify
from completer.types import Context


def cut_prefix(prefix: str, budget: int, counter: TokenCounter) -> str:
    """Keep the end of ``prefix`` (the cursor's line always, then whole lines) within budget.

    Walks back line by line, so a long file costs only the lines kept.
    """
    cut = prefix.rfind("\n") + 1
    if cut == 0:
        return prefix
    remaining = max(budget - counter.count(prefix[cut:]), 0)
    used = 0
    while cut > 0:
        start = prefix.rfind("\n", 0, cut - 1) + 1
        used += counter.count(prefix[start:cut])
        if used > remaining:
            break
        cut = start
    return prefix[cut:]


def cut_suffix(suffix: str, budget: int, counter: TokenCounter) -> str:
    """Keep the start of ``suffix`` (the rest of the cursor's line always, then whole lines)."""
    end = suffix.find("\n") + 1
    if end == 0:
        return suffix
    remaining = max(budget - counter.count(suffix[: end - 1]), 0)
    used = 0
    while end < len(suffix):
        nl = suffix.find("\n", end)
        stop = len(suffix) if nl < 0 else nl + 1
        used += counter.count(suffix[end:stop])
        if used > remaining:
            break
        end = stop
    return suffix[:end]


def count_by_lines(text: str, counter: TokenCounter) -> int:
    """Tokens of ``text`` counted line by line, as the budget cuts count them (lines are cached)."""
    return sum(counter.count(line) for line in text.splitlines(keepends=True))


def with_retained(prefix: str, retained: str, budget: int, counter: TokenCounter) -> str:
    """The cut prefix headed by the retained imports/signatures, if they take at most a third of the budget."""
    if not retained:
        return prefix
    cost = count_by_lines(retained, counter)
    if cost > budget // 3:
        return prefix
    return retained + cut_prefix(prefix, budget - cost, counter)


def build_context(
    text: str,
    offset: int,
    language: str,
    counter: TokenCounter,
    fim: FimFormat,
    context_tokens: int,
    prefix_share: float,
    *,
    tree=None,
    neighbours: Sequence[tuple[str, list]] = (),
    path: str = "",
    repo: str = "",
    snippet_share: float = 0.0,
) -> Context:
    """The FIM context at ``offset`` (an index into ``text``).

    ``tree`` is the document's syntax tree when the caller keeps one (else it is parsed
    here); ``neighbours`` are (path, windows) of other documents, from which snippets
    take up to ``snippet_share`` of the budget in the repository format.
    """
    full_prefix, full_suffix = text[:offset], text[offset:]
    snippets: list[Snippet] = []
    if neighbours and snippet_share > 0:
        query = identifiers(query_text(full_prefix, full_suffix))
        snippets = pick_within(rank(query, list(neighbours)), int(context_tokens * snippet_share), counter.count)
    files = group_by_file(snippets)
    budget = context_tokens - sum(counter.count(p) + counter.count(t) + 3 for p, t in files)
    prefix_budget = int(budget * prefix_share)
    if tree is None:
        p = languages.parser(language)
        if p is not None:
            tree = p.parse(text.encode("utf-8"))
    cursor_byte = len(full_prefix.encode("utf-8"))
    prefix = cut_prefix(full_prefix, prefix_budget, counter)
    if len(prefix) < len(full_prefix) and tree is not None:
        # the cut lost the imports and the enclosing signatures: keep them on top
        cut_byte = cursor_byte - len(prefix.encode("utf-8"))
        imports, headers = scope.retained(tree, text.encode("utf-8"), language, cursor_byte, cut_byte)
        prefix = with_retained(prefix, imports + headers, prefix_budget, counter)
    # the suffix may use what the prefix left over
    prefix_tokens = count_by_lines(prefix, counter)
    suffix_budget = budget - prefix_tokens
    suffix = cut_suffix(full_suffix, max(suffix_budget, 0), counter)
    line_prefix = full_prefix.rpartition("\n")[2]
    line_suffix = full_suffix.partition("\n")[0]
    kind = classify(line_prefix, line_suffix, tree, cursor_byte)
    if files:
        prompt = fim.render_repo(repo or "project", files, path or "current", prefix, suffix)
    else:
        prompt = fim.render(prefix, suffix)
    return Context(
        language=language,
        prefix=prefix,
        suffix=suffix,
        prompt=prompt,
        kind=kind,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        full_prefix=full_prefix,
        full_suffix=full_suffix,
        prompt_tokens=context_tokens - budget + prefix_tokens + count_by_lines(suffix, counter) + 3,
    )
