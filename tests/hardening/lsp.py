"""A raw LSP client for hardening tests: real `completer serve` process, real bytes on its stdio.

Synchronous on purpose: a reader thread collects every message the server writes, so tests can
send anything (including malformed bytes) and then wait for what must come back.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, "-m", "completer", "serve"]
# an engine that cannot load: the server answers at once, with empty completions
NO_ENGINE = {"model": "/nonexistent/model.gguf", "engine_restart_attempts": 0}


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def encode(obj) -> bytes:
    return frame(json.dumps(obj).encode())


class RawServer:
    def __init__(self, *, env: dict | None = None, args: tuple = (), cwd: Path = ROOT):
        self.log = tempfile.NamedTemporaryFile(prefix="completer-test-", suffix=".log", delete=False)
        # everything the server and its engine log (vLLM's records included), not only its stderr
        fd, self.full_log = tempfile.mkstemp(prefix="completer-test-", suffix=".full.log")
        os.close(fd)
        if "--log-file" not in args:
            args = (*args, "--log-file", self.full_log)
        self.proc = subprocess.Popen([*SERVER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, cwd=cwd, env={**os.environ, **(env or {})})
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self.responses: dict = {}
        self.id_null_errors: list[dict] = []
        self.notifications: list[dict] = []
        self.server_requests: list[dict] = []
        self.bytes_sent = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # ------------------------------------------------------------ wire

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line.strip() == b"":
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            msg = json.loads(out.read(length))
            with self._cond:
                if "method" in msg and "id" in msg:
                    self.server_requests.append(msg)
                    self._answer_server_request(msg)
                elif "method" in msg:
                    self.notifications.append(msg)
                elif msg.get("id") is None:
                    self.id_null_errors.append(msg)
                else:
                    self.responses[msg["id"]] = msg
                self._cond.notify_all()

    def _answer_server_request(self, msg: dict) -> None:
        # window/workDoneProgress/create and the like: say yes
        self.send({"jsonrpc": "2.0", "id": msg["id"], "result": None})

    def send_bytes(self, data: bytes) -> None:
        self.bytes_sent += len(data)
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, obj) -> None:
        self.send_bytes(encode(obj))

    # ------------------------------------------------------------ requests

    def request_async(self, method: str, params=None) -> int:
        msg_id = next(self._ids)
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, **({"params": params} if params is not None else {})})
        return msg_id

    def wait_response(self, msg_id, timeout: float = 30) -> dict:
        with self._cond:
            if not self._cond.wait_for(lambda: msg_id in self.responses or self.proc.poll() is not None, timeout):
                raise TimeoutError(f"no response to request {msg_id} in {timeout} s")
            if msg_id not in self.responses:
                raise AssertionError(f"the server exited ({self.proc.returncode}) before answering {msg_id}:\n"
                                     + self.log_text()[-3000:])
            return self.responses.pop(msg_id)

    def request(self, method: str, params=None, timeout: float = 30) -> dict:
        return self.wait_response(self.request_async(method, params), timeout)

    def result(self, method: str, params=None, timeout: float = 30):
        response = self.request(method, params, timeout)
        assert "error" not in response, response
        return response["result"]

    def notify(self, method: str, params) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait_for(self, predicate, timeout: float = 30, what: str = "condition"):
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(f"timed out waiting for {what}")

    def wait_id_null_errors(self, n: int, timeout: float = 10) -> list[dict]:
        self.wait_for(lambda: len(self.id_null_errors) >= n, timeout, f"{n} errors with id null")
        return self.id_null_errors[:n]

    # ------------------------------------------------------------ LSP

    def initialize(self, options: dict | None = None, folders: list[Path] | None = None,
                   encodings: list[str] | None = None) -> dict:
        folders = folders or [ROOT]
        params = {
            "processId": os.getpid(),
            "rootUri": folders[0].as_uri(),
            "workspaceFolders": [{"uri": f.as_uri(), "name": f.name} for f in folders],
            "capabilities": {"window": {"workDoneProgress": True},
                             "general": {"positionEncodings": encodings or ["utf-16"]}},
            "initializationOptions": options if options is not None else dict(NO_ENGINE),
        }
        result = self.result("initialize", params)
        self.notify("initialized", {})
        return result

    def stats(self) -> dict:
        return self.result("completer/stats", {})

    def wait_engine(self, states=("ready",), timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.stats()
            if s["engine"] in states:
                return s
            time.sleep(0.5)
        raise TimeoutError(f"engine not in {states} after {timeout} s: {self.stats()}")

    def open(self, uri: str, text: str, version: int = 1, language: str = "python") -> None:
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": language,
                                                              "version": version, "text": text}})

    def document_text(self, uri: str) -> str:
        return self.result("completer/documentText", {"uri": uri})["text"]

    def complete_async(self, uri: str, line: int, character: int, method: str = "textDocument/inlineCompletion") -> int:
        params = {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}
        if method == "textDocument/inlineCompletion":
            params["context"] = {"triggerKind": 1}
        return self.request_async(method, params)

    def cancel(self, msg_id: int) -> None:
        self.notify("$/cancelRequest", {"id": msg_id})

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        """The server's stderr and its log file together."""
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace") + Path(self.full_log).read_text(errors="replace")

    def close(self, timeout: float = 60) -> int:
        try:
            if self.alive():
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit", None)
            return self.proc.wait(timeout=timeout)
        except Exception:
            self.proc.kill()
            return self.proc.wait()
        finally:
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except Exception:
                    pass
            self.log.close()
            os.unlink(self.log.name)
            os.unlink(self.full_log)
