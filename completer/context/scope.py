"""What to keep when the prefix is cut: the imports and the signatures of the scopes around the cursor."""

from __future__ import annotations

# top-level nodes that bring names into a file, per grammar
IMPORT_NODES: dict[str, frozenset[str]] = {
    "python": frozenset({"import_statement", "import_from_statement", "future_import_statement"}),
    "javascript": frozenset({"import_statement"}),
    "typescript": frozenset({"import_statement"}),
    "tsx": frozenset({"import_statement"}),
    "go": frozenset({"package_clause", "import_declaration"}),
    "rust": frozenset({"use_declaration", "extern_crate_declaration"}),
    "java": frozenset({"package_declaration", "import_declaration"}),
    "c": frozenset({"preproc_include"}),
    "cpp": frozenset({"preproc_include", "using_declaration"}),
}


def _line_start(data: bytes, byte: int) -> int:
    return data.rfind(b"\n", 0, byte) + 1


def _line_end(data: bytes, byte: int) -> int:
    """Just past the \\n that ends the line holding ``byte`` (or the end of the data)."""
    nl = data.find(b"\n", byte)
    return len(data) if nl < 0 else nl + 1


def top_level(root) -> list:
    """The file's top-level nodes, looking through the ERROR node that wraps them while a bracket
    is open: the imports must not drop out of the prompt (and the prefix cache) at every ``(``."""
    nodes = []
    for node in root.children:
        nodes.extend(node.children if node.type == "ERROR" else [node])
    return nodes


def import_spans(root, language: str, before: int) -> list[tuple[int, int]]:
    """Byte spans (whole lines) of the top-level imports that end before byte ``before``."""
    kinds = IMPORT_NODES.get(language, frozenset())
    spans = []
    for node in top_level(root):
        if node.start_byte >= before:
            break
        if node.type in kinds and node.end_byte <= before:
            spans.append((node.start_byte, node.end_byte))
    return spans


def header_spans(root, data: bytes, cursor: int, before: int) -> list[tuple[int, int]]:
    """Byte spans (whole lines) of the headers of the scopes that hold ``cursor`` and start before ``before``.

    A scope is any node with a ``body`` field (functions, classes, methods, impls...):
    its header runs from its first line to the line before its body, or to the end of the
    body's first line when the body opens on the header's line (``{`` languages).
    """
    spans = []
    # blocks end at their last code, not at the blank or indented line the cursor is on
    anchor = len(data[:cursor].rstrip())
    node = root.descendant_for_byte_range(max(anchor - 1, 0), anchor)
    while node is not None:
        body = node.child_by_field_name("body")
        if body is not None and body.start_byte <= anchor <= body.end_byte and node.start_byte < before:
            start = _line_start(data, node.start_byte)
            if body.start_point.row == node.start_point.row:
                end = _line_end(data, body.start_byte)
            else:
                end = _line_start(data, body.start_byte)
            if end <= before:
                spans.append((start, end))
        node = node.parent
    return spans[::-1]


def whole_lines(data: bytes, spans: list[tuple[int, int]]) -> str:
    """The text of the lines the spans cover, in document order, each line once."""
    pieces: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        s, e = _line_start(data, s), _line_end(data, max(e - 1, s))
        if pieces and s < pieces[-1][1]:
            pieces[-1] = (pieces[-1][0], max(e, pieces[-1][1]))
        else:
            pieces.append((s, e))
    text = "".join(data[s:e].decode("utf-8", errors="replace") for s, e in pieces)
    return text if not text or text.endswith("\n") else text + "\n"


def retained(tree, data: bytes, language: str, cursor: int, cut: int) -> tuple[str, str]:
    """(imports, headers) above byte ``cut`` worth keeping for a cursor at byte ``cursor``."""
    if tree is None or cut <= 0:
        return "", ""
    root = tree.root_node
    return (whole_lines(data, import_spans(root, language, cut)),
            whole_lines(data, header_spans(root, data, cursor, cut)))
