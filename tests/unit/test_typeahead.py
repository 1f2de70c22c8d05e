import pytest

from completer.server.typeahead import Shown, ShownSuggestions, rest_of_suggestion

SHOWN = Shown("def f(x):\n    ret", "\n", "urn x + 1")


@pytest.mark.parametrize("prefix, suffix, expected", [
    ("def f(x):\n    ret", "\n", "urn x + 1"),  # same position: the same answer
    ("def f(x):\n    retu", "\n", "rn x + 1"),  # typed what it says
    ("def f(x):\n    return x +", "\n", " 1"),
    ("def f(x):\n    return x + 1", "\n", None),  # typed all of it: ask again
    ("def f(x):\n    retx", "\n", None),  # diverged
    ("def f(x):\n    re", "\n", None),  # deleted a character
    ("def f(x):\n    retu", "\n\n", None),  # the text after the cursor changed
    ("# new\ndef f(x):\n    retu", "\n", None),  # an edit above the cursor
])
def test_rest_of_suggestion(prefix, suffix, expected):
    assert rest_of_suggestion(SHOWN, prefix, suffix) == expected


def test_nothing_shown_asks_the_model():
    assert rest_of_suggestion(None, "x", "") is None
    assert rest_of_suggestion(Shown("x", "", ""), "x", "") is None


def test_shown_suggestions_count_and_forget():
    shown = ShownSuggestions()
    shown.remember("u", "a", "", "bcd", "single_line")
    assert shown.answer("u", "ab", "") == ("cd", "single_line")
    assert shown.answer("v", "ab", "") is None
    assert shown.served == 1
    shown.remember("u", "a", "", "")  # an empty answer replaces nothing to reuse
    assert shown.answer("u", "a", "") is None
    shown.remember("u", "a", "", "b")
    shown.forget("u")
    assert len(shown) == 0
