"""`completer server`'s command line: the in-process engine's arguments as vLLM's flags, the key kept
out of the command line, the server's process watched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from completer.config import Settings
from completer.engine import vllm_engine, vllm_server
from completer.engine.vllm_server import ServerError, ServerProcess, serve_args, server_command

KEY = "s3cret-key-value"
CONFIG = {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
          "num_key_value_heads": 2, "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 1000}


@pytest.mark.parametrize("args, expected", [
    ({"model": "/m", "max_num_seqs": 4}, ["--model", "/m", "--max-num-seqs", "4"]),
    ({"gpu_memory_utilization": 0.9}, ["--gpu-memory-utilization", "0.9"]),
    ({"enforce_eager": True}, ["--enforce-eager"]),
    ({"enforce_eager": False}, ["--no-enforce-eager"]),
    ({"trust_remote_code": False, "async_scheduling": True}, ["--no-trust-remote-code", "--async-scheduling"]),
    ({"disable_log_stats": False}, []),  # store_true only: off is vLLM's default
    ({"disable_log_stats": True}, ["--disable-log-stats"]),
    ({"speculative_config": None}, []),
    ({"speculative_config": {"method": "ngram", "num_speculative_tokens": 3}},
     ["--speculative-config", '{"method":"ngram","num_speculative_tokens":3}']),
    ({"additional_config": {"completer_batch_k_limits": {"4": 0}}},
     ["--additional-config", '{"completer_batch_k_limits":{"4":0}}']),
    ({"served_model_name": ["a", "b"]}, ["--served-model-name", "a", "b"]),
    ({"scheduler_cls": "pkg.mod.Cls"}, ["--scheduler-cls", "pkg.mod.Cls"]),
])
def test_engine_arguments_as_vllms_flags(args, expected):
    assert serve_args(args) == expected


def test_every_flag_the_engine_uses_is_one_vllms_server_takes():
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = AsyncEngineArgs.add_cli_args(FlexibleArgumentParser())
    args = {"model": "/m", "enforce_eager": True, "enable_prefix_caching": False, "trust_remote_code": False,
            "disable_log_stats": False, "async_scheduling": False, "seed": 0, "max_model_len": 4096,
            "speculative_config": {"method": "ngram", "num_speculative_tokens": 3},
            "additional_config": {"completer_draft_prefill": False},
            "scheduler_cls": "pkg.Sched", "worker_cls": "pkg.Worker", "per_request_spec_decode_metrics": "summary"}
    parsed = vars(parser.parse_args(serve_args(args)))
    assert {k: parsed[k] for k in args} == args


@pytest.fixture
def pair(tmp_path, monkeypatch):
    """A target and a draft folder (configs only) on the CPU backend."""
    for name in ("target", "draft"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(CONFIG))
    monkeypatch.setattr(vllm_engine, "detect_backend", lambda: "cpu")
    return Settings(model=str(tmp_path / "target"),
                    speculative_config={"method": "draft_model", "model": str(tmp_path / "draft")})


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_server_gets_the_in_process_engines_arguments_and_classes(pair):
    before = dict(os.environ)
    argv, env = server_command(pair, host="127.0.0.1", port=8123, api_key=KEY,
                               extra_vllm_args=["--tensor-parallel-size", "2"])
    plan = vllm_engine.plan_engine(pair, environ=dict(os.environ), team_server=True)
    in_process = vllm_engine.plan_engine(pair, environ=dict(os.environ))
    assert os.environ == before  # the environment is the server's, not this process's
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert " ".join(serve_args(plan.args)) in " ".join(argv)
    assert flag(argv, "--scheduler-cls") == "completer.engine.vllm_extension.PolicyScheduler"
    assert flag(argv, "--worker-cls") == "completer.engine.vllm_extension.PolicyCPUWorker"
    assert json.loads(flag(argv, "--speculative-config")) == plan.args["speculative_config"]
    assert json.loads(flag(argv, "--speculative-config"))["method"] == "draft_model"
    assert json.loads(flag(argv, "--additional-config")) == plan.args["additional_config"]
    # a team's server: bypassed requests' prompts are read by the draft too (one prefix cache)
    assert plan.args["additional_config"]["completer_draft_prefill"]
    assert not in_process.args["additional_config"].get("completer_draft_prefill")
    assert flag(argv, "--served-model-name") == pair.model
    assert (flag(argv, "--host"), flag(argv, "--port")) == ("127.0.0.1", "8123")
    assert "--enable-prompt-tokens-details" in argv  # answers report their cached prompt tokens
    assert argv[-2:] == ["--tensor-parallel-size", "2"]
    assert not any(KEY in a for a in argv) and "--api-key" not in argv
    assert env[vllm_server.API_KEY_ENV] == KEY
    assert env["HF_HUB_OFFLINE"] == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    # set over this process's environment: where the tests set the variable, the server inherits it
    assert env.get("VLLM_CPU_OMP_THREADS_BIND", os.environ.get("VLLM_CPU_OMP_THREADS_BIND"))
    assert "VLLM_CPU_KVCACHE_SPACE" not in env
    assert int(flag(argv, "--kv-cache-memory-bytes")) == plan.memory.kv_bytes


def test_without_a_key_the_server_gets_none_even_from_this_processs_environment(pair, monkeypatch, tmp_path):
    started = {}

    class Recorded:
        def __init__(self, argv, env, **_):
            started.update(argv=argv, env=env)
            self.pid = 0

    monkeypatch.setenv(vllm_server.API_KEY_ENV, "inherited")
    monkeypatch.setenv("VLLM_LOGGING_CONFIG_PATH", str(tmp_path / "parent.json"))
    monkeypatch.setattr(vllm_server.subprocess, "Popen", Recorded)
    server = vllm_server.start_server(pair, port=8124, log_path=tmp_path / "server.log")
    assert server.url == "http://127.0.0.1:8124" and server.port == 8124
    assert vllm_server.API_KEY_ENV not in started["env"]
    assert "VLLM_LOGGING_CONFIG_PATH" not in started["env"]  # the server logs to its own output
    # the engine process imports completer's classes from this checkout
    assert started["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(Path(vllm_server.__file__).resolve().parents[2])


@pytest.mark.parametrize("setting, team_server, expected", [
    (None, True, True),  # unset: a team's server shares one prefix cache
    (None, False, False),  # in-process: a one-line request does not pay the draft's prefill
    (True, False, True),
    (False, True, False),
])
def test_whether_bypassed_requests_share_the_prefix_cache(setting, team_server, expected):
    settings = Settings(bypass_shares_prefix_cache=setting)
    assert vllm_engine.bypass_shares_prefix_cache(settings, team_server) is expected


def test_a_server_that_exits_while_starting_is_reported_with_its_logs_tail(tmp_path):
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "print('ValueError: no such model'); raise SystemExit(3)"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = ServerProcess(proc, "http://127.0.0.1:9", log, vllm_server.ServerCommand([], {}, None))
    with pytest.raises(ServerError, match=r"(?s)exited with code 3.*no such model"):
        server.wait_ready(timeout_s=60, poll_s=0.05)
    assert server.stop() == 3


def test_a_server_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    server = ServerProcess(proc, "http://127.0.0.1:9", tmp_path / "none.log", vllm_server.ServerCommand([], {}, None))
    assert server.stop(timeout_s=10) == -15


@pytest.mark.parametrize("host, port, local, public", [
    ("127.0.0.1", 8000, "http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("::1", 8000, "http://[::1]:8000", "http://[::1]:8000"),
    ("10.0.0.5", 80, "http://10.0.0.5:80", "http://10.0.0.5:80"),
])
def test_urls(host, port, local, public):
    assert vllm_server.url_for(host, port) == local
    assert vllm_server.public_url(host, port) == public


def test_a_wildcard_bind_is_reached_here_at_the_loopback_address_and_elsewhere_by_name():
    import socket

    assert vllm_server.url_for("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert vllm_server.public_url("0.0.0.0", 8000) == f"http://{socket.getfqdn()}:8000"


# ---------------------------------------------------------------- the command


class FakeServer:
    """What start_server returns, for a server that is ready at once and is then stopped by Ctrl-C."""

    def __init__(self, settings, *, host, port, api_key, extra_vllm_args, progress):
        from completer.engine.interface import Capabilities

        self.called = dict(settings=settings, host=host, port=port, api_key=api_key, extra=tuple(extra_vllm_args))
        self.port, self.log_path, self.stopped = port, "/tmp/server.log", 0
        self.url, self.pid, self.records = f"http://{host}:{port}", os.getpid(), None
        caps = Capabilities(backend="cpu", speculation_method="draft_model", num_speculative_tokens=5,
                            per_request_speculation=True, speculation_with_sampling=False)
        self.plan = vllm_engine.EnginePlan({}, caps, None, "/models/target", "/models/draft")
        self.proc = self

    def wait_ready(self):
        pass

    def wait(self):
        from completer.engine import discovery

        self.records = discovery.read_records(discovery.runtime_dir())  # what local clients find meanwhile
        raise KeyboardInterrupt

    def stop(self):
        self.stopped += 1


@pytest.fixture
def fake_server(monkeypatch, tmp_path):
    started = []
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))

    def start(settings, **kwargs):
        started.append(FakeServer(settings, **kwargs))
        return started[-1]

    monkeypatch.setattr(vllm_server, "start_server", start)
    monkeypatch.delenv(vllm_server.ENGINE_API_KEY_ENV, raising=False)
    return started


def run_server(*args, env=None):
    from click.testing import CliRunner

    from completer.cli import main

    return CliRunner().invoke(main, ["server", *args], env=env)


def test_vllms_own_flags_pass_through_and_editors_are_told_how_to_connect(fake_server):
    result = run_server("--port", "8100", "-k", "3", "--tensor-parallel-size", "2",
                        "--distributed-executor-backend", "ray")
    assert result.exit_code == 0, result.output
    server = fake_server[0]
    assert server.called["extra"] == ("--tensor-parallel-size", "2", "--distributed-executor-backend", "ray")
    assert server.called["settings"].speculative_config.num_speculative_tokens == 3
    assert (server.called["host"], server.called["port"], server.called["api_key"]) == ("127.0.0.1", 8100, None)
    assert "completer serve --engine-url http://127.0.0.1:8100" in result.stdout
    assert "draft_model per request" in result.stdout
    assert server.stopped == 1
    record, = server.records  # published while it ran, for `completer complete` here; gone after
    assert (record.url, record.pid, record.key_required) == ("http://127.0.0.1:8100", os.getpid(), False)
    assert set(record.models) == {server.called["settings"].model, "/models/target"}
    from completer.engine import discovery
    assert not discovery.read_records(discovery.runtime_dir())


def test_the_key_comes_from_a_file_or_the_environment_and_is_never_printed(fake_server, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    from_file = run_server("--host", "0.0.0.0", "--api-key-file", str(key_file))
    from_env = run_server(env={vllm_server.ENGINE_API_KEY_ENV: KEY})
    for result, server in zip((from_file, from_env), fake_server):
        assert result.exit_code == 0, result.output
        assert server.called["api_key"] == KEY
        assert KEY not in result.output and vllm_server.API_KEY_FILE_SETTING in result.stdout
    assert "warning" not in from_file.output


def test_binding_beyond_this_machine_without_a_key_warns(fake_server):
    result = run_server("--host", "0.0.0.0")
    assert result.exit_code == 0 and "warning: --host 0.0.0.0 is reachable from other machines" in result.output


def test_an_empty_key_file_is_refused(fake_server, tmp_path):
    from completer.cli import EXIT_BAD_INPUT

    (tmp_path / "key").write_text("\n")
    result = run_server("--api-key-file", str(tmp_path / "key"))
    assert result.exit_code == EXIT_BAD_INPUT and "is empty" in result.output and not fake_server


def test_a_missing_catalogue_model_says_how_to_fetch_it(tmp_path, monkeypatch):
    from completer.cli import EXIT_ENGINE

    monkeypatch.setenv("COMPLETER_CACHE", str(tmp_path))
    result = run_server()
    assert result.exit_code == EXIT_ENGINE
    assert "is not in the cache" in result.output and "completer models fetch" in result.output
