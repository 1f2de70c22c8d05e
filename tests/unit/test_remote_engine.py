"""The remote engine without a server: its wire format (table-driven) and its behaviour against a
scripted vLLM server (httpx.MockTransport): streaming, errors, retries, the key, dead, cancel."""

from __future__ import annotations

import asyncio
import json
import logging
import os

import httpx
import pytest

from completer.config import Settings
from completer.engine import remote, start_engine
from completer.engine.interface import Engine, EngineError
from completer.engine.remote import RemoteEngine, remote_method
from completer.engine.remote_protocol import (DONE, apply_event, base_url, error_message, metric_sum, parse_metrics,
                                              parse_sse_line, read_api_key, request_body, served_facts, served_match,
                                              split_stops)
from completer.policy.steps import PLAN_KEY
from completer.types import Generation, GenerationPlan

KEY = "s3cret-key-never-shown"
URL = "http://gpu-box:8000"

# ---------------------------------------------------------------- URL and key


@pytest.mark.parametrize("url,expected", [
    ("http://gpu-box:8000", "http://gpu-box:8000"),
    ("http://gpu-box:8000/", "http://gpu-box:8000"),
    ("http://gpu-box:8000/v1", "http://gpu-box:8000"),
    ("https://gpu-box/v1/", "https://gpu-box"),
    ("https://proxy.example/team/v1", "https://proxy.example/team"),
    (" http://[::1]:8000 ", "http://[::1]:8000"),
])
def test_base_url(url, expected):
    assert base_url(url) == expected


@pytest.mark.parametrize("url", ["gpu-box:8000", "ftp://gpu-box", "http://", ""])
def test_base_url_refuses_what_is_not_http(url):
    with pytest.raises(EngineError, match="not an http"):
        base_url(url)


