"""The request service of a real CompleterServer whose engine host holds a Completer over a scripted engine."""

import asyncio

import pytest
from lsprotocol import types

from completer.pipeline import Completer
from completer.records import NO_PLAN
from completer.server.app import CompleterServer
from tests.unit.fake_engine import FakeEngine, until

URI = "file:///work/proj/main.py"
LINE_END = types.Position(line=1, character=8)  # after "total = "
IN_WORD = types.Position(line=0, character=3)  # inside "import"


def serving(engine: FakeEngine, **settings) -> CompleterServer:
    """A server initialized without a client, its engine ready, and one open document."""
    server = CompleterServer()
    params = types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri="file:///work/proj")
    for _ in server.protocol.lsp_initialize(params):
        pass
    server.apply_settings({"keystroke_hold_ms": 0, **settings})
    server.show = lambda kind, message: None  # no client to show it
    server.host.engine, server.host.completer = engine, Completer(engine, server.settings)
    server.host.state = "ready"
    server.documents.open(URI, "import os\ntotal = \n", "python", 1)
    return server


def typed(server: CompleterServer, text: str, version: int) -> None:
    server.documents.change(URI, [types.TextDocumentContentChangeWholeDocument(text=text)], version)


async def test_a_newer_request_for_the_document_cancels_the_older():
    engine = FakeEngine("x + 1")
    server = serving(engine)
    engine.gate = asyncio.Event()
    older = asyncio.ensure_future(server.service.complete(URI, LINE_END))
    await until(lambda: len(engine.requests) == 1)
    newer = asyncio.ensure_future(server.service.complete(URI, LINE_END))
    await until(older.done)
    engine.gate.set()
    result = await newer
    with pytest.raises(asyncio.CancelledError):
        older.result()
    assert [r.outcome for r in engine.requests] == ["aborted", "finished"]
    assert result.request_id == engine.requests[1].request_id and server.service.latest.superseded == 1


async def test_type_ahead_answers_get_their_own_id_and_never_reach_the_engine():
    engine = FakeEngine("x + 1\n")
    server = serving(engine)
    first = await server.service.complete(URI, LINE_END)
    typed(server, "import os\ntotal = x\n", 2)
    again = await server.service.complete(URI, types.Position(line=1, character=9))
    assert (first.text, again.text, again.source, again.version) == ("x + 1", " + 1", "type_ahead", 2)
    assert again.request_id.startswith("ta-") and len(engine.requests) == 1
    assert server.service.records.records[again.request_id].reason == "type_ahead"


async def test_raw_requests_skip_type_ahead():
    engine = FakeEngine("x + 1\n")
    server = serving(engine)
    await server.service.complete(URI, LINE_END)
    typed(server, "import os\ntotal = x\n", 2)
    await server.service.complete(URI, types.Position(line=1, character=9), stop_early=False)
    assert len(engine.requests) == 2


@pytest.mark.parametrize("fail_requests,dead,died", [(1, False, 0), (0, True, 1)])
async def test_a_failing_request_gives_none_and_a_dead_engine_is_restarted(monkeypatch, fail_requests, dead, died):
    engine = FakeEngine()
    server = serving(engine)
    engine.fail_requests, engine.dead = fail_requests, dead
    calls = []
    monkeypatch.setattr(server.host, "died", lambda: calls.append(1))
    assert await server.service.complete(URI, LINE_END) is None
    assert (engine.requests[0].outcome, len(calls), len(server.service.records.records)) == ("failed", died, 0)


async def test_no_engine_ready_gives_none_at_once():
    engine = FakeEngine()
    server = serving(engine, keystroke_hold_ms=5000)  # at once: without the hold
    server.host.engine, server.host.completer, server.host.state = None, None, "loading"
    assert await asyncio.wait_for(server.service.complete(URI, LINE_END), timeout=1) is None
    assert engine.requests == []


@pytest.mark.parametrize("position,stop_early,outcome,reason", [
    (LINE_END, True, "shown", "short"),
    (LINE_END, False, "not_shown", "short"),  # raw: for a comparison, not an editor
    (IN_WORD, True, "empty", NO_PLAN),  # nothing to complete: the engine is not asked
])
async def test_each_request_gets_a_record_under_its_engine_id(position, stop_early, outcome, reason):
    engine = FakeEngine("x + 1\n")
    server = serving(engine)
    result = await server.service.complete(URI, position, stop_early=stop_early)
    record = server.service.records.records[result.request_id]
    assert (record.outcome, record.reason, record.source) == (outcome, reason, "model")
    assert [r.request_id for r in engine.requests] == ([result.request_id] if reason != NO_PLAN else [])
