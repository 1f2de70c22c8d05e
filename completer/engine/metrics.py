"""Per-request and running speculation metrics, and the periodic log line."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class RequestMetrics:
    kind: str  # single_line / multi_line
    speculate: bool
    k: int
    tokens: int
    draft_tokens: int
    accepted_tokens: int
    latency_s: float
    first_token_s: float | None

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted_tokens / self.draft_tokens if self.draft_tokens else None


@dataclass
class MetricsLog:
    """Bounded history plus totals; the interval counters reset at each log line."""

    recent: deque = field(default_factory=lambda: deque(maxlen=100))
    speculated: int = 0
    bypassed: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0
    _interval: list[RequestMetrics] = field(default_factory=list)

    def add(self, m: RequestMetrics) -> None:
        self.recent.append(m)
        self._interval.append(m)
        if len(self._interval) > 10_000:  # nobody logged for a long time: keep memory bounded
            del self._interval[: len(self._interval) // 2]
        if m.speculate:
            self.speculated += 1
        else:
            self.bypassed += 1
        self.draft_tokens += m.draft_tokens
        self.accepted_tokens += m.accepted_tokens

    def as_dict(self) -> dict:
        return {
            "requests_speculated": self.speculated,
            "requests_bypassed": self.bypassed,
            "recent": [{**asdict(m), "acceptance_rate": m.acceptance_rate} for m in list(self.recent)[-20:]],
        }

    def log_line(self) -> str | None:
        """vLLM-style "SpecDecoding metrics" for the requests since the last line (None if none)."""
        batch, self._interval = self._interval, []
        if not batch:
            return None
        drafted = sum(m.draft_tokens for m in batch)
        accepted = sum(m.accepted_tokens for m in batch)
        spec = [m for m in batch if m.speculate]
        rate = f"{accepted / drafted:.1%}" if drafted else "n/a"
        mean_latency = sum(m.latency_s for m in batch) / len(batch)
        return (f"SpecDecoding metrics: requests {len(batch)} ({len(spec)} speculated, {len(batch) - len(spec)} "
                f"bypassed), drafted tokens {drafted}, accepted tokens {accepted}, acceptance rate {rate}, "
                f"mean latency {mean_latency:.2f} s")
