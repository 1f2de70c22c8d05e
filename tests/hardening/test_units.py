"""Table-driven tests of the pure parts: framing, envelopes, tokens, backoff, workspace confinement."""

import asyncio
import os

import pytest

from completer.server.supervisor import LatestPerDocument, backoff_delay, restart_plan
from completer.server.listeners import is_loopback
from completer.server.transport import (INVALID_PARAMS, INVALID_REQUEST, content_length, envelope_problem,
                                        strip_token, token_matches)
from completer.server.workspace_files import is_inside_workspace, read_workspace_file


@pytest.mark.parametrize("line, expected", [
    (b"Content-Length: 12\r\n", 12),
    (b"content-length:7\r\n", 7),
    (b"CONTENT-LENGTH:   0  \r\n", 0),
    (b"Content-Length: -1\r\n", None),
    (b"Content-Length: 1e3\r\n", None),
    (b"Content-Length: 9999999999999\r\n", None),  # more than 12 digits: not a length we take
    (b"Content-Type: application/vscode-jsonrpc\r\n", None),
    (b"\x00\xff garbage\r\n", None),
])
def test_content_length(line, expected):
    assert content_length(line) == expected


def _req(**kw):
    return {"jsonrpc": "2.0", "id": 1, "method": "m", **kw}


@pytest.mark.parametrize("obj, expected", [
    (_req(), None),
    (_req(params={}), None),
    (_req(params=[]), None),
    ({"jsonrpc": "2.0", "method": "n"}, None),  # a notification
    ({"jsonrpc": "2.0", "id": "x", "result": None}, None),  # a response
    ([_req()], (None, INVALID_REQUEST, True)),
    (42, (None, INVALID_REQUEST, True)),
    ("text", (None, INVALID_REQUEST, True)),
    (None, (None, INVALID_REQUEST, True)),
    ({"id": 1, "method": "m"}, (1, INVALID_REQUEST, True)),  # no jsonrpc
    (_req(jsonrpc="1.0"), (1, INVALID_REQUEST, True)),
    (_req(id=1.5), (None, INVALID_REQUEST, True)),
    (_req(id=True), (None, INVALID_REQUEST, True)),
    (_req(id={"a": 1}), (None, INVALID_REQUEST, True)),
    (_req(id=None), (None, INVALID_REQUEST, True)),
    (_req(method=3), (1, INVALID_REQUEST, True)),
    (_req(method=""), (1, INVALID_REQUEST, True)),
    (_req(params=5), (1, INVALID_PARAMS, True)),
    ({"jsonrpc": "2.0", "method": "n", "params": "s"}, (None, INVALID_PARAMS, False)),  # never answer a notification
    ({"jsonrpc": "2.0"}, (None, INVALID_REQUEST, True)),
    (_req(error=None), (1, INVALID_REQUEST, True)),  # a request that looks like a response too
    ({"jsonrpc": "2.0", "method": "n", "result": 1}, (None, INVALID_REQUEST, False)),
    ({"jsonrpc": "2.0", "id": 4}, (4, INVALID_REQUEST, True)),
])
def test_envelope_problem(obj, expected):
    problem = envelope_problem(obj)
    got = None if problem is None else (problem.msg_id, problem.code, problem.answer)
    assert got == expected


def _init(options):
    return {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"initializationOptions": options}}


@pytest.mark.parametrize("expected_token, message, ok", [
    (None, {"anything": 1}, True),
    ("s3cret", _init({"token": "s3cret"}), True),
    ("s3cret", _init({"token": "wrong"}), False),
    ("s3cret", _init({"token": 5}), False),
    ("s3cret", _init({}), False),
    ("s3cret", _init(None), False),
    ("s3cret", {"jsonrpc": "2.0", "id": 0, "method": "shutdown"}, False),
    ("s3cret", [1, 2], False),
])
def test_token_matches(expected_token, message, ok):
    assert token_matches(expected_token, message) is ok


def test_strip_token_keeps_settings():
    message = _init({"token": "s3cret", "max_tokens": 8})
    strip_token(message)
    assert message["params"]["initializationOptions"] == {"max_tokens": 8}


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.4", False), ("example.org", False),
])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("attempt, base, expected", [
    (0, 2.0, 0.0), (1, 2.0, 2.0), (2, 2.0, 4.0), (3, 2.0, 8.0), (20, 2.0, 300.0), (3, 0.0, 0.0),
])
def test_backoff_delay(attempt, base, expected):
    assert backoff_delay(attempt, base) == expected


