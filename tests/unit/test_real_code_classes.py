"""Failure classes seen on real repositories, each as small cases: the document (‸ at the cursor), what
the model wrote, and what is shown. The model's texts are of the kinds it writes there."""

import pytest

from completer.context.builder import build_context
from completer.context.prompt import QWEN
from completer.context.tokens import CharEstimateCounter
from completer.postprocess.overlap import cut_before_suffix_lines
from completer.postprocess.pipeline import postprocess

STACK = '''class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
‸

    def pop(self):
        return self.items.pop()
'''
QUEUE = '''export class Queue<T> {
  private items: T[] = [];

  enqueue(item: T): void {
‸
  }

  dequeue(): T | undefined {
    return this.items.shift();
  }
}
'''
GRADE = '''def grade(score):
    if score >= 90:
        return "A"
    elif score >= 80:
        ‸
    elif score >= 70:
        return "C"
    else:
        return "F"
'''
FIB = "package main\n\nfunc fib(n int) int {\n\tif n < 2 {\n\t\treturn n\n\t}\n\t‸\n}\n"
TEMPLATE = ("package p\n\nconst script = `\nfoo() {\n    bar\n    baz\n    qux\n}\n`\n\n"
            "func f(x bool) {\n\t‸\n}\n")
PUSH = "package stack\n\ntype Stack struct {\n\titems []int\n}\n\nfunc (s *Stack) Push(v int) {\n‸\n}\n"

CASES = [
    # 1. at column 0 inside a body: the answer stays in the function, and brings the body's indentation
    ("1 col0 python", "python", STACK,
     "        self.items.append(item)\n\n    def size(self):\n        return len(self.items)",
     "        self.items.append(item)"),
    ("1 col0 typescript", "typescript", QUEUE,
     "    this.items.push(item);\n  }\n\n  size(): number {\n    return this.items.length;",
     "    this.items.push(item);"),
    ("1 col0 go, spaces from the model", "go", PUSH, "    s.items = append(s.items, v)", "\ts.items = append(s.items, v)"),
    # 4. no leading empty line
    ("4 go", "go", FIB, "\n\treturn fib(n-1) + fib(n-2)", "return fib(n-1) + fib(n-2)"),
    ("4 typescript col0", "typescript", QUEUE, "\n    this.items.push(item);", "    this.items.push(item);"),
    # 5. the next existing branch is not written again, even after a new one
    ("5 elif", "python", GRADE, 'return "B"\n    elif score >= 70:\n        return "C"\n    else:\n        return "F"',
     'return "B"'),
    ("5 elif after a new branch", "python", GRADE,
     'return "B"\n    elif score >= 75:\n        return "C+"\n    elif score >= 70:\n        return "C"',
     'return "B"\n    elif score >= 75:\n        return "C+"'),
    # 6. a tab-indented file gets tabs on every inserted line
    ("6 tabs", "go", FIB, "a := fib(n-1)\n    b := fib(n-2)\n    return a + b", "a := fib(n-1)\n\tb := fib(n-2)\n\treturn a + b"),
    ("6 tabs beside a template indented with spaces", "go", TEMPLATE, "if x {\n\t\treturn\n\t}", "if x {\n\t\treturn\n\t}"),
    ("6 go is tabs whatever its templates hold", "go", "package p\n\nconst s = `\n" + "    x\n" * 20 + "`\n\nfunc f() error {\n‸\n}\n",
     "\tx := 1\n\treturn nil", "\tx := 1\n\treturn nil"),
    # a bracket opened before the cursor closes: its statement goes on to the end of its line
    ("closing bracket", "rust", "fn f() {\n    let a = g(‸\n}\n", "x, y);\n    let b = 2;", "x, y);"),
    ("6 spaces", "python", GRADE, 'if score >= 85:\n\t\t\treturn "B+"\n\t\treturn "B"',
     'if score >= 85:\n            return "B+"\n        return "B"'),
]


@pytest.mark.parametrize("name, language, document, model, shown", CASES, ids=[c[0] for c in CASES])
def test_shown_answer(name, language, document, model, shown):
    at = document.index("‸")
    text = document.replace("‸", "")
    ctx = build_context(text, at, language, CharEstimateCounter(), QWEN, 2000, 0.75, anchor="auto")
    assert postprocess(model, ctx) == shown


@pytest.mark.parametrize("text, suffix, expected", [
    ("a\n    b = 1\n    c = 2\n    d", "\n    b = 1\n    c = 2\n", "a"),
    ("a\n    b = 1\n    x = 2", "\n    b = 1\n    c = 2\n", "a\n    b = 1\n    x = 2"),  # one line alike: kept
    ("a\n  }\n}", "\n  }\n}\n", "a\n  }\n}"),  # closing braces repeat legitimately
    ("a\n\n    b = 1\n\n    c = 2", "\n    b = 1\n\n    c = 2\n", "a"),  # blank lines between do not hide it
    ("    b = 1\n    c = 2", "\n    b = 1\n    c = 2\n", "    b = 1\n    c = 2"),  # the first line starts mid-line
    ("a\n\t}\n\treturn nil", "\n}\n\nfunc g() {\n\tif x {\n\t}\n\treturn nil\n}\n", "a\n\t}\n\treturn nil"),  # further down: kept
])
def test_cut_before_suffix_lines(text, suffix, expected):
    assert cut_before_suffix_lines(text, suffix) == expected
