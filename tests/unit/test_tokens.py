import pytest

from completer.context.tokens import CharEstimateCounter, stop_token_ids


class Vocabulary:
    """A tokenizer that knows a few special tokens."""

    ids = {"<|endoftext|>": 151643, "<|fim_pad|>": 151662}

    def count(self, text: str) -> int:
        return len(text)

    def token_id(self, token: str) -> int | None:
        return self.ids.get(token)


@pytest.mark.parametrize("counter,stop,expected", [
    (Vocabulary(), ("<|endoftext|>", "<|fim_pad|>"), (151643, 151662)),
    (Vocabulary(), ("<|fim_pad|>", "<|unknown|>"), (151662,)),  # a token the tokenizer lacks is skipped
    (Vocabulary(), (), ()),
    (CharEstimateCounter(), ("<|endoftext|>",), ()),  # no tokenizer: stop on text only
])
def test_stop_token_ids_keep_the_known_ones_in_order(counter, stop, expected):
    assert stop_token_ids(counter, stop) == expected
