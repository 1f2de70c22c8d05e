"""Cuts that stay still while the user types, so that the prefix cache keeps serving the prompt."""

import pytest

from completer.context.builder import (build_context, cut_prefix, held_back, snap_prefix_start, snap_suffix_end,
                                       indentation, left_the_held_back, retained_above,
                                       snippet_query, without_held_back)
from completer.context.prompt import QWEN
from tests.unit.test_builder import W

TEN = "".join(f"l{i}\n" for i in range(10))  # lines l0..l9, each one word


@pytest.mark.parametrize("cut_line, step, expected_line", [
    (0, 4, 0),  # nothing cut: nothing to snap
    (1, 4, 4),  # forward to the next multiple of 4
    (4, 4, 4),  # already on one
    (5, 4, 8),
    (9, 4, 10),  # never past the cursor's line (line 10)
    (3, 1, 3),  # step 1: the plain cut
])
def test_snap_prefix_start(cut_line, step, expected_line):
    prefix = TEN + "l10"
    cut = prefix.index(f"l{cut_line}\n")
    assert snap_prefix_start(prefix, cut, step) == prefix.index(f"l{expected_line}")


@pytest.mark.parametrize("whole_lines, step, expected_lines", [
    (0, 4, 0),
    (3, 4, 0),  # fewer than a step: only the cursor's line
    (5, 4, 4),
    (8, 4, 8),
    (5, 1, 5),
])
def test_snap_suffix_end(whole_lines, step, expected_lines):
    suffix = "rest\n" + TEN + "tail"
    first = len("rest\n")
    end = first + sum(len(f"l{i}\n") for i in range(whole_lines))
    expected = first + sum(len(f"l{i}\n") for i in range(expected_lines))
    assert snap_suffix_end(suffix, end, step) == expected


def test_a_whole_suffix_is_kept_whole():
    assert snap_suffix_end("rest\nl0\nl1", len("rest\nl0\nl1"), 4) == len("rest\nl0\nl1")


def test_prefix_cut_moves_once_per_step_while_typing():
    """Typing line after line at the end: the first line kept changes only every `step` lines."""
    lines = [f"w{i}" for i in range(40)]
    starts = []
    for typed in range(12):
        prefix = "\n".join(lines + [f"t{j}" for j in range(typed)]) + "\n"
        starts.append(cut_prefix(prefix, 10, W, step=8).split("\n", 1)[0])
    assert len(set(starts)) <= 3  # 12 lines typed, budget 10 lines, steps of 8
    plain = {cut_prefix("\n".join(lines + [f"t{j}" for j in range(t)]) + "\n", 10, W).split("\n", 1)[0]
             for t in range(12)}
    assert len(plain) == 12  # without snapping it moves at every line


def test_typing_inside_the_block_does_not_move_the_cut():
    """Words typed on the cursor's line, in a file longer than the budget: the first line kept stays."""
    above = "".join(f"w{i}\n" for i in range(640))  # 640 lines, the cursor's block starts at line 640
    firsts, plain = set(), set()
    for words in range(0, 200, 7):
        prefix = above + " ".join(f"t{j}" for j in range(words))
        firsts.add(cut_prefix(prefix, 500, W, step=16).split("\n", 1)[0])
        plain.add(cut_prefix(prefix, 500, W, step=1).split("\n", 1)[0])
    assert len(firsts) == 1  # the block is budgeted in steps of RESERVE_STEP_TOKENS (256)
    assert len(plain) > 20  # the cut that counts every word moves with them


def test_the_retained_headers_stay_while_the_typed_line_breaks_the_parse():
    """An open string typed in the cursor's block must not drop `class Fraction(...):` from the prompt."""
    from completer.context import languages, scope

    above = 'import os\n\n\nclass Fraction(numbers.Rational):\n    """Doc."""\n'
    typed = "        return '%s("
    rest = '\n\n    def _richcmp(self, other, op):\n        """Helper.\n\n        We handle that specially.\n        """\n'
    data = (above + typed + rest).encode()
    cut = above.index("):\n") + 3  # the prompt starts below the class's line
    # the whole file's tree loses the class at this keystroke...
    assert scope.retained(languages.parser("python").parse(data), data, "python", len(above + typed), cut) == \
        ("import os\n", "")
    # ...the text above the cursor's block keeps it
    assert retained_above(above, "python", cut, 8) == ("import os\n", "class Fraction(numbers.Rational):\n")


