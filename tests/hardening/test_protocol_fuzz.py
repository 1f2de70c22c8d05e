"""Protocol fuzzing over the real server's stdio bytes: every bad message gets the LSP error the
spec names, notifications are never answered, and the server keeps serving throughout.

No engine: the server is told to load a model that does not exist.
"""

import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hardening.conftest import record
from tests.hardening.lsp import RawServer, encode, frame

EXAMPLES = int(os.environ.get("COMPLETER_FUZZ_EXAMPLES", "200"))
SECRET = "TOPSECRET_DOCUMENT_TEXT_7f3a"  # must never reach the log
URI = "file:///workspace/fuzz.py"
DOC = f"def f():\n    return '{SECRET}' + 'é😀'\r\nx = 1\n"
INSIDE_EMOJI = DOC.splitlines()[1].index("😀") + 1  # UTF-16: between the two halves of the pair

PARSE, INVALID_REQUEST, NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602


@pytest.fixture(scope="module")
def server():
    s = RawServer()
    s.initialize()
    s.open(URI, DOC)
    yield s
    assert s.alive(), s.log_text()[-3000:]
    log = s.log_text()
    assert SECRET not in log, "document text reached the log"
    record("fuzz_bytes_sent", s.bytes_sent)
    assert s.close() == 0


def still_serving(s: RawServer) -> None:
    assert s.document_text(URI) == DOC


def _req(method, params, msg_id=900001):
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}


