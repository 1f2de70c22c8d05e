"""The open documents: the one copy of each document's text, with its tree-sitter tree.

LSP addresses text by line and column in the negotiated encoding (positions.py); tree-sitter
by byte offset and (row, byte column) with rows ending at \\n. An edit is applied to the text
once, turned into a tree-sitter ``InputEdit`` for the old tree, and the tree is re-parsed
incrementally, once, when it is needed. A request needs only the part around its cursor
(``Document.tree_near``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from tree_sitter import Point, Tree

from completer.context import languages, window
from completer.context.snippets import windows
from completer.documents.positions import PositionError, offset_at
from completer.documents.uris import uri_key, uri_path

__all__ = ["Document", "DocumentStore", "display_path", "uri_key", "uri_path"]


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


def edit_offset(text: str, line: int, character: int, encoding: str = "utf-16") -> int:
    """Index into ``text`` of an edit range's end point (positions.offset_at).

    A line past the last one means the end of the text: clients replace "to the end" that way.
    Raises PositionError for a negative line or character.
    """
    try:
        return offset_at(text, line, character, encoding)
    except PositionError:
        if line < 0 or character < 0:
            raise
        return len(text)


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

    def replace(self, text: str) -> None:
        """A whole new text: the next parse starts from nothing."""
        self.text, self.tree, self._stale, self._dirty = text, None, True, None
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
    """A document's path as the model should read it (decoded): relative to the workspace root
    (a path, as pygls gives it) when inside it."""
    path = uri_path(uri)
    if root:
        root = root.rstrip("/") + "/"
        if path.startswith(root):
            return path[len(root):]
    return path.lstrip("/")


class DocumentStore:
    """The open documents, plus a few recently edited ones that were closed (for cross-file context).

    Documents are found by URI whatever its spelling (uris.uri_key).
    """

    def __init__(self, keep_closed: int = 8) -> None:
        self.open_docs: dict[str, Document] = {}
        self.recent: OrderedDict[str, Document] = OrderedDict()
        self.keep_closed = keep_closed

    def open(self, uri: str, text: str, language: str, version: int = 0) -> Document:
        key = uri_key(uri)
        self.recent.pop(key, None)
        doc = Document(uri, language, text, version)
        self.open_docs[key] = doc
        return doc

    def change(self, uri: str, changes, version: int = 0, encoding: str = "utf-16") -> Document | None:
        """Apply LSP content changes in order (objects with ``range`` and ``text``; no range = whole text).

        Positions are in ``encoding`` (positions.py); None when the document is not open.
        """
        doc = self.open_docs.get(uri_key(uri))
        if doc is None:
            return None
        for change in changes:
            rng = getattr(change, "range", None)
            if rng is None:
                doc.replace(change.text)
                continue
            start = edit_offset(doc.text, rng.start.line, rng.start.character, encoding)
            end = edit_offset(doc.text, rng.end.line, rng.end.character, encoding)
            doc.apply(start, max(start, end), change.text)
        doc.version = version
        doc.edited_at = time.monotonic()
        return doc

    def close(self, uri: str) -> None:
        key = uri_key(uri)
        doc = self.open_docs.pop(key, None)
        if doc is not None and doc.edited_at:
            doc.tree = None  # only its text is kept
            self.recent[key] = doc
            while len(self.recent) > self.keep_closed:
                self.recent.popitem(last=False)

    def get(self, uri: str) -> Document | None:
        return self.open_docs.get(uri_key(uri))

    def neighbours(self, uri: str) -> list[Document]:
        """Other open documents, then recently edited closed ones (newest first)."""
        key = uri_key(uri)
        others = [d for k, d in self.open_docs.items() if k != key]
        return others + [d for k, d in reversed(self.recent.items()) if k != key]
