import pytest

from completer.context.builder import build_context, count_by_lines, with_retained
from completer.context.prompt import QWEN
from completer.context.snippets import windows
from completer.policy.classify import classify
from completer.types import CompletionKind
from tests.unit.test_builder import W  # one token per word: pure budget logic


@pytest.mark.parametrize("prefix,retained,budget,expected", [
    ("a b\nc d\ne", "import x\n", 9, "import x\na b\nc d\ne"),
    ("a b\nc d\ne", "import x\n", 6, "import x\nc d\ne"),  # the prefix makes room
    ("a b\nc d\ne", "import x y z\n", 6, "a b\nc d\ne"),  # more than a third of the budget: left out
    ("a b", "", 6, "a b"),
])
def test_with_retained(prefix, retained, budget, expected):
    assert with_retained(prefix, retained, budget, W) == expected


@pytest.mark.parametrize("text,expected", [("a b\nc\n", 3), ("", 0), ("x\r\ny z", 3)])
def test_count_by_lines(text, expected):
    assert count_by_lines(text, W) == expected


def test_cut_prefix_keeps_imports_and_the_enclosing_signature():
    body = "".join(f"        v{i} = {i}\n" for i in range(200))
    text = "import os\n\nclass Box:\n    def fill(self, items):\n" + body + "        "
    ctx = build_context(text, len(text), "python", W, QWEN, 120, 0.75)
    assert ctx.prefix.startswith("import os\nclass Box:\n    def fill(self, items):\n        v")
    assert count_by_lines(ctx.prefix, W) <= 90


def test_snippets_from_other_documents_use_the_repository_format():
    other = "def parse_header(raw):\n    return raw.split(':')\n"
    text = "data = read()\nheader = parse_header("
    ctx = build_context(text, len(text), "python", W, QWEN, 200, 0.75, neighbours=[("lib/parse.py", windows(other))],
                        path="main.py", repo="proj", snippet_share=0.5)
    assert ctx.prompt.startswith("<|repo_name|>proj\n<|file_sep|>lib/parse.py\ndef parse_header(raw):")
    assert "<|file_sep|>main.py\n<|fim_prefix|>data = read()" in ctx.prompt
    unrelated = build_context(text, len(text), "python", W, QWEN, 200, 0.75,
                              neighbours=[("x.py", windows("colour = blue\n"))], snippet_share=0.5)
    assert unrelated.prompt.startswith("<|fim_prefix|>")  # nothing shared: plain FIM


@pytest.mark.parametrize("line_prefix,line_suffix,expected", [
    ("", "    return x", CompletionKind.MULTI_LINE),  # before a line's code: lines inserted above it
    ("    ", "return x", CompletionKind.MULTI_LINE),
    ("x = ", "  # note", CompletionKind.SINGLE_LINE),
])
def test_classify_at_the_start_of_a_line(line_prefix, line_suffix, expected):
    assert classify(line_prefix, line_suffix) is expected
