import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from completer.documents.positions import PositionError, code_units, line_starts, offset_at, position_at


@pytest.mark.parametrize("text,line,char,encoding,expected", [
    ("abc\ndef", 0, 0, "utf-16", 0),
    ("abc\ndef", 0, 3, "utf-16", 3),
    ("abc\ndef", 1, 2, "utf-16", 6),
    ("abc\r\ndef", 1, 0, "utf-16", 5),  # CRLF is one line break
    ("a\rb", 1, 1, "utf-16", 3),  # a lone CR too
    ("ab\rcd\nef", 1, 0, "utf-16", 3),
    ("ab\rcd\nef", 2, 0, "utf-16", 6),
    ("a\x0cb\u2028c\x85d", 0, 7, "utf-16", 7),  # not line ends in LSP (str.splitlines breaks there)
    ("é😀x", 0, 3, "utf-16", 2),  # the emoji is two UTF-16 units
    ("é😀x", 0, 6, "utf-8", 2),  # é is 2 bytes, the emoji 4
    ("é😀x", 0, 2, "utf-32", 2),
    ("é😀x\nz", 1, 1, "utf-8", 5),
    ("abc\n", 1, 0, "utf-16", 4),  # after a trailing newline
    ("", 0, 0, "utf-16", 0),
])
def test_offsets(text, line, char, encoding, expected):
    assert offset_at(text, line, char, encoding) == expected


@pytest.mark.parametrize("text,line,char,encoding,expected", [
    ("abc", 0, 4, "utf-16", 3),  # past the end of the line: the line's end (LSP spec)
    ("abc\r\ndef", 0, 4, "utf-16", 3),  # the \r is not a column: before the \r\n
    ("ab\r\ncd", 0, 9, "utf-16", 2),
    ("é😀x\nz", 0, 99, "utf-8", 3),
    ("a\rb", 0, 5, "utf-32", 1),
])
def test_a_character_past_the_line_end_is_the_line_end(text, line, char, encoding, expected):
    assert offset_at(text, line, char, encoding) == expected


@pytest.mark.parametrize("text,line,char,encoding,expected", [
    ("😀", 0, 1, "utf-16", 0),  # between the two halves of a surrogate pair: before the emoji
    ("a😀b", 0, 2, "utf-16", 1),
    ("é", 0, 1, "utf-8", 0),  # inside a 2-byte sequence
    ("x😀", 0, 4, "utf-8", 1),  # inside a 4-byte sequence
    ("x😀", 0, 5, "utf-8", 2),
])
def test_a_character_inside_a_code_point_is_its_start(text, line, char, encoding, expected):
    assert offset_at(text, line, char, encoding) == expected


@pytest.mark.parametrize("text,line,char,message", [
    ("abc", 1, 0, "outside the document"),
    ("ab", 5, 0, "outside the document"),
    ("a\rb", 2, 0, "outside the document"),
    ("abc", -1, 0, "negative"),
    ("abc", 0, -2, "negative"),
])
def test_positions_outside_the_text_are_refused(text, line, char, message):
    with pytest.raises(PositionError, match=message):
        offset_at(text, line, char)


def test_an_unknown_encoding_is_refused():
    with pytest.raises(ValueError, match="encoding"):
        offset_at("abc", 0, 0, "utf-7")


@pytest.mark.parametrize("text,offset,encoding,expected", [
    ("abc\ndef", 0, "utf-16", (0, 0)),
    ("abc\ndef", 7, "utf-16", (1, 3)),
    ("abc\r\ndef", 4, "utf-16", (0, 3)),  # between \r and \n: the line's end
    ("a\rb", 2, "utf-16", (1, 0)),
    ("é😀x", 2, "utf-16", (0, 3)),
    ("é😀x", 2, "utf-8", (0, 6)),
    ("é😀x", 2, "utf-32", (0, 2)),
    ("abc\n", 4, "utf-16", (1, 0)),
])
def test_position_at(text, offset, encoding, expected):
    assert position_at(text, offset, encoding) == expected


@pytest.mark.parametrize("offset", [-1, 4])
def test_position_at_refuses_offsets_outside_the_text(offset):
    with pytest.raises(PositionError):
        position_at("abc", offset)


@pytest.mark.parametrize("ch,encoding,units", [
    ("a", "utf-8", 1), ("é", "utf-8", 2), ("中", "utf-8", 3), ("😀", "utf-8", 4),
    ("a", "utf-16", 1), ("中", "utf-16", 1), ("😀", "utf-16", 2),
    ("😀", "utf-32", 1),
    ("\ud83d", "utf-16", 1), ("\ud83d", "utf-8", 3),  # a lone surrogate (JSON allows one)
])
def test_code_units(ch, encoding, units):
    assert code_units(ch, encoding) == units


@pytest.mark.parametrize("text,starts", [
    ("", [0]),
    ("a", [0]),
    ("a\n", [0, 2]),
    ("a\r\nb\rc\nd", [0, 3, 5, 7]),
    ("\n\n", [0, 1, 2]),
    ("a\x0cb\u2028c\x85d\x0be", [0]),  # not line ends in LSP
    ("😀\r\n", [0, 3]),
])
def test_line_starts(text, starts):
    assert line_starts(text) == starts


# ---------------------------------------------------------------- against a plain oracle

ALPHABET = ["a", " ", "\n", "\r\n", "\r", "é", "中", "😀", "𝄞", "\u2028", "\x0c", "\x85", "\ud83d"]
texts = st.lists(st.sampled_from(ALPHABET), max_size=30).map("".join)


def every_position(text: str, encoding: str) -> list[tuple[int, int, int]]:
    """(line, character, index) of every gap between characters, counted the slow way."""
    out = []
    spans = [(m.start(), m.end()) for m in re.finditer(r"\r\n|\n|\r", text)] + [(len(text), len(text))]
    start = 0
    for line, (end, next_start) in enumerate(spans):
        units = 0
        for i in range(start, end):
            out.append((line, units, i))
            units += code_units(text[i], encoding)
        out.append((line, units, end))
        start = next_start
    return out


@given(text=texts, encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_offsets_and_positions_agree_with_the_oracle(text, encoding):
    for line, char, index in every_position(text, encoding):
        assert offset_at(text, line, char, encoding) == index
        assert position_at(text, index, encoding) == (line, char)
