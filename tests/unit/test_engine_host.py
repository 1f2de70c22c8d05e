"""The engine host's lifecycle with a start_engine that fails on cue and scripted engines."""

import asyncio
from types import SimpleNamespace

import pytest
from lsprotocol.types import ClientCapabilities, InitializeParams, MessageType

import completer.engine
from completer.config import Settings
from completer.engine.interface import EngineError
from completer.server import engine_host
from completer.server.engine_host import EngineHost
from tests.unit.fake_engine import FakeEngine, until

BACKOFF_S = 0.01


class RecordingHost(EngineHost):
    """An EngineHost that keeps every state it passes through, and the wait before each restart."""

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        self.__dict__.setdefault("states", []).append(value)
        if value == "restarting":
            self.__dict__.setdefault("delays", []).append(self.next_restart_s)
        self._state = value


class Starts:
    """start_engine's stand-in: fails its first ``failures`` calls, then returns scripted engines."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.engines: list[FakeEngine] = []
        self.calls = 0

    def __call__(self, settings, progress=None) -> FakeEngine:
        self.calls += 1
        if self.calls <= self.failures:
            raise EngineError("not enough memory")
        self.engines.append(FakeEngine())
        return self.engines[-1]


def hosting(monkeypatch, failures: int, attempts: int = 3) -> tuple[RecordingHost, Starts, list]:
    """A host over a client-less server (no `$/progress`), loading through ``Starts(failures)``."""
    starts, shown = Starts(failures), []
    monkeypatch.setattr(completer.engine, "start_engine", starts)
    server = SimpleNamespace(settings=Settings(engine_restart_attempts=attempts, engine_restart_backoff_s=BACKOFF_S),
                             show=lambda kind, message: shown.append((kind, message)), client_capabilities=None,
                             work_done_progress=None)
    return RecordingHost(server), starts, shown


def deduplicated(states: list[str]) -> list[str]:
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


@pytest.mark.parametrize("failures", [0, 1, 2])
async def test_a_failed_load_restarts_with_backoff_until_ready(monkeypatch, failures):
    host, starts, shown = hosting(monkeypatch, failures)
    host.start()
    await until(lambda: host.state == "ready")
    assert deduplicated(host.states) == ["idle", "loading"] + ["failed", "restarting", "loading"] * failures + ["ready"]
    assert host.__dict__.get("delays", []) == [BACKOFF_S * 2 ** i for i in range(failures)]
    assert (host.restarts, host.failures, host.error, starts.calls) == (failures, 0, None, failures + 1)
    assert host.completer.engine is starts.engines[-1]
    assert [kind for kind, _ in shown] == ([MessageType.Error, MessageType.Info] if failures else [])


async def test_the_host_gives_up_after_its_attempts(monkeypatch):
    host, starts, shown = hosting(monkeypatch, failures=99, attempts=2)
    host.start()
    await until(lambda: starts.calls == 3 and host._load_task.done())
    assert (host.state, host.ready, host.failures, host.restarts, host.next_restart_s) == ("failed", False, 3, 2, None)
    assert host.error == "not enough memory" and "Gave up after 3 attempts" in shown[-1][1]


async def test_a_ready_engine_that_died_is_restarted(monkeypatch):
    host, starts, _ = hosting(monkeypatch, failures=0)
    host.start()
    await until(lambda: host.state == "ready")
    first = host.engine
    host.died()
    host.died()  # idempotent: one restart
    assert (host.state, host.ready, host.failures) == ("failed", False, 1)
    await until(lambda: host.state == "ready")
    await until(lambda: first.shut_down)
    assert (host.engine, host.restarts, host.failures, starts.calls) == (starts.engines[1], 1, 0, 2)


@pytest.mark.parametrize("reloading", [False, True])
async def test_died_while_no_engine_is_ready_does_nothing(monkeypatch, reloading):
    host, starts, _ = hosting(monkeypatch, failures=0)
    if reloading:
        host.start()
        await until(lambda: host.state == "ready")
        host.start()  # the old engine goes: its requests fail meanwhile
    host.died()
    assert (host.state, host.failures, host.restarts) == ("loading" if reloading else "idle", 0, 0)
    await until(lambda: host.state == ("ready" if reloading else "idle"))
    assert starts.calls == 2 * reloading


async def test_the_watchdog_notices_a_dead_engine(monkeypatch):
    monkeypatch.setattr(engine_host, "WATCHDOG_INTERVAL_S", 0.001)
    host, starts, _ = hosting(monkeypatch, failures=0)
    host.start()
    await until(lambda: host.state == "ready")
    watchdog = asyncio.ensure_future(host.watch())
    try:
        starts.engines[0].dead = True
        await until(lambda: starts.calls == 2 and host.state == "ready")
    finally:
        watchdog.cancel()
    assert (host.engine, host.restarts) == (starts.engines[1], 1)


@pytest.mark.parametrize("change,reloads", [
    ({"bypass_max_tokens": 10, "engine_restart_backoff_s": BACKOFF_S}, False),  # applies to the next request
    ({"max_num_seqs": 2, "engine_restart_backoff_s": BACKOFF_S}, True),  # needs a new engine
])
async def test_settings_reach_the_completer_and_engine_settings_reload(monkeypatch, change, reloads):
    from completer.server.app import CompleterServer

    starts = Starts(failures=0)
    monkeypatch.setattr(completer.engine, "start_engine", starts)
    server = CompleterServer()
    for _ in server.protocol.lsp_initialize(InitializeParams(capabilities=ClientCapabilities())):
        pass  # initialized by a client without `$/progress` or a transport
    server.show = lambda kind, message: None
    server.host.start()
    await until(lambda: server.host.state == "ready")
    server.apply_settings(change)
    assert server.host.state == ("loading" if reloads else "ready")
    await until(lambda: server.host.state == "ready")
    assert (starts.calls, starts.engines[0].shut_down) == (1 + reloads, reloads)
    for key, value in change.items():
        assert getattr(server.host.completer.settings, key) == value


@pytest.mark.parametrize("configured, backend, flags, expected", [
    ("bfloat16", "cpu", {"sse2", "avx2"}, "float32"),                         # AVX2 only: no native bf16
    ("auto", "cpu", {"sse2", "avx2"}, "float32"),
    ("bfloat16", "cpu", {"sse2", "avx512f", "avx512_bf16"}, "bfloat16"),     # AVX-512 with bf16
    ("bfloat16", "cpu", {"sse2", "amx_bf16", "amx_tile"}, "bfloat16"),       # AMX
    ("float16", "cpu", {"sse2", "avx2"}, "float16"),                          # set explicitly: kept
    ("float32", "cpu", {"sse2"}, "float32"),
    ("bfloat16", "cuda", {"sse2", "avx2"}, "bfloat16"),                       # the GPU computes it
    ("bfloat16", "cpu", set(), "bfloat16"),                                   # no x86 flags (aarch64)
])
def test_engine_dtype_follows_the_cpu(configured, backend, flags, expected):
    from completer.engine.environment import engine_dtype

    assert engine_dtype(configured, backend, frozenset(flags)) == expected


@pytest.mark.parametrize("cpuinfo, expected", [
    ("processor\t: 0\nflags\t\t: fpu sse2 avx2\nprocessor\t: 1\nflags\t\t: fpu sse2 avx2\n", {"fpu", "sse2", "avx2"}),
    ("processor\t: 0\nFeatures\t: fp asimd bf16\n", set()),
    ("", set()),
])
def test_cpu_flags_read_the_first_flags_line(cpuinfo, expected):
    from completer.engine.environment import cpu_flags

    assert cpu_flags(cpuinfo) == frozenset(expected)