# (name, raw bytes, expected (id, code) of an answer with id null or the request id, code None for a
# result; None: no answer)
FRAMED = [
    ("not json", frame(b"{this is not json"), (None, PARSE)),
    ("truncated json", frame(b'{"jsonrpc": "2.0", "id": 1, "meth'), (None, PARSE)),
    ("binary body", frame(bytes(range(256))), (None, PARSE)),
    ("invalid utf-8", frame(b'{"jsonrpc": "2.0", "method": "\xff\xfe"}'), (None, PARSE)),
    ("empty body", frame(b""), (None, PARSE)),
    ("deep nesting", frame(b"[" * 100000 + b"]" * 100000), (None, PARSE)),
    ("a batch", encode([_req("completer/stats", {})]), (None, INVALID_REQUEST)),
    ("a number", frame(b"42"), (None, INVALID_REQUEST)),
    ("null", frame(b"null"), (None, INVALID_REQUEST)),
    ("no jsonrpc", encode({"id": 7001, "method": "completer/stats"}), (7001, INVALID_REQUEST)),
    ("jsonrpc 1.0", encode({"jsonrpc": "1.0", "id": 7002, "method": "completer/stats"}), (7002, INVALID_REQUEST)),
    ("float id", encode({"jsonrpc": "2.0", "id": 1.5, "method": "completer/stats"}), (None, INVALID_REQUEST)),
    ("object id", encode({"jsonrpc": "2.0", "id": {"a": 1}, "method": "completer/stats"}), (None, INVALID_REQUEST)),
    ("method not a string", encode({"jsonrpc": "2.0", "id": 7003, "method": 5}), (7003, INVALID_REQUEST)),
    ("params a string", encode(_req("completer/stats", "x", 7004)), (7004, INVALID_PARAMS)),
    ("unknown method", encode(_req("no/suchMethod", {}, 7005)), (7005, NOT_FOUND)),
    ("unknown $/ method", encode(_req("$/unknown", {}, 7006)), (7006, NOT_FOUND)),
    ("inline wrong types", encode(_req("textDocument/inlineCompletion",
                                       {"textDocument": {"uri": 5}, "position": {"line": "a", "character": []}},
                                       7007)), (7007, INVALID_PARAMS)),
    ("inline no params", encode({"jsonrpc": "2.0", "id": 7008, "method": "textDocument/inlineCompletion"}),
     (7008, INVALID_PARAMS)),
    ("line out of range", encode(_req("textDocument/inlineCompletion",
                                      {"textDocument": {"uri": URI}, "position": {"line": 99, "character": 0},
                                       "context": {"triggerKind": 1}}, 7009)), (7009, INVALID_PARAMS)),
    # a character past the line's end is the line's end (LSP); one inside a surrogate pair, the emoji's start
    ("character past the line's end", encode(_req("textDocument/completion",
                                                  {"textDocument": {"uri": URI},
                                                   "position": {"line": 0, "character": 999}}, 7010)), (7010, None)),
    ("inside a surrogate pair", encode(_req("textDocument/completion",
                                            {"textDocument": {"uri": URI},
                                             "position": {"line": 1, "character": INSIDE_EMOJI}}, 7011)), (7011, None)),
    ("negative line", encode(_req("completer/complete", {"textDocument": {"uri": URI},
                                                         "position": {"line": -1, "character": 0}}, 7012)),
     (7012, INVALID_PARAMS)),
    ("unopened document", encode(_req("textDocument/completion", {"textDocument": {"uri": "file:///nope.py"},
                                                                  "position": {"line": 0, "character": 0}}, 7013)),
     (7013, INVALID_PARAMS)),
    ("a notification sent as a request", encode(_req("textDocument/didClose",
                                                     {"textDocument": {"uri": "file:///other.py"}}, 7015)),
     (7015, INVALID_REQUEST)),
    ("a request with an error member", encode({**_req("textDocument/inlineCompletion", None, 7016),
                                               "error": None}), (7016, INVALID_REQUEST)),
    ("documentText without uri", encode(_req("completer/documentText", {}, 7014)), (7014, INVALID_PARAMS)),
    # notifications: never answered, whatever is wrong with them
    ("bad didChange", encode({"jsonrpc": "2.0", "method": "textDocument/didChange",
                              "params": {"textDocument": {"uri": URI}, "contentChanges": SECRET}}), None),
    ("didChange of unopened", encode({"jsonrpc": "2.0", "method": "textDocument/didChange",
                                      "params": {"textDocument": {"uri": "file:///nope.py", "version": 2},
                                                 "contentChanges": [{"text": SECRET}]}}), None),
    ("unknown notification", encode({"jsonrpc": "2.0", "method": "no/such", "params": {"x": SECRET}}), None),
    ("notification string params", encode({"jsonrpc": "2.0", "method": "no/such", "params": SECRET}), None),
    ("cancel of unknown id", encode({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 123456}}), None),
    ("cancel with bad id", encode({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": [SECRET]}}), None),
    ("response to nothing", encode({"jsonrpc": "2.0", "id": 424242, "result": SECRET}), None),
]
# framing-level junk; a valid message right after each must still be read
UNFRAMED = [
    ("header without length", b"X-Nothing: 1\r\n\r\n", (None, INVALID_REQUEST)),
    ("bad length value", b"Content-Length: lots\r\n\r\n", (None, INVALID_REQUEST)),
    ("overlong header line", b"X-Long: " + b"a" * 100_000 + b"\r\n\r\n", (None, INVALID_REQUEST)),
    ("too many headers", b"".join(b"X-%d: y\r\n" % i for i in range(40)) + b"Content-Length: 2\r\n\r\n{}",
     (None, INVALID_REQUEST)),
]


@pytest.mark.parametrize("name, data, expected", FRAMED + UNFRAMED, ids=[c[0] for c in FRAMED + UNFRAMED])
def test_bad_input_gets_the_lsp_error(server, name, data, expected):
    before = len(server.id_null_errors)
    server.send_bytes(data)
    if expected is not None:
        msg_id, code = expected
        if msg_id is None:
            error = server.wait_id_null_errors(before + 1)[-1]
        else:
            error = server.wait_response(msg_id)
        if code is None:
            assert "error" not in error and "result" in error, error
        else:
            assert error["error"]["code"] == code, error
            assert "result" not in error
    still_serving(server)
    assert len(server.id_null_errors) == before + (1 if expected and expected[0] is None else 0)
    record("fuzz_cases_sent", 1)


def test_huge_message_is_discarded_and_a_big_one_accepted(server):
    huge = 40 << 20  # over the 32 MiB bound: read through, never held
    before = len(server.id_null_errors)
    server.send_bytes(b"Content-Length: %d\r\n\r\n" % huge)
    chunk = b"x" * (1 << 20)
    for _ in range(huge // len(chunk)):
        server.send_bytes(chunk)
    error = server.wait_id_null_errors(before + 1, timeout=60)[-1]
    assert error["error"]["code"] == INVALID_REQUEST and "refused" in error["error"]["message"]
    # 8 MiB of document (over the 4 Mi-character completion limit): kept, completions empty
    big_uri = "file:///workspace/big.py"
    big = "x = 1\n" * (8 << 20 // 6)
    server.open(big_uri, big)
    assert len(server.document_text(big_uri)) == len(big)
    result = server.result("textDocument/inlineCompletion", {"textDocument": {"uri": big_uri},
                                                             "position": {"line": 3, "character": 0},
                                                             "context": {"triggerKind": 1}})
    assert result == {"items": []}
    server.notify("textDocument/didClose", {"textDocument": {"uri": big_uri}})
    still_serving(server)
    record("fuzz_cases_sent", 2)


METHODS = ["textDocument/inlineCompletion", "textDocument/completion", "completer/complete", "completer/stats",
           "completer/documentText", "textDocument/didOpen", "textDocument/didChange", "textDocument/didClose",
           "workspace/didChangeConfiguration", "$/cancelRequest", "completer/accepted", "completer/dismissed",
           "textDocument/hover", "no/such"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
positions = st.fixed_dictionaries({"line": st.integers(-3, 10) | json_values,
                                   "character": st.integers(-3, 80) | json_values})
params = st.one_of(
    json_values,
    st.fixed_dictionaries({"textDocument": st.fixed_dictionaries({"uri": st.sampled_from([URI, "file:///x.py"])
                                                                  | json_values}),
                           "position": positions}),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(METHODS) | st.text(max_size=30), p=params, is_request=st.booleans(),
       extra=st.dictionaries(st.sampled_from(["jsonrpc", "id", "result", "error"]), json_values, max_size=2))
def test_random_messages_are_answered_and_never_break_the_server(server, method, p, is_request, extra):
    if method in ("textDocument/didChange", "textDocument/didClose", "textDocument/didOpen") \
            and isinstance(p, dict) and isinstance(p.get("textDocument"), dict) \
            and p["textDocument"].get("uri") == URI:
        p = {**p, "textDocument": {**p["textDocument"], "uri": "file:///other.py"}}  # keep the probe document
    msg = {"jsonrpc": "2.0", "method": method, "params": p, **extra}
    if method == "workspace/didChangeConfiguration":
        msg["params"] = {"settings": {"model": "/nonexistent/model.gguf"}}  # never load a real engine
    well_formed_request = is_request and "id" not in extra and "jsonrpc" not in extra
    if well_formed_request:
        msg["id"] = f"fuzz-{random.random()}"
    server.send(msg)
    if well_formed_request and method not in ("shutdown", "exit"):
        response = server.wait_response(msg["id"])
        assert ("result" in response) != ("error" in response), response
    still_serving(server)
    record("fuzz_cases_sent", 1)


@settings(max_examples=max(20, EXAMPLES // 5), deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=2000))
def test_random_bytes_as_a_body(server, body):
    try:
        json.loads(body)
        return  # valid JSON by chance: covered above
    except ValueError:
        pass
    before = len(server.id_null_errors)
    server.send_bytes(frame(body))
    assert server.wait_id_null_errors(before + 1)[-1]["error"]["code"] == PARSE
    still_serving(server)
    record("fuzz_cases_sent", 1)


def test_requests_after_shutdown_are_refused():
    s = RawServer()
    s.initialize()
    assert s.request("shutdown")["result"] is None
    response = s.request("completer/stats", {})
    assert response["error"]["code"] == INVALID_REQUEST
    s.notify("exit", None)
    assert s.proc.wait(timeout=30) == 0
    record("fuzz_cases_sent", 1)
