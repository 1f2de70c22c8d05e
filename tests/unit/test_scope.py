import pytest

from completer.context import languages
from completer.context.scope import retained, whole_lines

CASES = [
    ("python",
     "import os\nfrom x import y\n\nclass A:\n    def f(self,\n          a):\n        p = 1\n        q = 2\n        CURSOR\n",
     "import os\nfrom x import y\n", "class A:\n    def f(self,\n          a):\n"),
    ("javascript",
     "import a from 'a';\nimport {b} from 'b';\nclass K {\n  m(x) {\n    let y = 1;\n    CURSOR\n  }\n}\n",
     "import a from 'a';\nimport {b} from 'b';\n", "class K {\n  m(x) {\n"),
    ("typescript",
     "import { z } from './z';\nfunction g(n: number): number {\n  const k = n;\n  CURSOR\n}\n",
     "import { z } from './z';\n", "function g(n: number): number {\n"),
    ("go",
     "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tx := 1\n\tCURSOR\n}\n",
     "package main\nimport \"fmt\"\n", "func main() {\n"),
    ("rust",
     "use std::io;\n\nimpl S {\n    fn go(&self) -> u8 {\n        let a = 1;\n        CURSOR\n    }\n}\n",
     "use std::io;\n", "impl S {\n    fn go(&self) -> u8 {\n"),
    ("java",
     "package p;\nimport java.util.List;\n\nclass C {\n    int m(int a) {\n        int b = a;\n        CURSOR\n    }\n}\n",
     "package p;\nimport java.util.List;\n", "class C {\n    int m(int a) {\n"),
    ("c",
     "#include <stdio.h>\n\nint main(void) {\n    int a = 1;\n    CURSOR\n}\n",
     "#include <stdio.h>\n", "int main(void) {\n"),
    ("cpp",
     "#include <vector>\nusing std::vector;\n\nint run(int n) {\n    int a = n;\n    CURSOR\n}\n",
     "#include <vector>\nusing std::vector;\n", "int run(int n) {\n"),
]


@pytest.mark.parametrize("language,source,imports,headers", CASES, ids=[c[0] for c in CASES])
def test_imports_and_enclosing_signatures_above_the_cut(language, source, imports, headers):
    text = source.replace("CURSOR", "")
    cursor = source.index("CURSOR")
    data = text.encode()
    cut = len(text[: text.rindex("\n", 0, cursor - 1) + 1].encode())  # only the cursor's line is kept
    tree = languages.parser(language).parse(data)
    got_imports, got_headers = retained(tree, data, language, len(text[:cursor].encode()), cut)
    assert got_imports == imports
    assert got_headers == headers


OPEN_BRACKET = '''import os
from x import y


def wrap(text):
    w = TextWrapper(CURSOR
def fill(text, width=70, **kwargs):
    """Fill a paragraph."""
    w = TextWrapper(width=width, **kwargs)
    return w.fill(text)

def shorten(text, width, **kwargs):
    """Collapse the text.

        >>> textwrap.shorten("Hello  world!", width=12)
        'Hello world!'
'''


def test_imports_are_retained_while_an_open_bracket_wraps_the_file_in_an_error_node():
    text = OPEN_BRACKET.replace("CURSOR", "")
    data = text.encode()
    tree = languages.parser("python").parse(data)
    assert [node.type for node in tree.root_node.children] == ["ERROR"]
    cursor = OPEN_BRACKET.index("CURSOR")
    assert retained(tree, data, "python", cursor, text.index("def wrap"))[0] == "import os\nfrom x import y\n"


def test_nothing_is_retained_from_what_the_prefix_still_holds():
    text = "import os\ndef f():\n    x = 1\n"
    tree = languages.parser("python").parse(text.encode())
    assert retained(tree, text.encode(), "python", len(text) - 1, 0) == ("", "")
    assert retained(None, text.encode(), "python", 5, 5) == ("", "")


@pytest.mark.parametrize("spans,expected", [
    ([(0, 1)], "a b\n"),
    ([(0, 1), (2, 3)], "a b\n"),  # one line once
    ([(4, 5), (0, 1)], "a b\nc\n"),  # document order
    ([], ""),
])
def test_whole_lines(spans, expected):
    assert whole_lines(b"a b\nc\nd", spans) == expected