def test_an_open_string_typed_in_the_block_keeps_the_prompt_head():
    """Through build_context: the class's header stays on top of a cut prompt at every keystroke."""
    from completer.context import languages

    head = ('import os\n' + "".join(f"x{i} = {i}\n" for i in range(200)) +
            '\nclass Fraction(numbers.Rational):\n    """Doc."""\n' + "".join(f"    a{i} = {i}\n" for i in range(40)))
    head += "".join(f"    b{i} = {i}\n" for i in range(-head.count("\n") % 16))  # the typed line starts a block
    rest = '\n\n    def _richcmp(self, other, op):\n        """Helper.\n\n        We handle that specially.\n        """\n'
    heads = set()
    for typed in ("        return 1", "        return '%s("):
        text = head + typed + rest
        tree = languages.parser("python").parse(text.encode())
        ctx = build_context(text, len(head + typed), "python", W, QWEN, 500, 0.75, tree=tree, snap_lines=16,
                            anchor="block")
        heads.add(ctx.prompt.split("<|fim_suffix|>")[0])
    assert len(heads) == 1 and heads.pop().startswith("<|fim_prefix|>import os\nclass Fraction(numbers.Rational):\n")


@pytest.mark.parametrize("block, headers", [
    ("        return 1", "class A:\n    def f(self):\n"),  # still inside f
    ("    def g(self):", "class A:\n"),  # a new method: the class is still open
    ("def h():", ""),  # a new top-level function: neither is
    ("\n    ", "class A:\n"),  # no code yet in the block: the cursor's indentation
])
def test_retained_headers_are_those_of_the_scopes_still_open_at_the_block(block, headers):
    above = "import os\n\nclass A:\n    def f(self):\n        x = 1\n        y = 2\n"
    cut = above.index("        x")  # the prompt starts below both headers
    assert retained_above(above, "python", cut, indentation(block)) == ("import os\n", headers)


@pytest.mark.parametrize("text, width", [("    x\n", 4), ("\n\n  y", 2), ("", 0), ("   ", 3), ("\tz", 1)])
def test_indentation(text, width):
    assert indentation(text) == width


@pytest.mark.parametrize("cursor_line, step, expected", [
    (3, 4, "l0\nl1\nl2\n"),  # the file's first block: lines around the cursor
    (5, 4, "l0\nl1\nl2\nl3\n"),  # above the cursor's block
    (7, 4, "l0\nl1\nl2\nl3\n"),  # same block, same query
])
def test_snippet_query_is_the_text_above_the_block(cursor_line, step, expected):
    full_prefix = TEN[: TEN.index(f"l{cursor_line}\n")] + "typing"
    query = snippet_query(full_prefix, "\nafter", step)
    assert query.startswith(expected.rstrip("\n"))
    if cursor_line >= step:
        assert "typing" not in query and "after" not in query


def test_spm_order_puts_the_suffix_first():
    ctx = build_context("a = 1\nb = \nc = 3\n", len("a = 1\nb = "), "python", W, QWEN, 100, 0.75, order="spm")
    assert ctx.prompt == "<|fim_suffix|>\nc = 3\n<|fim_prefix|>a = 1\nb = <|fim_middle|>"


@pytest.mark.parametrize("anchor, step, cursor_line, middle_start", [
    ("cursor", 4, 6, ""),  # plain FIM: the prefix ends at the cursor
    ("line", 4, 6, "typ"),  # the cursor's line so far starts the middle
    ("block", 4, 6, "l4\nl5\ntyp"),  # the lines of the cursor's block of 4 (lines 4-7)
    ("block", 4, 4, "typ"),  # the block's first line
    ("block", 1, 6, "typ"),  # blocks of one line: the line
    ("block", 16, 6, "l0\nl1\nl2\nl3\nl4\nl5\ntyp"),  # the file's first block: all of it
    ("auto", 4, 6, ""),  # a word typed on the line: plain FIM
    ("indentation", 4, 6, ""),
])
def test_middle_anchor_moves_typed_text_after_the_middle_token(anchor, step, cursor_line, middle_start):
    text = TEN[: TEN.index(f"l{cursor_line}\n")] + "typ" + "\nafter\n"
    ctx = build_context(text, text.index("\nafter"), "python", W, QWEN, 100, 0.75, snap_lines=step, anchor=anchor)
    head = TEN[: TEN.index(f"l{cursor_line}\n")] + "typ"
    assert ctx.prompt == (f"<|fim_prefix|>{head[: len(head) - len(middle_start)]}<|fim_suffix|>\nafter\n"
                          f"<|fim_middle|>{middle_start}")
    assert ctx.prefix == head  # what the pipeline knows of the text before the cursor does not change


