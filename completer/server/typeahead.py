"""Type-ahead: while the user types what the suggestion on screen says, the rest of it is the answer.

No model call is needed for it (Tabby and llama.vim do the same). The check compares the
document as it is now with the text the suggestion was made for, so an answer from here
always belongs to the current document state.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shown:
    """The last suggestion for a document and the text around the cursor it was made for."""

    prefix: str  # the document's text before the cursor
    suffix: str  # ... and after it
    text: str  # the suggestion
    kind: str = ""  # its CompletionKind value


def rest_of_suggestion(shown: Shown | None, prefix: str, suffix: str) -> str | None:
    """What is left of ``shown`` after the user typed its beginning, or None: ask the model.

    The same position with nothing typed gives the whole suggestion again (greedy answers
    do not change); typing all of it, or anything else, asks again.
    """
    if shown is None or not shown.text or suffix != shown.suffix or not prefix.startswith(shown.prefix):
        return None
    typed = prefix[len(shown.prefix):]
    if len(typed) >= len(shown.text) or not shown.text.startswith(typed):
        return None
    return shown.text[len(typed):]


class ShownSuggestions:
    """The last suggestion per document; one entry per open document, dropped when it closes."""

    def __init__(self) -> None:
        self._by_uri: dict[str, Shown] = {}
        self.served = 0

    def answer(self, uri: str, prefix: str, suffix: str) -> tuple[str, str] | None:
        """(rest of the suggestion, its kind), or None."""
        shown = self._by_uri.get(uri)
        rest = rest_of_suggestion(shown, prefix, suffix)
        if rest is None:
            return None
        self.served += 1
        return rest, shown.kind

    def remember(self, uri: str, prefix: str, suffix: str, text: str, kind: str = "") -> None:
        if text:
            self._by_uri[uri] = Shown(prefix, suffix, text, kind)
        else:
            self._by_uri.pop(uri, None)

    def clear(self) -> None:
        self._by_uri.clear()

    def forget(self, uri: str) -> None:
        self._by_uri.pop(uri, None)

    def __len__(self) -> int:
        return len(self._by_uri)
