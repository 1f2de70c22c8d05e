"""Documents whose lines end where LSP says they end: at \\r\\n, \\n or \\r, nowhere else.

pygls splits a document with str.splitlines, which also breaks at form feeds, \\x85, \\u2028
and other separators; an editor's incremental edit after such a character then lands on the
wrong line and the server's copy drifts from the editor's (found by the edit-sequence tests).
"""

from __future__ import annotations

import re

from pygls.workspace import TextDocument, Workspace

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+\Z")


def split_lines(text: str) -> list[str]:
    """Lines with their line ends, split at LSP's line ends only (``"".join`` gives ``text`` back)."""
    return _LINE.findall(text)


class LspTextDocument(TextDocument):
    @property
    def lines(self):
        return tuple(split_lines(self.source))


class LspWorkspace(Workspace):
    def _create_text_document(self, doc_uri, source=None, version=None, language_id=None):
        return LspTextDocument(doc_uri, source=source, version=version, language_id=language_id,
                               sync_kind=self._sync_kind, position_codec=self._position_codec)
