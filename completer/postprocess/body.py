"""The body a block completion fills, read from the syntax tree: how far its lines may dedent."""

from __future__ import annotations

from completer.context import languages
from completer.postprocess.truncate import indent_of

# nodes whose ``body`` field holds a function's statements, in the grammars completer loads
FUNCTION_NODES = frozenset({
    "function_definition",  # python, c, c++
    "function_declaration", "method_declaration", "func_literal",  # go (and java's methods)
    "method_definition", "function_expression", "arrow_function", "generator_function_declaration",  # js/ts
    "function_item", "closure_expression",  # rust
    "constructor_declaration", "lambda_expression",  # java
})


def function_body_floor(prefix: str, suffix: str, language: str, unit_width: int = 4) -> int | None:
    """Width of the indentation of the body of the outermost function around the cursor (the end
    of ``prefix``), read from the syntax tree of ``prefix + suffix``; a completion that dedents below
    it has left the function (into the next method, or the next function). The outermost: from a
    nested helper function the code may go on in the function that holds it; a class is no function.

    Where the cursor's line is blank the code just before it decides (a cursor at column 0 under
    ``def push(self, item):`` is in push's body), unless an empty line separates the cursor
    from that code and the next code is indented less than the body: the cursor then sits
    between functions. An empty body counts as its header's indentation plus ``unit_width``.
    None: no grammar, or not inside a function.
    """
    parser = languages.shared_parser(language)
    if parser is None:
        return None
    code_end = len(prefix.rstrip())
    if code_end == 0:
        return None
    data = (prefix + suffix).encode("utf-8")
    at = len(prefix[:code_end].encode("utf-8"))
    node = parser.parse(data).root_node.descendant_for_byte_range(at - 1, at)
    outermost = None
    while node is not None:
        if node.type in FUNCTION_NODES:
            outermost = node
        node = node.parent
    node = outermost
    body = node.child_by_field_name("body") if node is not None else None
    if body is None:
        return None
    lines = (prefix + suffix).split("\n")  # tree-sitter's rows are these lines
    header = indent_of(lines[node.start_point.row])
    statements = [child for child in body.named_children if child.start_point.row > node.start_point.row]
    floor = indent_of(lines[statements[0].start_point.row]) if statements else header + unit_width
    if floor <= header:
        return None  # a one-line function (`f = lambda: x`, `{ return x; }`): no body to stay in
    return None if _between_functions(prefix, suffix, floor) else floor


def _between_functions(prefix: str, suffix: str, floor: int) -> bool:
    """An empty line between the code above and the cursor's blank line, and the next code below the body."""
    above, _, cursor_line = prefix.rpartition("\n")
    if cursor_line.strip() or above.rpartition("\n")[2].strip():
        return False
    following = next((line for line in suffix.split("\n")[1:] if line.strip()), None)
    if following is None:
        return False
    return indent_of(following) < floor and not following.strip().startswith(("}", ")", "]"))
