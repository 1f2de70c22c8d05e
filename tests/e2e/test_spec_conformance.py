"""Positions and URIs as VS Code and Neovim send them, through the real server, with the pytest-lsp client.

- URIs: every spelling of one document finds it (VS Code escapes a Windows drive's colon and a
  notebook cell's fragment; spaces, non-ASCII and brackets come escaped or raw).
- Positions: columns in the encoding negotiated at initialize (VS Code: UTF-16; Neovim offers
  UTF-8 first); a character past its line's end is the line's end (LSP spec); a line past the
  last is an error (-32602) and the server keeps serving.
- Document text that spells the model's control tokens is sent as text.

The first group runs a server whose engine cannot load (it answers at once, empty): what is
checked there is decided before the engine is asked. The second group runs the real target model
once, with a few short requests.
"""

from __future__ import annotations

import ast

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from completer.config import Settings, parse_settings
from completer.context.builder import build_context
from completer.context.prompt import QWEN
from completer.context.tokens import HFTokenCounter
from completer.engine import models
from tests.e2e.helpers import SERVER, complete_detail, inline_params, open_doc, wait_ready
from tests.unit.test_uris import SAME

NO_ENGINE = {"model": "/nonexistent/model.gguf", "engine_restart_attempts": 0}
# the target alone, short answers, no hold: the real model for a few requests only
SHORT = {"speculative_config": {"method": "none"}, "max_tokens": 48, "max_tokens_single_line": 16,
         "keystroke_hold_ms": 0}
CODEC = {"utf-8": ("utf-8", 1), "utf-16": ("utf-16-le", 2), "utf-32": ("utf-32-le", 4)}


async def start(client_name: str, init_options: dict) -> tuple[LanguageClient, str]:
    """`completer serve` initialized as ``client_name`` sends it; the client and the negotiated encoding."""
    client = await ClientServerConfig(server_command=SERVER).start()
    result = await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(client_name), root_uri="file:///w", initialization_options=init_options,
        workspace_folders=[types.WorkspaceFolder(uri="file:///w", name="w")]))
    encoding = str(getattr(result.capabilities.position_encoding, "value", None)
                   or result.capabilities.position_encoding or "utf-16")
    return client, encoding


def units(text: str, encoding: str) -> int:
    """Length of ``text`` in code units of ``encoding``, counted here independently of the server."""
    codec, width = CODEC[encoding]
    return len(text.encode(codec)) // width


async def document_text(client: LanguageClient, uri: str) -> str:
    result = await client.protocol.send_request_async("completer/documentText", {"uri": uri})
    return result["text"] if isinstance(result, dict) else result.text


def change(client: LanguageClient, uri: str, version: int, start: tuple[int, int], end: tuple[int, int],
           text: str) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(*start), end=types.Position(*end)), text=text)]))


def close(client: LanguageClient, uri: str) -> None:
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri)))


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["visual-studio-code", "neovim"])
async def editor(request):
    """A server without an engine, initialized as each editor sends it."""
    client, encoding = await start(request.param, NO_ENGINE)
    client.editor, client.encoding = request.param, encoding
    yield client
    await client.shutdown_session()


async def test_the_encoding_is_the_one_each_editor_gets(editor):
    assert editor.encoding == {"visual-studio-code": "utf-16", "neovim": "utf-8"}[editor.editor]


@pytest.mark.parametrize("name, spellings", SAME, ids=[n for n, _ in SAME])
async def test_every_spelling_of_a_uri_finds_the_document(editor, name, spellings):
    open_doc(editor, spellings[0], "x = 1\n")
    for version, spelling in enumerate(spellings[1:] + spellings[:1], start=2):
        answer = await editor.text_document_inline_completion_async(inline_params(spelling, 0, 4))
        assert not answer.items  # no "not open" error: the engine is simply not there
        change(editor, spelling, version, (version - 1, 0), (version - 1, 0), f"# {version}\n")
        assert (await document_text(editor, spellings[0])).endswith(f"# {version}\n")
    close(editor, spellings[-1])
    with pytest.raises(JsonRpcException, match="not open"):
        await document_text(editor, spellings[0])


async def test_columns_count_in_the_negotiated_encoding(editor):
    uri = f"file:///w/{editor.editor}/units.py"
    line = "s = 'é中😀' + t"
    open_doc(editor, uri, line + "\n")
    after_emoji = units(line[: line.index("'", 5)], editor.encoding)
    change(editor, uri, 2, (0, after_emoji), (0, after_emoji), "!")
    assert await document_text(editor, uri) == "s = 'é中😀!' + t\n"
    close(editor, uri)


