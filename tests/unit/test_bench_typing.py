import asyncio
import json

import pytest
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled

from completer.bench.typing_bench.client import ServerClient, complete_params, insertion
from completer.bench.typing_bench.replay import collect
from completer.bench.typing_bench.report import one_line_figures, summarize
from completer.bench.typing_bench.session import Request, cold_cut, pause_points, pick_body

SOURCE = "\n".join([
    "import os",
    "",
    "def first():",
    '    """Docs stay."""',
    "    value = os.sep",
    "    return value",
    "",
    "def last():",
    "    return 1",
    "",
])


def test_pick_body_keeps_the_signature_and_docstring():
    start, end = pick_body(SOURCE, min_chars=10, max_chars=100, min_line=1, min_after=2)
    assert SOURCE[start:end] == "    value = os.sep\n    return value\n"


@pytest.mark.parametrize("kwargs", [
    {"min_chars": 100, "max_chars": 200, "min_line": 1, "min_after": 2},  # too short
    {"min_chars": 10, "max_chars": 100, "min_line": 5, "min_after": 2},  # too early
    {"min_chars": 10, "max_chars": 100, "min_line": 1, "min_after": 20},  # too close to the end
])
def test_pick_body_refuses(kwargs):
    assert pick_body(SOURCE, **kwargs) is None


@pytest.mark.parametrize("text, offset, expected", [
    ("abc", 0, (0, 0)),
    ("abc", 2, (0, 2)),
    ("ab\ncd", 3, (1, 0)),
    ("ab\ncd", 5, (1, 2)),
])
def test_positions_sent_for_an_offset(text, offset, expected):
    line, character = expected
    assert complete_params("file:///a.py", text, offset)["position"] == {"line": line, "character": character}
    change = insertion("file:///a.py", 2, text, offset, "x").content_changes[0]
    assert (change.range.start.line, change.range.start.character) == expected
    assert change.range.end == change.range.start and change.text == "x"


def request(keystroke, outcome="answered", source="model", text="x", sent=0.0, answered=0.05, nxt=0.1,
            prompt=100, cached=0, version=None):
    r = Request(0, keystroke, keystroke + 2, sent, nxt, answered, outcome, source, text,
                keystroke + 2 if version is None else version, prompt, cached, 0.01, "single_line")
    return r


def test_in_time_means_before_the_next_keystroke():
    assert request(0).in_time
    assert not request(0, answered=0.2).in_time
    assert not request(0, text="").in_time
    assert not request(0, outcome="cancelled").in_time
    assert request(0, nxt=None, answered=5.0).in_time  # the last keystroke has no deadline


def test_summarize_counts_cache_on_consecutive_requests_only():
    requests = [request(0, cached=0), request(1, cached=90), request(2, cached=80),
                request(3, source="type_ahead", prompt=0), request(4, outcome="cancelled", text=""),
                request(5, version=99)]
    s = summarize(requests, [{"latency_s": 1.0, "prompt_tokens": 200}], engine_requests=4)
    assert s["engine_requests"] == 4
    assert (s["sent"], s["answered"], s["cancelled"], s["from_model"], s["from_type_ahead"]) == (6, 5, 1, 4, 1)
    assert s["cached_share_consecutive"] == pytest.approx(170 / 300)
    assert s["cached_share_after_first"] == pytest.approx(170 / 300)  # keystroke 0 was the session's first
    assert s["stale"] == 1
    assert s["cold_200_token_s"]["p50"] == 1.0


@pytest.mark.parametrize("body, expected", [
    ("ab", [False, False]),
    ("  ab", [False, False, True, False]),  # the body's first line, after its indentation
    ("a\nb", [False, False, True]),  # before the new line's first character
    ("a\n  b", [False, False, False, False, True]),  # ...after its indentation
    ("a\n\nb", [False, False, False, True]),  # a blank line does not pause twice
    ("f(x)", [False, False, True, False]),  # after an opening bracket
    ("(\n  x", [False, True, False, False, True]),  # a bracket at a line's end, then the line start
    ("w = 1", [False, False, False, False, True]),  # where an assignment's value begins
    ("a == b", [False, False, False, False, False, True]),  # ...or a comparison's right side
    ("return x", [False] * 7 + [True]),  # where a return value begins
    ("f(x=1)", [False, False, True, False, False, False]),  # a keyword argument is typed on
])
def test_pause_points(body, expected):
    assert pause_points(body) == expected


