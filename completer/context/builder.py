"""Build the model's view of a document at the cursor: a FIM prompt within a token budget."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from completer.context import languages, scope
from completer.context.prompt import FimFormat
from completer.context.snippets import Snippet, group_by_file, identifiers, pick_within, query_text, rank
from completer.context.tokens import TokenCounter
from completer.policy.classify import classify, may_grow
from completer.types import Context


# the cursor's block is budgeted in steps of this many tokens (see cut_prefix)
RESERVE_STEP_TOKENS = 256


def cut_prefix(prefix: str, budget: int, counter: TokenCounter, step: int = 1) -> str:
    """Keep the end of ``prefix`` (the cursor's line always, then whole lines) within budget.

    With ``step`` > 1 the lines of the cursor's block of ``step`` lines are kept whole, and the
    lines above are cut against the budget less a reserve for the block that grows in steps of
    RESERVE_STEP_TOKENS: typing inside the block then leaves the prompt's first line where it is,
    and the prefix cache keeps serving the whole prompt.
    """
    if step > 1:
        start = block_start(prefix, step)
        steps = max(-(-count_by_lines(prefix[start:], counter) // RESERVE_STEP_TOKENS), 1)  # an empty line too
        reserve = steps * RESERVE_STEP_TOKENS
        if 0 < start and reserve <= budget:
            return cut_lines(prefix[:start], budget - reserve, counter, step) + prefix[start:]
    return cut_lines(prefix, budget, counter, step)


def cut_lines(prefix: str, budget: int, counter: TokenCounter, step: int = 1) -> str:
    """Keep the end of ``prefix`` (its last line always, then whole lines) within budget.

    Walks back line by line, so a long file costs only the lines kept. A cut starts on a
    line whose number is a multiple of ``step`` (see snap_prefix_start).
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
    return prefix[snap_prefix_start(prefix, cut, step):]


def cut_suffix(suffix: str, budget: int, counter: TokenCounter, step: int = 1) -> str:
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
    return suffix[:snap_suffix_end(suffix, end, step)]


def snap_prefix_start(prefix: str, cut: int, step: int) -> int:
    """Move a cut at a line start forward to the next line whose number is a multiple of ``step``.

    While the user types below it, the prompt's first line then moves once every ``step``
    lines instead of at every line, and the prefix cache keeps matching. Never past the
    cursor's line.
    """
    if cut == 0 or step <= 1:
        return cut
    line = prefix.count("\n", 0, cut)
    for _ in range(-(-line // step) * step - line):
        nl = prefix.find("\n", cut)
        if nl < 0:
            break
        cut = nl + 1
    return min(cut, prefix.rfind("\n") + 1)


def snap_suffix_end(suffix: str, end: int, step: int) -> int:
    """Keep a multiple of ``step`` whole lines after the cursor's line (all of them if the suffix is whole)."""
    first = suffix.find("\n") + 1
    if end >= len(suffix) or step <= 1 or first == 0 or end <= first:
        return end
    keep = suffix.count("\n", first, end) // step * step
    end = first
    for _ in range(keep):
        end = suffix.find("\n", end) + 1
    return end


def block_start(full_prefix: str, step: int) -> int:
    """Offset of the first line of the cursor's block: lines are grouped ``step`` at a time from the file's top."""
    back = full_prefix.count("\n") % step if step > 1 else 0  # lines between the block's first and the cursor's
    start = full_prefix.rfind("\n") + 1
    for _ in range(back):
        start = full_prefix.rfind("\n", 0, start - 1) + 1
    return start


def snippet_query(full_prefix: str, full_suffix: str, step: int) -> str:
    """The text snippets are ranked against: the lines above the cursor's block of ``step`` lines.

    Typing inside the block does not change it, so the chosen snippets (which come first
    in the prompt) stay the same and the prefix cache keeps serving the whole prompt.
    """
    if step <= 1:
        return query_text(full_prefix, full_suffix)
    start = block_start(full_prefix, step)
    if start == 0:
        return query_text(full_prefix, full_suffix)  # the file's first block: nothing above it
    return query_text(full_prefix[:start], "")


# a line that ends in an opening bracket (with the punctuation and the space before it): the model
# writes the bracket joined to the word after it ("(width" is one token), so it is held back
OPENING = re.compile(r" ?[^\w\s]*[(\[{]\Z")  # \Z: "$" would also match before a final line break


def anchor_for(line_so_far: str, anchor: str) -> str:
    """The anchor ``"auto"`` stands for at a cursor whose line reads ``line_so_far``.

    The block's start where the middle can end on a whole token: the line holds only
    indentation, ends in a space (held back: the model writes ``" value"``) or in an opening
    bracket (held back: the model writes ``"(arg"``). Inside a word or after other punctuation
    the model would have to continue half a token, which costs quality
    (docs/benchmarks/fim-anchor.md), so the prefix ends at the cursor. ``"indentation"`` is the
    block's start only where the line holds only indentation.
    """
    if anchor == "indentation":
        return "block" if not line_so_far.strip() else "cursor"
    if anchor != "auto":
        return anchor
    if not line_so_far.strip() or line_so_far[-1].isspace() or OPENING.search(line_so_far):
        return "block"
    return "cursor"


def middle_split(full_prefix: str, prefix: str, anchor: str, step: int) -> int:
    """Where the cut ``prefix`` stops being the FIM prefix: the rest starts the middle.

    In prefix-suffix-middle order everything after the first changed token is read again,
    suffix included. Typed text that starts the middle leaves the prompt before it unchanged:
    ``"cursor"`` puts nothing there (plain FIM), ``"line"`` the cursor's line so far, and
    ``"block"`` the lines of the cursor's block of ``step`` lines, so the suffix stays cached
    until the cursor leaves the block. ``"auto"`` and ``"indentation"``: see anchor_for.
    """
    anchor = anchor_for(full_prefix[full_prefix.rfind("\n") + 1:], anchor)
    if anchor == "cursor":
        return len(prefix)
    typed = full_prefix[block_start(full_prefix, step if anchor == "block" else 1):]
    if prefix.endswith(typed):
        return len(prefix) - len(typed)
    return prefix.rfind("\n") + 1  # the cut fell inside the block: keep at least the line


def held_back(middle_start: str) -> str:
    """The end of the typed middle left for the model to write again.

    The tokenizer joins a space or a tab to the word after it (``"    if"`` is ``"   "`` + ``" if"``,
    ``"\t\tif"`` is ``"\t"`` + ``"\tif"``) and an opening bracket to the word after it (``"(width"``), so a middle that ends in either asks
    for a token the model never saw begin there. It gets the middle without that end and writes
    it; the pipeline drops it again (see without_held_back).
    """
    if middle_start.endswith((" ", "\t")):
        return middle_start[-1]
    opening = OPENING.search(middle_start)
    return opening.group() if opening else ""


def without_held_back(text: str, held: str) -> str:
    """The model's text less what the prompt held back.

    A held-back space the model did not write is no loss (the text follows the typed space);
    a held-back bracket it did not write means it would continue different code: no answer.
    """
    if text.startswith(held):
        return text[len(held):]
    return text if held.isspace() else ""


def left_the_held_back(text: str, held: str) -> bool:
    """Whether the model's text can no longer start with a held-back bracket (its answer is then empty)."""
    return bool(held) and not held.isspace() and not text.startswith(held) and not held.startswith(text)


@functools.lru_cache(maxsize=4)
def retained_above(above: str, language: str, cut_byte: int, indent: int) -> tuple[str, str]:
    """The imports above ``cut_byte``, and the headers there of the scopes still open at ``indent``,
    read from the text above the cursor's block.

    What is typed inside the block (an open bracket or string) can turn the whole file into
    an error node for the parser, and the headers would drop out of the prompt and the prefix
    cache with it; the text above the block does not change while the user types there. A
    scope of the text above is the cursor's only where the block's code is indented deeper
    than its header.
    """
    parser = languages.parser(language)
    if parser is None:
        return "", ""
    data = above.encode("utf-8")
    root = parser.parse(data).root_node
    headers = [(start, end) for start, end in scope.header_spans(root, data, len(data), cut_byte)
               if indentation(data[start:end].decode("utf-8", errors="replace")) < indent]
    return (scope.whole_lines(data, scope.import_spans(root, language, cut_byte)),
            scope.whole_lines(data, headers))


def indentation(text: str) -> int:
    """Width of the leading whitespace of ``text``'s first line that holds code (or of its last line)."""
    lines = text.split("\n")
    line = next((line for line in lines if line.strip()), lines[-1])
    return len(line) - len(line.lstrip())


def count_by_lines(text: str, counter: TokenCounter) -> int:
    """Tokens of ``text`` counted line by line, as the budget cuts count them (lines are cached)."""
    return sum(counter.count(line) for line in text.splitlines(keepends=True))


def with_retained(prefix: str, retained: str, budget: int, counter: TokenCounter, step: int = 1) -> str:
    """The cut prefix headed by the retained imports/signatures, if they take at most a third of the budget."""
    if not retained:
        return prefix
    cost = count_by_lines(retained, counter)
    if cost > budget // 3:
        return prefix
    return retained + cut_prefix(prefix, budget - cost, counter, step)


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
    order: str = "psm",
    snap_lines: int = 1,
    anchor: str = "cursor",
) -> Context:
    """The FIM context at ``offset`` (an index into ``text``).

    ``tree`` is the document's syntax tree when the caller keeps one (else it is parsed
    here); ``neighbours`` are (path, windows) of other documents, from which snippets
    take up to ``snippet_share`` of the budget in the repository format. ``order`` is the
    FIM order; ``snap_lines`` keeps the cuts and snippets still while the user types, and
    ``anchor`` says how much typed text starts the middle (see middle_split).
    """
    full_prefix, full_suffix = text[:offset], text[offset:]
    snippets: list[Snippet] = []
    if neighbours and snippet_share > 0:
        query = identifiers(snippet_query(full_prefix, full_suffix, snap_lines))
        snippets = pick_within(rank(query, list(neighbours)), int(context_tokens * snippet_share), counter.count)
    files = group_by_file(snippets)
    budget = context_tokens - sum(counter.count(p) + counter.count(t) + 3 for p, t in files)
    prefix_budget = int(budget * prefix_share)
    if tree is None:
        p = languages.parser(language)
        if p is not None:
            tree = p.parse(text.encode("utf-8"))
    cursor_byte = len(full_prefix.encode("utf-8"))
    prefix = cut_prefix(full_prefix, prefix_budget, counter, snap_lines)
    if len(prefix) < len(full_prefix) and tree is not None:
        # the cut lost the imports and the enclosing signatures: keep them on top
        cut_byte = cursor_byte - len(prefix.encode("utf-8"))
        if snap_lines > 1:
            start = block_start(full_prefix, snap_lines)
            imports, headers = retained_above(full_prefix[:start], language, cut_byte,
                                              indentation(full_prefix[start:]))
        else:
            imports, headers = scope.retained(tree, text.encode("utf-8"), language, cursor_byte, cut_byte)
        prefix = with_retained(prefix, imports + headers, prefix_budget, counter, snap_lines)
    # the suffix may use what the prefix left over
    prefix_tokens = count_by_lines(prefix, counter)
    suffix_budget = budget - prefix_tokens
    suffix = cut_suffix(full_suffix, max(suffix_budget, 0), counter, snap_lines)
    line_prefix = full_prefix.rpartition("\n")[2]
    line_suffix = full_suffix.partition("\n")[0]
    kind = classify(line_prefix, line_suffix, tree, cursor_byte)
    split = middle_split(full_prefix, prefix, anchor, snap_lines)
    held = held_back(prefix[split:])
    middle_start = prefix[split:len(prefix) - len(held)]
    if files:
        prompt = fim.render_repo(repo or "project", files, path or "current", prefix[:split], suffix, order,
                                 middle_start)
    else:
        prompt = fim.render(prefix[:split], suffix, order, middle_start)
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
        may_grow=may_grow(kind, line_suffix, tree, cursor_byte),
        held_back=held,
    )
