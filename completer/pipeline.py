"""The whole completion pipeline in one readable function: context → plan → engine → postprocess."""

from __future__ import annotations

import logging
from contextlib import aclosing
from dataclasses import replace

from completer.config import Settings
from completer.context.builder import build_context, left_the_held_back, without_held_back
from completer.context.prompt import format_for
from completer.context.tokens import CharEstimateCounter, HFTokenCounter, TokenCounter, stop_token_ids
from completer.policy.acceptance import AcceptanceTracker, expected_speedup
from completer.policy.classify import grown_kind
from completer.policy.planner import choose_k, may_speculate, plan_request
from completer.policy.warm_cache import RecentPrompts, StepCosts, other_plan_pays
from completer.postprocess.pipeline import block_finished, postprocess
from completer.types import Completion, CompletionKind, Generation

log = logging.getLogger(__name__)


class Completer:
    """Binds one engine to the settings and the model's tokenizer."""

    def __init__(self, engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.fim = format_for(settings.model)
        self.acceptance = AcceptanceTracker()
        self.recent_prompts = RecentPrompts()
        self.step_costs = StepCosts()
        try:
            self.counter: TokenCounter = HFTokenCounter(engine.target_dir)
        except Exception:
            self.counter = CharEstimateCounter()
        self.stop_token_ids = stop_token_ids(self.counter, self.fim.stop)

    async def complete(self, text: str, offset: int, language: str, *, stop_early: bool = True, tree=None,
                       neighbours=(), path: str = "", repo: str = "", k: int | None = None,
                       cache_salt: str | None = None) -> Completion:
        """The completion at ``offset`` (an index into ``text``).

        ``stop_early=False`` lets the engine run to its own stop (max_tokens, stop
        tokens), so that token streams can be compared exactly. ``tree`` is the
        document's current syntax tree, ``neighbours`` (path, windows) of other
        documents for cross-file snippets; ``k`` overrides the policy's speculation
        (0: the target alone), for benchmarks.
        """
        s = self.settings
        ctx = self.context(text, offset, language, tree=tree, neighbours=neighbours, path=path, repo=repo)
        if ctx.kind is CompletionKind.EMPTY:
            return Completion(text="", kind=ctx.kind)
        plan = plan_request(ctx, s, engine_speculates=self.engine.speculates, backend=self.engine.backend,
                            tracker=self.acceptance)
        plan = replace(plan, stop=plan.stop + self.fim.stop, stop_token_ids=self.stop_token_ids)
        if k is not None:
            plan = replace(plan, speculate=k > 0, num_speculative_tokens=k)
        elif s.warm_cache_plan and s.enable_prefix_caching and self._other_cache_is_warmer(ctx, plan, cache_salt):
            speculate = not plan.speculate
            log.debug("%s: the other plan's prefix cache holds more of the prompt",
                      "speculating" if speculate else "bypassing speculation")
            plan = replace(plan, speculate=speculate,
                           num_speculative_tokens=choose_k(s, ctx.language, self.acceptance) if speculate else 0)
        generation = Generation(text="")
        try:
            # stream, and stop the engine as soon as the shown text can no longer change
            async with aclosing(self.engine.generate(ctx.prompt, plan, cache_salt=cache_salt)) as stream:
                async for generation in stream:
                    if left_the_held_back(generation.text, ctx.held_back):
                        log.debug("the model did not write the held-back %r; no answer", ctx.held_back)
                        generation = replace(generation, text="")
                        break
                    generation = replace(generation, text=without_held_back(generation.text, ctx.held_back))
                    if ctx.may_grow and ctx.kind is CompletionKind.SINGLE_LINE:
                        kind = grown_kind(ctx.line_prefix, generation.text)
                        if kind is not None:
                            ctx = replace(ctx, kind=kind, may_grow=False)
                    if not stop_early:
                        continue
                    if ctx.kind is CompletionKind.SINGLE_LINE and ctx.may_grow is False and "\n" in generation.text:
                        break  # the line is complete and opens nothing
                    if ctx.kind is CompletionKind.MULTI_LINE and block_finished(generation.text, ctx):
                        log.debug("block closed after %d tokens; stopping early", len(generation.token_ids))
                        break
        finally:
            # a request cancelled after its first token has still filled the cache with its prompt
            self._remember(ctx.prompt, plan, generation, cache_salt)
        if plan.speculate:
            self.acceptance.observe(language, generation.num_draft_tokens, generation.num_accepted_tokens)
        shown = postprocess(generation.text, ctx)
        log.debug("completion kind=%s tokens=%d latency=%.3fs", ctx.kind.value, len(generation.token_ids), generation.latency_s)
        return Completion(text=shown, kind=ctx.kind, generation=generation, plan=plan)

    def context(self, text: str, offset: int, language: str, *, tree=None, neighbours=(), path: str = "",
                repo: str = ""):
        """The model's view of the document at ``offset``, under these settings."""
        s = self.settings
        return build_context(text, offset, language, self.counter, self.fim, s.context_tokens, s.prefix_share,
                             tree=tree, neighbours=neighbours, path=path, repo=repo, snippet_share=s.snippet_share,
                             order=s.fim_order, snap_lines=s.cut_snap_lines, anchor=s.fim_middle_anchor)

    def _other_cache_is_warmer(self, ctx, plan, cache_salt: str | None) -> bool:
        """Whether the plan other than ``plan``'s would finish sooner, reading far less of its prompt afresh."""
        s = self.settings
        if not plan.speculate and not self._may_turn_to_speculation():
            return False

        def cached_chars(speculate: bool) -> int:
            return self.recent_prompts.cached_chars(self.engine.prefix_cache(speculate, cache_salt), ctx.prompt)

        speculating_chars, bypassed_chars = cached_chars(True), cached_chars(False)
        planned, other = ((speculating_chars, bypassed_chars) if plan.speculate
                          else (bypassed_chars, speculating_chars))
        if other <= planned:
            return False  # nothing to gain: spare the tokenizer
        speculating = self.counter.count(ctx.prompt[:speculating_chars]) if speculating_chars else 0
        bypassed = self.counter.count(ctx.prompt[:bypassed_chars]) if bypassed_chars else 0
        k = plan.num_speculative_tokens if plan.speculate else choose_k(s, ctx.language, self.acceptance)
        speedup = expected_speedup(self.acceptance.alpha(ctx.language), k, s.draft_cost_ratio)
        return other_plan_pays(self.step_costs, planned_speculate=plan.speculate, prompt_tokens=ctx.prompt_tokens,
                               cached_if_speculating=speculating, cached_if_bypassed=bypassed,
                               new_tokens=plan.max_tokens, speedup=speedup, draft_cost=s.draft_cost_ratio,
                               block_tokens=self.engine.block_size)

    def _may_turn_to_speculation(self) -> bool:
        """Whether a request planned to bypass may speculate instead: each request's plan reaches vLLM,
        and the engine and settings allow speculation at all."""
        s = self.settings
        return (self.engine.per_request and s.speculation_policy != "engine"
                and may_speculate(s, engine_speculates=self.engine.speculates, backend=self.engine.backend))

    def _remember(self, prompt: str, plan, generation: Generation, cache_salt: str | None) -> None:
        if generation.first_token_s is None:
            return  # its prefill may not have finished
        self.recent_prompts.remember(self.engine.prefix_cache(plan.speculate, cache_salt), prompt)
        if not plan.speculate:
            self.step_costs.observe(read_tokens=generation.prompt_tokens - generation.cached_tokens,
                                    first_token_s=generation.first_token_s, new_tokens=len(generation.token_ids),
                                    latency_s=generation.latency_s)
