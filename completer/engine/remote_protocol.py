"""The wire format of vLLM's OpenAI-compatible server, as the remote engine (remote.py) speaks it:
the server's URL and key, a plan's /v1/completions body, the streamed events, /metrics, and which
served model is the configured one. Pure functions: tested without a server.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

import httpx

from completer.config import Settings
from completer.engine.interface import EngineError
from completer.policy.steps import PLAN_KEY
from completer.types import Generation, GenerationPlan

API_KEY_ENV = "COMPLETER_ENGINE_API_KEY"
# between two chunks of a stream: a busy server's prefill of a long prompt on a CPU takes seconds
READ_TIMEOUT_S = 60.0


def base_url(url: str) -> str:
    """The server's root URL from ``url`` (with or without a trailing /v1). Raises EngineError."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EngineError(f"engine_url {url!r} is not an http:// or https:// URL")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    return f"{parts.scheme}://{parts.netloc}{path}"


def read_api_key(settings: Settings, environ=os.environ) -> str | None:
    """The server's API key: engine_api_key_file's content, else $COMPLETER_ENGINE_API_KEY, else None.
    Raises EngineError (naming the file, never its content) when the file cannot be read or is empty."""
    if settings.engine_api_key_file:
        path = os.path.expanduser(settings.engine_api_key_file)
        try:
            key = open(path, encoding="utf-8").read().strip()
        except OSError as err:
            raise EngineError(f"cannot read engine_api_key_file {path}: {err.strerror}") from None
        if not key:
            raise EngineError(f"engine_api_key_file {path} is empty")
        return key
    return environ.get(API_KEY_ENV, "").strip() or None


def split_stops(stop: tuple[str, ...], stop_token_ids: tuple[int, ...],
                special_ids: dict[str, int]) -> tuple[list[str], list[int]]:
    """(stop strings, stop token ids) for the server: a stop string that is one of the model's special
    tokens goes as its id. The server takes few stop strings (VLLM_MAX_STOP_STRINGS, 4 by default), and
    with skip_special_tokens such a string could only match the token spelt out in ordinary tokens."""
    ids = list(dict.fromkeys([*stop_token_ids, *(special_ids[s] for s in stop if s in special_ids)]))
    return [s for s in dict.fromkeys(stop) if s not in special_ids], ids


def request_body(prompt: str | list[int], plan: GenerationPlan, *, model: str, per_request: bool,
                 cache_salt: str, request_id: str, special_ids: dict[str, int] | None = None) -> dict:
    """The /v1/completions body for one plan: vLLM's SamplingParams fields as the in-process engine sets
    them (vllm_adapter.sampling_params), the plan's k in vllm_xargs, its prefix-cache salt."""
    stop, stop_token_ids = split_stops(plan.stop, plan.stop_token_ids, special_ids or {})
    body = {
        "model": model, "prompt": prompt, "max_tokens": plan.max_tokens, "min_tokens": plan.min_tokens,
        "temperature": plan.temperature, "top_p": plan.top_p, "seed": plan.seed,
        "stop": stop, "stop_token_ids": stop_token_ids, "skip_special_tokens": True,
        "stream": True, "stream_options": {"include_usage": True}, "return_token_ids": True,
        "request_id": request_id,
    }
    if per_request:
        body["vllm_xargs"] = {PLAN_KEY: plan.num_speculative_tokens if plan.speculate else 0}
    if cache_salt:  # the server refuses an empty salt
        body["cache_salt"] = cache_salt
    return body


DONE = object()  # the stream's last event


def parse_sse_line(line: str):
    """One line of the server's event stream: its JSON object, DONE, or None (blank, comment, other
    field). Raises EngineError for a line that says ``data:`` but holds no JSON object."""
    if not line.startswith("data:"):
        return None
    data = line[len("data:"):].strip()
    if data == "[DONE]":
        return DONE
    try:
        event = json.loads(data)
    except ValueError:
        raise EngineError(f"the server sent an event that is not JSON: {data[:80]!r}") from None
    if not isinstance(event, dict):
        raise EngineError(f"the server sent an event that is not an object: {data[:80]!r}")
    return event


