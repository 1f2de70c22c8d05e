"""Token counting and prompt encoding with the model's own tokenizer, so budgets are real tokens.

Document text is always read as text: a file that spells ``<|fim_prefix|>`` is counted and sent
as the tokens of those characters, never as the special token (prompt.Prompt keeps the format's
own special tokens apart).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from completer.context.prompt import Prompt, text_pieces


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...

    def token_id(self, token: str) -> int | None: ...


def stop_token_ids(counter: TokenCounter, stop: tuple[str, ...]) -> tuple[int, ...]:
    """Ids of the stop tokens the tokenizer knows: special tokens are dropped from the text, so
    generation stops on their ids, not their spelling."""
    return tuple(i for i in (counter.token_id(t) for t in stop) if i is not None)


class HFTokenCounter:
    """Counts and encodes with the `tokenizers` library from the model folder's tokenizer.json.

    Raises OSError (or the library's Exception) when the folder has no readable tokenizer.json.
    """

    def __init__(self, model_dir: str) -> None:
        from tokenizers import Tokenizer

        path = Path(model_dir) / "tokenizer.json"
        self._tok = Tokenizer.from_file(str(path))
        # text that spells a special token is split like any other text (prompt.py says why)
        self._tok.encode_special_tokens = True
        # budgets count line by line, and while typing almost every line is one seen before
        self._line_counts: dict[str, int] = {}

    def token_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def encode(self, prompt: str) -> list[int]:
        """Token ids of ``prompt``: a prompt.Prompt's special pieces as their ids, all other text
        as text. Raises ValueError for a special piece the tokenizer does not know."""
        ids: list[int] = []
        for text, special in text_pieces(prompt):
            if not special:
                ids += self._tok.encode(text, add_special_tokens=False).ids
                continue
            token = self._tok.token_to_id(text)
            if token is None:
                raise ValueError(f"the tokenizer has no special token {text!r}")
            ids.append(token)
        return ids

    def count(self, text: str) -> int:
        """Tokens of ``text`` as encode() sends them (a prompt's special pieces one each)."""
        if not text:
            return 0
        if len(text) > 2000 or isinstance(text, Prompt):
            return len(self.encode(text))
        n = self._line_counts.get(text)
        if n is None:
            if len(self._line_counts) > 50_000:
                self._line_counts.clear()
            n = self._line_counts[text] = len(self._tok.encode(text, add_special_tokens=False).ids)
        return n


class CharEstimateCounter:
    """A stand-in for when no tokenizer file exists (remote repo ids): ~3.5 chars a token."""

    def token_id(self, token: str) -> int | None:
        return None

    def count(self, text: str) -> int:
        return (len(text) * 2 + 6) // 7
