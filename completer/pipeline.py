"""The whole completion pipeline in one readable function: context → plan → engine → postprocess."""

from __future__ import annotations

import logging
from contextlib import aclosing
from dataclasses import dataclass, replace

from completer.config import Settings
from completer.context.builder import build_context, left_the_held_back, without_held_back
from completer.context.prompt import format_for
from completer.context.tokens import CharEstimateCounter, HFTokenCounter, TokenCounter, stop_token_ids
from completer.engine.interface import Engine, new_request_id
from completer.policy.classify import grown_kind
from completer.policy.speculation import SpeculationPolicy
from completer.postprocess.pipeline import block_finished, postprocess
from completer.types import Completion, CompletionKind, Context, Generation

log = logging.getLogger(__name__)


@dataclass
class Streamed:
    """What a request's stream has produced so far (kept when the request is cancelled)."""

    generation: Generation
    ctx: Context


class Completer:
    """Binds one engine to the settings, the model's tokenizer and the speculation policy."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.fim = format_for(settings.model)
        try:
            self.counter: TokenCounter = HFTokenCounter(engine.target_dir)
        except Exception:
            self.counter = CharEstimateCounter()
        self.stop_token_ids = stop_token_ids(self.counter, self.fim.stop)
        self.policy = SpeculationPolicy(settings, engine.capabilities, block_size=engine.block_size,
                                        count_tokens=self.counter.count)

    @property
    def settings(self) -> Settings:
        return self.policy.settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self.policy.settings = settings  # what the editor changes applies to the next request

    async def complete(self, text: str, offset: int, language: str, *, stop_early: bool = True, tree=None,
                       neighbours=(), path: str = "", repo: str = "", k: int | None = None,
                       cache_salt: str | None = None, request_id: str | None = None) -> Completion:
        """The completion at ``offset`` (an index into ``text``).

        ``stop_early=False`` lets the engine run to its own stop (max_tokens, stop
        tokens), so that token streams can be compared exactly. ``tree`` is the
        document's current syntax tree, ``neighbours`` (path, windows) of other
        documents for cross-file snippets; ``k`` fixes the speculation (0: the target
        alone), for benchmarks. Raises EngineError when the engine fails the request.
        """
        request_id = request_id or new_request_id()
        ctx = self.context(text, offset, language, tree=tree, neighbours=neighbours, path=path, repo=repo)
        if ctx.kind is CompletionKind.EMPTY:
            return Completion(text="", kind=ctx.kind, request_id=request_id)  # the engine is not asked
        plan = self.policy.plan(ctx, lambda speculate: self.engine.prefix_cache(speculate, cache_salt), k=k)
        plan = replace(plan, stop=plan.stop + self.fim.stop, stop_token_ids=self.stop_token_ids)
        streamed = Streamed(Generation(text=""), ctx)
        try:
            await self._stream(streamed, plan, request_id, cache_salt, stop_early)
        finally:
            # a request cancelled after its first token has still filled the cache with its prompt
            self.policy.remember(ctx, plan, streamed.generation, self.engine.prefix_cache(plan.speculate, cache_salt))
        generation, ctx = streamed.generation, streamed.ctx
        self.policy.observe_acceptance(language, plan, generation)
        shown = postprocess(generation.text, ctx)
        log.debug("completion %s kind=%s tokens=%d latency=%.3fs", request_id, ctx.kind.value,
                  len(generation.token_ids), generation.latency_s)
        return Completion(text=shown, kind=ctx.kind, generation=generation, plan=plan, request_id=request_id)

    async def _stream(self, streamed: "Streamed", plan, request_id: str, cache_salt: str | None,
                      stop_early: bool) -> None:
        """Stream the engine's answer into ``streamed``, and stop it as soon as the shown text can no longer change."""
        ctx = streamed.ctx
        async with aclosing(self.engine.generate(ctx.prompt, plan, request_id=request_id,
                                                 cache_salt=cache_salt)) as stream:
            async for generation in stream:
                if left_the_held_back(generation.text, ctx.held_back):
                    log.debug("the model did not write the held-back %r; no answer", ctx.held_back)
                    streamed.generation = replace(generation, text="")
                    return
                generation = replace(generation, text=without_held_back(generation.text, ctx.held_back))
                streamed.generation = generation
                if ctx.may_grow and ctx.kind is CompletionKind.SINGLE_LINE:
                    kind = grown_kind(ctx.line_prefix, generation.text)
                    if kind is not None:
                        ctx = streamed.ctx = replace(ctx, kind=kind, may_grow=False)
                if not stop_early:
                    continue
                if ctx.kind is CompletionKind.SINGLE_LINE and ctx.may_grow is False and "\n" in generation.text:
                    break  # the line is complete and opens nothing
                if ctx.kind is CompletionKind.MULTI_LINE and block_finished(generation.text, ctx):
                    log.debug("block closed after %d tokens; stopping early", len(generation.token_ids))
                    break

    def context(self, text: str, offset: int, language: str, *, tree=None, neighbours=(), path: str = "",
                repo: str = "") -> Context:
        """The model's view of the document at ``offset``, under these settings."""
        s = self.settings
        return build_context(text, offset, language, self.counter, self.fim, s.context_tokens, s.prefix_share,
                             tree=tree, neighbours=neighbours, path=path, repo=repo, snippet_share=s.snippet_share,
                             order=s.fim_order, snap_lines=s.cut_snap_lines, anchor=s.fim_middle_anchor)
