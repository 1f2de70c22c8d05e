"""The classes completer loads into vLLM's own engine processes (``scheduler_cls``, ``worker_cls``).

Each request carries its plan in ``SamplingParams.extra_args[PLAN_KEY]`` (k, 0 = bypass). The
scheduler turns the plans of a step's requests into the step's k (policy/steps.py) and gives each
request at most its own k drafts (a greedy bypassed one, those of a step that drafts for others,
where the drafter read all its tokens); the worker skips the drafter on steps whose plan is 0, so a short
request costs what the target alone costs. How each runner drives its drafter, and why the skip
sits where it does, is in docs/design/gpu-runners.md:

- sync engines (the CPU; on CUDA the V1 runner: draft_model, ngram, ngram_gpu): the runner drafts
  after each step and hands the drafts to ``Scheduler.update_draft_token_ids``, which trims them;
  a skipped step is vLLM's own "input does not fit in the drafter" path.
- CUDA Model Runner V2 with asynchronous scheduling (eagle3): drafts never come back to the
  scheduler. ``AsyncScheduler._update_after_schedule`` gives each request placeholders for the next
  step's drafts, so that is where a request's count is set; the runner's speculator proposes for
  every step unless the step is marked bypass-only.

Every vLLM name used here is listed in vllm_adapter.CONTRACT. Nothing here is imported by
completer's own process: vLLM imports the classes by qualified name, and they are built on first
access so that importing this module does not import vLLM.
"""

from __future__ import annotations

import functools

# the policy's rules, applied inside vLLM's scheduler: the one place the engine imports from policy/
from completer.policy.rules import speculation_allowed
from completer.policy.steps import drafter_read_all, drafts_kept, keep_k, plans_k, request_k, step_plan

ADDITIONAL_CONFIG_K_LIMITS = "completer_batch_k_limits"
ADDITIONAL_CONFIG_DRAFT_PREFILL = "completer_draft_prefill"
ADDITIONAL_CONFIG_SAMPLING = "completer_speculation_with_sampling"
ADDITIONAL_CONFIG_BYPASS_GRAPHS = "completer_bypass_graphs"
ADDITIONAL_CONFIG_SKIP_SPECULATOR = "completer_skip_speculator"
ADDITIONAL_CONFIG_PIECEWISE_FALLBACKS = "completer_piecewise_fallbacks"
SKIP_DRAFT = "completer_skip_draft"  # set on a SchedulerOutput whose step needs no drafter


class StepPlanning:
    """The policy's per-step rules on top of a vLLM scheduler (mixed into Scheduler or AsyncScheduler)."""

    def _init_planning(self) -> None:
        extra = self.vllm_config.additional_config or {}
        # policy/rules.py: whether the backend's rejection sampler handles sampled rows
        self.speculation_with_sampling = bool(extra.get(ADDITIONAL_CONFIG_SAMPLING))
        self.batch_k_limits = {int(b): int(k) for b, k in (extra.get(ADDITIONAL_CONFIG_K_LIMITS) or {}).items()}
        self.draft_prefill = bool(extra.get(ADDITIONAL_CONFIG_DRAFT_PREFILL))
        self.drafted_k = 0  # the k of the last scheduled step: the drafts it produces, at most
        self.plans_k = 0  # the k its requests' plans asked for (drafted_k without the draft-prefill rule)
        # request id → whether the drafter has read every token the request computed (sync engines)
        self.drafter_read: dict[str, bool] = {}
        if self.num_spec_tokens:
            # a lookup table switches vLLM to per-step k (and off its fixed-k padding of new requests)
            self.dynamic_sd_lookup = [self.num_spec_tokens] * (self.scheduler_config.max_num_seqs + 1)

    def _k(self, request) -> int:
        params = request.sampling_params
        if params is None:
            return self.num_spec_tokens
        return request_k(params.extra_args, params.temperature, self.num_spec_tokens, self.speculation_with_sampling)

    def _forbidden(self, request) -> bool:
        """A request that may not draft at all (not merely one planned at k = 0)."""
        params = request.sampling_params
        return params is not None and not speculation_allowed(params.temperature, self.speculation_with_sampling)

    def _keep(self, request) -> int:
        """The k this request keeps drafts up to in the last scheduled step (policy/steps.keep_k).
        Only greedy requests keep drafts they did not plan: a sampled one's seeded output would
        then depend on its neighbours."""
        params = request.sampling_params
        sampled = params is not None and params.temperature > 0  # every request _forbidden names is sampled
        return keep_k(self._k(request), sampled, self.plans_k, self.drafter_read.get(request.request_id, False))

    def _note_drafter_reads(self, output, requests: list) -> None:
        """After a step is scheduled (num_computed_tokens already counts its tokens): whether the
        drafter will have read every token of each of its requests. Finished requests are
        forgotten, and preempted ones too: they resume from the prefix cache, as on a first step."""
        preempted = getattr(output, "preempted_req_ids", None) or set()
        read = {}
        for r in requests:
            before = r.num_computed_tokens - output.num_scheduled_tokens[r.request_id]
            prior = None if r.request_id in preempted else self.drafter_read.get(r.request_id)
            read[r.request_id] = drafter_read_all(prior, before, self.drafted_k)
        self.drafter_read = {rid: v for rid, v in self.drafter_read.items()
                             if rid in self.requests and rid not in preempted} | read

    def _plan_step(self, output) -> list:
        """Set the step's k on ``output`` and mark a step no request drafts in; returns its requests."""
        requests = [self.requests[r] for r in output.num_scheduled_tokens if r in self.requests]
        ks, forbidden = [self._k(r) for r in requests], any(self._forbidden(r) for r in requests)
        self.plans_k = plans_k(ks, forbidden, self.batch_k_limits)
        output.num_spec_tokens_to_schedule = step_plan(
            ks, forbidden, [output.num_scheduled_tokens[r.request_id] for r in requests], self.batch_k_limits,
            self.draft_prefill)
        # the worker may skip the drafter only if no request in the step needs it
        setattr(output, SKIP_DRAFT, bool(requests) and output.num_spec_tokens_to_schedule == 0)
        self.drafted_k = output.num_spec_tokens_to_schedule
        return requests


