"""Token counting with the model's own tokenizer, so budgets are real tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...

    def token_id(self, token: str) -> int | None: ...


def stop_token_ids(counter: TokenCounter, stop: tuple[str, ...]) -> tuple[int, ...]:
    """Ids of the stop tokens the tokenizer knows: special tokens are dropped from the text, so
    generation stops on their ids, not their spelling."""
    return tuple(i for i in (counter.token_id(t) for t in stop) if i is not None)


class HFTokenCounter:
    """Counts with the `tokenizers` library from the model folder's tokenizer.json."""

    def __init__(self, model_dir: str) -> None:
        from tokenizers import Tokenizer

        path = Path(model_dir) / "tokenizer.json"
        self._tok = Tokenizer.from_file(str(path))
        # budgets count line by line, and while typing almost every line is one seen before
        self._line_counts: dict[str, int] = {}

    def token_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def count(self, text: str) -> int:
        if not text:
            return 0
        if len(text) > 2000:
            return len(self._tok.encode(text, add_special_tokens=False).ids)
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
