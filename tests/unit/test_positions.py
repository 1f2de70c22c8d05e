import pytest

from completer.server.positions import PositionError, offset_for


@pytest.mark.parametrize("text,line,char,encoding,expected", [
    ("abc\ndef", 0, 0, "utf-16", 0),
    ("abc\ndef", 0, 3, "utf-16", 3),
    ("abc\ndef", 1, 2, "utf-16", 6),
    ("abc\r\ndef", 1, 0, "utf-16", 5),  # CRLF is one line break
    ("a\rb", 1, 1, "utf-16", 3),  # a lone CR too
    ("é😀x", 0, 3, "utf-16", 2),  # the emoji is two UTF-16 units
    ("é😀x", 0, 6, "utf-8", 2),  # é is 2 bytes, the emoji 4
    ("é😀x", 0, 2, "utf-32", 2),
    ("abc\n", 1, 0, "utf-16", 4),  # after a trailing newline
])
def test_offsets(text, line, char, encoding, expected):
    assert offset_for(text, line, char, encoding) == expected


@pytest.mark.parametrize("text,line,char,message", [
    ("abc", 1, 0, "outside the document"),
    ("abc", -1, 0, "outside the document"),
    ("abc", 0, 4, "past the end"),
    ("abc\r\ndef", 0, 4, "past the end"),  # the \r is not a column
    ("😀", 0, 1, "splits a character"),
    ("abc", 0, -2, "negative"),
])
def test_positions_outside_the_text_are_refused(text, line, char, message):
    with pytest.raises(PositionError, match=message):
        offset_for(text, line, char)
