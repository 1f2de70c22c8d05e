import pytest

from completer.postprocess.indentation import drop_leading_blank_lines, in_unit, indent_unit, reindent
from completer.postprocess.truncate import indent_of


@pytest.mark.parametrize("text, unit", [
    ("def f():\n    return 1\n", "    "),
    ("func f() {\n\treturn 1\n}\n", "\t"),
    ("function f() {\n  if (x) {\n    y();\n  }\n}\n", "  "),
    ("x = 1\ny = 2\n", ""),  # nothing indented: nothing known
    ("/**\n * doc\n */\nfunc f() {\n\tx()\n\ty()\n}\n", "\t"),  # a doc comment's " *" lines are outvoted
    ("class A:\n        def f(self):\n                pass\n", "        "),
])
def test_indent_unit(text, unit):
    assert indent_unit(text) == unit


@pytest.mark.parametrize("lead, width", [("", 0), ("    ", 4), ("\t", 4), ("\t\t  ", 10)])
def test_indent_of(lead, width):
    assert indent_of(lead) == width


@pytest.mark.parametrize("width, unit, lead", [(8, "\t", "\t\t"), (6, "\t", "\t  "), (8, "  ", " " * 8), (0, "\t", "")])
def test_in_unit(width, unit, lead):
    assert in_unit(width, unit) == lead


@pytest.mark.parametrize("text, unit, first, expected", [
    ("a := 1\n    b := 2\n        c()", "\t", False, "a := 1\n\tb := 2\n\t\tc()"),  # spaces in a tab file
    ("x = 1\n\ty = 2", "    ", False, "x = 1\n    y = 2"),  # a tab in a space file
    ("x = 1\n\ty = 2", "  ", False, "x = 1\n  y = 2"),
    ("    a()\n    b()", "\t", True, "\ta()\n\tb()"),  # at column 0 the first line is the model's too
    ("    a()\n    b()", "\t", False, "    a()\n\tb()"),  # mid-line it starts at the cursor
    ("a\n    b", "", False, "a\n    b"),  # unknown unit: as written
    ("a\n\n    b", "\t", False, "a\n\n\tb"),  # blank lines stay blank
])
def test_reindent(text, unit, first, expected):
    assert reindent(text, unit, first) == expected


@pytest.mark.parametrize("text, line_prefix, line_suffix, expected", [
    ("\n\ts.items = append(s.items, v)", "", "", "\ts.items = append(s.items, v)"),  # column 0
    ("\n\t\treturn x", "\t", "", "\treturn x"),  # the cursor already stands on one tab
    ("\n\n    return x", "    ", "", "return x"),
    ("\nreturn x", "    ", "", "return x"),  # less indented than the cursor: what the cursor has
    ("return x\n", "    ", "", "return x\n"),  # starts with code: unchanged
    ("\n    return x", "x = ", "", "\n    return x"),  # after code on the line a line break is the answer's
    ("\n    y", "    ", "z", "\n    y"),  # before code on the line: whole lines above it
    ("\n", "", "", "\n"),
])
def test_drop_leading_blank_lines(text, line_prefix, line_suffix, expected):
    assert drop_leading_blank_lines(text, line_prefix, line_suffix) == expected
