import random

import pytest

from completer.context import languages
from completer.context.scope import retained
from completer.context.window import grow, line_span, merged, pick
from completer.documents.store import Document
from completer.policy.classify import classify


@pytest.mark.parametrize("dirty,edit,expected", [
    (None, (5, 5, 6), (5, 6)),  # the first edit: what it wrote
    ((5, 6), (6, 6, 7), (5, 7)),  # typing on
    ((5, 9), (2, 3, 3), (2, 9)),  # an edit above: the end moves with the text
    ((5, 9), (2, 4, 3), (2, 8)),
    ((5, 9), (7, 8, 7), (5, 8)),  # a deletion inside
    ((5, 9), (20, 20, 21), (5, 21)),  # an edit below: one span over both
    ((5, 9), (3, 12, 4), (3, 4)),  # a deletion over it all
])
def test_grow(dirty, edit, expected):
    assert grow(dirty, *edit) == expected


SPANS = [(0, 10), (12, 20), (22, 30), (32, 40), (42, 50), (52, 60), (62, 70)]


@pytest.mark.parametrize("clean,lo,hi,expected", [
    ([True] * 7, 33, 35, (1, 5)),  # in statement 3: two more each side
    ([True] * 7, 41, 41, (2, 5)),  # between 3 and 4: both are neighbours
    ([True] * 7, 2, 3, (-1, 2)),  # runs to the document's start
    ([True] * 7, 64, 70, (4, 7)),  # and to its end
    ([True] * 7, 25, 45, (0, 6)),  # edits over several statements
    ([True, False, True, True, True, False, True], 33, 35, (0, 6)),  # out to clean statements
    ([False] * 7, 33, 35, (-1, 7)),
])
def test_pick(clean, lo, hi, expected):
    assert pick(SPANS, clean, lo, hi) == expected


@pytest.mark.parametrize("data,start,end,expected", [
    (b"ab\ncd\nef", 4, 5, (3, 6)),
    (b"ab\ncd\nef", 0, 4, (0, 6)),
    (b"ab\ncd\nef", 7, 8, (6, 8)),  # no line end: the data's end
    (b"ab\ncd\n", 3, 6, (3, 6)),  # a span that ends with its \n
])
def test_line_span(data, start, end, expected):
    assert line_span(data, start, end) == expected


@pytest.mark.parametrize("spans,expected", [
    ([(5, 8), (0, 3)], [(0, 3), (5, 8)]),
    ([(0, 3), (3, 6)], [(0, 6)]),
    ([(0, 5), (2, 4), (7, 9)], [(0, 5), (7, 9)]),
    ([], []),
])
def test_merged(spans, expected):
    assert merged(spans) == expected


def _blocks(template: str, n: int) -> str:
    return "".join(template.format(n=i) for i in range(n))


SOURCES = {
    "python": "import os\nfrom typing import Any\n\n" + _blocks(
        "class K{n}:\n    \"\"\"Doc {n}.\"\"\"\n\n    def f(self, a):\n        # note\n        b = a + {n}\n"
        "        return b\n\n\n@dec\ndef g{n}(x):\n    return x\n\n\n", 30),
    "javascript": "import a from 'a';\n" + _blocks(
        "class C{n} {{\n  m(x) {{\n    let y = `t${{x}}`; // c\n    return y;\n  }}\n}}\n\n", 30),
    "typescript": "import { z } from './z';\n" + _blocks(
        "function g{n}(n: number): number {{\n  const k = n;\n  return k;\n}}\n\n", 30),
    "go": "package main\n\nimport \"fmt\"\n\n" + _blocks(
        "func f{n}(a int) int {{\n\tif a > {n} {{\n\t\tfmt.Println(\"x\")\n\t}}\n\treturn a\n}}\n\n", 30),
    "rust": "use std::io;\n\n" + _blocks("impl S{n} {{\n    fn go(&self) -> u8 {{\n        let a = \"s\";\n        1\n    }}\n}}\n\n", 30),
    "java": "package p;\nimport java.util.List;\n\n" + _blocks(
        "class C{n} {{\n    int m(int a) {{\n        String s = \"x\"; /* c */\n        return a;\n    }}\n}}\n\n", 30),
    "c": "#include <stdio.h>\n\n" + _blocks("int f{n}(int a) {{\n    /* c */\n    int b = a + {n};\n    return b;\n}}\n\n", 30),
    "cpp": "#include <vector>\nusing std::vector;\n\n" + _blocks(
        "namespace n{n} {{\nint run(int n) {{\n    int a = n;\n    return a;\n}}\n}}\n\n", 30),
}
# (where, what): typed a character at a time before a line that starts with ``where``; each passes
# through states with syntax errors
TYPED = {
    "python": [("        return b", "        if b > 2:\n            b = self.f(b)  # again\n"),
               ("    def f", "    def h(self):\n        return 'x'\n\n"), ("class K", "x = [1,\n     2]\n"),
               ("def g", "@other\n")],
    "javascript": [("    return y", "    if (y) {\n      y += 'a';\n    }\n"),
                   ("class C", "function h(q) {\n  return q; // done\n}\n")],
    "typescript": [("  return k", "  if (k > 1) {\n    return k * 2;\n  }\n"),
                   ("function g", "const s: string = \"a\";\n")],
    "go": [("\treturn a", "\tb := a * 2 // twice\n"), ("func f", "func h() {\n\treturn\n}\n")],
    "rust": [("        1", "        let b = \"t\";\n"), ("impl S", "fn h() -> u8 {\n    2\n}\n")],
    "java": [("        return a", "        if (a > 1) {\n            a = 2;\n        }\n"), ("class C", "class D {\n}\n")],
    "c": [("    return b", "    if (b > 1) {\n        b = 2; // c\n    }\n"), ("int f", "int h(void) {\n    return 0;\n}\n")],
    "cpp": [("    return a", "    std::vector<int> v{1, 2};\n"), ("namespace n", "int h() {\n    return 0;\n}\n")],
}


