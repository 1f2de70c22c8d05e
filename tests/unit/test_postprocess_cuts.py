import pytest

from completer.postprocess.overlap import trim_suffix_overlap
from completer.postprocess.pipeline import block_floor, postprocess
from completer.postprocess.truncate import (cut_at_closing_bracket, cut_repeated_lines, cut_to_parseable,
                                            end_before_next_line, inserted_above, parse_window, scope_floor)
from completer.types import CompletionKind, Context


@pytest.mark.parametrize("text,expected", [
    ("a = compute()\nb = compute()\nb = compute()\nb = compute()", "a = compute()\nb = compute()"),
    ("x += step\ny += step\nx += step\ny += step\nz", "x += step\ny += step"),  # a block repeated
    ("}\n}\n}", "}\n}\n}"),  # short lines repeat legitimately
    ("print(a)\nprint(a)", "print(a)\nprint(a)"),  # twice is not a loop
    ("", ""),
])
def test_cut_repeated_lines(text, expected):
    assert cut_repeated_lines(text) == expected


@pytest.mark.parametrize("text,suffix,language,expected", [
    ("x++;\n    }\n    more();", "\n", "c", "x++;\n    }"),  # kept: the suffix does not close it
    ("x++;\n}\nint g() {}", "\n}\n", "c", "x++;"),  # dropped: the suffix already closes it
    ("a, b)", ")\n", "python", "a, b"),
    ("f(a)\nreturn [x]", "", "python", "f(a)\nreturn [x]"),  # balanced
    ("s = '}'\nt = 1", "}", "javascript", "s = '}'\nt = 1"),  # inside a string
    ("x = 1  # )\ny", ")", "python", "x = 1  # )\ny"),  # inside a comment
    ("item);\n            }\n            x", "\n", "rust", "item);"),  # the closer's line goes on to its end
    ("a, b);  // done\nnext();", "\n", "java", "a, b);  // done"),
    ("a, b)", "", "go", "a, b)"),
])
def test_cut_at_closing_bracket(text, suffix, language, expected):
    assert cut_at_closing_bracket(text, suffix, language) == expected


@pytest.mark.parametrize("prefix,suffix,expected", [
    ("import os\n\ndef f():\n    x = 1\n    ", "\n    return x\n\ndef g():\n    pass\n",
     ("def f():\n    x = 1\n    ", "\n    return x\n\n")),
    ("int f() {\n  a;\n", "  b;\n}\nint g() {}\n", ("int f() {\n  a;\n", "  b;\n}\n")),  # the brace belongs
    ("x = 1", "", ("x = 1", "")),
])
def test_parse_window(prefix, suffix, expected):
    assert parse_window(prefix, suffix) == expected


@pytest.mark.parametrize("window_prefix,expected", [
    ("def f():\n    x = 1\n        ", 4),
    ("class A:\n\n        def m(self):", 8),
    ("x = 1\n", None),
])
def test_scope_floor(window_prefix, expected):
    assert scope_floor(window_prefix) == expected


@pytest.mark.parametrize("text,suffix,expected", [
    ("a = 1\n    return total", "\n    return total\n", "a = 1"),
    ("a = 1\nb", "b = 2", "a = 1\nb"),  # too short to call it overlap
    ("value", "", "value"),
])
def test_trim_suffix_overlap(text, suffix, expected):
    assert trim_suffix_overlap(text, suffix) == expected


@pytest.mark.parametrize("text,raw,line_prefix,line_suffix,expected", [
    ("    x = 1", "    x = 1\n    y = 2", "", "    return y", "    x = 1\n"),  # cut at a line: break added
    ("    x = 1", "    x = 1\n", "", "    return y", "    x = 1\n"),  # the model's own ending
    ("18 * ", "18 * ", "", "(10 ** n)", "18 * "),  # the model continues the line
    ("foo()", "foo()\nbar()", "    ", "return x", "foo()\n    "),  # keeps the line's indentation
    ("x = 1", "x = 1\ny", "    ", "", "x = 1"),  # a blank line: nothing to insert before
])
def test_end_before_next_line(text, raw, line_prefix, line_suffix, expected):
    assert end_before_next_line(text, raw, line_prefix, line_suffix) == expected


@pytest.mark.parametrize("line_prefix,line_suffix,expected", [("", "x", True), ("  ", "x", True), ("a", "x", False),
                                                              ("", "", False)])
def test_inserted_above(line_prefix, line_suffix, expected):
    assert inserted_above(line_prefix, line_suffix) == expected


def test_cut_to_parseable_checks_candidates_as_inserted():
    prefix = "def f(x):\n"
    suffix = "    return y\n"
    completion = "    y = x + 1\n    z = (\n"  # the last line leaves a bracket open
    assert cut_to_parseable(prefix, completion, suffix, "python", tail="\n") == "    y = x + 1\n"


def test_cut_to_parseable_parses_only_the_window():
    long_file = "".join(f"def g{i}():\n    return {i}\n\n" for i in range(2000))
    prefix = long_file + "def f(x):\n    "
    assert cut_to_parseable(prefix, "return x)\n    y", "\n", "python") == "return x)\n    y"  # no cut helps
    assert cut_to_parseable(prefix, "y = 1\n    z = (", "\n", "python") == "y = 1"


def _ctx(prefix, suffix, kind=CompletionKind.MULTI_LINE, language="python"):
    line_prefix = prefix.rpartition("\n")[2]
    return Context(language=language, prefix=prefix, suffix=suffix, prompt="", kind=kind, line_prefix=line_prefix,
                   line_suffix=suffix.partition("\n")[0], full_prefix=prefix, full_suffix=suffix)


@pytest.mark.parametrize("prefix,suffix,raw,expected", [
    # inserted before an existing line: whole lines, ending in a line break
    ("def f(xs):\n    t = 0\n", "    return t\n", "    for x in xs:\n        t += x\n    return t\n",
     "    for x in xs:\n        t += x\n"),
    # may leave the inner block, not the function
    ("def f(xs):\n    for x in xs:\n        ", "\n", "t += x\n    return t\n\ndef g():\n    pass",
     "t += x\n    return t"),
    # a repeating model is stopped
    ("def f():\n    ", "\n", "a = 1\n    a = 1\n    a = 1\n    a = 1", "a = 1\n    a = 1"),
])
def test_postprocess_multi_line(prefix, suffix, raw, expected):
    assert postprocess(raw, _ctx(prefix, suffix)) == expected


def test_block_floor_is_the_function_body():
    assert block_floor(_ctx("x = 1\n\ndef f():\n    if a:\n        ", "")) == 4
