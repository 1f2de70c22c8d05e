import pytest

from completer.postprocess.body import function_body_floor

CURSOR = "‸"

CASES = [
    # (language, text with the cursor, floor)
    ("python", "class S:\n    def push(self, item):\n‸\n\n    def pop(self):\n        return 1\n", 8),  # empty body
    ("python", "class S:\n    def f(self):\n        if x:\n            y()\n‸\n    def g(self):\n        pass\n", 8),
    ("python", "def f():\n    for a in b:\n        ‸\n    return c\n", 4),  # the function's body, not the loop's
    ("python", "def a():\n    return 1\n\n‸\n\ndef b():\n    pass\n", None),  # between functions
    ("python", "x = 1\n‸\ny = 2\n", None),  # not in a function
    ("python", "def f():\n    def g():\n        ‸\n    return g\n", 4),  # may go on in the function holding g
    ("python", "class A:\n    def f(self):\n        def g():\n            ‸\n", 8),  # a method: never the class body
    ("go", "package p\n\nfunc (s *S) Push(v int) {\n‸\n}\n", 4),
    ("go", "package p\n\nfunc f() {\n\tif x {\n\t\t‸\n\t}\n}\n", 4),
    ("typescript", "class Q {\n  enqueue(item: T): void {\n‸\n  }\n\n  dequeue() {\n    return 1;\n  }\n}\n", 4),
    ("typescript", "const f = (a: number) => {\n  ‸\n};\n", 2),
    ("rust", "impl S {\n    fn push(&mut self, v: i32) {\n        ‸\n    }\n}\n", 8),
    ("java", "class A {\n    int f(int a) {\n        ‸\n    }\n}\n", 8),
    ("text", "def f():\n    ‸\n", None),  # no grammar
]


@pytest.mark.parametrize("language, text, floor", CASES)
def test_function_body_floor(language, text, floor):
    at = text.index(CURSOR)
    unit_width = 2 if language == "typescript" else 4  # these TypeScript samples indent by two
    assert function_body_floor(text[:at], text[at + 1:], language, unit_width) == floor
