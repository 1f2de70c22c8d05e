"""Engine faults that need no engine to load: a bad model path, a cached model whose hash does
not match the catalogue, settings that cannot fit in memory. Each time the editor gets a clear
window/showMessage, completions are answered at once (empty), and the server retries with
exponential backoff a bounded number of times, then says it gave up. (The engine dying in the
middle of a request is in test_engine_hardening.py.)
"""

import os
import time

import pytest

from completer.engine.models import CATALOGUE, DEFAULT_TARGET
from tests.hardening.conftest import record
from tests.hardening.lsp import RawServer

URI = "file:///faults/a.py"


def messages(s: RawServer) -> list[str]:
    return [n["params"]["message"] for n in s.notifications if n["method"] == "window/showMessage"]


def never_blocked(s: RawServer) -> None:
    started = time.monotonic()
    result = s.result("textDocument/inlineCompletion", {"textDocument": {"uri": URI},
                                                         "position": {"line": 0, "character": 3},
                                                         "context": {"triggerKind": 1}})
    assert result == {"items": []}
    assert time.monotonic() - started < 2.0


def run_fault(options: dict, expect: str, env: dict | None = None, attempts: int = 0) -> RawServer:
    s = RawServer(env=env)
    s.initialize({"engine_restart_attempts": attempts, "engine_restart_backoff_s": 0.2, **options})
    s.open(URI, "def f():\n    return 1\n")
    never_blocked(s)
    s.wait_for(lambda: any("Gave up" in m for m in messages(s)), timeout=120, what="giving up")
    shown = messages(s)
    assert any(expect in m for m in shown), shown
    assert shown[0].startswith("completer: the engine could not start"), shown
    stats = s.stats()
    assert stats["engine"] == "failed" and expect in stats["error"]
    assert stats["engine_failures"] == attempts + 1 and stats["engine_restarts"] == attempts
    never_blocked(s)
    record("faults_injected_and_survived", 1)
    return s


def test_bad_model_path_retries_with_backoff_then_gives_up():
    s = run_fault({"model": "/nonexistent/model.gguf"}, "GGUF file not found", attempts=3)
    shown = messages(s)
    # one message when it first fails, one when it gives up: not one per attempt
    assert len(shown) == 2 and "restarting in 0.2 s" in shown[0], shown
    # a settings change starts over
    s.notify("workspace/didChangeConfiguration", {"settings": {"model": "/still/missing.gguf"}})
    s.wait_for(lambda: len(messages(s)) >= 3, timeout=60, what="a new attempt")
    assert "/still/missing.gguf" in messages(s)[2]
    assert s.close() == 0


@pytest.mark.parametrize("size", ["short", "official size"])
def test_cached_model_with_wrong_hash_is_refused(tmp_path, size):
    entry = CATALOGUE[DEFAULT_TARGET]
    gguf = tmp_path / "gguf" / entry.filename
    gguf.parent.mkdir()
    with open(gguf, "wb") as f:
        f.write(b"GGUF not really")
        if size == "official size":
            f.truncate(entry.size)  # sparse: the size matches, the SHA-256 cannot
    expect = "hash mismatch" if size == "official size" else "truncated"
    s = run_fault({}, expect, env={"COMPLETER_CACHE": str(tmp_path)})
    assert s.close() == 0
    assert not (tmp_path / "gguf" / (gguf.stem + ".verified")).exists()


def test_settings_that_cannot_fit_in_memory_are_refused():
    if not (os.path.expanduser("~/.cache/completer") or os.environ.get("COMPLETER_CACHE")):
        pytest.skip("needs the cached default models")
    s = run_fault({"max_model_len": 1_000_000, "max_num_seqs": 256}, "do not fit in memory")
    assert s.close() == 0

