import pytest

from completer.context import languages
from completer.policy.classify import classify
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