def test_waited_suggestions_that_never_came_count_as_late():
    waited = [request(1, answered=1.0), request(2, answered=2.0), request(3, outcome="cancelled", answered=61.0)]
    for r in waited:
        r.waited = True
    s = summarize([request(0)] + waited, [{"latency_s": 1.0, "prompt_tokens": 200}])
    assert (s["waited"], s["waited_answered"]) == (3, 2)
    assert s["time_to_suggestion_waited_s"]["p50"] == 2.0
    assert s["time_to_suggestion_waited_s"]["p95"] is None  # falls on the one that never came
    assert s["time_to_single_line_waited_s"]["p50"] == 2.0  # nearest rank of [1.0, 2.0]
    assert s["single_line_waited_over_cold"] == 2.0


def test_a_late_first_answer_counts_as_consecutive():
    # every earlier keystroke's request was cancelled, yet it had read the same context
    requests = [request(n, outcome="cancelled", text="") for n in range(9)] + [request(9, cached=90)]
    assert summarize(requests, [])["cached_share_consecutive"] == pytest.approx(0.9)


def test_the_share_after_the_first_leaves_out_each_sessions_first_model_answer():
    first, later = request(7, cached=0), request(30, cached=90)
    other = request(5, cached=0)
    other.session = 1
    requests = [request(n, outcome="cancelled", text="") for n in range(7)] + [first, later, other]
    s = summarize(requests, [])
    assert s["cached_share_consecutive"] == pytest.approx(90 / 300)
    assert s["cached_share_after_first"] == pytest.approx(90 / 100)


@pytest.mark.parametrize("source, head_chars, expected", [
    ("a = 1\nb = 2\ndef f():\n    return a + b\nx = 3\n", 10, ("b = 2\ndef f():\n    return a + b\nx = 3\n", 26)),
    ("def f():\n    return 1\n", 100, None),  # too little code before the return
    ("a = 1\nb = 2\n", 1, None),  # no return line
])
def test_cold_cut(source, head_chars, expected):
    assert cold_cut(source, head_chars) == expected


def test_one_line_figures_count_waited_model_answers_of_one_line_whatever_their_kind():
    one_line, block, typed_ahead, not_waited = (request(1, answered=3.0), request(2, answered=9.0, text="a\nb"),
                                                request(3, source="type_ahead", answered=0.0), request(4, answered=7.0))
    for r in (one_line, block, typed_ahead):
        r.waited = True
    one_line.kind = "multi_line"  # planned as a block (after a bracket), answered with one line
    figures = one_line_figures([one_line, block, typed_ahead, not_waited], cold_p50=2.0)
    assert figures["time_to_one_line_waited_s"] == {"n": 1, "p50": 3.0, "p95": 3.0}
    assert figures["one_line_waited_over_cold"] == 1.5


class Sink:
    """Collects what the client writes, one JSON-RPC message per write."""

    def __init__(self):
        self.messages = []

    def write(self, data: bytes) -> None:
        self.messages.append(json.loads(data.split(b"\r\n\r\n", 1)[1]))

    def close(self) -> None:
        pass


async def test_the_client_sends_cancel_requests_and_typed_changes(tmp_path):
    client = ServerClient({}, tmp_path / "log")
    sink = Sink()
    client.protocol.set_writer(sink)
    msg_id, answer = client.send("completer/complete", complete_params("file:///a.py", "ab\ncd", 4))
    client.cancel(msg_id)
    client.text_document_did_change(insertion("file:///a.py", 3, "ab\ncd", 4, "("))
    request, cancel, change = sink.messages
    assert (request["method"], request["id"], request["params"]["position"]) == (
        "completer/complete", msg_id, {"line": 1, "character": 1})
    assert (cancel["method"], cancel["params"]) == ("$/cancelRequest", {"id": msg_id})
    assert change["params"] == {"textDocument": {"uri": "file:///a.py", "version": 3}, "contentChanges": [
        {"range": {"start": {"line": 1, "character": 1}, "end": {"line": 1, "character": 1}}, "text": "("}]}
    answer.cancel()


