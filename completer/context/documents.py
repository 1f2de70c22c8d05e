"""Open documents, each with one tree-sitter tree kept up to date from LSP edits.

LSP addresses text by line and UTF-16 column (lines end at \\r\\n, \\n or \\r);
tree-sitter by byte offset and (row, byte column) with rows ending at \\n. An
edit is applied to our own copy of the text, turned into a tree-sitter
``InputEdit`` for the old tree, and the tree is re-parsed incrementally, once,
when it is needed. A request needs only the part around its cursor (tree_near).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from tree_sitter import Point, Tree

from completer.context import languages, window
from completer.context.snippets import windows


def line_start(text: str, line: int) -> int:
    """Index where LSP line ``line`` starts; len(text) past the last line."""
    if line <= 0:
        return 0
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        # a lone \r ends a line too: rare, so the slow path is fine
        index = 0
        for _ in range(line):
            cr, lf = text.find("\r", index), text.find("\n", index)
            ends = [i for i in (cr, lf) if i >= 0]
            if not ends:
                return len(text)
            index = min(ends) + 1
            if text[index - 1] == "\r" and text[index : index + 1] == "\n":
                index += 1
        return index
    # every line ends in \n (\r\n included): splitting on \n is done in C
    parts = text.split("\n", line)
    if len(parts) <= line:
        return len(text)
    return sum(map(len, parts[:line])) + line


def code_units(ch: str, encoding: str) -> int:
    """Length of one character in the LSP position encoding."""
    if encoding == "utf-8":
        return len(ch.encode("utf-8"))
    if encoding == "utf-32":
        return 1
    return 2 if ord(ch) > 0xFFFF else 1


def index_of(text: str, line: int, character: int, encoding: str = "utf-16") -> int:
    """Index into ``text`` of an LSP position, clamped to the line's end as the spec asks for edits."""
    start = line_start(text, line)
    units = 0
    i = start
    while i < len(text) and text[i] not in "\r\n" and units < character:
        units += code_units(text[i], encoding)
        i += 1
    return i


def byte_point(text: str, index: int) -> tuple[int, Point]:
    """Byte offset and tree-sitter point (row, byte column) of ``text[index]``."""
    row = text.count("\n", 0, index)
    row_start = text.rfind("\n", 0, index) + 1
    if text.isascii():
        return index, Point(row, index - row_start)
    return len(text[:index].encode("utf-8")), Point(row, len(text[row_start:index].encode("utf-8")))


@dataclass(frozen=True)
class Edit:
    """A tree-sitter InputEdit's fields, computed from the old text."""

    start_byte: int
    old_end_byte: int
    new_end_byte: int
    start_point: Point
    old_end_point: Point
    new_end_point: Point


def edit_for(text: str, start: int, end: int, new_text: str) -> Edit:
    """The edit that replaces ``text[start:end]`` by ``new_text`` (indexes into ``text``)."""
    start_byte, start_point = byte_point(text, start)
    old_end_byte, old_end_point = byte_point(text, end)
    new_bytes = new_text.encode("utf-8")
    rows = new_text.count("\n")
    if rows:
        column = len(new_bytes) - (new_bytes.rfind(b"\n") + 1)
        new_end_point = Point(start_point.row + rows, column)
    else:
        new_end_point = Point(start_point.row, start_point.column + len(new_bytes))
    return Edit(start_byte, old_end_byte, start_byte + len(new_bytes), start_point, old_end_point, new_end_point)


