"""A running vLLM server (``completer server``, or any ``vllm serve`` with completer's classes) behind
the Engine interface, over its OpenAI-compatible HTTP API.

Each request streams ``/v1/completions`` with its plan: the sampling fields, the plan's k in
``vllm_xargs`` (carried into ``SamplingParams.extra_args``, where the server's per-request scheduler
reads it) and the plan's prefix-cache salt in ``cache_salt``. Closing the stream closes the HTTP
response, and vLLM's server aborts a request whose client went away.

What the server runs is learnt at connection, without trusting the settings where it can be read:
the served model (``/v1/models``, checked against ``settings.model``), vLLM's version and so the
backend (``/version``, vllm_adapter.TESTED_VLLM), the block size and whether and with which k the
server speculates (``/metrics``). The method's name and whether completer's per-request classes run
there cannot be read: they come from the settings (speculation_policy, speculative_config.method).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import AsyncIterator

import httpx

from completer.config import Settings
from completer.context.prompt import format_for
from completer.engine import models
from completer.engine.interface import Capabilities, EngineError, new_request_id, run_to_end
from completer.engine.methods import AUTO_WITHOUT_HEAD, resolve_method
from completer.engine.vllm_adapter import METHODS, TESTED_VLLM, uses_model_runner_v2
from completer.engine.vllm_engine import BYPASS_CACHE_SALT, EngineStats, bypass_shares_prefix_cache, prompt_encoder
from completer.engine.remote_protocol import (DONE, READ_TIMEOUT_S, apply_event, base_url, http_error, metric_sum,
                                              parse_metrics, parse_sse_line, read_api_key, request_body,
                                              served_facts, served_match, transport_error)
from completer.policy.rules import speculation_with_sampling
from completer.types import Generation, GenerationPlan

log = logging.getLogger(__name__)
# httpx logs every request at INFO: a line per keystroke in the language server's log
logging.getLogger("httpx").setLevel(logging.WARNING)

CONNECT_TIMEOUT_S = 5.0  # a server on the network answers a connection at once, or is not there
CONNECT_ATTEMPTS = 2  # a stale pooled connection or a server restarting its listener: one more try
RETRY_PAUSE_S = 0.25
# requests in a row that failed for the connection (or a server error) before the engine counts as
# dead: one may be a dropped connection, the second (after its own retry) means the server is gone
DEAD_AFTER_FAILURES = 2
# the block size vLLM uses when the server's /metrics does not say (vLLM's default on a GPU)
FALLBACK_BLOCK_SIZE = 16


def remote_method(settings: Settings, backend: str, server_speculates: bool, backend_known: bool = True
                  ) -> str | None:
    """The speculation method to plan with: None where the server runs the target alone or the settings
    ask for none (per-request plans then bypass), else the settings' method as this backend resolves it.
    The client need not hold the server's EAGLE-3 head: a named method is taken as named, and a method
    the settings do not name is the one `auto` runs there with a head: a draft model on a CPU (its
    default), EAGLE-3 on a GPU (where `auto` speculates only with a head, and where planning a
    head's server as a draft model's bypasses and varies k, off its fast path: 0.91x stock fixed k
    under load, docs/benchmarks/gpu/load-run3-head). A server whose vLLM version does not say
    which backend it is (``backend_known`` False) is planned as a draft model's. Editors of a GPU
    server that drafts otherwise (draft_model, ngram_gpu) name its method in their settings."""
    configured = settings.speculative_config.method
    if not server_speculates or configured == "none":
        return None
    head = os.path.expanduser(settings.speculative_config.model)
    try:
        method = resolve_method(configured, backend, METHODS[backend], head if os.path.isdir(head) else None)
    except EngineError:
        method = configured if configured != "auto" else None
    if method is None and backend_known:
        method = AUTO_WITHOUT_HEAD.get(backend) or "eagle3"
    return method or "draft_model"


# ---------------------------------------------------------------- the engine


class RemoteEngine:
    """One vLLM server over HTTP. Build it with ``RemoteEngine.connect(settings)`` (blocking)."""

    def __init__(self, settings: Settings, url: str, api_key: str | None, model_id: str, capabilities: Capabilities,
                 block_size: int, target_dir: str, encoder=None, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        self.settings = settings
        self.url = url
        self.capabilities = capabilities
        self.target_dir = target_dir
        self.draft_dir = None  # the server holds the draft
        self.model_id = model_id
        self.failure: str | None = None  # why the last request failed, for the editor's message
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._block_size = block_size
        self._encoder = encoder
        self._stats = EngineStats()
        self._failures = 0  # requests in a row that failed for the connection or the server
        self._closed = False
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the client's connections belong to
        self._transport = transport  # tests: a mock server
        self.special_ids: dict[str, int] = {}  # the format's special tokens (stops) → the model's ids

    @classmethod
    def connect(cls, settings: Settings, progress: models.ProgressFn = models._noop,
                transport: httpx.MockTransport | None = None) -> "RemoteEngine":
        """Reach the server at settings.engine_url and check what it serves. Raises EngineError: no
        server there, the key refused, another model, or an answer that is not vLLM's."""
        url = base_url(settings.engine_url or "")
        key = read_api_key(settings)
        progress(f"connecting to {url}", None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        with httpx.Client(base_url=url, headers=headers, timeout=timeout, transport=transport) as client:
            served = _get_json(client, "/v1/models", url).get("data") or []
            version = str(_get_json(client, "/version", url).get("version", ""))
            samples = parse_metrics(_get(client, "/metrics", url).text)
        local_dir = local_model_dir(settings.model)
        model_id = served_match(served, settings.model, local_dir)
        if model_id is None:
            names = ", ".join(str(e.get("root") or e.get("id")) for e in served) or "nothing"
            raise EngineError(f"the server at {url} serves {names}, not the configured model {settings.model}")
        backend = next((b for b, versions in TESTED_VLLM.items() if version in versions), "cuda")
        backend_known = version in TESTED_VLLM[backend]
        if not backend_known:
            log.warning("the server runs vLLM %s, which completer is not tested with; planning for %s", version,
                        backend)
        block, speculates, server_k = served_facts(samples)
        method = remote_method(settings, backend, speculates, backend_known)
        k = server_k or settings.speculative_config.num_speculative_tokens
        caps = Capabilities(backend=backend, speculation_method=method, num_speculative_tokens=k if method else 0,
                            per_request_speculation=method is not None and settings.speculation_policy == "per_request",
                            speculation_with_sampling=speculation_with_sampling(backend),
                            engine_k_only=uses_model_runner_v2(backend, method))
        encoder = prompt_encoder(local_dir) if local_dir else None
        stops = format_for(settings.model).stop
        if encoder is None:
            log.warning("no local tokenizer for %s: prompts go to the server as text, where document text "
                        "that spells a special token is read as one", settings.model)
            with httpx.Client(base_url=url, headers=headers, timeout=timeout, transport=transport) as client:
                special_ids = server_special_ids(client, model_id, stops)
        else:
            special_ids = {s: i for s in stops if (i := encoder.token_id(s)) is not None}
        # a folder that does not exist makes the pipeline count tokens by its estimate
        target_dir = local_dir if encoder is not None else os.path.join(os.devnull, "remote-target")
        engine = cls(settings, url, key, model_id, caps, block or settings.block_size or FALLBACK_BLOCK_SIZE,
                     target_dir, encoder, transport)
        engine.special_ids = special_ids
        return engine

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def dead(self) -> bool:
        return self._closed or self._failures >= DEAD_AFTER_FAILURES

    def engine_pids(self) -> list[int]:
        return []  # the server's processes are not this machine's to watch

    def describe(self) -> str:
        caps = self.capabilities
        spec = f"{caps.speculation_method}" + (" per request" if caps.per_request_speculation else "")
        return (f"{self.model_id} at {self.url} on {caps.backend}, speculation: "
                f"{spec if caps.speculates else 'none'}, k {caps.num_speculative_tokens}")

    def prefix_cache(self, speculate: bool, cache_salt: str | None = None) -> str:
        """The salt a request gets: bypassed requests keep a cache of their own (VllmEngine.prefix_cache)
        unless the server's bypassed requests share it (bypass_shares_prefix_cache, which must be the
        server's: unset, both sides take it as on)."""
        if self.capabilities.per_request_speculation and not speculate \
                and not bypass_shares_prefix_cache(self.settings, team_server=True):
            return f"{cache_salt or ''}{BYPASS_CACHE_SALT}"
        return cache_salt or ""

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:  # made on first use, in the event loop that uses it
            self._loop = asyncio.get_running_loop()
            self._client = httpx.AsyncClient(base_url=self.url, headers=self._headers, transport=self._transport,
                                             timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
        return self._client

    async def _open(self, body: dict) -> httpx.Response:
        """Send the request, retrying where nothing can have run: the connection failed or was dropped
        before any answer came. Raises EngineError."""
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                request = self._http().build_request("POST", "/v1/completions", json=body)
                response = await self._http().send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.RemoteProtocolError) as err:
                if attempt == CONNECT_ATTEMPTS:
                    raise self._broken(transport_error(err, self.url)) from None
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            except httpx.HTTPError as err:
                raise self._broken(transport_error(err, self.url)) from None
            if response.status_code == 200:
                return response
            try:
                await response.aread()
                payload = response.json()
            except (httpx.HTTPError, ValueError):
                payload = response.text if response.is_stream_consumed else None
            finally:
                await response.aclose()
            message = http_error(response.status_code, payload, self.url)
            # a refused key, a model gone or a broken server: the connection is wrong, not this request
            if response.status_code in (401, 403, 404) or response.status_code >= 500:
                raise self._broken(message)
            raise EngineError(message)
        raise AssertionError("unreachable")

    def _broken(self, message: str) -> EngineError:
        self._failures += 1
        self.failure = message
        return EngineError(message)

    async def generate(self, prompt: str, plan: GenerationPlan, *, request_id: str | None = None,
                       cache_salt: str | None = None) -> AsyncIterator[Generation]:
        """Stream a generation; yields the growing result. Closing the stream closes the response,
        and the server aborts the request."""
        if self._closed:
            raise EngineError("the remote engine was shut down")
        request_id = request_id or new_request_id()
        if plan.speculate and not self.capabilities.speculates:
            raise EngineError("plan asks for speculation but the server does not speculate")
        try:
            payload = self._encoder.encode(prompt) if self._encoder is not None else str(prompt)
        except ValueError as err:
            raise EngineError(f"cannot encode the prompt: {err}") from err
        body = request_body(payload, plan, model=self.model_id,
                            per_request=self.capabilities.per_request_speculation,
                            cache_salt=self.prefix_cache(plan.speculate, cache_salt), request_id=request_id,
                            special_ids=self.special_ids)
        stats = self._stats
        started = time.perf_counter()
        result = Generation(text="")
        stats.requests_started += 1
        stats.running.add(request_id)
        outcome = "stopped"  # the consumer stopped reading: closing the response aborts the rest
        try:
            response = await self._open(body)
            self._failures, self.failure = 0, None
            try:
                async for line in response.aiter_lines():
                    event = parse_sse_line(line)
                    if event is None or event is DONE:  # after DONE the body ends: its connection is kept
                        continue
                    apply_event(event, result)
                    if result.first_token_s is None and (result.token_ids or result.text):
                        result.first_token_s = time.perf_counter() - started
                    result.latency_s = time.perf_counter() - started
                    if event.get("choices"):
                        yield result
            except httpx.HTTPError as err:
                raise self._broken(transport_error(err, self.url)) from None
            finally:
                await asyncio.shield(response.aclose())
            outcome = "finished"
        except asyncio.CancelledError:
            outcome = "aborted"
            log.info("request %s cancelled after %d tokens; closing its stream", request_id, len(result.token_ids))
            raise
        except EngineError:
            outcome = "failed"
            raise
        finally:
            stats.running.discard(request_id)
            stats.record(outcome, result)

    async def complete(self, prompt: str, plan: GenerationPlan, *, request_id: str | None = None,
                       cache_salt: str | None = None) -> Generation:
        return await run_to_end(self.generate(prompt, plan, request_id=request_id, cache_salt=cache_salt))

    def stats(self) -> dict:
        return self._stats.as_dict()

    async def unfinished_requests(self) -> int:
        """Requests the server runs or queues, for every client (vLLM's gauges, summed over its engines)."""
        try:
            response = await self._http().get("/metrics")
            response.raise_for_status()
        except httpx.HTTPError as err:
            raise EngineError(transport_error(err, self.url)) from None
        samples = parse_metrics(response.text)
        return int(metric_sum(samples, "vllm:num_requests_running") + metric_sum(samples, "vllm:num_requests_waiting"))

    def shutdown(self) -> None:
        """Close the connections (the server keeps running). Idempotent; callable from any thread (the
        engine host calls it from a worker thread): the client closes in the event loop that made it."""
        self._closed = True
        client, self._client = self._client, None
        loop, self._loop = self._loop, None
        if client is None or loop is None or loop.is_closed():
            return  # never used, or its loop is gone and its sockets with it
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(client.aclose())
        else:
            asyncio.run_coroutine_threadsafe(client.aclose(), loop)


def local_model_dir(model: str) -> str | None:
    """The local folder of ``model`` when one is here already, else None: a folder, or a GGUF file's
    (a catalogue model's) converted folder. Nothing is fetched, verified or converted for a client."""
    path = Path(model).expanduser()
    if path.is_dir():
        try:
            return models.resolve(str(path))
        except models.ModelError:
            return None
    gguf = path if path.suffix == ".gguf" else \
        models.cache_dir() / "gguf" / models.CATALOGUE[model].filename if model in models.CATALOGUE else None
    if gguf is None or not gguf.is_file():
        return None
    folder = models.converted_dir(gguf)
    return str(folder) if (folder / "completer-converted.json").is_file() else None


def server_special_ids(client: httpx.Client, model_id: str, tokens: tuple[str, ...]) -> dict[str, int]:
    """The ids of the special ``tokens`` by the server's tokenizer (/tokenize reads a special token
    in text as one id); those it does not know, or all when it has no /tokenize, are left out."""
    ids = {}
    for token in tokens:
        try:
            answer = client.post("/tokenize", json={"model": model_id, "prompt": token, "add_special_tokens": False})
            found = answer.json().get("tokens") if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError) as err:
            log.warning("the server's /tokenize failed (%s): stop tokens go as text", type(err).__name__)
            return ids
        if isinstance(found, list) and len(found) == 1:
            ids[token] = found[0]
    return ids


def _get(client: httpx.Client, path: str, url: str) -> httpx.Response:
    try:
        response = client.get(path)
    except httpx.HTTPError as err:
        raise EngineError(transport_error(err, url)) from None
    if response.status_code != 200:
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        raise EngineError(http_error(response.status_code, payload, url))
    return response


def _get_json(client: httpx.Client, path: str, url: str) -> dict:
    try:
        payload = _get(client, path, url).json()
    except ValueError:
        raise EngineError(f"{url}{path} did not answer JSON: is it a vLLM server?") from None
    if not isinstance(payload, dict):
        raise EngineError(f"{url}{path} answered {type(payload).__name__}, not an object: is it a vLLM server?")
    return payload
