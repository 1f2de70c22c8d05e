"""Value objects that cross layers: context → policy → engine → postprocess."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class CompletionKind(str, Enum):
    """What the cursor position asks for (decided from the text and syntax tree)."""

    EMPTY = "empty"  # nothing sensible to complete (e.g. inside a word that continues)
    SINGLE_LINE = "single_line"
    MULTI_LINE = "multi_line"


@dataclass(frozen=True)
class Context:
    """What the model sees, and what postprocessing needs to judge its answer."""

    language: str  # tree-sitter language name, or "text"
    prefix: str  # text before the cursor, as sent (possibly cut)
    suffix: str  # text after the cursor, as sent (possibly cut)
    prompt: str  # the full model prompt
    kind: CompletionKind
    line_prefix: str  # text on the cursor's line before the cursor
    line_suffix: str  # text on the cursor's line after the cursor
    full_prefix: str = ""  # untruncated text before the cursor (for re-parsing)
    full_suffix: str = ""  # untruncated text after the cursor
    prompt_tokens: int = 0
    may_grow: bool = False  # a single-line completion at the end of a line may grow into a block
    held_back: str = ""  # typed text the prompt leaves for the model to write again (builder.held_back)


@dataclass(frozen=True)
class GenerationPlan:
    """How to run one request: decided by the policy, executed by the engine."""

    max_tokens: int
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    min_tokens: int = 0  # tokens before a stop token may end the answer
    speculate: bool = True
    num_speculative_tokens: int = 5
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    reason: str = ""  # why the policy planned it so (policy.speculation.REASONS)
    # (speculating, bypassed) seconds the warm-cache comparison expected, where it weighed the two plans
    expected_s: tuple[float, float] | None = None


@dataclass
class Generation:
    """What the engine produced for one request."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the prefix cache
    latency_s: float = 0.0
    first_token_s: float | None = None
    num_draft_tokens: int = 0
    num_accepted_tokens: int = 0
    num_verify_steps: int = 0  # target passes that checked drafts (vLLM's per-request metrics)

    @property
    def acceptance_rate(self) -> float | None:
        if not self.num_draft_tokens:
            return None
        return self.num_accepted_tokens / self.num_draft_tokens


@dataclass(frozen=True)
class Completion:
    """The answer shown to the user."""

    text: str
    kind: CompletionKind
    generation: Generation | None = None
    plan: GenerationPlan | None = None
    source: str = "model"  # or "type_ahead": the rest of the previous suggestion, no model call
    version: int | None = None  # the document version it was made for
    request_id: str | None = None  # the engine's request id (type-ahead: its own); the editor reports it back
