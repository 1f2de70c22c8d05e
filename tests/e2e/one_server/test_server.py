"""The real server with the real Qwen pair: completions, cancellation, bad requests."""

from __future__ import annotations

import asyncio
import time

import pytest
from lsprotocol import types
from tree_sitter import Parser

from completer.context import languages
from tests.e2e.helpers import FIB, FIB_URI, as_dict, complete_detail, inline_params, open_doc, send_raw, stats

pytestmark = pytest.mark.engine

LONG = '''class Matrix:
    """A dense matrix of floats with the usual arithmetic."""

    def __init__(self, rows):
        self.rows = [list(r) for r in rows]

    '''
LONG_URI = "file:///workspace/matrix.py"


async def test_request_before_engine_ready_is_answered_empty_at_once(client):
    early, seconds = client.early_answer
    items = getattr(early, "items", early)
    assert not items, f"expected an empty answer, got {early!r}"
    assert seconds < 5


async def test_progress_reported_while_loading(client):
    kinds = [type(v).__name__ for reports in client.progress_reports.values() for v in reports]
    assert "WorkDoneProgressBegin" in kinds and "WorkDoneProgressEnd" in kinds


async def test_inline_completion_is_real_and_parses(client):
    result = await client.text_document_inline_completion_async(inline_params(FIB_URI, 5, 4))
    assert result.items, "no completion"
    text = result.items[0].insert_text
    assert text.strip()
    lines = FIB.split("\n")
    prefix = "\n".join(lines[:5]) + "\n" + lines[5][:4]
    suffix = lines[5][4:] + "\n" + "\n".join(lines[6:])
    tree = Parser(languages.grammar("python")).parse((prefix + text + suffix).encode())
    assert not tree.root_node.has_error, prefix + text + suffix
    assert "return" in text


async def test_textdocument_completion_returns_the_same_model_text(client):
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=FIB_URI), position=types.Position(line=5, character=4)))
    assert result.items and result.items[0].text_edit.new_text.strip()


async def test_speculation_is_on_and_measured(client):
    detail = await complete_detail(client, FIB_URI, 5, 4, raw=True)  # raw: always the model
    assert detail["speculation"] is True
    assert detail["draft_tokens"] > 0
    assert 0.0 <= detail["acceptance_rate"] <= 1.0


async def test_cancel_aborts_the_request_inside_vllm_and_server_keeps_serving(client):
    open_doc(client, LONG_URI, LONG)
    before = await stats(client)
    msg_id = "cancel-me"
    pending = asyncio.ensure_future(client.protocol.send_request_async(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(LONG_URI, 6, 4), msg_id=msg_id))
    # wait until the request is generating inside vLLM, then cancel it
    for _ in range(100):
        if (await stats(client))["vllm_unfinished_requests"] > 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # first tokens are out by now
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(Exception) as err:
        await asyncio.wait_for(pending, timeout=30)
    assert "cancel" in str(err.value).lower()
    for _ in range(50):
        after = await stats(client)
        if after["vllm_unfinished_requests"] == 0 and after["requests_running"] == 0:
            break
        await asyncio.sleep(0.1)
    assert after["requests_aborted"] == before["requests_aborted"] + 1
    assert after["vllm_unfinished_requests"] == 0
    result = await client.text_document_inline_completion_async(inline_params(FIB_URI, 5, 4))
    assert result.items and result.items[0].insert_text.strip()


def type_text(client, uri: str, line: int, character: int, text: str, version: int) -> None:
    at = types.Position(line=line, character=character)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at), text=text)]))


async def test_typing_what_the_suggestion_says_is_answered_without_the_model(client):
    uri = "file:///workspace/typeahead.py"
    open_doc(client, uri, FIB)
    first = await complete_detail(client, uri, 5, 4)
    assert first["source"] == "model" and first["version"] == 1 and len(first["text"]) > 3, first
    assert "\n" not in first["text"][:3], first
    before = await stats(client)
    type_text(client, uri, 5, 4, first["text"][:3], version=2)  # the user types what is on screen
    reused = await complete_detail(client, uri, 5, 7)
    assert reused["source"] == "type_ahead" and reused["text"] == first["text"][3:] and reused["version"] == 2
    after = await stats(client)
    assert after["type_ahead_served"] == before["type_ahead_served"] + 1
    assert after["requests_started"] == before["requests_started"]  # no model call
    type_text(client, uri, 5, 7, "\u00e9", version=3)  # diverges: the model is asked again, for version 3
    fresh = await complete_detail(client, uri, 5, 8)
    assert fresh["source"] == "model" and fresh["version"] == 3


