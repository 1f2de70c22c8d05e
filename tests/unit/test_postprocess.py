import pytest

from completer.postprocess.overlap import cut_before_suffix_repeat, trim_line_suffix_overlap
from completer.postprocess.pipeline import block_finished, postprocess
from completer.postprocess.truncate import cut_at_block_end, cut_single_line, cut_to_parseable, indent_of
from completer.types import CompletionKind, Context


@pytest.mark.parametrize("line,width", [("", 0), ("    x", 4), ("\tx", 4), ("  \t x", 7)])
def test_indent_of(line, width):
    assert indent_of(line) == width


@pytest.mark.parametrize("text,expected", [
    ("x = 1\ny = 2", "x = 1"),
    ("x = 1\r\ny", "x = 1"),
    ("only", "only"),
])
def test_cut_single_line(text, expected):
    assert cut_single_line(text) == expected


@pytest.mark.parametrize("line_prefix,text,expected", [
    # a function body ends where the code dedents
    ("    ", "if n < 2:\n        return n\n    return f(n-1)\n\n\ndef g():\n    pass",
     "if n < 2:\n        return n\n    return f(n-1)"),
    # after a block opener the body is the next line's indentation
    ("def f():", "\n    return 1\nprint(f())", "\n    return 1"),
    # brace language: the closing brace at the outer level ends it
    ("    ", "x++;\n    y++;\n}\nint main() {}", "x++;\n    y++;"),
    # nothing dedents: all kept
    ("    ", "a = 1\n    b = 2", "a = 1\n    b = 2"),
])
def test_cut_at_block_end(line_prefix, text, expected):
    assert cut_at_block_end(text, line_prefix) == expected


@pytest.mark.parametrize("line_prefix,text,line_suffix,expected", [
    ("", "foo(a, b)", ")", "foo(a, b"),
    ("print(", "x, b)", ")", "x, b"),
    ("", "x]) + 1", "])", "x]) + 1"),  # not at the end: kept
    ("", "call(x):", "):", "call(x"),
    ("if check(", "x):", "):", "x"),
    ("    return sum(", "range(1, n + 1)", ")", "range(1, n + 1)"),  # closes its own bracket: kept
    ("print(", "f(x)", ")", "f(x)"),
    ("print(", "f(x))", ")", "f(x)"),
    ("s = (", "')')", ")", "')'"),  # brackets in strings do not count
    ("", "value", "", "value"),
    ("", "a  ", "  ", "a  "),  # whitespace alone is no overlap
])
def test_trim_line_suffix_overlap(line_prefix, text, line_suffix, expected):
    assert trim_line_suffix_overlap(text, line_suffix, line_prefix) == expected


@pytest.mark.parametrize("text,suffix,expected", [
    ("a = 1\nreturn a\n\nif __name__ == '__main__':", "\n\nif __name__ == '__main__':\n    main()",
     "a = 1\nreturn a"),
    ("a = 1\nb = 2", "\nprint(a)", "a = 1\nb = 2"),
    ("x\n}", "\n}", "x\n}"),  # a lone brace is not a repeat signal
])
def test_cut_before_suffix_repeat(text, suffix, expected):
    assert cut_before_suffix_repeat(text, suffix) == expected


@pytest.mark.parametrize("text, suffix, line_prefix, expected", [
    # the suffix's `return "NO"` ends the function; the same words inside a new `if` do not repeat it
    ('    x = 1\n    if bad:\n        return "NO"\n    y = 2', '\n    return "NO"\n', "",
     '    x = 1\n    if bad:\n        return "NO"\n    y = 2'),
    ('    x = 1\n    return "NO"', '\n    return "NO"\n', "", "    x = 1"),
    # the cursor at a line's start: that line is whole, at its indentation
    ("    a = 1\n    for x in y:\n        else:", "                else:\n", "",
     "    a = 1\n    for x in y:\n        else:"),
    ("    a = 1\n                else:", "                else:\n", "", "    a = 1"),
    ("a = 1\n    else:", "else:\n", "    ", "a = 1"),  # in the indentation
    ("f(a)\n    g(b)", "g(b)\n", "    x = ", "f(a)"),  # the rest of a line of code: compared stripped
])
def test_cut_before_suffix_repeat_compares_whole_lines(text, suffix, line_prefix, expected):
    assert cut_before_suffix_repeat(text, suffix, line_prefix) == expected


def test_cut_to_parseable_drops_lines_that_break_the_file():
    prefix = "def f(x):\n    "
    suffix = "\n\nprint(f(1))\n"
    completion = "y = x + 1\n    return y\n    if ("
    assert cut_to_parseable(prefix, completion, suffix, "python") == "y = x + 1\n    return y"


def test_cut_to_parseable_keeps_text_without_grammar():
    assert cut_to_parseable("a", "b((", "c", "text") == "b(("


def _ctx(kind, line_prefix="", line_suffix="", prefix="", suffix="", language="python"):
    return Context(language=language, prefix=prefix, suffix=suffix, prompt="", kind=kind,
                   line_prefix=line_prefix, line_suffix=line_suffix, full_prefix=prefix, full_suffix=suffix)


@pytest.mark.parametrize("raw,ctx,expected", [
    ("x + 1\nmore", _ctx(CompletionKind.SINGLE_LINE, "y = ", "", "y = ", ""), "x + 1"),
    ("a, b)\n", _ctx(CompletionKind.SINGLE_LINE, "f(", ")", "f(", ")"), "a, b"),
    ("anything", _ctx(CompletionKind.EMPTY), ""),
    ("return 1\n\ndef g():\n    pass", _ctx(CompletionKind.MULTI_LINE, "    ", "", "def f():\n    ", "\n"), "return 1"),
])
def test_pipeline(raw, ctx, expected):
    assert postprocess(raw, ctx) == expected


@pytest.mark.parametrize("text,finished", [
    ("return 1", False),
    ("return 1\n    x = 2", False),
    ("return 1\n\ndef", True),
    ("return 1\nprint(", True),
])
def test_block_finished_lets_streaming_stop_early(text, finished):
    assert block_finished(text, _ctx(CompletionKind.MULTI_LINE, "    ", "", "def f():\n    ", "")) is finished