@dataclass
class Document:
    uri: str
    language: str
    text: str
    version: int = 0
    tree: Tree | None = None
    edited_at: float = 0.0  # monotonic time of the last edit; 0 if never edited
    _stale: bool = True  # the tree has edits applied but is not re-parsed yet
    _dirty: tuple[int, int] | None = None  # the bytes edited since the tree was last parsed
    cache: dict = field(default_factory=dict)  # per-version derived data (e.g. snippet windows)

    def apply(self, start: int, end: int, new_text: str) -> None:
        """Replace ``text[start:end]``; the old tree learns the edit so the next parse is incremental."""
        if self.tree is not None:
            e = edit_for(self.text, start, end, new_text)
            self.tree.edit(e.start_byte, e.old_end_byte, e.new_end_byte, e.start_point, e.old_end_point,
                           e.new_end_point)
            self._dirty = window.grow(self._dirty, e.start_byte, e.old_end_byte, e.new_end_byte)
        self.text = self.text[:start] + new_text + self.text[end:]
        self._stale = True
        self.cache.clear()

    def windows(self) -> list:
        """Snippet windows of this document's text (kept until it changes)."""
        if "windows" not in self.cache:
            self.cache["windows"] = windows(self.text)
        return self.cache["windows"]

    def current_tree(self) -> Tree | None:
        """The syntax tree of the current text (None for plain text), parsing only what changed."""
        if self._stale:
            p = languages.parser(self.language)
            if p is not None:
                data = self.text.encode("utf-8")
                self.tree = p.parse(data, self.tree) if self.tree is not None else p.parse(data)
            self._stale, self._dirty = False, None
        return self.tree

    def tree_near(self, index: int) -> Tree | None:
        """A syntax tree that tells a request at ``text[index]`` what the full tree would.

        While edits are pending, that is a tree of just the imports and the top-level
        statements around the cursor and the edits (see window.py): on a long file it
        costs a fraction of the re-parse. The full tree stays as it was, edits applied,
        for the next window; it is re-parsed when the window would not do.
        """
        if self.tree is None or not self._stale:
            return self.current_tree()
        cursor = len(self.text[:index].encode("utf-8"))
        cached = self.cache.get("tree_near")
        if cached is not None and cached[0] == cursor:
            return cached[1]
        lo, hi = self._dirty or (cursor, cursor)
        tree = window.window_tree(languages.parser(self.language), self.tree, self.text.encode("utf-8"),
                                  self.language, min(lo, cursor), max(hi, cursor))
        if tree is None:
            return self.current_tree()
        self.cache["tree_near"] = (cursor, tree)
        return tree


def display_path(uri: str, root: str | None = None) -> str:
    """A document's path as the model should read it: relative to the workspace root when inside it."""
    path = uri.removeprefix("file://")
    if root:
        root = root.rstrip("/") + "/"
        if path.startswith(root):
            return path[len(root):]
    return path.lstrip("/")


class DocumentStore:
    """The open documents, plus a few recently edited ones that were closed (for cross-file context)."""

    def __init__(self, keep_closed: int = 8) -> None:
        self.open_docs: dict[str, Document] = {}
        self.recent: OrderedDict[str, Document] = OrderedDict()
        self.keep_closed = keep_closed

    def open(self, uri: str, text: str, language: str, version: int = 0) -> Document:
        self.recent.pop(uri, None)
        doc = Document(uri, language, text, version)
        self.open_docs[uri] = doc
        return doc

    def change(self, uri: str, changes, version: int = 0, encoding: str = "utf-16") -> Document | None:
        """Apply LSP content changes (objects with ``range`` and ``text``; no range = whole text)."""
        doc = self.open_docs.get(uri)
        if doc is None:
            return None
        for change in changes:
            rng = getattr(change, "range", None)
            if rng is None:
                doc.text, doc.tree, doc._stale, doc._dirty = change.text, None, True, None
                doc.cache.clear()
                continue
            start = index_of(doc.text, rng.start.line, rng.start.character, encoding)
            end = index_of(doc.text, rng.end.line, rng.end.character, encoding)
            doc.apply(start, max(start, end), change.text)
        doc.version = version
        doc.edited_at = time.monotonic()
        return doc

    def close(self, uri: str) -> None:
        doc = self.open_docs.pop(uri, None)
        if doc is not None and doc.edited_at:
            doc.tree = None  # only its text is kept
            self.recent[uri] = doc
            while len(self.recent) > self.keep_closed:
                self.recent.popitem(last=False)

    def get(self, uri: str) -> Document | None:
        return self.open_docs.get(uri)

    def neighbours(self, uri: str) -> list[Document]:
        """Other open documents, then recently edited closed ones (newest first)."""
        others = [d for u, d in self.open_docs.items() if u != uri]
        return others + [d for u, d in reversed(self.recent.items()) if u != uri]