async def test_even_a_lone_request_waits_for_a_newer_keystroke_before_the_engine(client):
    uri = "file:///workspace/hold.py"
    open_doc(client, uri, FIB)
    before = await stats(client)
    await complete_detail(client, uri, 5, 4)  # the document's first request: nothing came before it
    after = await stats(client)
    assert after["held_while_typing"] == before["held_while_typing"] + 1


@pytest.mark.parametrize("uri,line,character,message", [
    (FIB_URI, 500, 0, "outside the document"),
    (FIB_URI, -1, 0, "line"),  # broken client: fails validation of the params
    ("file:///workspace/never-opened.py", 0, 0, "not open"),
])
async def test_bad_request_gets_an_error_and_server_keeps_serving(client, uri, line, character, message):
    raw = {"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
           "context": {"triggerKind": 1}}
    with pytest.raises(Exception) as err:
        await send_raw(client, types.TEXT_DOCUMENT_INLINE_COMPLETION, raw)
    assert message in str(err.value)
    assert (await stats(client))["engine"] == "ready"
    result = await client.text_document_inline_completion_async(inline_params(FIB_URI, 5, 4))
    assert result.items


async def test_a_character_past_the_line_end_means_the_line_end(client):
    """LSP: a position's character past the end of its line is the line's end."""
    at_end = await complete_detail(client, FIB_URI, 5, 4, raw=True)  # line 5 is four spaces
    past = await complete_detail(client, FIB_URI, 5, 200, raw=True)
    assert (past["prompt_tokens"], past["text"]) == (at_end["prompt_tokens"], at_end["text"])


HEADER = "".join(f'def scale_{i}(values, factor={i}):\n    """Multiply every value by {i}."""\n'
                 f"    return [v * factor for v in values]\n\n" for i in range(20))  # 80 lines: a block starts after
DESCRIBE = 'def describe(point):\n    """Return the point as "(x, y)"."""\n    return \n\n\ndef main():\n    print(describe((1, 2)))\n'


async def test_a_long_request_after_a_one_line_one_weighs_the_cache_the_one_line_one_filled(client):
    """Bypassed and speculating requests keep separate prefix caches: right after a one-line
    answer only the bypass's cache holds the file. The block request that follows weighs reading
    it again against what speculation saves at this machine's measured step costs
    (warm_cache_plan), takes the plan expected to finish sooner, and a bypass finds its prompt cached."""
    uri = "file:///workspace/warm.py"
    line = HEADER.count("\n")
    open_doc(client, uri, HEADER + DESCRIBE)
    one_line = await complete_detail(client, uri, line + 2, len("    return "))
    assert one_line["kind"] == "single_line" and one_line["k"] == 0, one_line
    policy = as_dict((await stats(client))["policy"])
    assert policy["prefill_s_per_token"] > 0 and policy["decode_s_per_token"] > 0, policy
    # the user writes a line of their own above the return, then stops on a fresh indented line
    type_text(client, uri, line + 2, 0, "    x, y = point\n    \n", version=2)
    block = await complete_detail(client, uri, line + 3, 4)
    assert block["kind"] == "multi_line", block
    assert block["expected_s"] is not None, block  # the bypass's cache holds far more than a block more
    expected = as_dict(block["expected_s"])
    bypass = expected["bypassed"] < expected["speculating"]
    assert (block["k"] == 0, block["reason"]) == (bypass, "warm_cache" if bypass else "long"), block
    if bypass:
        assert block["cached_tokens"] >= block["prompt_tokens"] // 2, block
    else:  # the speculating cache never saw this file
        assert block["cached_tokens"] < block["prompt_tokens"] // 2, block


def module(verb: str, op: str) -> str:
    """Twenty small functions (80 lines): a block of 16 lines starts right after them."""
    return "".join(f'def {verb}_{i}(values, n={i}):\n    """{verb.capitalize()} every value by {i}."""\n'
                   f"    return [v {op} n for v in values]\n\n" for i in range(20))


