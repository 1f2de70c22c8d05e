import pytest
from click.testing import CliRunner

from completer.cli import EXIT_BAD_INPUT, EXIT_ENGINE, main, offset_of, parse_location


@pytest.mark.parametrize("location,expected", [
    ("a.py:3:5", ("a.py", 3, 5)),
    ("C:/x/a.py:1:1", ("C:/x/a.py", 1, 1)),
    ("-:2:1", ("-", 2, 1)),
])
def test_parse_location(location, expected):
    assert parse_location(location) == expected


@pytest.mark.parametrize("text,line,col,offset", [
    ("abc\ndef", 1, 1, 0),
    ("abc\ndef", 2, 4, 7),
    ("abc\r\ndef", 1, 4, 3),  # the column after the last character, before CRLF
    ("a\rb", 2, 1, 2),  # a lone CR ends a line, as in LSP
    ("😀x", 1, 2, 1),  # columns count characters, not UTF-16 units
])
def test_offset_of(text, line, col, offset):
    assert offset_of(text, line, col) == offset


@pytest.mark.parametrize("line,col", [(0, 1), (3, 1), (1, 5), (1, 0)])
def test_offset_outside_the_file(line, col):
    with pytest.raises(ValueError):
        offset_of("abc\ndef", line, col)


def test_bad_input_exits_2(tmp_path):
    runner = CliRunner()
    src = tmp_path / "a.py"
    src.write_text("x = 1\n")
    assert runner.invoke(main, ["complete", f"{src}:9:1"]).exit_code == EXIT_BAD_INPUT
    assert runner.invoke(main, ["complete", f"{tmp_path}/missing.py:1:1"]).exit_code == EXIT_BAD_INPUT
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    assert runner.invoke(main, ["complete", f"{binary}:1:1"]).exit_code == EXIT_BAD_INPUT
    assert runner.invoke(main, ["complete", "no-position"]).exit_code == 2  # click's usage error


def test_missing_model_exits_3_with_a_clear_message(tmp_path):
    src = tmp_path / "a.py"
    src.write_text("x = 1\n")
    result = CliRunner().invoke(main, ["complete", "--model", str(tmp_path / "nope.gguf"), f"{src}:1:1"])
    assert result.exit_code == EXIT_ENGINE
    assert "GGUF file not found" in result.output


def test_help_has_examples_and_exit_codes():
    out = CliRunner().invoke(main, ["complete", "--help"]).output
    assert "Examples:" in out and "Exit codes: 0 ok, 2 bad input" in out
