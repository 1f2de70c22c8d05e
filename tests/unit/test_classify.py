import pytest

from completer.context import languages
from completer.policy.classify import classify, grown_kind, may_grow
from completer.types import CompletionKind as K


@pytest.mark.parametrize("line_prefix,line_suffix,expected", [
    ("    ", "", K.MULTI_LINE),  # blank line: a block
    ("", "", K.MULTI_LINE),
    ("def f(x):", "", K.MULTI_LINE),  # block opener at the end of the line
    ("if (x) {", "", K.MULTI_LINE),
    ("    total = ", "", K.SINGLE_LINE),
    ("    print(", ")", K.SINGLE_LINE),  # something follows on the line
    ("    pri", "nt(x)", K.EMPTY),  # inside a word
    ("    x = y", "  ", K.SINGLE_LINE),
])
def test_classify_from_the_line(line_prefix, line_suffix, expected):
    assert classify(line_prefix, line_suffix) is expected


def test_inside_a_comment_stays_on_one_line():
    text = "def f():\n    # compute the \n    return 1\n"
    offset = text.index("the ") + 4
    tree = languages.parser("python").parse(text.encode())
    line_prefix = "    # compute the "
    assert classify(line_prefix, "", tree, offset) is K.SINGLE_LINE


@pytest.mark.parametrize("language, text, expected", [
    ("typescript", "/**\n * Example:\n * const c = f();\n * ‸\n */\nfunction f() {}\n", K.MULTI_LINE),  # JSDoc
    ("typescript", "/**\n * Example: ‸\n */\nfunction f() {}\n", K.SINGLE_LINE),  # after text on the line
    ("go", "package p\n\nconst t = `\n<ul>\n  ‸\n</ul>\n`\n", K.MULTI_LINE),  # a raw-string template
    ("python", 'def f():\n    """Doc.\n\n    Example:\n        ‸\n    """\n', K.MULTI_LINE),  # a docstring
    ("python", "x = 1  # ‸\n", K.SINGLE_LINE),  # a line comment
    ("go", 'package p\n\nvar s = "a ‸"\n', K.SINGLE_LINE),  # a one-line string
    ("rust", "/// Example:\n/// ‸\nfn f() {}\n", K.SINGLE_LINE),  # line comments are one line each
])
def test_empty_lines_of_multi_line_comments_and_strings_ask_for_lines(language, text, expected):
    at = text.index("‸")
    text = text.replace("‸", "")
    line_prefix = text[:at].rpartition("\n")[2]
    line_suffix = text[at:].partition("\n")[0]
    tree = languages.parser(language).parse(text.encode())
    assert classify(line_prefix, line_suffix, tree, len(text[:at].encode())) is expected


@pytest.mark.parametrize("line_prefix, line_suffix, grows", [
    ("    for op in o", "", True),  # end of a line of code
    ('    """', "", True),
    ("    total = ", "", True),
    ("    print(", ")", False),  # text follows on the line
    ("    ", "", False),  # a blank line is multi-line already
    ("def f(x):", "", False),
])
def test_may_grow(line_prefix, line_suffix, grows):
    assert may_grow(classify(line_prefix, line_suffix), line_suffix) is grows


def test_a_comment_does_not_grow():
    text = "def f():\n    # compute the\n    return 1\n"
    offset = text.index("the") + 3
    tree = languages.parser("python").parse(text.encode())
    assert not may_grow(classify("    # compute the", "", tree, offset), "", tree, offset)


@pytest.mark.parametrize("line_prefix, text, expected", [
    ("    for op in o", "perations", None),  # the line is not finished
    ("    for op in o", "perations:\n        balance", K.MULTI_LINE),  # it opens a block
    ('    """', "\n    while b:", K.MULTI_LINE),  # the code starts on the next line
    ("    x = ", "1\n    y = 2", K.SINGLE_LINE),
    ("    if (x) ", "{\n", K.MULTI_LINE),
])
def test_grown_kind(line_prefix, text, expected):
    assert grown_kind(line_prefix, text) is expected