def receive(client: ServerClient, message: dict) -> None:
    """Hand ``message`` to the client as if the server had sent it."""
    client.protocol.handle_message(json.loads(json.dumps(message), object_hook=client.protocol.structure_message))


async def test_the_client_gets_completers_answers_as_json_objects(tmp_path):
    client = ServerClient({}, tmp_path / "log")
    client.protocol.set_writer(Sink())
    result = {"engine": "ready", "by_plan": {"single_line": {"shown": 2}}, "token_ids": [1, 2], "_private": None}
    msg_id, answer = client.send("completer/stats", {})
    receive(client, {"jsonrpc": "2.0", "id": msg_id, "result": result})
    assert await answer == result
    msg_id, answer = client.send("completer/complete", {})
    receive(client, {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32800, "message": "cancelled"}})
    with pytest.raises(JsonRpcException) as error:
        await answer
    assert error.value.code == -32800


@pytest.mark.parametrize("error, outcome", [
    (JsonRpcRequestCancelled(), "cancelled"),
    (JsonRpcException(code=-32603, message="boom"), "failed"),
])
async def test_collect_sorts_error_answers(error, outcome):
    answer = asyncio.get_running_loop().create_future()
    answer.set_exception(error)
    request = Request(0, 0, 2, 0.0)
    await collect(request, answer)
    assert request.outcome == outcome and request.answered_s is not None


async def test_collect_reads_the_answer():
    answer = asyncio.get_running_loop().create_future()
    answer.set_result({"text": "x)", "version": 2, "prompt_tokens": 90, "cached_tokens": 64, "first_token_s": 0.1,
                       "kind": "single_line", "k": 3, "token_ids": [1, 2]})
    request = Request(0, 0, 2, 0.0)
    await collect(request, answer)
    assert (request.outcome, request.source, request.text, request.answer_version, request.k) == (
        "answered", "model", "x)", 2, 3)
    assert (request.prompt_tokens, request.cached_tokens, request.kind) == (90, 64, "single_line")


# ---------------------------------------------------------------- --warm-prompt

def test_a_warm_prompt_session_is_written_at_the_files_end_up_to_its_first_pause():
    from completer.bench.typing_bench.session import Session
    from completer.bench.typing_bench.warm import at_the_end

    session = Session("m.py", "def f():\n    '''doc'''\ndef g(): pass\n", 23, "    return 1\n")
    end = at_the_end(session)
    assert (end.text, end.offset, end.body) == ("def f():\n    '''doc'''\n", 23, "    ")


@pytest.mark.parametrize("firsts, cold, first_s, cold_s, ratio", [
    ([(3.0, "answered"), (5.0, "answered"), (4.0, "answered")], [2.0, 2.0, 1.0], 4.0, 2.0, 2.0),
    ([(3.0, "answered"), None], [2.0], float("inf"), 2.0, float("inf")),  # a session never got one
    ([(3.0, "answered")], [], 3.0, None, None),  # no cold reference answered
])
def test_warm_prompt_figures(firsts, cold, first_s, cold_s, ratio):
    from completer.bench.typing_bench.session import Request
    from completer.bench.typing_bench.warm import summarize

    requests = []
    for item in firsts:
        if item is None:
            requests.append(None)
            continue
        latency, outcome = item
        requests.append(Request(0, 0, 1, 10.0, answered_s=10.0 + latency, outcome=outcome, prompt_tokens=9,
                                cached_tokens=8, kind="multi_line", waited=True))
    figures = summarize(requests, [{"latency_s": c, "prompt_tokens": 200} for c in cold])
    assert (figures["first_suggestion_s"], figures["cold_one_line_s"], figures["ratio"]) == (first_s, cold_s, ratio)
