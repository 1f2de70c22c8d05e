"""The remote engine against vLLM's own server (start_server) with the real Qwen pair: greedy output
the same as the in-process engine's, a closed stream aborted in the server, a wrong key refused, two
language servers (two users, two documents each) sharing it, a server killed mid-request failing the
request and serving again once restarted, and the language servers answering empty while it is down,
with one message, and completing again once it is back."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import pytest_asyncio
from lsprotocol import types

from completer.config import Settings
from completer.context.prompt import QWEN
from completer.engine.interface import EngineError
from completer.engine.remote import RemoteEngine
from completer.engine.vllm_engine import VllmEngine
from completer.engine.vllm_server import start_server
from completer.types import GenerationPlan
from tests.e2e.helpers import FIB, FIB_URI, complete_detail, open_doc, start_client, stats, wait_ready
from tests.e2e.team_server import KEY, SERVER_READY_S
from tests.e2e.test_equivalence import tasks

pytestmark = pytest.mark.engine

ABORT_WITHIN_S = 30
RECONNECT_BACKOFF_S = 0.5  # the language servers reconnect soon after the server is back
DOCUMENTS = {FIB_URI: FIB, "file:///workspace/area.py": "import math\n\n\ndef circle_area(r):\n    "}
POSITIONS = {FIB_URI: (5, 4), "file:///workspace/area.py": (4, 4)}
# (task, plan): speculated at the engine's k and bypassed (in-process with a prefix cache of their
# own, on the server sharing the speculated requests' one), as the policy plans them; max_tokens
# long enough that a stream can be closed while it runs
PLANS = [GenerationPlan(max_tokens=48, speculate=True, num_speculative_tokens=5),
         GenerationPlan(max_tokens=48, speculate=False)]


def prompts(n: int = 2) -> list[str]:
    return [QWEN.render(prefix, suffix) for prefix, suffix in tasks(n)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def in_process(settings):
    """The in-process engine's greedy outputs for every (prompt, plan), before the server starts
    (one engine at a time on this machine)."""
    engine = await asyncio.to_thread(VllmEngine.build, settings)
    try:
        return [(await engine.complete(p, plan)).token_ids for p in prompts() for plan in PLANS]
    finally:
        engine.shutdown()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def remote(server, settings):
    engine = await asyncio.to_thread(RemoteEngine.connect, settings.model_copy(
        update={"engine_url": server["proc"].url}))
    yield engine
    engine.shutdown()


async def test_greedy_output_is_the_in_process_engines(in_process, remote):
    # in_process first: its engine is gone before the server's starts
    assert remote.capabilities.per_request_speculation and remote.capabilities.backend == "cpu"
    through_server = [(await remote.complete(p, plan)).token_ids for p in prompts() for plan in PLANS]
    assert all(through_server)
    assert through_server == in_process
    stats = remote.stats()
    assert stats["requests_finished"] == len(in_process) and stats["draft_tokens"] > 0


async def test_closing_a_stream_aborts_the_request_in_the_server(remote):
    plan = GenerationPlan(max_tokens=400, speculate=False)
    stream = remote.generate(prompts(1)[0], plan)
    first = await stream.__anext__()
    assert first.token_ids and await remote.unfinished_requests() == 1
    await stream.aclose()
    deadline = time.monotonic() + ABORT_WITHIN_S
    while await remote.unfinished_requests():
        assert time.monotonic() < deadline, "the server still runs the closed request"
        await asyncio.sleep(0.2)
    assert remote.stats()["requests_running"] == 0


async def test_a_wrong_key_is_refused(server, settings, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-key")
    url = server["proc"].url
    for attempt in (settings.model_copy(update={"engine_url": url, "engine_api_key_file": str(wrong)}),
                    Settings(engine_url=url)):
        with pytest.raises(EngineError, match="refused the API key") as err:
            await asyncio.to_thread(RemoteEngine.connect, attempt)
        assert KEY not in str(err.value)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def editors(server, key_file):
    """Two language servers (two users) on the one server, each with two documents."""
    options = {"engine_url": server["proc"].url, "engine_api_key_file": str(key_file),
               "engine_restart_backoff_s": RECONNECT_BACKOFF_S}
    clients = [await start_client(options) for _ in range(2)]
    try:
        for client in clients:
            await wait_ready(client, timeout=60)  # connecting: no model to load
            for uri, text in DOCUMENTS.items():
                open_doc(client, uri, text)
        yield clients
    finally:
        for client in clients:
            await client.shutdown_session()


async def complete_all(editors) -> list[str]:
    """Each editor's completion in each of its documents, all at once."""
    asks = [complete_detail(client, uri, *position) for client in editors
            for uri, position in POSITIONS.items()]
    return [detail["text"] for detail in await asyncio.gather(*asks)]


async def test_two_language_servers_share_the_server(editors, remote):
    assert [(await stats(client))["speculation"] for client in editors] == [True, True]
    assert all(text.strip() for text in await complete_all(editors))
    assert [(await stats(client))["requests_finished"] >= 2 for client in editors] == [True, True]
    assert await remote.unfinished_requests() == 0


async def test_a_server_killed_mid_request_fails_it_and_everyone_recovers_once_it_is_back(server, remote, editors,
                                                                                        settings):
    """One outage (a server start costs a minute here): the request under way fails, the remote
    engine gives up on the dead server, the language servers answer empty meanwhile with one
    message, and all of them complete again once the server is back."""
    plan = GenerationPlan(max_tokens=400, speculate=False)
    proc = server["proc"]
    with pytest.raises(EngineError, match="broke|no engine server"):
        async for gen in remote.generate(prompts(1)[0], plan):
            if len(gen.token_ids) >= 2 and proc.proc.poll() is None:
                os.killpg(proc.proc.pid, signal.SIGKILL)  # a crash: no graceful end of the stream
    proc.stop()
    with pytest.raises(EngineError, match="no engine server"):
        await remote.complete(prompts(1)[0], plan)
    assert remote.dead  # two failed requests in a row: the language server would reconnect
    for round in range(2):  # a request may fail for one dropped connection; two in a row: the server is gone
        assert await complete_new(editors, f"down{round}") == [""] * 2
    for client in editors:
        await until_engine(client, "ready", False)
    server["proc"] = start_server(settings, port=proc.port, api_key=KEY, log_path=server["log"])
    await asyncio.to_thread(server["proc"].wait_ready, SERVER_READY_S)
    result = await remote.complete(prompts(1)[0], GenerationPlan(max_tokens=8, speculate=True))
    assert result.token_ids and not remote.dead
    for client in editors:
        await until_engine(client, "ready", True)
    assert all(text.strip() for text in await complete_new(editors, "back"))
    for client in editors:  # one message for the outage, one when it is over
        kinds = [m.type for m in client.messages]
        assert kinds == [types.MessageType.Error, types.MessageType.Info], client.messages
        assert "no engine server" in client.messages[0].message


async def complete_new(editors, name: str) -> list[str]:
    """Each editor's completion in a document it has not seen (the model's answer, not type-ahead)."""
    uri = f"file:///workspace/{name}.py"
    for client in editors:
        open_doc(client, uri, f"def {name}_sum(a, b):\n    ")
    answers = await asyncio.gather(*(complete_detail(client, uri, 1, 4) for client in editors))
    return [detail["text"] for detail in answers]


async def until_engine(client, state: str, reached: bool, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while ((await stats(client))["engine"] == state) is not reached:
        assert time.monotonic() < deadline, f"the language server's engine: still {(await stats(client))['engine']}"
        await asyncio.sleep(0.2)
