import pytest

from completer.context.prompt import QWEN
from completer.context.snippets import (Snippet, group_by_file, identifiers, jaccard, pick_within, query_text, rank,
                                        windows)


@pytest.mark.parametrize("text,expected", [
    ("total = compute_total(items, x)", {"total", "compute_total", "items"}),  # single letters dropped
    ("def f(self): return None", set()),  # keywords dropped
    ("a1 _b2 3c", {"a1", "_b2"}),
])
def test_identifiers(text, expected):
    assert identifiers(text) == expected


@pytest.mark.parametrize("a,b,expected", [
    ({"x1", "y1"}, {"x1", "y1"}, 1.0),
    ({"x1", "y1"}, {"y1", "z1"}, 1 / 3),
    (set(), {"x1"}, 0.0),
])
def test_jaccard(a, b, expected):
    assert jaccard(frozenset(a), frozenset(b)) == pytest.approx(expected)


def test_query_text_takes_lines_around_the_cursor():
    prefix = "\n".join(f"p{i}" for i in range(30))
    suffix = "\n".join(f"s{i}" for i in range(30))
    q = query_text(prefix, suffix, lines_before=3, lines_after=2)
    assert q == "p27\np28\np29\ns0\ns1"


@pytest.mark.parametrize("lines,size,stride,starts", [
    (10, 4, 2, [0, 2, 4, 6]),
    (3, 4, 2, [0]),  # a short file is one window
    (0, 4, 2, []),
])
def test_windows(lines, size, stride, starts):
    text = "\n".join(f"name_{i} = {i}" for i in range(lines))
    assert [w[0] for w in windows(text, size, stride)] == starts


def test_rank_prefers_shared_names_and_skips_overlaps():
    files = [
        ("a.py", [(0, "def parse_header(raw): ...", frozenset({"parse_header", "raw"})),
                  (10, "parse_header again", frozenset({"parse_header", "again"})),
                  (40, "parse_header raw", frozenset({"parse_header", "raw"}))]),
        ("b.py", [(0, "unrelated", frozenset({"unrelated"}))]),
    ]
    ranked = rank(frozenset({"parse_header", "raw"}), files, per_file=2)
    assert [(s.path, s.start_line) for s in ranked] == [("a.py", 0), ("a.py", 40)]  # 10 overlaps 0


def test_pick_within_budget_and_group_by_file():
    snippets = [Snippet("a.py", "one two", 0.9, 5), Snippet("b.py", "three", 0.5), Snippet("a.py", "four", 0.4, 1)]
    words = lambda t: len(t.split())  # noqa: E731
    picked = pick_within(snippets, 11, words)
    assert [s.text for s in picked] == ["one two", "three"]  # each costs its words + path + 3
    grouped = group_by_file(picked + [snippets[2]])
    assert grouped == [("b.py", "three"), ("a.py", "four\n...\none two")]  # best file last, lines in order


def test_repository_format():
    prompt = QWEN.render_repo("proj", [("lib.py", "def g(): pass")], "main.py", "x = ", "\n")
    assert prompt == ("<|repo_name|>proj\n<|file_sep|>lib.py\ndef g(): pass\n<|file_sep|>main.py\n"
                      "<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>")