def test_the_key_comes_from_the_file_before_the_environment(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(f"{KEY}\n")
    assert read_api_key(Settings(engine_api_key_file=str(key_file)), {"COMPLETER_ENGINE_API_KEY": "env"}) == KEY
    assert read_api_key(Settings(), {"COMPLETER_ENGINE_API_KEY": " from-env \n"}) == "from-env"
    assert read_api_key(Settings(), {}) is None
    assert read_api_key(Settings(), {"COMPLETER_ENGINE_API_KEY": "  "}) is None


@pytest.mark.parametrize("content,match", [(None, "cannot read"), ("\n", "is empty")])
def test_a_key_file_that_is_missing_or_empty_is_refused_by_name(tmp_path, content, match):
    key_file = tmp_path / "key"
    if content is not None:
        key_file.write_text(content)
    with pytest.raises(EngineError, match=match) as err:
        read_api_key(Settings(engine_api_key_file=str(key_file)), {})
    assert str(key_file) in str(err.value)


# ---------------------------------------------------------------- the request


@pytest.mark.parametrize("plan,per_request,salt,xargs", [
    (GenerationPlan(max_tokens=64, speculate=True, num_speculative_tokens=3), True, "", {PLAN_KEY: 3}),
    (GenerationPlan(max_tokens=16, speculate=False, num_speculative_tokens=5), True, "completer-bypass",
     {PLAN_KEY: 0}),
    (GenerationPlan(max_tokens=16, speculate=True), False, "team-a", None),
])
def test_request_body_carries_the_plan(plan, per_request, salt, xargs):
    body = request_body([1, 2, 3], plan, model="m", per_request=per_request, cache_salt=salt, request_id="cmpl-1")
    assert body["prompt"] == [1, 2, 3] and body["model"] == "m" and body["request_id"] == "cmpl-1"
    assert body["max_tokens"] == plan.max_tokens and body["min_tokens"] == plan.min_tokens
    assert body["stream"] is True and body["return_token_ids"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body.get("vllm_xargs") == xargs
    assert body.get("cache_salt") == (salt or None)  # the server refuses an empty salt


def test_request_body_sampling_fields():
    plan = GenerationPlan(max_tokens=8, stop=("\n",), stop_token_ids=(151643,), min_tokens=2, temperature=0.8,
                          top_p=0.9, seed=7)
    body = request_body("text", plan, model="m", per_request=True, cache_salt="", request_id="r")
    assert (body["stop"], body["stop_token_ids"], body["min_tokens"]) == (["\n"], [151643], 2)
    assert (body["temperature"], body["top_p"], body["seed"], body["skip_special_tokens"]) == (0.8, 0.9, 7, True)
    json.dumps(body)  # all of it is JSON


SPECIAL = {"<|endoftext|>": 151643, "<|fim_pad|>": 151662, "<|file_sep|>": 151664}


@pytest.mark.parametrize("stop,stop_ids,expected", [
    (("\n",), (), (["\n"], [])),
    # the format's special tokens go as their ids (the server takes at most 4 stop strings)
    (("\n", "<|endoftext|>", "<|fim_pad|>", "<|file_sep|>"), (151643,), (["\n"], [151643, 151662, 151664])),
    (("<|im_end|>", "\n\n", "\n\n"), (), (["<|im_end|>", "\n\n"], [])),  # unknown to the model: as text
])
def test_stop_strings_that_are_special_tokens_go_as_ids(stop, stop_ids, expected):
    assert split_stops(stop, stop_ids, SPECIAL) == expected
    body = request_body("p", GenerationPlan(max_tokens=4, stop=stop, stop_token_ids=stop_ids), model="m",
                        per_request=False, cache_salt="", request_id="r", special_ids=SPECIAL)
    assert (body["stop"], body["stop_token_ids"]) == expected


# ---------------------------------------------------------------- the stream


@pytest.mark.parametrize("line,expected", [
    ("", None),
    (": keep-alive", None),
    ("event: message", None),
    ("data: [DONE]", DONE),
    ('data: {"choices": []}', {"choices": []}),
    ('data:{"a": 1}', {"a": 1}),
])
def test_parse_sse_line(line, expected):
    assert parse_sse_line(line) == expected if expected is not DONE else parse_sse_line(line) is DONE


@pytest.mark.parametrize("line", ["data: {broken", "data: [1, 2]"])
def test_parse_sse_line_refuses_what_is_not_an_event(line):
    with pytest.raises(EngineError, match="the server sent an event"):
        parse_sse_line(line)


def _chunk(text, ids, finish=None):
    return {"choices": [{"index": 0, "text": text, "token_ids": ids, "finish_reason": finish}]}


def test_events_grow_the_generation_and_the_last_one_counts():
    result = Generation(text="")
    for event in [_chunk("def", [1]), _chunk(" f", [2, 3]), _chunk("()", [4], "stop")]:
        apply_event(event, result)
    apply_event({"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 4,
                                          "prompt_tokens_details": {"cached_tokens": 32}},
                 "metrics": {"speculative_decoding": {"num_draft_tokens": 6, "num_accepted_draft_tokens": 2,
                                                      "num_spec_steps": 2, "acceptance_histogram": [1, 0, 1]}}},
                result)
    assert (result.text, result.token_ids, result.finish_reason) == ("def f()", [1, 2, 3, 4], "stop")
    assert (result.prompt_tokens, result.cached_tokens) == (40, 32)
    assert (result.num_draft_tokens, result.num_accepted_tokens, result.num_verify_steps) == (6, 2, 2)


@pytest.mark.parametrize("payload,message", [
    ({"error": {"message": "prompt too long", "type": "BadRequestError"}}, "prompt too long"),
    ({"message": "plain"}, "plain"),
    ({"error": "flat"}, "flat"),
    ("text", None),
    ({}, None),
])
def test_error_message(payload, message):
    assert error_message(payload) == message


def test_an_error_event_fails_the_request():
    with pytest.raises(EngineError, match="the server failed the request: boom"):
        apply_event({"error": {"message": "boom"}}, Generation(text=""))


# ---------------------------------------------------------------- what the server runs

METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="qwen"} 2.0
vllm:num_requests_running{engine="1",model_name="qwen"} 1.0
vllm:num_requests_waiting{engine="0",model_name="qwen"} 3.0
vllm:cache_config_info{block_size="128",cache_dtype="auto",engine="0",prefix_caching_hash_algo="sha256"} 1.0
vllm:spec_decode_num_drafts_total{engine="0",model_name="qwen"} 10.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="qwen",position="0"} 5.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="qwen",position="1"} 3.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="qwen",position="2"} 1.0
"""
PLAIN_METRICS = 'vllm:num_requests_running{engine="0"} 0.0\nvllm:num_requests_waiting{engine="0"} 0.0\n'


def test_metrics_are_summed_over_engines_and_say_what_the_server_runs():
    samples = parse_metrics(METRICS)
    assert metric_sum(samples, "vllm:num_requests_running") == 3
    assert metric_sum(samples, "vllm:num_requests_waiting") == 3
    assert served_facts(samples) == (128, True, 3)
    assert served_facts(parse_metrics(PLAIN_METRICS)) == (None, False, 0)
    assert parse_metrics("garbage line\n") == []


SERVED = [{"id": "qwen2.5-coder-1.5b-instruct", "root": "/srv/cache/converted/qwen-1.5b-q4-1117"},
          {"id": "/srv/cache/converted/qwen-1.5b-q4-1117", "root": "/srv/cache/converted/qwen-1.5b-q4-1117"}]


@pytest.mark.parametrize("configured,local_dir,expected", [
    ("qwen2.5-coder-1.5b-instruct", None, "qwen2.5-coder-1.5b-instruct"),  # the catalogue name
    # another machine's cache holds the same converted folder elsewhere
    ("qwen2.5-coder-1.5b-instruct-alias", "/home/me/.cache/completer/converted/qwen-1.5b-q4-1117",
     "qwen2.5-coder-1.5b-instruct"),
    ("/srv/cache/converted/qwen-1.5b-q4-1117/", None, "qwen2.5-coder-1.5b-instruct"),  # the server's own path
    ("qwen2.5-coder-0.5b-instruct", "/home/me/.cache/completer/converted/qwen-0.5b-q4-4914", None),
    ("Qwen/Qwen2.5-Coder-7B", None, None),
])
def test_the_served_model_must_be_the_configured_one(configured, local_dir, expected):
    assert served_match(SERVED, configured, local_dir) == expected


def test_served_match_with_nothing_served():
    assert served_match([], "qwen2.5-coder-1.5b-instruct", None) is None


@pytest.mark.parametrize("method,backend,speculates,expected", [
    ("auto", "cpu", True, "draft_model"),
    ("auto", "cpu", False, None),
    ("none", "cpu", True, None),
    ("ngram", "cpu", True, "ngram"),
    ("eagle3", "cuda", True, "eagle3"),  # the head is the server's: taken as named
    ("auto", "cuda", True, "eagle3"),  # a GPU server speculates under auto only with a head
    ("ngram_gpu", "cpu", True, "ngram_gpu"),
])
def test_remote_method(method, backend, speculates, expected):
    settings = Settings(speculative_config={"method": method, "model": "/no/such/head"})
    assert remote_method(settings, backend, speculates) == expected


def test_a_server_of_an_unknown_vllm_version_is_planned_as_a_draft_models():
    settings = Settings(speculative_config={"method": "auto", "model": "/no/such/head"})
    assert remote_method(settings, "cuda", True, backend_known=False) == "draft_model"


# ---------------------------------------------------------------- against a scripted server


class Server:
    """A scripted vLLM server: answers /v1/models, /version, /metrics and streams /v1/completions.
    ``refuse``: raise ConnectError on the next that many connections; ``key``: the bearer it needs."""

    def __init__(self, *, key: str | None = None, served=SERVED, version="0.32.0", metrics=METRICS,
                 chunks=None, status=200) -> None:
        self.key, self.served, self.version, self.metrics = key, served, version, metrics
        self.chunks = chunks if chunks is not None else [_chunk("x", [7]), _chunk(" + 1", [8, 9], "stop")]
        self.status = status
        self.refuse = 0
        self.bodies: list[dict] = []
        self.streams: list[Stream] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.refuse:
            self.refuse -= 1
            raise httpx.ConnectError("Connection refused", request=request)
        if self.key and request.headers.get("authorization") != f"Bearer {self.key}" \
                and request.url.path.startswith("/v1"):
            return httpx.Response(401, json={"error": "Unauthorized"})
        path = request.url.path
        if path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": self.served})
        if path == "/version":
            return httpx.Response(200, json={"version": self.version})
        if path == "/metrics":
            return httpx.Response(200, text=self.metrics)
        if path == "/tokenize":
            text = json.loads(request.content)["prompt"]
            return httpx.Response(200, json={"tokens": [SPECIAL[text]] if text in SPECIAL else [1, 2, 3]})
        if path == "/v1/completions":
            self.bodies.append(json.loads(request.content))
            if self.status != 200:
                return httpx.Response(self.status, json={"error": {"message": f"status {self.status}"}})
            lines = [f"data: {json.dumps(c)}\n\n" for c in self.chunks] + ["data: [DONE]\n\n"]
            self.streams.append(Stream(lines))
            return httpx.Response(200, stream=self.streams[-1], headers={"content-type": "text/event-stream"})
        return httpx.Response(404)


class Stream(httpx.AsyncByteStream):
    """An event stream that records whether the client closed it; ``hold`` stops it after the first event."""

    def __init__(self, lines: list[str]) -> None:
        self.lines, self.closed, self.hold = lines, False, None

    async def __aiter__(self):
        for i, line in enumerate(self.lines):
            if i and self.hold is not None:
                await self.hold.wait()
            yield line.encode()

    async def aclose(self) -> None:
        self.closed = True


def connect(server: Server, **settings) -> RemoteEngine:
    settings = Settings(engine_url=URL, model="qwen2.5-coder-1.5b-instruct", **settings)
    return RemoteEngine.connect(settings, transport=server.transport)


PLAN = GenerationPlan(max_tokens=16, speculate=True, num_speculative_tokens=3)


def test_connect_learns_what_the_server_runs():
    engine = connect(Server())
    assert isinstance(engine, Engine)
    caps = engine.capabilities
    assert (caps.backend, caps.speculation_method, caps.num_speculative_tokens) == ("cpu", "draft_model", 3)
    assert caps.per_request_speculation and not caps.speculation_with_sampling
    assert engine.block_size == 128 and engine.engine_pids() == [] and not engine.dead
    assert "gpu-box:8000" in engine.describe()


def test_connect_to_a_server_without_speculation_on_cuda():
    engine = connect(Server(metrics=PLAIN_METRICS, version="0.26.0"), block_size=32)
    caps = engine.capabilities
    assert (caps.backend, caps.speculates, caps.per_request_speculation) == ("cuda", False, False)
    assert engine.block_size == 32  # /metrics did not say: the setting's


@pytest.mark.parametrize("server,match", [
    (Server(key="other"), "refused the API key"),
    (Server(served=[{"id": "llama", "root": "/m/llama"}]), "serves /m/llama, not the configured model"),
    (Server(served=[]), "serves nothing"),
])
def test_connect_refuses_with_a_clear_message(server, match):
    with pytest.raises(EngineError, match=match) as err:
        connect(server)
    assert KEY not in str(err.value)


def test_connect_to_nothing_says_no_server_there():
    server = Server()
    server.refuse = 3
    with pytest.raises(EngineError, match=f"no engine server at {URL}"):
        connect(server)


def test_the_key_is_sent_as_a_bearer_and_never_shown(tmp_path, caplog):
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    caplog.set_level(logging.DEBUG)
    engine = connect(Server(key=KEY), engine_api_key_file=str(key_file))
    assert KEY not in repr(engine.__dict__.get("settings")) and KEY not in engine.describe()
    with pytest.raises(EngineError) as err:
        connect(Server(key="another"), engine_api_key_file=str(key_file))
    assert KEY not in str(err.value) and KEY not in caplog.text


def test_start_engine_builds_a_remote_engine_when_engine_url_is_set(monkeypatch):
    server = Server()
    monkeypatch.setattr(RemoteEngine, "connect", classmethod(lambda cls, s, p: ("remote", s.engine_url)))
    assert start_engine(Settings(engine_url=URL)) == ("remote", URL)
    assert server  # the in-process engine is never built for a URL


async def collect(engine: RemoteEngine, plan=PLAN, **kwargs) -> list[tuple[str, list[int]]]:
    seen = []
    async for gen in engine.generate("def f(", plan, **kwargs):
        seen.append((gen.text, list(gen.token_ids)))
    return seen


async def test_generate_streams_growing_generations_with_the_plan():
    server = Server(chunks=[_chunk("x", [7]), _chunk(" + 1", [8, 9], "stop"),
                            {"choices": [], "usage": {"prompt_tokens": 5}}])
    engine = connect(server)
    seen = await collect(engine, request_id="cmpl-abc", cache_salt="team")
    assert seen == [("x", [7]), ("x + 1", [7, 8, 9])]
    body = server.bodies[0]
    assert body["vllm_xargs"] == {PLAN_KEY: 3} and body["cache_salt"] == "team" and body["request_id"] == "cmpl-abc"
    assert body["model"] == "qwen2.5-coder-1.5b-instruct"
    result = await engine.complete("def f(", GenerationPlan(max_tokens=4, speculate=False))
    assert server.bodies[1]["vllm_xargs"] == {PLAN_KEY: 0}
    assert "cache_salt" not in server.bodies[1]  # a team's server: bypassed requests share the cache
    assert (result.text, result.finish_reason, result.prompt_tokens) == ("x + 1", "stop", 5)
    assert result.first_token_s is not None and result.latency_s >= result.first_token_s
    stats = engine.stats()
    assert (stats["requests_started"], stats["requests_finished"], stats["tokens_generated"]) == (2, 2, 6)


@pytest.mark.parametrize("shares, speculate, salt, expected", [
    (None, False, "team", "team"),  # unset: a team's server shares one cache
    (None, True, "team", "team"),
    (False, False, "team", "teamcompleter-bypass"),
    (False, False, None, "completer-bypass"),
    (False, True, None, ""),
    (True, False, None, ""),
])
def test_the_prefix_cache_a_request_gets(shares, speculate, salt, expected):
    engine = connect(Server(), bypass_shares_prefix_cache=shares)
    assert engine.prefix_cache(speculate, salt) == expected


async def test_closing_the_stream_closes_the_response():
    server = Server()
    engine = connect(server)
    stream = engine.generate("def f(", PLAN)
    first = await stream.__anext__()
    assert first.text == "x"
    await stream.aclose()
    assert server.streams[0].closed
    assert engine.stats()["requests_running"] == 0


async def test_cancelling_a_request_closes_the_response():
    server = Server()
    engine = connect(server)
    started = asyncio.Event()

    async def consume():
        async for _ in engine.generate("def f(", PLAN):
            started.set()

    task = asyncio.ensure_future(consume())
    server_hold = asyncio.Event()
    # hold the stream after its first event, as a server still generating
    original = server.handle

    def holding(request):
        response = original(request)
        if server.streams:
            server.streams[-1].hold = server_hold
        return response

    server.transport.handler = holding
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert server.streams[0].closed
    assert engine.stats()["requests_aborted"] == 1


async def test_a_refused_connection_is_retried_once():
    server = Server()
    engine = connect(server)
    server.refuse = 1
    assert (await engine.complete("x", PLAN)).text == "x + 1"
    assert not engine.dead


async def test_a_server_gone_fails_requests_and_the_engine_is_dead_after_two():
    server = Server()
    engine = connect(server)
    server.refuse = 100
    with pytest.raises(EngineError, match=f"no engine server at {URL}"):
        await engine.complete("x", PLAN)
    assert not engine.dead  # one broken request may be one dropped connection
    with pytest.raises(EngineError):
        await engine.complete("x", PLAN)
    assert engine.dead and "no engine server" in engine.failure
    server.refuse = 0
    await engine.complete("x", PLAN)  # back: a success clears the count
    assert not engine.dead and engine.failure is None
    assert engine.stats()["requests_failed"] == 2


@pytest.mark.parametrize("status,match,counts", [
    (401, "refused the API key", True),
    (404, "HTTP 404", True),
    (500, "HTTP 500: status 500", True),
    (400, "HTTP 400: status 400", False),  # this request's fault (a prompt too long): the server is fine
])
async def test_http_errors_map_to_clear_engine_errors(status, match, counts):
    server = Server()
    engine = connect(server)
    server.status = status
    for _ in range(2):
        with pytest.raises(EngineError, match=match):
            await engine.complete("x", PLAN)
    assert engine.dead is counts


async def test_a_stream_that_breaks_fails_the_request():
    server = Server()
    engine = connect(server)

    class Broken(Stream):
        async def __aiter__(self):
            yield b'data: {"choices": [{"text": "x", "token_ids": [1]}]}\n\n'
            raise httpx.ReadError("connection reset")

    original = server.handle

    def breaking(request):
        response = original(request)
        return httpx.Response(200, stream=Broken([])) if request.url.path == "/v1/completions" else response

    server.transport.handler = breaking
    with pytest.raises(EngineError, match="the connection to the server at .* broke"):
        await engine.complete("x", PLAN)


async def test_unfinished_requests_are_the_servers_running_and_waiting():
    engine = connect(Server())
    assert await engine.unfinished_requests() == 6


async def test_a_plan_that_speculates_on_a_server_that_does_not_is_refused():
    engine = connect(Server(metrics=PLAIN_METRICS))
    with pytest.raises(EngineError, match="does not speculate"):
        await engine.complete("x", PLAN)


async def test_shutdown_is_idempotent_and_makes_the_engine_dead():
    engine = connect(Server())
    await engine.complete("x", PLAN)
    engine.shutdown()
    engine.shutdown()
    assert engine.dead
    with pytest.raises(EngineError, match="shut down"):
        await engine.complete("x", PLAN)


# ---------------------------------------------------------------- the command line


def test_complete_with_an_engine_url_and_no_server_there_exits_3(tmp_path):
    from click.testing import CliRunner

    from completer import EXIT_ENGINE
    from completer.cli import main
    from completer.engine.vllm_server import free_port

    src = tmp_path / "a.py"
    src.write_text("def f(x):\n    return ")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = CliRunner().invoke(main, ["complete", "--engine-url", url, f"{src}:2:12"])
    assert result.exit_code == EXIT_ENGINE
    assert f"no engine server at {url}" in result.output


def test_serve_with_an_engine_url_gives_the_language_server_its_settings(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from completer import logs
    from completer.cli import main
    from completer.server import app

    seen = {}
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)  # the test runner's logging stays
    monkeypatch.setattr(app, "run", lambda **kwargs: seen.update(settings=app.server.settings))
    monkeypatch.setattr(app.server, "settings", Settings())
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    result = CliRunner().invoke(main, ["serve", "--engine-url", URL, "--engine-api-key-file", str(key_file),
                                       "--log-file", str(tmp_path / "log")])
    assert result.exit_code == 0, result.output
    assert (seen["settings"].engine_url, seen["settings"].engine_api_key_file) == (URL, str(key_file))
    # an editor that sets no engine_url keeps the command line's
    from completer.config import parse_settings

    assert parse_settings({"max_tokens": 64}, seen["settings"])[0].engine_url == URL
    assert KEY not in result.output


# ---------------------------------------------------------------- the language server's engine host


async def test_a_server_that_goes_away_is_one_message_empty_answers_and_reconnects(monkeypatch):
    from types import SimpleNamespace

    from lsprotocol.types import MessageType

    import completer.engine
    from completer.server import engine_host
    from completer.server.engine_host import EngineHost
    from tests.unit.fake_engine import until

    monkeypatch.setattr(engine_host, "WATCHDOG_INTERVAL_S", 0.001)
    server = Server()
    connects = []

    def start(settings, progress=None):
        connects.append(settings.engine_url)
        return RemoteEngine.connect(settings, transport=server.transport)

    monkeypatch.setattr(completer.engine, "start_engine", start)
    shown = []
    # one attempt allowed: a remote engine's host keeps reconnecting all the same
    settings = Settings(engine_url=URL, engine_restart_attempts=1, engine_restart_backoff_s=0.001)
    host = EngineHost(SimpleNamespace(settings=settings, show=lambda kind, message: shown.append((kind, message)),
                                      client_capabilities=None, work_done_progress=None))
    host.start()
    await until(lambda: host.state == "ready")
    watchdog = asyncio.ensure_future(host.watch())
    try:
        server.refuse = 10**6  # the server goes away
        for _ in range(2):  # the requests meanwhile fail (the request service answers them empty)
            with pytest.raises(EngineError):
                await host.engine.complete("x", PLAN)
        await until(lambda: len(connects) >= 4, timeout_s=5)  # reconnecting, past the attempts
        assert not host.ready
        server.refuse = 0  # it is back
        await until(lambda: host.state == "ready", timeout_s=5)
    finally:
        watchdog.cancel()
    assert [kind for kind, _ in shown] == [MessageType.Error, MessageType.Info]
    assert f"no engine server at {URL}" in shown[0][1] and "reconnecting" in shown[0][1]
    assert (await host.engine.complete("x", PLAN)).text == "x + 1"
    host.shutdown()


# ---------------------------------------------------------------- the prompt: token ids or text


def tiny_model(folder) -> str:
    """A model folder with a word-level tokenizer that knows two of Qwen's special tokens."""
    from tokenizers import Tokenizer, models as tokenizer_models, pre_tokenizers

    vocab = {"[UNK]": 0, "def": 1, "f": 2, "(": 3}
    tokenizer = Tokenizer(tokenizer_models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(["<|fim_prefix|>", "<|endoftext|>"])
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "config.json").write_text("{}")
    return str(folder)


