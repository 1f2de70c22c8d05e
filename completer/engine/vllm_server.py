"""`completer server`: vLLM's own OpenAI-compatible server, started from the in-process engine's plan.

The server gets exactly the engine arguments the in-process engine would (vllm_engine.plan_engine),
as command-line flags: completer's per-request scheduler and worker classes, the speculative and
additional config, the memory plan. Each request's plan then travels in the completion request's
``vllm_xargs`` (into ``SamplingParams.extra_args``) and its prefix-cache salt in ``cache_salt``.
vLLM's own flags (tensor, pipeline and data parallelism, Ray) pass through unchanged.

The API key goes to the server in its environment (``VLLM_API_KEY``), never on its command line,
where `ps` and vLLM's "non-default args" log line would show it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from completer.config import Settings
from completer.engine.interface import EngineError
from completer.engine.models import ProgressFn, _noop

if TYPE_CHECKING:
    from completer.engine.vllm_engine import EnginePlan

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
API_KEY_ENV = "VLLM_API_KEY"
# booleans vLLM's argparse takes only as a bare flag (store_true, off by default): no --no- form
STORE_TRUE_ONLY = frozenset({"disable_log_stats"})
# this process's own vLLM logging file config: the server writes its records to its own output
PARENT_ONLY_ENV = ("VLLM_LOGGING_CONFIG_PATH", "VLLM_CONFIGURE_LOGGING", API_KEY_ENV)
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
# where clients find the key (remote.py reads them)
ENGINE_API_KEY_ENV = "COMPLETER_ENGINE_API_KEY"
API_KEY_FILE_SETTING = "engine_api_key_file"


class ServerError(EngineError):
    """vLLM's server did not start, or stopped."""


def serve_args(engine_args: dict) -> list[str]:
    """AsyncEngineArgs fields as vLLM's command-line flags: ``--kebab-case VALUE``, dicts as JSON,
    booleans as ``--flag`` / ``--no-flag``; None leaves vLLM's default."""
    argv: list[str] = []
    for key, value in engine_args.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            if value:
                argv.append(flag)
            elif key not in STORE_TRUE_ONLY:
                argv.append("--no-" + flag[2:])
        elif isinstance(value, dict):
            argv += [flag, json.dumps(value, separators=(",", ":"))]
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


@dataclass
class ServerCommand:
    """How to start one server: its command line, the environment it adds, the engine plan behind them."""

    argv: list[str]
    env: dict[str, str]  # set over this process's environment
    plan: "EnginePlan | None"  # the models, capabilities and memory it runs with


def plan_server(settings: Settings, *, host: str, port: int, extra_vllm_args: Sequence[str] = (),
                api_key: str | None = None, progress: ProgressFn = _noop) -> ServerCommand:
    """The server's command line and environment for ``settings`` (the models resolved and checked
    as for the in-process engine). Raises models.ModelError, memory.DoesNotFit, EngineError."""
    from completer.engine.vllm_engine import plan_engine

    env = dict(os.environ)
    plan = plan_engine(settings, progress, environ=env, team_server=True)
    extra = {k: v for k, v in env.items() if os.environ.get(k) != v}
    # the engine process imports completer's scheduler and worker classes by name
    root = str(Path(__file__).resolve().parents[2])
    extra["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    if api_key:
        extra[API_KEY_ENV] = api_key
    names = list(dict.fromkeys([settings.model, plan.target_dir]))  # what /v1/models lists
    # --enable-prompt-tokens-details: each answer's usage says how much of its prompt came from the
    # prefix cache, which the policy's prefill-speed and cache measurements read
    argv = [sys.executable, "-m", SERVER_MODULE, *serve_args(plan.args), "--served-model-name", *names,
            "--enable-prompt-tokens-details", "--host", host, "--port", str(port), *extra_vllm_args]
    return ServerCommand(argv, extra, plan)


def server_command(settings: Settings, *, host: str, port: int, extra_vllm_args: Sequence[str] = (),
                   api_key: str | None = None, progress: ProgressFn = _noop) -> tuple[list[str], dict]:
    """``(argv, extra environment)`` that start vLLM's server for ``settings`` (plan_server)."""
    command = plan_server(settings, host=host, port=port, extra_vllm_args=extra_vllm_args,
                          api_key=api_key, progress=progress)
    return command.argv, command.env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def url_for(host: str, port: int) -> str:
    """The address this machine reaches the server at (a wildcard bind: the loopback address)."""
    host = "127.0.0.1" if host in WILDCARD_HOSTS else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def public_url(host: str, port: int) -> str:
    """The address other machines reach the server at (a wildcard bind: this machine's name)."""
    return url_for(socket.getfqdn() if host in WILDCARD_HOSTS else host, port)


def log_tail(path: Path | None, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path else ""
    except OSError:
        return ""


class ServerProcess:
    """A running vLLM server, in a process group of its own (its engine processes with it)."""

    def __init__(self, proc: subprocess.Popen, url: str, log_path: Path, command: ServerCommand):
        self.proc = proc
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.log_path = log_path
        self.plan = command.plan

    def wait_ready(self, timeout_s: float = 600.0, poll_s: float = 1.0) -> None:
        """Until ``GET /health`` answers 200; ServerError with the log's tail if the server exits
        or ``timeout_s`` passes."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"vLLM's server exited with code {self.proc.returncode} while starting "
                                  f"(log {self.log_path}):\n{log_tail(self.log_path)}")
            try:
                if httpx.get(f"{self.url}/health", timeout=poll_s * 5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(poll_s)
        raise ServerError(f"vLLM's server was not ready after {timeout_s:.0f} s (log {self.log_path}):\n"
                          f"{log_tail(self.log_path)}")

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (vLLM shuts its engine down), SIGKILL after ``timeout_s``; then whatever is left of
        its process group. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # engine processes its exit left behind
        except (ProcessLookupError, PermissionError):
            pass
        return self.proc.returncode


def start_server(settings: Settings, *, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 extra_vllm_args: Sequence[str] = (), log_path: str | Path | None = None,
                 progress: ProgressFn = _noop) -> ServerProcess:
    """Start vLLM's server for ``settings`` (``port`` 0: a free one); it writes its output to
    ``log_path`` (default: a new file in completer's logs folder). Returns at once: call
    ``wait_ready``. Raises models.ModelError, memory.DoesNotFit, EngineError."""
    from completer import logs

    port = port or free_port("127.0.0.1" if host in WILDCARD_HOSTS else host)
    command = plan_server(settings, host=host, port=port, extra_vllm_args=extra_vllm_args, api_key=api_key,
                          progress=progress)
    if log_path is None:
        logs.logs_dir().mkdir(parents=True, exist_ok=True)
        log_path = logs.default_log_file("vllm-server", logs.logs_dir())
    log_path = Path(log_path)
    env = {k: v for k, v in os.environ.items() if k not in PARENT_ONLY_ENV}
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(command.argv, env={**env, **command.env}, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return ServerProcess(proc, url_for(host, port), log_path, command)
