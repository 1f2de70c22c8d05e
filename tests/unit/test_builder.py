import pytest

from completer.context.builder import build_context, cut_prefix, cut_suffix
from completer.context.prompt import QWEN
from completer.types import CompletionKind


class WordCounter:
    """A stand-in tokenizer for pure budget logic: one token per whitespace-separated word."""

    def count(self, text):
        return len(text.split())

    def token_id(self, token):
        return None


W = WordCounter()


@pytest.mark.parametrize("prefix,budget,expected", [
    ("one two\nthree\nfour five", 3, "three\nfour five"),  # whole lines from the end
    ("one two\nthree\nfour five", 100, "one two\nthree\nfour five"),
    ("one two\nthree\nfour five six", 1, "four five six"),  # the cursor's line is always kept
    ("no newline", 0, "no newline"),
])
def test_cut_prefix(prefix, budget, expected):
    assert cut_prefix(prefix, budget, W) == expected


@pytest.mark.parametrize("suffix,budget,expected", [
    (") + 1\nnext line\nlast", 5, ") + 1\nnext line\n"),
    (") + 1\nnext line\nlast", 100, ") + 1\nnext line\nlast"),
    ("rest\n", 0, "rest\n"),
])
def test_cut_suffix(suffix, budget, expected):
    assert cut_suffix(suffix, budget, W) == expected


def test_build_context_renders_qwen_fim_and_classifies():
    text = "import os\n\ndef f(x):\n    \n\nprint(f(1))\n"
    offset = text.index("    \n") + 4
    ctx = build_context(text, offset, "python", W, QWEN, context_tokens=100, prefix_share=0.75)
    assert ctx.prompt == "<|fim_prefix|>import os\n\ndef f(x):\n    <|fim_suffix|>\n\nprint(f(1))\n<|fim_middle|>"
    assert ctx.kind is CompletionKind.MULTI_LINE
    assert ctx.line_prefix == "    " and ctx.line_suffix == ""


def test_build_context_respects_the_budget():
    text = "\n".join(f"line{i} word word" for i in range(200))
    offset = len(text) // 2
    ctx = build_context(text, offset, "text", W, QWEN, context_tokens=60, prefix_share=0.5)
    assert W.count(ctx.prefix) + W.count(ctx.suffix) <= 60
    assert text.startswith(ctx.full_prefix) and ctx.full_prefix.endswith(ctx.prefix)