def _what_the_context_reads(text: str, index: int, tree, language: str) -> list:
    """The classification at the cursor and what scope.retained keeps for cuts 0, 3, 12 and 40 lines up."""
    data, cursor = text.encode(), len(text[:index].encode())
    line_prefix, line_suffix = text[:index].rpartition("\n")[2], text[index:].partition("\n")[0]
    out = [classify(line_prefix, line_suffix, tree, cursor)]
    starts = [i + 1 for i, ch in enumerate(text[:index]) if ch == "\n"][::-1]
    for k in (0, 3, 12, 40):
        if k < len(starts):
            out.append(retained(tree, data, language, cursor, len(text[:starts[k]].encode())))
    return out


@pytest.mark.parametrize("language", sorted(SOURCES))
def test_the_window_reads_as_a_full_parse_while_typing(language):
    """Typing at several places: the tree near the cursor classifies the cursor and keeps the same
    imports and signatures as a full parse, and most requests do not parse the whole file.

    While the text has syntax errors a full parse can recover in ways that depend on the whole
    file (it may wrap all of it in one ERROR node); there the window, which recovers locally,
    may differ, and rarely does.
    """
    rng = random.Random(3)
    doc = Document("file:///a", language, SOURCES[language])
    doc.current_tree()
    parser = languages.parser(language)
    requests = windowed = with_errors = differ_with_errors = 0
    for _ in range(8):
        where, typed = rng.choice(TYPED[language])
        lines = doc.text.split("\n")
        at = rng.choice([i for i, line in enumerate(lines) if line.startswith(where)])
        index = sum(len(line) + 1 for line in lines[:at])
        for ch in typed:
            doc.apply(index, index, ch)
            index += 1
            tree = doc.tree_near(index)
            full = parser.parse(doc.text.encode())
            same = (_what_the_context_reads(doc.text, index, tree, language)
                    == _what_the_context_reads(doc.text, index, full, language))
            if full.root_node.has_error:
                with_errors += 1
                differ_with_errors += not same
            else:
                assert same, (language, doc.text[index - 40:index])
            requests += 1
            windowed += tree is not doc.tree
    assert windowed > requests // 2
    assert differ_with_errors <= with_errors // 10, (differ_with_errors, with_errors)


def test_a_window_keeps_real_offsets_and_the_imports():
    text = SOURCES["python"]
    doc = Document("file:///a", "python", text)
    doc.current_tree()
    index = text.index("return b", len(text) // 2)
    doc.apply(index, index, "b = 1\n        ")
    tree = doc.tree_near(index + 5)
    assert tree is not doc.tree
    kids = tree.root_node.children
    assert [k.type for k in kids[:2]] == ["import_statement", "import_from_statement"]
    assert len(kids) < 12  # not the whole file
    node = tree.root_node.descendant_for_byte_range(index, index + 5)
    assert doc.text.encode()[node.start_byte:node.end_byte] == node.text


def test_edits_far_apart_or_errors_elsewhere_parse_the_whole_file():
    text = SOURCES["python"]
    doc = Document("file:///a", "python", text)
    doc.current_tree()
    doc.apply(20, 20, "x")
    doc.apply(len(doc.text) - 5, len(doc.text) - 5, "y")  # the window would hold the whole file
    assert doc.tree_near(len(doc.text) - 4) is doc.tree
    doc.apply(len(doc.text) // 2, len(doc.text) // 2, "(((")  # now the file has an error
    doc.current_tree()
    doc.apply(30, 30, "z")
    assert doc.tree_near(31) is doc.tree


def test_plain_text_has_no_tree():
    doc = Document("file:///a.txt", "text", "hello\n")
    doc.apply(0, 0, "x")
    assert doc.tree_near(1) is None
