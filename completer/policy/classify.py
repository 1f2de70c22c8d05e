"""Decide what a cursor position asks for: nothing, one line, or a block."""

from __future__ import annotations

import re

from completer.types import CompletionKind

# a line ending in one of these opens a block the user will want filled in
_BLOCK_OPENERS = (":", "{", "=>", "(", "[", "->")
_WORD_CHAR = re.compile(r"\w")
# syntax nodes inside which a completion should stay on its line
_SINGLE_LINE_NODES = ("comment", "block_comment", "string", "string_content", "template_string", "raw_string_literal",
                      "interpreted_string_literal", "string_literal", "text_block")
# a line of a comment or string that holds nothing yet but the comment's own marks (" * ", "// ", "# ")
_DECORATION = re.compile(r"\s*(?:\*|//+|#+|--)?\s*")


def classify(line_prefix: str, line_suffix: str, tree=None, byte_offset: int | None = None) -> CompletionKind:
    """llm-ls style: mid-word → empty; blank line, block opener or the start of a line → multi-line;
    else single-line.

    ``tree`` (a tree-sitter Tree) refines the decision: inside comments and strings
    a completion stays on its line, except on an empty line of one that spans lines (a doc
    comment's example, a template), which asks for lines as code does.
    """
    if line_suffix[:1] and _WORD_CHAR.match(line_suffix[:1]) and line_prefix[-1:] and _WORD_CHAR.match(line_prefix[-1:]):
        return CompletionKind.EMPTY  # the cursor sits inside a word
    if tree is not None and byte_offset is not None:
        node = _enclosing_text_node(tree, byte_offset)
        if node is not None:
            # people write code in doc comments and templates too: an empty line there asks for lines
            spans_lines = node.start_point.row != node.end_point.row
            empty = not line_suffix.strip() and _DECORATION.fullmatch(line_prefix)
            return CompletionKind.MULTI_LINE if spans_lines and empty else CompletionKind.SINGLE_LINE
    if line_suffix.strip():
        # before a line's code (its indentation at most): whole lines are inserted above it
        return CompletionKind.MULTI_LINE if not line_prefix.strip() else CompletionKind.SINGLE_LINE
    stripped = line_prefix.rstrip()
    if not stripped or stripped.endswith(_BLOCK_OPENERS):
        return CompletionKind.MULTI_LINE
    return CompletionKind.SINGLE_LINE


def _enclosing_text_node(tree, byte_offset: int):
    """The comment or string the cursor is inside (None: in code)."""
    node = tree.root_node.descendant_for_byte_range(max(byte_offset - 1, 0), byte_offset)
    while node is not None:
        if node.type in _SINGLE_LINE_NODES and node.start_byte < byte_offset:
            # at the very end of a line comment the cursor is past it
            inside = node.end_byte > byte_offset or node.type == "comment"
            return node if inside else None
        node = node.parent
    return None


def _inside_single_line_node(tree, byte_offset: int) -> bool:
    return _enclosing_text_node(tree, byte_offset) is not None


def may_grow(kind: CompletionKind, line_suffix: str, tree=None, byte_offset: int | None = None) -> bool:
    """At the end of a line of code, a one-line completion may grow into the lines after it.

    Typing ``for op in o`` asks for ``perations:`` and the loop's body; at the end of a
    docstring the model may start the code on the next line. Inside comments and strings,
    and with text after the cursor, the completion stays on its line. ``kind`` is what
    ``classify`` decided for the position.
    """
    if line_suffix.strip() or kind is not CompletionKind.SINGLE_LINE:
        return False
    return tree is None or byte_offset is None or not _inside_single_line_node(tree, byte_offset)


def grown_kind(line_prefix: str, text: str) -> CompletionKind | None:
    """What a growing completion turned out to be, once its first line is complete (None: not yet).

    Multi-line when its line opens a block or it leaves the line blank (the code starts on
    the next line); otherwise it stays one line.
    """
    if "\n" not in text:
        return None
    first = text.split("\n", 1)[0]
    line = (line_prefix + first).rstrip()
    if not first.strip() or line.endswith(_BLOCK_OPENERS):
        return CompletionKind.MULTI_LINE
    return CompletionKind.SINGLE_LINE