async def test_a_local_tokenizer_sends_token_ids_and_its_special_ids(tmp_path):
    from completer.context.prompt import Prompt

    model = tiny_model(tmp_path / "tiny-coder")
    server = Server(served=[{"id": "tiny", "root": "/srv/models/tiny-coder"}])
    engine = RemoteEngine.connect(Settings(engine_url=URL, model=model), transport=server.transport)
    assert engine.target_dir == model and engine.special_ids == {"<|endoftext|>": 5, "<|fim_prefix|>": 4}
    prompt = Prompt([("<|fim_prefix|>", True), ("def f( <|fim_prefix|>", False)])
    await engine.complete(prompt, GenerationPlan(max_tokens=4, speculate=False, stop=("<|endoftext|>", "\n")))
    body = server.bodies[0]
    # the frame's special piece as its id, the document's spelling of it as text
    assert body["prompt"][0] == 4 and body["prompt"].count(4) == 1
    assert (body["stop"], body["stop_token_ids"]) == (["\n"], [5])


async def test_without_a_local_tokenizer_the_prompt_goes_as_text_and_stops_by_the_servers_ids(monkeypatch, caplog):
    monkeypatch.setattr(remote, "local_model_dir", lambda model: None)
    server = Server()
    engine = connect(server)
    assert engine.special_ids == SPECIAL
    assert "no local tokenizer" in caplog.text
    assert not os.path.exists(engine.target_dir)  # the pipeline counts tokens by its estimate
    await engine.complete("def f(", GenerationPlan(max_tokens=4, speculate=False, stop=("<|fim_pad|>",)))
    body = server.bodies[0]
    assert body["prompt"] == "def f(" and (body["stop"], body["stop_token_ids"]) == ([], [151662])


async def test_shutdown_from_another_thread_closes_the_client_in_its_own_loop():
    engine = connect(Server())
    await engine.complete("x", PLAN)
    client = engine._client
    await asyncio.to_thread(engine.shutdown)  # as the engine host does
    await until_closed(client)
    assert engine.dead


async def until_closed(client: httpx.AsyncClient) -> None:
    for _ in range(1000):
        if client.is_closed:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the client was not closed")