@pytest.mark.parametrize("failures, max_attempts, expected", [
    (1, 3, 1.0), (3, 3, 4.0), (4, 3, None), (1, 0, None),
])
def test_restart_plan(failures, max_attempts, expected):
    assert restart_plan(failures, max_attempts, 1.0) == expected


async def test_latest_request_per_document_wins():
    latest = LatestPerDocument()

    async def request(uri):
        task = asyncio.current_task()
        latest.claim(uri, task)
        try:
            await asyncio.sleep(10)
        finally:
            latest.release(uri, task)

    a1 = asyncio.ensure_future(request("a"))
    b1 = asyncio.ensure_future(request("b"))
    await asyncio.sleep(0)
    a2 = asyncio.ensure_future(request("a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert a1.cancelled() and not b1.done() and not a2.done()
    assert latest.superseded == 1 and len(latest) == 2
    latest.cancel("b")
    await asyncio.sleep(0)
    assert b1.cancelled()
    a2.cancel()
    await asyncio.sleep(0)
    assert len(latest) == 0


@pytest.fixture
def tree(tmp_path):
    """workspace/{a.py, sub/b.py, out_link → outside/, file_link → outside/secret.txt, in_link → sub}"""
    ws, outside = tmp_path / "workspace", tmp_path / "outside"
    (ws / "sub").mkdir(parents=True)
    outside.mkdir()
    (ws / "a.py").write_text("a = 1\n")
    (ws / "sub" / "b.py").write_text("b = 2\n")
    (outside / "secret.txt").write_text("secret\n")
    os.symlink(outside, ws / "out_link")
    os.symlink(outside / "secret.txt", ws / "file_link")
    os.symlink(ws / "sub", ws / "in_link")
    (tmp_path / "workspace-evil").mkdir()  # a sibling whose name starts like the workspace
    (tmp_path / "workspace-evil" / "x.py").write_text("x\n")
    return ws


@pytest.mark.parametrize("rel, inside", [
    ("a.py", True),
    ("sub/b.py", True),
    ("sub/../a.py", True),
    ("in_link/b.py", True),  # a link that stays inside
    ("out_link/secret.txt", False),  # a folder link leading out
    ("file_link", False),  # a file link leading out
    ("../outside/secret.txt", False),
    ("sub/../../outside/secret.txt", False),
    ("../workspace-evil/x.py", False),  # prefix of the name is not containment
    ("missing.py", True),  # inside, even if absent (reading it then fails)
])
def test_is_inside_workspace(tree, rel, inside):
    assert is_inside_workspace(tree / rel, [tree.as_uri()]) is inside
    assert is_inside_workspace(tree / rel, [str(tree)]) is inside


def test_no_workspace_folders_means_nothing_is_inside(tree):
    assert not is_inside_workspace(tree / "a.py", [])


@pytest.mark.parametrize("rel, text", [
    ("a.py", "a = 1\n"), ("in_link/b.py", "b = 2\n"), ("file_link", None), ("out_link/secret.txt", None),
    ("missing.py", None),
])
def test_read_workspace_file(tree, rel, text):
    assert read_workspace_file(tree / rel, [tree.as_uri()]) == text


def test_read_workspace_file_refuses_binary_and_huge(tree):
    (tree / "bin.dat").write_bytes(b"\0\1\2")
    (tree / "big.py").write_text("x" * 2000)
    assert read_workspace_file(tree / "bin.dat", [str(tree)]) is None
    assert read_workspace_file(tree / "big.py", [str(tree)], max_bytes=1000) is None


def test_trust_remote_code_is_off_unless_configured():
    from completer.config import Settings, parse_settings

    assert Settings().trust_remote_code is False
    assert parse_settings({"model": "x"})[0].trust_remote_code is False
    assert parse_settings({"trustRemoteCode": True})[0].trust_remote_code is True


@pytest.mark.parametrize("name", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"])
def test_engine_environment_is_offline(monkeypatch, name):
    from completer.config import Settings
    from completer.engine.environment import prepare_environment

    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != name})  # a private copy
    prepare_environment(Settings(), None, "cpu")
    assert os.environ[name] == "1"
