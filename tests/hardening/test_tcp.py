"""`completer serve --tcp`: loopback by default; anywhere else only with a token, which the first
message (initialize) must carry in initializationOptions.token, else the connection is refused."""

import json
import socket
import subprocess
import sys
import time

import psutil
import pytest

from tests.hardening.lsp import NO_ENGINE, ROOT, SERVER, encode

UNAUTHORIZED = -32001


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([*SERVER, "--tcp", "--port", str(port), *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(proc.stderr.read().decode())


def read_message(sock: socket.socket) -> dict | None:
    f = sock.makefile("rb")
    length = None
    while True:
        line = f.readline()
        if not line:
            return None
        if line.strip() == b"":
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(f.read(length))


def initialize(port: int, options: dict) -> tuple[socket.socket, dict | None]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(encode({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                         "params": {"processId": None, "rootUri": None, "capabilities": {},
                                    "initializationOptions": options}}))
    return sock, read_message(sock)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def listening_addresses(pid: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN}


def test_default_binds_loopback_only():
    proc, port = start()
    try:
        assert listening_addresses(proc.pid) == {"127.0.0.1"}
        sock, answer = initialize(port, dict(NO_ENGINE))
        assert "capabilities" in answer["result"]
        sock.close()
    finally:
        stop(proc)


def test_elsewhere_without_a_token_does_not_start():
    res = subprocess.run([*SERVER, "--tcp", "--host", "0.0.0.0", "--port", str(free_port())],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 2 and "--token-file" in res.stderr


@pytest.fixture
def token_server(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("correct-horse-battery\n")
    proc, port = start("--host", "0.0.0.0", "--token-file", str(token_file))
    yield proc, port
    stop(proc)


@pytest.mark.parametrize("options", [
    {},  # no token
    {"token": "wrong"},
    {"token": 12345},
])
def test_connection_without_the_token_is_refused(token_server, options):
    proc, port = token_server
    assert listening_addresses(proc.pid) == {"0.0.0.0"}
    sock, answer = initialize(port, {**NO_ENGINE, **options})
    assert answer["error"]["code"] == UNAUTHORIZED and answer["id"] == 1
    assert read_message(sock) is None  # and the connection is closed
    sock.close()
    # the server is still there for a client with the token
    sock, answer = initialize(port, {**NO_ENGINE, "token": "correct-horse-battery"})
    assert "capabilities" in answer["result"]
    sock.close()


def test_a_first_message_other_than_initialize_is_refused(token_server):
    _, port = token_server
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(encode({"jsonrpc": "2.0", "id": 7, "method": "completer/stats", "params": {}}))
    answer = read_message(sock)
    assert answer["error"]["code"] == UNAUTHORIZED and answer["id"] == 7
    sock.close()


def test_the_token_is_not_taken_for_a_setting(token_server):
    proc, port = token_server
    sock, answer = initialize(port, {**NO_ENGINE, "token": "correct-horse-battery"})
    assert "result" in answer
    sock.sendall(encode({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    sock.sendall(encode({"jsonrpc": "2.0", "id": 2, "method": "completer/stats", "params": {}}))
    while True:  # skip notifications ($/progress, showMessage)
        msg = read_message(sock)
        if msg.get("id") == 2:
            break
        assert "token" not in json.dumps(msg.get("params", {})).lower() or msg["method"] == "$/progress", msg
    sock.close()