async def test_a_one_line_request_after_a_block_uses_the_cache_the_block_filled(client):
    """The mirror: right after a speculating block request only the speculating cache holds the
    file, and a one-line request speculates rather than read it all again (warm_cache_plan)."""
    # a one-line answer in another file first: the costs the plan compares come from bypassed requests
    other = "file:///workspace/shift.py"
    open_doc(client, other, module("shift", "+") + DESCRIBE)
    await complete_detail(client, other, 82, len("    return "))
    uri = "file:///workspace/warm_block.py"
    body = 'def describe(point):\n    """Return the point as "(x, y)"."""\n    \n\n\ndef main():\n    print(describe((1, 2)))\n'
    open_doc(client, uri, module("divide", "/") + body)
    block = await complete_detail(client, uri, 82, 4)
    assert block["kind"] == "multi_line" and block["k"] > 0, block
    # the user writes a line of their own, then stops where the return value begins
    type_text(client, uri, 82, 4, "x, y = point\n    return ", version=2)
    one_line = await complete_detail(client, uri, 83, len("    return "))
    assert one_line["k"] > 0, one_line  # speculated: only the speculating cache holds this prompt
    assert one_line["cached_tokens"] >= one_line["prompt_tokens"] // 2, one_line


async def test_request_ids_link_the_suggestion_its_plan_and_the_editors_accept(client):
    result = await client.text_document_inline_completion_async(inline_params(FIB_URI, 5, 4))
    item = result.items[0]
    assert item.command.command == "completer.accepted"
    shown_id = item.command.arguments[0]["id"]
    assert shown_id.startswith(("cmpl-", "ta-"))
    # completer/complete returns the same record: id, plan and its reason
    detail = await complete_detail(client, FIB_URI, 5, 4, raw=True)
    assert detail["id"].startswith("cmpl-") and detail["id"] != shown_id
    assert detail["reason"] in ("long", "short", "warm_cache")
    assert (detail["k"] >= 1) if detail["speculate"] else (detail["k"] == 0), detail
    client.protocol.notify("completer/accepted", {"id": shown_id, "uri": FIB_URI, "text": item.insert_text})
    client.protocol.notify("completer/dismissed", {"id": detail["id"], "uri": FIB_URI})
    # a generic client runs the item's command on the server
    other = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=FIB_URI), position=types.Position(line=5, character=4)))
    command = other.items[0].command
    await client.workspace_execute_command_async(types.ExecuteCommandParams(command=command.command,
                                                                            arguments=command.arguments))
    for _ in range(50):
        s = await stats(client)
        recent = [as_dict(r) for r in s["recent"]]
        outcomes = {r["id"]: r["outcome"] for r in recent}
        if outcomes.get(shown_id) == "accepted" and outcomes.get(detail["id"]) == "dismissed":
            break
        await asyncio.sleep(0.1)
    assert outcomes[shown_id] == "accepted" and outcomes[detail["id"]] == "dismissed", outcomes
    assert outcomes[command.arguments[0]["id"]] == "accepted", outcomes
    shown_reason = next(r["reason"] for r in recent if r["id"] == shown_id)
    assert as_dict(as_dict(s["by_plan"])[shown_reason])["accepted"] >= 1
    newest = command.arguments[0]["id"]  # the last model answer, unless type-ahead answered it
    assert as_dict(s["last"])["id"] == (newest if newest.startswith("cmpl-") else detail["id"])


async def test_an_opened_document_is_warmed_before_its_first_request(client):
    """warm_prompt: while the engine is idle, the prompt at an opened document's end is read into
    the prefix cache, and the first request there (a new function's body) finds it cached."""
    settings = {"warm_prompt": True, "warm_prompt_pause_ms": 200}
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=settings))
    try:
        uri = "file:///workspace/warm_open.py"
        text = module("scale", "*") + 'def describe(point):\n    """Return the point as "(x, y)"."""\n'
        before = (await stats(client))["warm_prompts_finished"]
        open_doc(client, uri, text)
        deadline = time.monotonic() + 60
        while (await stats(client))["warm_prompts_finished"] == before and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert (await stats(client))["warm_prompts_finished"] == before + 1
        line = text.count("\n")
        type_text(client, uri, line, 0, "    ", version=2)
        block = await complete_detail(client, uri, line, 4)
        # all but the prompt's last blocks (vLLM's CPU blocks hold 128 tokens), where the FIM middle
        # starts and the typed indentation goes
        assert block["cached_tokens"] >= block["prompt_tokens"] - 256, block
    finally:
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"warm_prompt": False}))