def _policy_scheduler_class():
    from vllm.v1.core.sched.scheduler import Scheduler

    class PolicyScheduler(Scheduler, StepPlanning):
        """Per-request k for engines whose drafts come back to the scheduler (synchronous scheduling)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._init_planning()

        def schedule(self, *args, **kwargs):
            output = super().schedule(*args, **kwargs)
            if self.num_spec_tokens:
                self._note_drafter_reads(output, self._plan_step(output))
            return output

        def update_draft_token_ids(self, draft_token_ids):
            # each request keeps its own k (a bypassed one, the step's where the drafter read it
            # all), and nothing after a step that skipped the drafter (the runner then reports K
            # zeros per request)
            for i, req_id in enumerate(draft_token_ids.req_ids):
                request = self.requests.get(req_id)
                if request is not None:
                    del draft_token_ids.draft_token_ids[i][drafts_kept(self._keep(request), self.drafted_k):]
            super().update_draft_token_ids(draft_token_ids)

    return PolicyScheduler


def _policy_async_scheduler_class():
    from vllm.v1.core.sched.async_scheduler import AsyncScheduler

    class PolicyAsyncScheduler(AsyncScheduler, StepPlanning):
        """Per-request k under asynchronous scheduling (CUDA Model Runner V2): each request's draft
        placeholders for the next step are its own k, or none after a bypass-only step."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._init_planning()
            self._placeholders = [[-1] * n for n in range(self.num_spec_tokens + 1)]  # shared, read-only

        def _update_after_schedule(self, scheduler_output) -> None:
            requests = self._plan_step(scheduler_output) if self.num_spec_tokens else []
            super()._update_after_schedule(scheduler_output)
            for request in requests:
                if not request.is_prefill_chunk:
                    n = drafts_kept(self._k(request), scheduler_output.num_spec_tokens_to_schedule)
                    request.spec_token_ids = self._placeholders[n]

    return PolicyAsyncScheduler


def record_step_plan(runner) -> None:
    """Keep on ``runner._completer_skip_draft`` whether the step the runner executes is bypass-only
    (the scheduler's mark on its SchedulerOutput); the drafting that follows reads it."""
    execute_model = runner.execute_model
    runner._completer_skip_draft = False

    def execute_model_with_plan(scheduler_output, *args, **kwargs):
        runner._completer_skip_draft = getattr(scheduler_output, SKIP_DRAFT, False)
        return execute_model(scheduler_output, *args, **kwargs)

    runner.execute_model = execute_model_with_plan


def skip_drafter_when_planned(runner) -> None:
    """V1 runners (the CPU's and CUDA's): on a bypass-only step, report that the input does not fit
    in the drafter, vLLM's own path for a step without drafts."""
    fits = runner._input_fits_in_drafter
    record_step_plan(runner)

    def input_fits_in_drafter(common_attn_metadata):
        return not runner._completer_skip_draft and fits(common_attn_metadata)

    runner._input_fits_in_drafter = input_fits_in_drafter


def skip_speculator_when_planned(runner) -> None:
    """CUDA Model Runner V2: its speculator proposes after every step; on a bypass-only step return
    its last drafts instead. No request reads them: the scheduler gave none of that step's requests
    placeholders. Warm-up and profiling runs (``dummy_run``) always propose."""
    speculator = runner.speculator
    if speculator is None:
        return
    propose = speculator.propose
    record_step_plan(runner)

    def propose_unless_skipped(input_batch, *args, dummy_run: bool = False, **kwargs):
        if runner._completer_skip_draft and not dummy_run:
            return speculator.draft_tokens[: input_batch.num_reqs]
        return propose(input_batch, *args, dummy_run=dummy_run, **kwargs)

    speculator.propose = propose_unless_skipped