def test_block_anchor_keeps_the_prompt_before_the_middle_still_while_typing():
    """Characters and new lines typed inside one block: everything up to the middle token stays the same."""
    heads = set()
    for typed in ("x", "x = 1", "x = 1\n", "x = 1\ny", "x = 1\ny = 2\nz"):
        text = TEN + typed + "\nafter\n"
        ctx = build_context(text, len(TEN + typed), "python", W, QWEN, 100, 0.75, snap_lines=8, anchor="block")
        heads.add(ctx.prompt.split("<|fim_middle|>")[0])
    assert len(heads) == 1


@pytest.mark.parametrize("line_so_far, middle_start, held", [
    ("", "l4\nl5\n", ""),  # at the line's start: the block's lines start the middle
    ("    ", "l4\nl5\n   ", " "),  # indentation: its last space is left to the model (" if" is one token)
    ("\t", "l4\nl5\n", "\t"),  # a tab too: the model writes "\tif"
    ("\t\t", "l4\nl5\n\t", "\t"),
    ("x = ", "l4\nl5\nx =", " "),  # a value begins: the middle ends on a whole token, the space is the model's
    ("w = f(", "l4\nl5\nw = f", "("),  # an opening bracket: the model writes "(arg"
    ("s % (", "l4\nl5\ns %", " ("),  # the space before the bracket is the bracket's token
    ("t = [{", "l4\nl5\nt =", " [{"),
    ("x = y", "", ""),  # inside a word: plain FIM, nothing held back
    ("f(x)", "", ""),  # after a closing bracket (").", "):" are tokens): plain FIM
    ("self.", "", ""),  # after a dot (".wrap" is a token): plain FIM
])
def test_auto_anchor_uses_the_block_where_the_middle_ends_on_a_whole_token(line_so_far, middle_start, held):
    text = TEN[: TEN.index("l6\n")] + line_so_far + "\nafter\n"
    ctx = build_context(text, text.index("\nafter"), "python", W, QWEN, 100, 0.75, snap_lines=4, anchor="auto")
    assert ctx.prompt.endswith(f"<|fim_middle|>{middle_start}")
    assert ctx.held_back == held
    assert ctx.line_prefix == line_so_far


@pytest.mark.parametrize("middle_start, text, expected", [
    ("    ", " if x:", "if x:"),  # the model wrote the space back: dropped
    ("    ", "\n", "\n"),  # it did not: kept as it is
    ("x", " y", " y"),  # nothing held back
    ("w = f(", "(width=w)", "width=w)"),  # the bracket written back: dropped
    ("w = f(", "(", ""),
    ("w = f(", ".g(x)", ""),  # it continued other code than the typed bracket: no answer
    ("w = f(", "", ""),
    ("s % (", " (a, b)", "a, b)"),
    ("\t\t", "\tfmt.Println(x)", "fmt.Println(x)"),  # the tab written back: dropped
    ("func f() {\n", "\tx := 1", "\tx := 1"),  # a bracket on the line above is not held back
    ("if x {\n\t", "\treturn", "return"),
])
def test_held_back_end_of_the_middle(middle_start, text, expected):
    assert without_held_back(text, held_back(middle_start)) == expected


@pytest.mark.parametrize("text, held, left", [
    ("", "(", False),  # nothing written yet
    (" ", " (", False),  # on its way
    ("(", " (", True),  # without the space: not the typed text
    ("(x", "(", False),
    (".g", "(", True),  # other code: the stream can stop
    ("x", " ", False),  # a held-back space may be skipped
    ("x", "", False),
])
def test_left_the_held_back(text, held, left):
    assert left_the_held_back(text, held) is left
