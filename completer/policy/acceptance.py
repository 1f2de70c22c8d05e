"""Live draft acceptance per language, and the k it suggests."""

from __future__ import annotations

from dataclasses import dataclass, field

K_MIN, K_MAX = 1, 8


def expected_speedup(alpha: float, k: int, draft_cost: float) -> float:
    """Tokens per target pass over the cost of a round, relative to the target alone.

    With per-token acceptance ``alpha`` a round of k drafts yields (1 - alpha^(k+1)) / (1 - alpha)
    tokens and costs one target pass plus k draft passes of ``draft_cost`` each.
    """
    alpha = min(max(alpha, 0.0), 0.999)
    tokens = (1 - alpha ** (k + 1)) / (1 - alpha)
    return tokens / (1 + k * draft_cost)


def best_k(alpha: float, draft_cost: float, k_min: int = K_MIN, k_max: int = K_MAX) -> int:
    """The k with the highest expected speedup (the smallest one on ties)."""
    return max(range(k_min, k_max + 1), key=lambda k: (round(expected_speedup(alpha, k, draft_cost), 6), -k))


@dataclass
class AcceptanceTracker:
    """Exponential moving average of the draft acceptance rate, per language."""

    prior: float = 0.75
    weight: float = 0.3  # how much one request moves the average
    min_drafts: int = 8  # requests with fewer drafts say too little to count
    rates: dict[str, float] = field(default_factory=dict)

    def observe(self, language: str, draft_tokens: int, accepted_tokens: int) -> None:
        if draft_tokens < self.min_drafts:
            return
        rate = accepted_tokens / draft_tokens
        old = self.rates.get(language, self.prior)
        self.rates[language] = (1 - self.weight) * old + self.weight * rate

    def alpha(self, language: str) -> float:
        return self.rates.get(language, self.prior)
