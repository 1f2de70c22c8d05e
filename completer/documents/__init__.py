"""The open documents: one store of text and syntax tree per document (store.py), and the one
conversion between LSP positions and string offsets (positions.py)."""

from completer.documents.store import Document, DocumentStore, display_path

__all__ = ["Document", "DocumentStore", "display_path"]
