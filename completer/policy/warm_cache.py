"""Whether a request should take the other plan (speculate or bypass) because that plan's prefix cache holds its prompt.

Speculating and bypassed requests keep separate prefix caches (the draft model writes no KV for a
bypassed request). While the user types, a request's prompt mostly matches the last one's; when the
last one took the other plan, only that plan's cache holds the prompt. On a CPU, reading 1,500
prompt tokens again costs far more than speculation saves, or costs, on a completion, so the plan
whose cache is warm wins. The cost of each plan comes from what recent requests measured.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field


@dataclass
class RecentPrompts:
    """The last few prompts each prefix cache has read: an estimate of what it still holds."""

    size: int = 8
    prompts: dict[str, deque[str]] = field(default_factory=dict)

    def remember(self, cache: str, prompt: str) -> None:
        self.prompts.setdefault(cache, deque(maxlen=self.size)).append(prompt)

    def cached_chars(self, cache: str, prompt: str) -> int:
        """Length of the longest start of ``prompt`` that a remembered prompt shares."""
        return max((len(os.path.commonprefix([seen, prompt])) for seen in self.prompts.get(cache, ())), default=0)


@dataclass
class StepCosts:
    """Seconds per prompt token read and per token decoded by the target alone, and what one draft
    token adds to a step relative to it (moving averages of this machine's own requests)."""

    prefill_s: float | None = None
    decode_s: float | None = None
    draft_cost: float | None = None
    weight: float = 0.3
    min_prompt_tokens: int = 128  # fewer read tokens: the first token's decode step dominates
    min_new_tokens: int = 3

    def observe(self, *, read_tokens: int, first_token_s: float | None, new_tokens: int, latency_s: float) -> None:
        """One request the target ran alone: ``read_tokens`` prompt tokens not found in the cache."""
        if first_token_s is None:
            return
        if read_tokens >= self.min_prompt_tokens:
            self.prefill_s = self._average(self.prefill_s, first_token_s / read_tokens)
        if new_tokens >= self.min_new_tokens and latency_s > first_token_s:
            self.decode_s = self._average(self.decode_s, (latency_s - first_token_s) / (new_tokens - 1))

    def observe_speculated(self, *, first_token_s: float | None, latency_s: float, verify_steps: int, k: int) -> None:
        """One speculated request: its steps after the first token each verified ``k`` drafts.
        A step costs one target step plus k draft tokens: (step / decode_s - 1) / k, at most 2.

        Negative where a speculated step takes less than a bypassed one, so that drafting pays even
        when nothing is accepted. (On vLLM's Model Runner V2 an EAGLE-3 engine's k = 0 steps ran
        0.3-0.8x the target alone's speed on an H200, docs/benchmarks/gpu/bypass-graphs/; the policy
        bypasses nothing there, so this is not measured on such engines.)"""
        if first_token_s is None or self.decode_s is None or k < 1 or verify_steps < self.min_new_tokens:
            return
        step_s = (latency_s - first_token_s) / verify_steps
        sample = min((step_s / self.decode_s - 1) / k, 2.0)
        self.draft_cost = self._average(self.draft_cost, sample)

    def _average(self, old: float | None, sample: float) -> float:
        return sample if old is None else (1 - self.weight) * old + self.weight * sample

    @property
    def known(self) -> bool:
        return self.prefill_s is not None and self.decode_s is not None


def expected_seconds(costs: StepCosts, read_tokens: int, new_tokens: int, *, speculate: bool,
                     speedup: float, draft_cost: float) -> float:
    """Prefill of the uncached prompt (the draft reads it too when speculating) plus the decode."""
    assert costs.prefill_s is not None and costs.decode_s is not None
    prefill = read_tokens * costs.prefill_s * (1 + max(draft_cost, 0.0) if speculate else 1)
    decode = new_tokens * costs.decode_s / (speedup if speculate else 1)
    return prefill + decode


def plan_seconds(costs: StepCosts, *, planned_speculate: bool, prompt_tokens: int, cached_if_speculating: int,
                 cached_if_bypassed: int, new_tokens: int, speedup: float, draft_cost: float,
                 block_tokens: int) -> tuple[float, float] | None:
    """(speculating, bypassed): the seconds each plan is expected to take, where the plan other than
    the planned one finds at least a block more of its prompt in its cache and this machine's step
    costs are known; else None: the planned plan stands.

    A long request planned to speculate right after a one-line (bypassed) one finds its prompt
    only in the bypass's cache, and a one-line request right after a speculating block request
    only in the speculating one. With both caches equally warm (or cold) there is nothing to weigh.
    """
    planned, other = ((cached_if_speculating, cached_if_bypassed) if planned_speculate
                      else (cached_if_bypassed, cached_if_speculating))
    if not costs.known or other - planned < block_tokens:
        return None
    speculating = expected_seconds(costs, prompt_tokens - cached_if_speculating, new_tokens, speculate=True,
                                   speedup=speedup, draft_cost=draft_cost)
    bypassed = expected_seconds(costs, prompt_tokens - cached_if_bypassed, new_tokens, speculate=False,
                                speedup=speedup, draft_cost=draft_cost)
    return speculating, bypassed


def other_plan_sooner(seconds: tuple[float, float] | None, planned_speculate: bool) -> bool:
    """Whether the plan other than the planned one is expected to finish first, from plan_seconds'
    (speculating, bypassed); False where nothing was weighed."""
    if seconds is None:
        return False
    speculating, bypassed = seconds
    return bypassed < speculating if planned_speculate else speculating < bypassed
