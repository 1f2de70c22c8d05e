"""Live draft acceptance per language, and the k it suggests."""

from __future__ import annotations

from dataclasses import dataclass, field

K_MIN, K_MAX = 1, 8
ALPHA_MAX = 0.999  # α = 1 would make a round's tokens unbounded in k


def expected_speedup(alpha: float, k: int, draft_cost: float) -> float:
    """Tokens per target pass over the cost of a round, relative to the target alone.

    With per-token acceptance ``alpha`` a round of k drafts yields (1 - alpha^(k+1)) / (1 - alpha)
    tokens and costs one target pass plus k draft passes of ``draft_cost`` each.
    """
    alpha = min(max(alpha, 0.0), ALPHA_MAX)
    tokens = (1 - alpha ** (k + 1)) / (1 - alpha)
    return tokens / (1 + k * draft_cost)


def accepted_per_step(alpha: float, k: float) -> float:
    """Drafts a verify step of ``k`` drafts accepts on average: α + α² + … + α^k (each draft is
    accepted with probability α, up to the first rejection); ``k`` may be a mean over steps."""
    alpha = min(max(alpha, 0.0), ALPHA_MAX)
    return alpha * (1 - alpha ** k) / (1 - alpha)


def alpha_from_counts(draft_tokens: int, accepted_tokens: int, verify_steps: int) -> float:
    """Per-token acceptance α from one request's counts (vLLM's per-request speculation metrics):
    the α whose accepted_per_step at the request's drafts per step equals its accepted per step.

    The share of drafts accepted is not α: a step stops at its first rejection, so the share falls
    as k grows (the 0.5B/1.5B pair on HumanEval accepted 78 % of its drafts at k = 3 and 69 % at
    k = 5, docs/benchmarks/latency.md: both α = 0.88). Without verify steps, the share. Solved by
    bisection (accepted_per_step grows with α)."""
    if draft_tokens <= 0:
        return 0.0
    if verify_steps <= 0:
        return accepted_tokens / draft_tokens
    k, per_step = draft_tokens / verify_steps, accepted_tokens / verify_steps
    if per_step >= accepted_per_step(ALPHA_MAX, k):
        return ALPHA_MAX
    low, high = 0.0, ALPHA_MAX
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if accepted_per_step(mid, k) < per_step else (low, mid)
    return (low + high) / 2


def best_k(alpha: float, draft_cost: float, k_min: int = K_MIN, k_max: int = K_MAX) -> int:
    """The k with the highest expected speedup (the smallest one on ties)."""
    return max(range(k_min, k_max + 1), key=lambda k: (round(expected_speedup(alpha, k, draft_cost), 6), -k))


@dataclass
class AcceptanceTracker:
    """Exponential moving average of the per-token acceptance α, per language."""

    prior: float = 0.88  # per method: speculation.PRIOR_ACCEPTANCE
    weight: float = 0.3  # how much one request moves the average
    min_drafts: int = 8  # requests with fewer drafts say too little to count
    rates: dict[str, float] = field(default_factory=dict)

    def observe(self, language: str, draft_tokens: int, accepted_tokens: int, verify_steps: int) -> None:
        """One request's counts; ``verify_steps`` 0 where unknown (α is then taken as the share accepted)."""
        if draft_tokens < self.min_drafts:
            return
        alpha = alpha_from_counts(draft_tokens, accepted_tokens, verify_steps)
        old = self.rates.get(language, self.prior)
        self.rates[language] = (1 - self.weight) * old + self.weight * alpha

    def alpha(self, language: str) -> float:
        return self.rates.get(language, self.prior)
