"""One record per completion request, from the plan to the editor's accept or dismiss.

The record's id is vLLM's request id (or `ta-…` for a type-ahead answer, which never reaches the
engine). It is sent to the editor with the suggestion and comes back with `completer/accepted` or
`completer/dismissed`, so stats, the per-request log line, `completer/complete` and the benchmarks
all read the same figures.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass

from completer.types import Completion

OUTCOMES = ("empty", "not_shown", "shown", "accepted", "accepted_partially", "dismissed")
NO_PLAN = "no_plan"  # the position asks for nothing: the engine was not asked


@dataclass
class RequestRecord:
    """What one request was planned as, what it cost, and what the user did with it.

    Times in seconds; token counts from the engine (``cached_tokens``: prompt tokens read from the
    prefix cache; ``accepted_tokens`` of ``draft_tokens`` proposed by the draft).
    """

    id: str
    kind: str  # CompletionKind value
    source: str = "model"  # or "type_ahead"
    speculate: bool = False
    k: int = 0  # draft tokens per step the request ran with (0: bypassed)
    reason: str = ""  # why the plan is what it is (policy.speculation.REASONS), or type_ahead / NO_PLAN
    tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0
    latency_s: float = 0.0
    first_token_s: float | None = None
    chars: int = 0  # length of the suggestion shown
    # seconds the policy expected of each plan, where it weighed the two prefix caches (GenerationPlan.expected_s)
    expected_s: dict[str, float] | None = None
    outcome: str = "shown"  # one of OUTCOMES

    @property
    def ran_in_engine(self) -> bool:
        return self.source == "model" and self.reason != NO_PLAN

    @classmethod
    def of(cls, request_id: str, completion: Completion, shown: bool = True) -> "RequestRecord":
        """The record of ``completion``; ``shown=False`` for answers made for a comparison, not an editor."""
        gen, plan = completion.generation, completion.plan
        speculate = bool(plan and plan.speculate)
        return cls(
            id=request_id, kind=completion.kind.value, source=completion.source, speculate=speculate,
            k=plan.num_speculative_tokens if plan and speculate else 0,
            reason=plan.reason if plan else ("type_ahead" if completion.source == "type_ahead" else NO_PLAN),
            tokens=len(gen.token_ids) if gen else 0, prompt_tokens=gen.prompt_tokens if gen else 0,
            cached_tokens=gen.cached_tokens if gen else 0, draft_tokens=gen.num_draft_tokens if gen else 0,
            accepted_tokens=gen.num_accepted_tokens if gen else 0, latency_s=gen.latency_s if gen else 0.0,
            first_token_s=gen.first_token_s if gen else None, chars=len(completion.text),
            expected_s=({"speculating": round(plan.expected_s[0], 4), "bypassed": round(plan.expected_s[1], 4)}
                        if plan and plan.expected_s else None),
            outcome=("shown" if shown else "not_shown") if completion.text else "empty")

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted_tokens / self.draft_tokens if self.draft_tokens else None

    def as_dict(self) -> dict:
        return {**asdict(self), "acceptance_rate": self.acceptance_rate}

    def log_line(self) -> str:
        rate = f"{self.acceptance_rate:.0%}" if self.acceptance_rate is not None else "-"
        return (f"completion {self.id} {self.kind} ({self.source}): plan k={self.k} ({self.reason}), "
                f"{self.tokens} tokens in {self.latency_s:.2f}s, prompt {self.prompt_tokens} "
                f"({self.cached_tokens} cached), acceptance {rate}"
                + (f", expected {self.expected_s['speculating']:.2f}s speculating / "
                   f"{self.expected_s['bypassed']:.2f}s bypassed" if self.expected_s else ""))


class RequestLog:
    """The recent records by id, totals, and the periodic "SpecDecoding metrics" line."""

    def __init__(self, keep: int = 256) -> None:
        self.keep = keep
        self.records: OrderedDict[str, RequestRecord] = OrderedDict()
        self.totals: Counter[str] = Counter()
        self._interval: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        self.records[record.id] = record
        while len(self.records) > self.keep:
            self.records.popitem(last=False)
        if record.ran_in_engine:
            self.totals["requests_speculated" if record.speculate else "requests_bypassed"] += 1
            self._interval.append(record)
            del self._interval[:-10_000]  # nobody logged for a long time: keep memory bounded

    def feedback(self, request_id: str | None, outcome: str, chars: int | None = None) -> RequestRecord | None:
        """The editor accepted or dismissed a suggestion; returns its record when it is still known.
        ``chars``: the accepted text's length, when the editor sent it (else the whole suggestion's)."""
        self.totals[outcome] += 1
        record = self.records.get(request_id) if request_id else None
        if outcome.startswith("accepted"):
            self.totals["accepted_chars"] += chars if chars is not None else (record.chars if record else 0)
        if record is not None:
            record.outcome = outcome
        return record

    def last(self) -> dict | None:
        """The newest model answer's figures, for status bars."""
        record = next((r for r in reversed(self.records.values()) if r.ran_in_engine), None)
        if record is None:
            return None
        return {"id": record.id, "latency_s": round(record.latency_s, 4), "tokens": record.tokens,
                "acceptance_rate": record.acceptance_rate, "kind": record.kind, "speculate": record.speculate,
                "k": record.k, "reason": record.reason}

    def by_plan(self) -> dict[str, dict]:
        """Per plan reason: suggestions shown, accepted, dismissed, and the share of shown ones accepted."""
        table: dict[str, Counter] = {}
        for record in self.records.values():
            if record.outcome not in ("empty", "not_shown"):
                row = table.setdefault(record.reason, Counter())
                row["shown"] += 1
                row[record.outcome] += record.outcome != "shown"
        return {reason: {"shown": row["shown"], "accepted": row["accepted"] + row["accepted_partially"],
                         "dismissed": row["dismissed"],
                         "accept_rate": (row["accepted"] + row["accepted_partially"]) / row["shown"]}
                for reason, row in table.items()}

    def as_dict(self) -> dict:
        return {
            "requests_speculated": self.totals["requests_speculated"],
            "requests_bypassed": self.totals["requests_bypassed"],
            **{key: self.totals[key] for key in ("accepted", "accepted_partially", "dismissed", "accepted_chars")},
            "last": self.last(),
            "by_plan": self.by_plan(),
            "recent": [r.as_dict() for r in list(self.records.values())[-20:]],
        }

    def log_line(self) -> str | None:
        """vLLM-style "SpecDecoding metrics" for the model answers since the last line (None if none)."""
        batch, self._interval = self._interval, []
        if not batch:
            return None
        drafted = sum(r.draft_tokens for r in batch)
        accepted = sum(r.accepted_tokens for r in batch)
        speculated = sum(r.speculate for r in batch)
        rate = f"{accepted / drafted:.1%}" if drafted else "n/a"
        mean_latency = sum(r.latency_s for r in batch) / len(batch)
        return (f"SpecDecoding metrics: requests {len(batch)} ({speculated} speculated, {len(batch) - speculated} "
                f"bypassed), drafted tokens {drafted}, accepted tokens {accepted}, acceptance rate {rate}, "
                f"mean latency {mean_latency:.2f} s")