def capture_bypass_decode_graphs(runner) -> None:
    """Model Runner V2 captures FULL decode CUDA graphs only for steps where every request verifies
    the engine's K drafts (query length K + 1); a bypass-only step (query length 1) falls back to
    piecewise graphs and costs more than the target alone. After the runner built its graph
    manager, rebuild the manager's candidates for both query lengths, the way vLLM does for its own
    per-batch-size k (speculative_config.num_speculative_tokens_per_batch_size), which is set only
    while the candidates are built: left set, it would also reshape the speculator's graphs."""
    manager = runner.cudagraph_manager
    spec = runner.vllm_config.speculative_config
    if manager is None or not manager.cudagraph_mode or spec is None or spec.num_speculative_tokens_per_batch_size:
        return
    most = runner.vllm_config.scheduler_config.max_num_seqs
    spec.num_speculative_tokens_per_batch_size = [(1, most, spec.num_speculative_tokens), (1, most, 0)]
    try:
        manager._candidates, manager._capture_descs = {}, {}
        manager._init_candidates()
    finally:
        spec.num_speculative_tokens_per_batch_size = None


def with_piecewise_fallbacks(candidates: dict, mixed: list) -> dict:
    """Model Runner V2's CUDA-graph candidates (``{(num_tokens, loras): [descriptor, ...]}``, tried in
    order) with a mixed-mode (piecewise) descriptor appended wherever a list has none.

    With speculation, vLLM 0.26 files the full graphs for uniform steps of K + 1 tokens a request
    under token counts that are multiples of K + 1 (6, 12, 18 ... for K = 5). The counts up to such
    a key get only that full graph, which fits a uniform step only: any other step of 5-6 or
    9-12 tokens (five or six bypassed requests, one drafting request beside a few bypassed) finds
    no graph and runs eagerly, measured at ~13 ms a step on an H200 against ~2.5 with graphs. The
    fallback is the smallest captured mixed-mode descriptor that holds as many tokens; it adds no
    capture, only a choice vLLM's own dispatcher makes for every other count."""
    repaired = {}
    for (num_tokens, loras), descs in candidates.items():
        fallback = None
        if all(d.uniform_token_count is not None for d in descs):
            fitting = [d for d in mixed if d.num_tokens >= num_tokens and d.num_active_loras == loras]
            fallback = min(fitting, key=lambda d: d.num_tokens, default=None)
        repaired[(num_tokens, loras)] = [*descs, fallback] if fallback is not None else descs
    return repaired


def add_piecewise_fallbacks(runner) -> None:
    """``with_piecewise_fallbacks`` on the runner's graph manager, once its candidates exist."""
    manager = runner.cudagraph_manager
    if manager is None or not manager.cudagraph_mode:
        return
    mixed = manager._capture_descs.get(manager.cudagraph_mode.mixed_mode(), [])
    manager._candidates = with_piecewise_fallbacks(manager._candidates, mixed)


def _policy_cpu_worker_class():
    from vllm.v1.worker.cpu_worker import CPUWorker

    class PolicyCPUWorker(CPUWorker):
        """Skips the drafter on steps the scheduler marked as bypass-only."""

        def init_device(self):
            super().init_device()
            skip_drafter_when_planned(self.model_runner)

    return PolicyCPUWorker


def _policy_gpu_worker_class():
    from vllm.v1.worker.gpu_worker import Worker

    class PolicyGPUWorker(Worker):
        """Skips the drafter (V1 runner) or the speculator (Model Runner V2) on bypass-only steps."""

        def init_device(self):
            super().init_device()
            runner = self.model_runner
            extra = self.vllm_config.additional_config or {}
            if self.use_v2_model_runner:
                if extra.get(ADDITIONAL_CONFIG_SKIP_SPECULATOR, True):
                    skip_speculator_when_planned(runner)
                # defaults as measured on an H200 (docs/benchmarks/gpu/README.md): the piecewise fallbacks
                # made batches of 8 1.5-1.6x faster; the extra full graphs made batch 1 slower
                after_graph_manager = [f for key, f, default in (
                    (ADDITIONAL_CONFIG_BYPASS_GRAPHS, capture_bypass_decode_graphs, False),
                    (ADDITIONAL_CONFIG_PIECEWISE_FALLBACKS, add_piecewise_fallbacks, True)) if extra.get(key, default)]
                if after_graph_manager:
                    initialize_kv_cache = runner.initialize_kv_cache

                    def initialize_kv_cache_and_graphs(*args, **kwargs):
                        initialize_kv_cache(*args, **kwargs)
                        for change in after_graph_manager:
                            change(runner)

                    runner.initialize_kv_cache = initialize_kv_cache_and_graphs
            elif runner.speculative_config is not None:
                skip_drafter_when_planned(runner)

    return PolicyGPUWorker


_CLASSES = {"PolicyScheduler": _policy_scheduler_class, "PolicyAsyncScheduler": _policy_async_scheduler_class,
            "PolicyCPUWorker": _policy_cpu_worker_class, "PolicyGPUWorker": _policy_gpu_worker_class}


@functools.cache
def __getattr__(name: str):
    # vLLM imports these by qualified name in its own processes
    if name in _CLASSES:
        return _CLASSES[name]()
    raise AttributeError(name)