def error_message(payload) -> str | None:
    """The message of an OpenAI-style error object ({"error": {"message": ...}} or {"message": ...})."""
    if not isinstance(payload, dict):
        return None
    inner = payload.get("error", payload)
    if isinstance(inner, dict):
        return inner.get("message") or None
    return str(inner) if inner else None


def apply_event(event: dict, result: Generation) -> None:
    """Add one streamed chunk to ``result``: the delta text and token ids, the finish reason, and from
    the last chunk the prompt's token counts and the request's speculation counts."""
    message = error_message(event) if "error" in event else None
    if message:
        raise EngineError(f"the server failed the request: {message}")
    for choice in event.get("choices") or ():
        result.text += choice.get("text") or ""
        result.token_ids += choice.get("token_ids") or []
        if choice.get("finish_reason"):
            result.finish_reason = choice["finish_reason"]
    usage = event.get("usage") or {}
    if usage:
        result.prompt_tokens = usage.get("prompt_tokens") or 0
        result.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    spec = (event.get("metrics") or {}).get("speculative_decoding") or {}
    if spec:
        result.num_draft_tokens = spec.get("num_draft_tokens") or 0
        result.num_accepted_tokens = spec.get("num_accepted_draft_tokens") or 0
        result.num_verify_steps = spec.get("num_spec_steps") or 0


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of Prometheus' text format: (name, labels, value)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels = {}
        for pair in rest.rstrip("}").split('",') if rest else ():
            key, _, val = pair.partition("=")
            labels[key.strip(" ,")] = val.strip().strip('"')
        try:
            samples.append((name.strip(), labels, float(value)))
        except ValueError:
            continue
    return samples


def metric_sum(samples, name: str) -> float:
    """A metric summed over its labels (every engine of a data-parallel server)."""
    return sum(value for n, _, value in samples if n == name)


def served_facts(samples) -> tuple[int | None, bool, int]:
    """(block size, whether the server speculates, its k) from its /metrics."""
    block = next((int(labels["block_size"]) for n, labels, _ in samples
                  if n == "vllm:cache_config_info" and labels.get("block_size", "").isdigit()), None)
    speculates = any(n.startswith("vllm:spec_decode_num_drafts") for n, _, _ in samples)
    positions = {labels.get("position") for n, labels, _ in samples
                 if n.startswith("vllm:spec_decode_num_accepted_tokens_per_pos")}
    return block, speculates, len(positions - {None})


def _names(value: str | None) -> set[str]:
    if not value:
        return set()
    trimmed = value.rstrip("/")
    return {trimmed, os.path.basename(trimmed)}


def served_match(served: list[dict], configured: str, local_dir: str | None) -> str | None:
    """The id of the served model that is the configured one, or None.

    A served model matches when its id or its root (the path or repo id the server loaded) equals
    the configured name (catalogue name, repo id, path) or its local folder, or has the same last
    path part: ``completer server`` on another machine loads the same converted folder name."""
    wanted = _names(configured) | _names(local_dir)
    for entry in served:
        if (_names(entry.get("id")) | _names(entry.get("root"))) & wanted:
            return entry.get("id")
    return None


def http_error(status: int, payload, url: str) -> str:
    if status in (401, 403):
        return f"the server at {url} refused the API key (HTTP {status}); check engine_api_key_file " \
               f"or ${API_KEY_ENV}"
    detail = error_message(payload) or (payload if isinstance(payload, str) else "")
    return f"the server at {url} answered HTTP {status}" + (f": {str(detail)[:300]}" if detail else "")


def transport_error(err: httpx.HTTPError, url: str) -> str:
    if isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout)):
        return f"no engine server at {url} ({type(err).__name__})"
    if isinstance(err, httpx.TimeoutException):
        return f"the server at {url} sent nothing for {READ_TIMEOUT_S:g} s"
    return f"the connection to the server at {url} broke ({type(err).__name__})"
