import random
from types import SimpleNamespace

import pytest
from tree_sitter import Point

from completer.context import languages
from completer.documents.positions import PositionError
from completer.documents.store import DocumentStore, byte_point, display_path, edit_for, edit_offset


@pytest.mark.parametrize("text,line,character,encoding,expected", [
    ("é😀x\nz", 0, 3, "utf-16", 2),  # the emoji is two UTF-16 units
    ("é😀x\nz", 0, 6, "utf-8", 2),
    ("é😀x\nz", 0, 2, "utf-32", 2),
    ("ab\r\ncd", 0, 9, "utf-16", 2),  # clamped to the line's end, before its \r\n
    ("ab\r\ncd", 1, 1, "utf-16", 5),
    ("ab\rcd\nef", 2, 0, "utf-16", 6),  # a lone CR ends a line too
    ("ab", 5, 0, "utf-16", 2),  # past the last line: the end of the text
    ("ab\n", 1, 0, "utf-16", 3),
])
def test_edit_offset(text, line, character, encoding, expected):
    assert edit_offset(text, line, character, encoding) == expected


def test_edit_offset_refuses_negative_positions():
    with pytest.raises(PositionError):
        edit_offset("ab", 0, -1)


@pytest.mark.parametrize("text,index,expected", [
    ("ab\ncd", 4, (4, Point(1, 1))),
    ("é\nxé", 4, (6, Point(1, 3))),  # byte columns: é is two bytes
    ("a\r\nb", 3, (3, Point(1, 0))),  # tree-sitter rows end at \n
])
def test_byte_point(text, index, expected):
    assert byte_point(text, index) == expected


@pytest.mark.parametrize("text,start,end,new,expected", [
    ("ab\ncd", 1, 1, "X", (1, 1, 2, Point(0, 1), Point(0, 1), Point(0, 2))),
    ("ab\ncd", 1, 4, "", (1, 4, 1, Point(0, 1), Point(1, 1), Point(0, 1))),
    ("ab", 2, 2, "\né", (2, 2, 5, Point(0, 2), Point(0, 2), Point(1, 2))),
])
def test_edit_for(text, start, end, new, expected):
    e = edit_for(text, start, end, new)
    assert (e.start_byte, e.old_end_byte, e.new_end_byte, e.start_point, e.old_end_point, e.new_end_point) == expected


def _change(sl, sc, el, ec, text):
    rng = SimpleNamespace(start=SimpleNamespace(line=sl, character=sc), end=SimpleNamespace(line=el, character=ec))
    return SimpleNamespace(range=rng, text=text)


def _utf16_position(text: str, index: int) -> tuple[int, int]:
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    line = max(i for i, s in enumerate(starts) if s <= index)
    col = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text[starts[line]:index].rstrip("\r"))
    return line, col


@pytest.mark.parametrize("language,seed_text", [
    ("python", "def f(x):\r\n    s = 'héllo 😀'\r\n    return x\r\n"),
    ("javascript", "function f(a) {\n  const s = \"naïve 😀\";\n  return a;\n}\n"),
    ("rust", "fn main() {\n    let s = \"日本語\";\n}\n"),
])
def test_incremental_tree_matches_a_fresh_parse(language, seed_text):
    """Random edits with non-ASCII text and CRLF: text and tree equal a from-scratch parse."""
    rng = random.Random(7)
    store = DocumentStore()
    doc = store.open("file:///a", seed_text, language)
    doc.current_tree()
    expected = seed_text
    pieces = ["x", "é", "😀", "\n", "\r\n", " (", ")", "; ", "    ", "日"]
    for _ in range(60):
        a = rng.randrange(len(expected) + 1)
        b = min(len(expected), a + rng.choice([0, 0, 1, 3]))
        while a > 0 and expected[a - 1] == "\r" and a < len(expected) and expected[a] == "\n":
            a -= 1  # never split a \r\n: LSP cannot address the middle of one
        while b < len(expected) and b > 0 and expected[b - 1] == "\r" and expected[b] == "\n":
            b += 1
        b = max(a, b)
        new = rng.choice(pieces)
        sl, sc = _utf16_position(expected, a)
        el, ec = _utf16_position(expected, b)
        store.change("file:///a", [_change(sl, sc, el, ec, new)], version=1)
        expected = expected[:a] + new + expected[b:]
        assert doc.text == expected
        if rng.random() < 0.5:
            tree = doc.current_tree()
            fresh = languages.parser(language).parse(expected.encode("utf-8"))
            assert str(tree.root_node) == str(fresh.root_node)
            assert tree.root_node.end_byte == len(expected.encode("utf-8"))


def test_whole_text_change_and_plain_text():
    store = DocumentStore()
    doc = store.open("file:///notes.txt", "hello", "text")
    assert doc.current_tree() is None
    store.change("file:///notes.txt", [SimpleNamespace(text="bye")])
    assert doc.text == "bye" and doc.current_tree() is None


def test_closed_documents_that_were_edited_stay_as_neighbours():
    store = DocumentStore(keep_closed=1)
    store.open("file:///a", "a", "python")
    store.open("file:///b", "b", "python")
    store.open("file:///c", "c", "python")
    store.change("file:///b", [_change(0, 1, 0, 1, "!")])
    store.close("file:///b")  # edited: kept
    store.close("file:///c")  # never edited: forgotten
    assert [d.uri for d in store.neighbours("file:///a")] == ["file:///b"]
    assert store.get("file:///b") is None
    store.open("file:///b", "b!", "python")
    assert not store.recent


@pytest.mark.parametrize("uri,root,expected", [
    ("file:///w/proj/src/a.py", "/w/proj", "src/a.py"),
    ("file:///elsewhere/a.py", "/w/proj", "elsewhere/a.py"),
    ("file:///w/a.py", None, "w/a.py"),
])
def test_display_path(uri, root, expected):
    assert display_path(uri, root) == expected


def test_a_document_is_found_whatever_its_percent_escapes():
    store = DocumentStore()
    doc = store.open("file:///w/my%20file.py", "x", "python")
    assert store.get("file:///w/my file.py") is doc
    store.change("file:///w/my file.py", [_change(0, 1, 0, 1, "!")], version=2)
    assert doc.text == "x!" and doc.version == 2
    store.close("file:///w/my%20file.py")
    assert store.get("file:///w/my%20file.py") is None
    assert [d.uri for d in store.neighbours("file:///other.py")] == ["file:///w/my%20file.py"]
