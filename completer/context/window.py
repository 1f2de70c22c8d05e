"""Re-parse only the part of a long document that a request looks at.

tree-sitter's incremental re-parse of a Python file runs from the edit to the end
of the file (its indentation scanner keeps the old subtrees from being reused), so
each keystroke in the middle of a long file costs half a full parse. A request only
looks at the top-level statement around the cursor (the scopes that hold the cursor,
whether it sits in a string or comment) and at the top-level imports above it (see
scope.retained and classify). So only those are parsed: the imports, and a window of
whole top-level statements around the cursor and the edits since the last full parse
(when the rest has no syntax errors), through ``Parser.included_ranges`` so that nodes keep their offsets in the document.

The window ends in statements that were not edited. When they come out of the parse
exactly as in the last full parse, as do the imports, the parser has resynchronised
there and the window holds what a full parse would; otherwise the caller parses all.
"""

from __future__ import annotations

from tree_sitter import Point, Range, Tree

from completer.context.scope import IMPORT_NODES

# statements added on each side of those that hold the edits and the cursor: the
# nearest ones may change with them (an indented line joins the block above, a
# decorator the definition below), the next ones are compared after the parse
SIDE = 2

Span = tuple[int, int]
Signature = tuple[str, int, int]  # a node's type and byte span


def grow(dirty: Span | None, start: int, old_end: int, new_end: int) -> Span:
    """The bytes edited since the last full parse, after bytes [start, old_end) became [start, new_end)."""
    if dirty is None:
        return start, new_end
    lo, hi = dirty
    # an end past the edit moves with the text after it; one before or inside it, to the edit's end
    return min(lo, start), hi + new_end - old_end if hi > old_end else new_end


def pick(spans: list[Span], clean: list[bool], lo: int, hi: int) -> tuple[int, int]:
    """Indices (first, last) of the top-level statements to parse for bytes [lo, hi] (edits and cursor).

    ``spans`` are the statements' byte spans in order, ``clean`` whether each is free of
    edits and errors. The window takes those that touch [lo, hi], ``SIDE`` more on each
    side, and further out up to a clean one, which is compared after the parse. -1 or
    len(spans) mean the window runs to the start or the end of the document.
    """
    first = sum(1 for _, end in spans if end < lo) - SIDE
    last = sum(1 for start, _ in spans if start <= hi) - 1 + SIDE
    while first >= 0 and not clean[first]:
        first -= 1
    while last < len(spans) and not clean[last]:
        last += 1
    return max(first, -1), min(last, len(spans))


def line_span(data: bytes, start: int, end: int) -> Span:
    """The whole lines that hold bytes [start, end)."""
    nl = data.find(b"\n", max(end - 1, start))
    return data.rfind(b"\n", 0, start) + 1, len(data) if nl < 0 else nl + 1


def merged(spans: list[Span]) -> list[Span]:
    """Sorted spans, those that touch or overlap joined."""
    out: list[Span] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(e, out[-1][1]))
        else:
            out.append((s, e))
    return out


def ranges(data: bytes, spans: list[Span]) -> list[Range]:
    """tree-sitter ranges for byte spans that start and end at line starts (or the data's end)."""
    out = []
    for s, e in merged(spans):
        row = data.count(b"\n", 0, s)
        end_row = row + data.count(b"\n", s, e)
        end_col = e - (data.rfind(b"\n", 0, e) + 1)
        out.append(Range(Point(row, 0), Point(end_row, end_col), s, e))
    return out


def window_tree(parser, old: Tree, data: bytes, language: str, lo: int, hi: int,
                max_share: float = 0.5) -> Tree | None:
    """A tree of the imports and the window around bytes [lo, hi] of ``data``, or None if a full parse is due.

    ``old`` is the last full tree, with the edits since applied (Tree.edit), and
    [lo, hi] covers those edits and the cursor. None when the window would hold more
    than ``max_share`` of the document, or the parse did not resynchronise.
    """
    kids = old.root_node.children
    spans = [(k.start_byte, k.end_byte) for k in kids]
    first, last = pick(spans, [not (k.has_changes or k.has_error) for k in kids], lo, hi)
    start = line_span(data, *spans[first])[0] if first >= 0 else 0
    end = line_span(data, *spans[last])[1] if last < len(kids) else len(data)
    if end - start > max_share * len(data):
        return None
    if any(k.has_error for k in kids[:max(first, 0)] + kids[last + 1:]):
        return None  # how the parser recovers from an error outside may depend on what the window holds
    kinds = IMPORT_NODES.get(language, frozenset())
    imports = [k for k in kids[:max(first, 0)] if k.type in kinds]
    expected = {signature(k) for k in imports + [kids[i] for i in (first, last) if 0 <= i < len(kids)]}
    parser.included_ranges = ranges(data, [line_span(data, k.start_byte, k.end_byte) for k in imports]
                                    + [(start, end)])
    tree = parser.parse(data)
    kids = tree.root_node.children
    if any(k.has_error and (k.end_byte < lo or k.start_byte > hi) for k in kids):
        return None  # an error away from the edits: a string or comment they opened may end past the window
    return tree if expected <= {signature(k) for k in kids} else None


def signature(node) -> Signature:
    return node.type, node.start_byte, node.end_byte
