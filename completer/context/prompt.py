"""Fill-in-the-middle prompt formats, per model family, and the prompt that keeps its frame apart.

A prompt is built from pieces: the format's special tokens (``<|fim_prefix|>``, ``<|file_sep|>``)
and document text. The text of a document may spell a special token too (a file about the
model's own format, a tokenizer's tests); sent as one string, the tokenizer would read it as the
real token and the prompt's frame would break. ``Prompt`` keeps the pieces with the text, so the
engine sends the frame as special-token ids and the document as text (tokens.HFTokenCounter.encode).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# (text, whether it is one of the format's special tokens)
Piece = tuple[str, bool]


def merged(pieces: Iterable[Piece]) -> tuple[Piece, ...]:
    """``pieces`` without empty ones, neighbouring text pieces joined (a tokenizer reads text
    between two special tokens as one run, so the ids are those of the prompt read whole)."""
    out: list[Piece] = []
    for text, special in pieces:
        if not text:
            continue
        if out and not special and not out[-1][1]:
            out[-1] = (out[-1][0] + text, False)
        else:
            out.append((text, special))
    return tuple(out)


def cut(pieces: tuple[Piece, ...], start: int, stop: int) -> tuple[Piece, ...]:
    """The pieces of the text between ``start`` and ``stop`` (character indexes into their joined
    text); part of a special token is only text."""
    out: list[Piece] = []
    at = 0
    for text, special in pieces:
        lo, hi = max(start - at, 0), min(stop - at, len(text))
        if lo < hi:
            out.append((text[lo:hi], special and lo == 0 and hi == len(text)))
        at += len(text)
    return merged(out)


class Prompt(str):
    """A model prompt: its text (the str itself: logs, records, prefix-cache estimates) and its
    ``pieces``, which say which parts are the format's special tokens.

    Everything not in a special piece is document text, tokenized as text even where it spells a
    special token. Slicing with step 1 keeps the pieces; other str operations give a plain str.
    """

    pieces: tuple[Piece, ...]

    def __new__(cls, pieces: Iterable[Piece]) -> "Prompt":
        kept = merged(pieces)
        prompt = super().__new__(cls, "".join(text for text, _ in kept))
        prompt.pieces = kept
        return prompt

    def __getitem__(self, key):
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(len(self))
            return Prompt(cut(self.pieces, start, stop))
        return str.__getitem__(self, key)

    def __getnewargs__(self) -> tuple:
        return (self.pieces,)


def text_pieces(text: str) -> tuple[Piece, ...]:
    """The pieces of ``text``: a Prompt's own, or the whole of a plain str as document text."""
    return text.pieces if isinstance(text, Prompt) else merged([(text, False)])


@dataclass(frozen=True)
class FimFormat:
    prefix: str
    suffix: str
    middle: str
    # tokens that mean the model has finished the middle part
    stop: tuple[str, ...]
    repo_name: str = "<|repo_name|>"
    file_sep: str = "<|file_sep|>"

    def pieces(self, prefix: str, suffix: str, order: str = "psm", middle_start: str = "") -> list[Piece]:
        """The FIM frame around the document's parts (see render)."""
        p, s, m = (self.prefix, True), (self.suffix, True), (self.middle, True)
        if order == "spm":
            return [s, (suffix, False), p, (prefix, False), m, (middle_start, False)]
        return [p, (prefix, False), s, (suffix, False), m, (middle_start, False)]

    def render(self, prefix: str, suffix: str, order: str = "psm", middle_start: str = "") -> Prompt:
        """Prefix-suffix-middle order (as the Qwen2.5-Coder models were trained), or suffix-prefix-middle,
        where typing at the cursor changes only the prompt's end.

        ``middle_start`` is text just before the cursor given as the start of the middle instead of
        the end of the prefix: the model continues it, and the prompt before it stays the same
        while the user types it (see builder.middle_anchor).
        """
        return Prompt(self.pieces(prefix, suffix, order, middle_start))

    def render_repo(self, repo: str, files: list[tuple[str, str]], path: str, prefix: str, suffix: str,
                    order: str = "psm", middle_start: str = "") -> Prompt:
        """Qwen2.5-Coder's repository-level format: other files first, then the current one in FIM order."""
        head: list[Piece] = [(self.repo_name, True), (f"{repo}\n", False)]
        for p, text in files:
            head += [(self.file_sep, True), (f"{p}\n{text}\n", False)]
        return Prompt(head + [(self.file_sep, True), (f"{path}\n", False)]
                      + self.pieces(prefix, suffix, order, middle_start))


QWEN = FimFormat(
    prefix="<|fim_prefix|>",
    suffix="<|fim_suffix|>",
    middle="<|fim_middle|>",
    stop=("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>", "<|fim_prefix|>"),
)


def format_for(model_name: str) -> FimFormat:
    """The FIM format for a model; Qwen's is the default (the only family shipped)."""
    return QWEN
