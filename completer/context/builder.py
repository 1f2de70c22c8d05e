"""Build the model's view of a document at the cursor: a FIM prompt within a token budget."""

from __future__ import annotations

from completer.context import languages
from completer.context.prompt import FimFormat
from completer.context.tokens import TokenCounter
from completer.policy.classify import classify
from completer.types import Context


def take_lines_within(lines: list[str], budget: int, counter: TokenCounter) -> int:
    """How many of ``lines`` (taken in order) fit in ``budget`` tokens.

    Whole lines only, so that a small edit does not shift the cut mid-line.
    """
    used = 0
    for n, line in enumerate(lines):
        used += counter.count(line)
        if used > budget:
            return n
    return len(lines)


def cut_prefix(prefix: str, budget: int, counter: TokenCounter) -> str:
    """Keep the end of ``prefix`` (the cursor's line always, then whole lines) within budget."""
    head, sep, cursor_line = prefix.rpartition("\n")
    if not sep:
        return prefix
    earlier = [line + "\n" for line in head.split("\n")]
    remaining = budget - counter.count(cursor_line)
    keep = take_lines_within(earlier[::-1], max(remaining, 0), counter)
    return "".join(earlier[len(earlier) - keep :]) + cursor_line


def cut_suffix(suffix: str, budget: int, counter: TokenCounter) -> str:
    """Keep the start of ``suffix`` (the rest of the cursor's line always, then whole lines)."""
    rest_of_line, sep, tail = suffix.partition("\n")
    if not sep:
        return suffix
    later = [line + "\n" for line in tail.split("\n")]
    later[-1] = later[-1][:-1]  # the last piece had no newline
    remaining = budget - counter.count(rest_of_line)
    keep = take_lines_within(later, max(remaining, 0), counter)
    return rest_of_line + sep + "".join(later[:keep])


def build_context(
    text: str,
    offset: int,
    language: str,
    counter: TokenCounter,
    fim: FimFormat,
    context_tokens: int,
    prefix_share: float,
) -> Context:
    """The FIM context at ``offset`` (an index into ``text``)."""
    full_prefix, full_suffix = text[:offset], text[offset:]
    prefix_budget = int(context_tokens * prefix_share)
    prefix = cut_prefix(full_prefix, prefix_budget, counter)
    # the suffix may use what the prefix left over
    suffix_budget = context_tokens - counter.count(prefix)
    suffix = cut_suffix(full_suffix, max(suffix_budget, 0), counter)
    line_prefix = full_prefix.rpartition("\n")[2]
    line_suffix = full_suffix.partition("\n")[0]
    tree = None
    p = languages.parser(language)
    if p is not None:
        tree = p.parse(text.encode("utf-8"))
    kind = classify(line_prefix, line_suffix, tree, len(full_prefix.encode("utf-8")))
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
        prompt_tokens=counter.count(prefix) + counter.count(suffix) + 3,
    )