async def test_a_character_past_the_line_end_is_the_line_end(editor):
    uri = f"file:///w/{editor.editor}/past_end.py"
    open_doc(editor, uri, "def f(x):\n    return x\n")
    answer = await editor.text_document_inline_completion_async(inline_params(uri, 0, 999))
    assert not answer.items  # answered, not refused with -32602
    change(editor, uri, 2, (0, 500), (0, 999), "  # f")
    change(editor, uri, 3, (1, 40), (1, 40), " + 1")
    assert await document_text(editor, uri) == "def f(x):  # f\n    return x + 1\n"
    close(editor, uri)


async def test_a_line_past_the_last_is_an_error_and_the_server_keeps_serving(editor):
    uri = f"file:///w/{editor.editor}/past_last.py"
    open_doc(editor, uri, "a = 1\nb = 2\n")  # lines 0..2 (the last one empty)
    with pytest.raises(JsonRpcException) as raised:
        await editor.text_document_inline_completion_async(inline_params(uri, 3, 0))
    assert raised.value.code == -32602 and "outside the document" in str(raised.value)
    answer = await editor.text_document_inline_completion_async(inline_params(uri, 2, 0))
    assert not answer.items
    close(editor, uri)


# ------------------------------------------------------------------ the real engine

@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def vscode():
    client, encoding = await start("visual-studio-code", SHORT)
    await wait_ready(client)
    yield client
    await client.shutdown_session()


ADD = "def add(a, b):\n    return \n"  # the cursor at the end of line 1


@pytest.mark.engine
async def test_escaped_uris_get_completions(vscode):
    for opened, asked in [("vscode-notebook-cell:/w/nb.ipynb#W0sZmlsZQ%3D%3D", "vscode-notebook-cell:/w/nb.ipynb#W0sZmlsZQ=="),
                          ("file:///c%3A/Users/me/proj/add.py", "file:///C:/Users/me/proj/add.py")]:
        open_doc(vscode, opened, ADD)
        detail = await complete_detail(vscode, asked, 1, 11)
        assert "a + b" in detail["text"], detail
        close(vscode, asked)


@pytest.mark.engine
async def test_a_completion_past_the_line_end_is_the_one_at_the_line_end(vscode):
    uri = "file:///w/my%20proj/add.py"
    open_doc(vscode, uri, ADD)
    at_end = await complete_detail(vscode, uri, 1, 11, raw=True)
    past_end = await complete_detail(vscode, uri, 1, 500, raw=True)
    assert at_end["raw_text"] and past_end["raw_text"] == at_end["raw_text"]
    # and the suggestion names the place it goes: the line's end, not the position asked for
    result = await vscode.text_document_inline_completion_async(inline_params(uri, 1, 500))
    assert result.items and result.items[0].range.start == types.Position(line=1, character=11), result
    close(vscode, uri)


CONTROL = '''"""Tokens of the model's format, as a tokenizer test would spell them."""

FIM_MIDDLE = "<|fim_middle|>"
FILE_SEP = "<|file_sep|>"


def split_files(text):
    """Split a repository dump at FILE_SEP: [(path, body), ...]."""
    files = []
    for part in text.split(FILE_SEP)[1:]:
        path, _, body = part.partition("\\n")
        files.append((path, body))
    

def is_middle(token):
    return token == "<|fim_middle|>"
'''


@pytest.mark.engine
async def test_control_token_text_is_sent_as_text(vscode):
    uri = "file:///w/tokens.py"
    open_doc(vscode, uri, CONTROL)
    lines = CONTROL.split("\n")
    row = lines.index("    ")  # the empty line after the loop: the function's return is missing
    detail = await complete_detail(vscode, uri, row, 4)
    assert "return" in detail["text"], detail
    ast.parse("\n".join(lines[:row] + [lines[row] + detail["text"]] + lines[row + 1:]))
    # the same prompt built here: its ids hold the frame's tokens once each, and vLLM read that many
    settings, _ = parse_settings(SHORT, Settings())
    counter = HFTokenCounter(models.resolve(settings.model))
    ctx = build_context(CONTROL, CONTROL.index("\n    \n") + 5, "python", counter, QWEN, settings.context_tokens,
                        settings.prefix_share, snippet_share=settings.snippet_share, order=settings.fim_order,
                        snap_lines=settings.cut_snap_lines, anchor=settings.fim_middle_anchor)
    ids = counter.encode(ctx.prompt)
    frame = [counter.token_id(t) for t in (QWEN.prefix, QWEN.suffix, QWEN.middle, "<|file_sep|>")]
    assert [ids.count(i) for i in frame] == [1, 1, 1, 0]
    assert detail["prompt_tokens"] == len(ids)
    close(vscode, uri)
